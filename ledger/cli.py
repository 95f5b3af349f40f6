"""The command line: a thin adapter that turns library errors into one-line messages."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import fields
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .db import connection
from .errors import LedgerError
from .settings import PARSERS, Settings

F = TypeVar("F", bound=Callable[..., Any])
SETTINGS = {f.name: f for f in fields(Settings)}


def friendly(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LedgerError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"database error: {exc}") from None
        except OSError as exc:  # a file or directory the command was pointed at
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None

    return wrapper  # type: ignore[return-value]


def setting_option(name: str, **options: Any) -> Callable[[F], F]:
    """The option for Settings field ``name``, its help taken from the field."""
    meta = SETTINGS[name].metadata
    where = f"env {meta['env']}" if meta["env"] else ""
    shown = meta["shown"] or SETTINGS[name].default
    help_text = f"{meta['help']} [{where}, default {shown}]" if where else meta["help"]
    return click.option(meta["option"], name, default=None, help=help_text, **options)


def settings_from(**given: Any) -> Settings:
    """The environment's settings, with what was given on the command line over them."""
    settings = Settings.from_env()
    paths = ("db_path", "key_file", "signing_key_file")
    changes = {k: Path(v) if k in paths else v for k, v in given.items() if v}
    return settings.with_(**changes) if changes else settings


def existing_db(settings: Settings) -> Path:
    if not settings.db_path.exists():
        raise click.ClickException(f"{settings.db_path} does not exist")
    return settings.db_path


ASK = "\0ask"  # --datasette-password given with no value
PASSWORD_ENV = "LEDGER_DATASETTE_PASSWORD"


def asked_password() -> str:
    """The password from the environment, else asked on the terminal; under systemd there
    is none, and saying why beats click's bare 'Aborted!'."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise click.ClickException(
            f"--datasette-password: no terminal to ask the password on; set {PASSWORD_ENV},"
            " or a hash in LEDGER_DATASETTE_PASSWORD_HASH (`datasette hash-password`)"
        )
    return str(click.prompt("Datasette password", hide_input=True))


db_option = setting_option("db_path")
key_option = setting_option("key_file")
signing_option = setting_option("signing_key_file")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="orderdesk-ledger")
def cli() -> None:
    """An append-only, tamper-evident ledger of Order Desk order posts."""


@cli.command()
@db_option
@signing_option
@key_option
@click.option("--host", default="127.0.0.1", show_default=True, help="receiver address")
@click.option("--port", default=8000, show_default=True, help="receiver port")
@click.option("--datasette-host", default="127.0.0.1", show_default=True)
@click.option("--datasette-port", default=8001, show_default=True)
@click.option(
    "--metadata", type=click.Path(exists=True, dir_okay=False), help="Datasette metadata.yml"
)
@setting_option("max_body_bytes")
@setting_option("trusted_proxies", multiple=True, metavar="ADDR")
@click.option(
    "--rehearse",
    is_flag=False,
    flag_value="*",
    default=None,
    metavar="[STORES]",
    help="answer every post (or those of these comma-separated store ids) 400 with the"
    " verdict production would give, keeping only the delivery: for setting up the rule"
    " [env LEDGER_REHEARSE]",
)
@click.option(
    "--datasette-password",
    is_flag=False,
    flag_value=ASK,
    envvar=PASSWORD_ENV,
    help="put Datasette behind a login (user ledger); with no value, read from the env or"
    " asked on the terminal [env LEDGER_DATASETTE_PASSWORD, or a hash in"
    " LEDGER_DATASETTE_PASSWORD_HASH]",
)
@click.option(
    "--public-datasette",
    is_flag=True,
    help="let Datasette listen off loopback with no login (it shows customers' addresses)",
)
@click.option(
    "--publish-to",
    type=click.Path(file_okay=False),
    help="write the latest signed head into this witness directory every --publish-every"
    " seconds and at shutdown",
)
@click.option("--publish-every", default=60.0, show_default=True, help="seconds")
@friendly
def serve(
    db_path: str | None,
    signing_key_file: str | None,
    key_file: str | None,
    host: str,
    port: int,
    datasette_host: str,
    datasette_port: int,
    metadata: str | None,
    max_body_bytes: str | None,
    rehearse: str | None,
    trusted_proxies: tuple[str, ...],
    datasette_password: str | None,
    public_datasette: bool,
    publish_to: str | None,
    publish_every: float,
) -> None:
    """Receive posts on POST /orderdesk and serve the file through Datasette."""
    from .publish import Publish
    from .readside.login import password_hash_from, require_login_off_loopback
    from .serve import Addresses
    from .serve import serve as run
    from .settings import trusted_proxies as proxies
    from .startup import open_ledger

    settings = settings_from(db_path=db_path, key_file=key_file, signing_key_file=signing_key_file)
    if max_body_bytes:
        settings = settings.with_(max_body_bytes=int(max_body_bytes))
    if rehearse:
        settings = settings.with_(rehearse=PARSERS["frozenset[str]"](rehearse))
    if trusted_proxies:
        settings = settings.with_(trusted_proxies=proxies(trusted_proxies, "--trusted-proxy"))
    settings.require_stores()
    password = asked_password() if datasette_password == ASK else datasette_password
    password_hash = password_hash_from(password, settings.datasette_password_hash)
    require_login_off_loopback(datasette_host, password_hash, public_datasette)
    open_ledger(settings)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    addresses = Addresses(host, port, datasette_host, datasette_port)
    publish = Publish(Path(publish_to), publish_every) if publish_to else None
    asyncio.run(
        run(settings, addresses, Path(metadata) if metadata else None, password_hash, publish)
    )


@cli.command()
@db_option
@click.option(
    "--public-key",
    help="the verifier key the owner gave you (or a file holding it): heads must be signed"
    " by it or by keys it rotated to",
)
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    type=click.Path(exists=True),
    help="a file of signed heads kept earlier (`ledger head`), or a witness directory",
)
@click.option("--all-signatures", is_flag=True, help="check every head's signature, not the last")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
@friendly
def verify(
    db_path: str | None,
    public_key: str | None,
    witnesses: tuple[str, ...],
    all_signatures: bool,
    as_json: bool,
) -> None:
    """Check the log with no secret: payload hashes, both chains, the signed heads."""
    from .db import evidence
    from .verify import pinned_key, verify_log
    from .witness import kept

    path = existing_db(settings_from(db_path=db_path))
    pinned = pinned_key(public_key) if public_key else None
    kept_heads = [w for source in witnesses for w in kept(Path(source))]
    with evidence(path) as conn:
        report = verify_log(
            conn, pinned=pinned, witnesses=kept_heads, all_signatures=all_signatures
        )
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
    elif report.problem:
        click.echo(f"TAMPERED: first bad {report.problem}", err=True)
    else:
        last = report.last
        assert last is not None and report.signer is not None
        click.echo(
            f"intact: {report.events} events, {report.deliveries} deliveries, {report.heads}"
            f" signed heads; the last signed by {report.signer.fingerprint}"
            f"{' (pinned)' if report.pinned else ''}, {report.witnessed} witnessed heads agree"
        )
        for warning in report.warnings:
            click.echo(f"note: {warning}", err=True)
    if report.problem:
        sys.exit(1)


def report_json(report: Any) -> dict[str, Any]:
    last = report.last
    return {
        "intact": report.intact,
        "problem": {"where": report.problem.where, "what": report.problem.what}
        if report.problem
        else None,
        "events": report.events,
        "deliveries": report.deliveries,
        "signed_heads": report.heads,
        "last_head": last._asdict() if last else None,
        "key": report.signer.vkey if report.signer else None,
        "fingerprint": report.signer.fingerprint if report.signer else None,
        "pinned": report.pinned,
        "witnessed": report.witnessed,
        "warnings": report.warnings,
    }


@cli.command()
@db_option
@friendly
def head(db_path: str | None) -> None:
    """Print the latest signed head, for an auditor to keep (`ledger verify --witness`)."""
    from .db import evidence
    from .heads import Keys, last_head, note

    with evidence(existing_db(settings_from(db_path=db_path))) as conn:
        signed, keys = last_head(conn), Keys.read(conn)
    if signed is None:
        raise click.ClickException("the file has no signed head yet")
    click.echo(note(signed, keys.origin), nl=False)


@cli.group()
def key() -> None:
    """The key that signs the log's heads."""


@key.command("show")
@db_option
@friendly
def key_show(db_path: str | None) -> None:
    """Print the verifier key to hand to auditors, and its fingerprint."""
    from .db import evidence
    from .heads import Keys

    with evidence(existing_db(settings_from(db_path=db_path))) as conn:
        current = Keys.read(conn).current
    click.echo(current.vkey)
    click.echo(f"fingerprint {current.fingerprint}", err=True)


@key.command("rotate")
@db_option
@signing_option
@friendly
def key_rotate(db_path: str | None, signing_key_file: str | None) -> None:
    """Sign with a new key from now on; the rotation is signed by the old and the new key."""
    from .db import writing
    from .keys import finish_rotation, rotate
    from .startup import open_ledger

    settings = settings_from(db_path=db_path, signing_key_file=signing_key_file)
    existing_db(settings)
    open_ledger(settings)
    with writing(settings.db_path, settings.busy_timeout_ms) as conn:
        old, new = rotate(conn, settings)
    finish_rotation(settings)
    click.echo(f"rotated from {old.verifier.fingerprint} to {new.verifier.fingerprint}")
    click.echo(new.verifier.vkey)


@cli.command()
@click.argument("source")
@click.option("--into", required=True, type=click.Path(file_okay=False), help="witness directory")
@click.option("--public-key", help="the ledger's verifier key (or a file holding it)")
@friendly
def witness(source: str, into: str, public_key: str | None) -> None:
    """Keep SOURCE's latest signed head if it extends the heads kept in --into.

    SOURCE is a copy of the ledger file (checked in full against the kept heads) or the
    URL of a receiver's GET /head (its signature checked, and that the log never shrinks).
    """
    from .verify import pinned_key
    from .witness import witness as keep

    click.echo(keep(source, Path(into), pinned_key(public_key) if public_key else None))


@cli.command()
@db_option
@click.option(
    "--check", is_flag=True, help="rebuild into a scratch copy and report differences only"
)
@friendly
def rebuild(db_path: str | None, check: bool) -> None:
    """Recompute every projection from the log."""
    from .projections import rebuild as rebuilding
    from .schema import ensure_schema

    settings = settings_from(db_path=db_path)
    path = existing_db(settings)
    if not check:  # an older file is upgraded first; a check changes nothing
        with connection(path, busy_timeout_ms=settings.busy_timeout_ms) as conn:
            ensure_schema(conn, settings)
    total = rebuilding.event_count(path)
    with click.progressbar(length=total, label="replaying events", file=sys.stderr) as bar:
        if check:
            differences = rebuilding.check(settings, bar.update)
        else:
            seq = rebuilding.rebuild(settings, bar.update)
    if not check:
        click.echo(f"rebuilt: projections up to seq {seq}")
        return
    if not differences:
        click.echo("no difference: the live projections equal a rebuild from the log")
        return
    for d in differences:
        click.echo(
            f"{d.table}: {d.only_live} rows only in live, {d.only_rebuilt} only in the rebuild"
        )
        for side, row in d.examples:
            click.echo(f"  {side}: {row}")
    sys.exit(1)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default="http://127.0.0.1:8000/orderdesk", show_default=True)
@click.option(
    "--store-id", envvar="ORDERDESK_STORE_ID", required=True, help="[env ORDERDESK_STORE_ID]"
)
@click.option(
    "--api-key", envvar="ORDERDESK_API_KEY", required=True, help="[env ORDERDESK_API_KEY]"
)
@click.option("--multipart", is_flag=True, help="post multipart/form-data instead of urlencoded")
@click.option(
    "--legacy", is_flag=True, help="sign rawurldecode(order), like old Order Desk samples"
)
@click.option(
    "--cacert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="trust the https URL's certificate if this CA signed it (a proxy's private CA)",
)
@friendly
def send(
    files: tuple[str, ...], url: str, store_id: str, api_key: str, multipart: bool,
    legacy: bool, cacert: Path | None,
) -> None:  # fmt: skip
    """Sign and post payload files exactly as Order Desk does."""
    from .send import post_order

    failed = 0
    for name in files:
        sent = post_order(
            url, Path(name).read_bytes(), store_id, api_key, as_multipart=multipart,
            legacy=legacy, cacert=cacert,
        )  # fmt: skip
        failed += sent.status not in (200, 201)
        click.echo(f"{name}: {sent.status} {sent.body}")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@db_option
@friendly
def backup(dest: str, db_path: str | None) -> None:
    """Take an online, consistent copy of the ledger at DEST (it carries no secret)."""
    from .backup import backup as take

    events = take(existing_db(settings_from(db_path=db_path)), Path(dest))
    click.echo(f"backed up {events} events to {dest}; `ledger verify --db {dest}` checks it")


@cli.group()
def folders() -> None:
    """Name Order Desk folders (their names are not in the payload)."""


@folders.command("set")
@click.argument("folder_id", type=int)
@click.argument("name")
@click.option("--store-id", help="store the folder belongs to (default: the only configured store)")
@db_option
@signing_option
@friendly
def folders_set(
    folder_id: int, name: str, store_id: str | None, db_path: str | None,
    signing_key_file: str | None,
) -> None:  # fmt: skip
    """Name FOLDER_ID; recorded in the log as a FolderNamed event."""
    from .jobs import NameFolder, run_alone
    from .keys import load_signing
    from .startup import open_ledger

    settings = settings_from(db_path=db_path, signing_key_file=signing_key_file)
    store_id = store_id or _only_store(settings)
    open_ledger(settings)
    with connection(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms) as conn:
        signing = load_signing(conn, settings)
        [seq] = run_alone(conn, signing, NameFolder(store_id, folder_id, name.strip()))
    click.echo(f"folder {folder_id} of store {store_id} is now {name.strip()!r} (seq {seq})")


def _only_store(settings: Settings) -> str:
    if len(settings.stores) == 1:
        return next(iter(settings.stores))
    raise click.ClickException("give --store-id: there is not exactly one configured store")


FOLDER_LIST = """
SELECT f.store_id, f.folder_id, f.name, f.named_at,
       (SELECT count(*) FROM orders o WHERE o.store_id = f.store_id AND o.folder_id = f.folder_id)
FROM folders f ORDER BY f.store_id, f.folder_id
"""


@folders.command("list")
@db_option
@friendly
def folders_list(db_path: str | None) -> None:
    """List named folders with how many current orders each holds."""
    with connection(existing_db(settings_from(db_path=db_path)), readonly=True) as conn:
        rows = conn.execute(FOLDER_LIST).fetchall()
    if not rows:
        click.echo("no folders named yet: ledger folders set FOLDER_ID NAME")
    for store_id, folder_id, name, named_at, count in rows:
        click.echo(f"{store_id}\t{folder_id}\t{name}\t{count} orders\tnamed {named_at}")
