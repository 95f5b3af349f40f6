"""Reference tables generated from the code, for cog: ``cog -r -I docs README.md docs/*.md``.

``make lint`` runs ``cog --check`` on the same files, so a table that no longer says what
the code does fails CI (as sqlite-utils and git-history do with their docs).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import click
import yaml

from ledger.cli import cli
from ledger.errors import REFUSALS
from ledger.log import LOG_TABLES
from ledger.projections.tables import PROJECTION_TABLES
from ledger.settings import declared

ROOT = Path(__file__).resolve().parent.parent


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def configuration(*, essential: bool = False) -> str:
    """The settings an operator can set (``essential``: those a deployment decides): each
    variable (and option) and default; with ``essential``, a line naming the others."""
    lines = [_row("setting", "environment (option)", "default"), _row(*["---"] * 3)]
    others = []
    for f in declared():
        meta = f.metadata
        if not meta["env"]:
            continue  # a tunable, passed in by code
        env = ", ".join(f"`{e.strip()}`" for e in meta["env"].split(" or "))
        if essential and not meta["essential"]:
            others.append(env)
            continue
        if meta["option"]:
            env += f" (`{meta['option']}`)"
        lines.append(_row(meta["help"], env, meta["shown"] or f"`{f.default}`"))
    if others:
        lines += ["", f"Limits and tuning, each in the full table: {', '.join(others)}."]
    return "\n".join(lines)


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def commands(*, options: bool = True) -> str:
    """Every command with its arguments and its options' help; without ``options``, one
    line a command: its name and what it does."""
    out = []
    for name, command in _commands(cli, "ledger "):
        if not options:
            out.append(f"- `{name}` — {command.get_short_help_str(limit=120)}")
            continue
        ctx = click.Context(command, info_name=name)
        usage = " ".join(command.collect_usage_pieces(ctx))
        out.append(f"- `{name} {usage}` — {command.get_short_help_str(limit=200)}")
        shown = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
        out += [f"  - `{'/'.join(p.opts)}`: {p.help or ''}" for p in shown]
    return "\n".join(out)


def answers() -> str:
    """What the receiver answers, by the refusal classes that choose each status."""
    lines = [_row("situation", "answer"), _row("---", "---")]
    lines.append(_row("new snapshot, committed durably", "200 `appended as seq N`"))
    # kept and acknowledged, though the projections leave it out (order_view.NotProjected)
    too_big = "new snapshot too big to project (`projection_issues` says why)"
    lines.append(_row(too_big, "200 `appended as seq N`"))
    lines.append(_row("exact bytes already in the log", "200 `duplicate of seq N`"))
    for refusal in REFUSALS:
        for situation in refusal.situations:
            lines.append(_row(situation, refusal.status))
    lines.append(_row("the database cannot record it now (disk full, locked, read-only)",
                      "503 + `Retry-After`"))  # fmt: skip
    return "\n".join(lines)


def _metadata() -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((ROOT / "metadata.yml").read_text())
    return data


def tables() -> str:
    """One line per table of the file, from metadata.yml (the schema reference)."""
    meta = _metadata()["databases"]["ledger"]["tables"]  # type: ignore[index]
    out = []
    for table in (*LOG_TABLES, *PROJECTION_TABLES):
        about = meta.get(table.name, {})
        if about.get("hidden"):
            continue
        out.append(f"- `{table.name}` — {about.get('title', '')}")
    return "\n".join(out)


def schema() -> str:
    """Every table and view with every column and what it means."""
    meta = _metadata()["databases"]["ledger"]["tables"]  # type: ignore[index]
    out = []
    for name, about in meta.items():
        if about.get("hidden"):
            continue
        out.append(f"## `{name}`: {about.get('title', name)}\n")
        out.append(" ".join(str(about.get("description", "")).split()) + "\n")
        out.append(_row("column", "what it holds"))
        out.append(_row("---", "---"))
        for column, text in (about.get("columns") or {}).items():
            out.append(_row(f"`{column}`", str(text).replace("|", "\\|")))
        out.append("")
    return "\n".join(out).rstrip()


DATA_PATH = (
    "web.py", "form.py", "post.py", "signature.py", "payload.py", "writer.py", "jobs.py",
    "log.py", "projections/", "readside/",
)  # fmt: skip


def _summary(path: Path) -> str:
    target = path / "__init__.py" if path.is_dir() else path
    doc = ast.get_docstring(ast.parse(target.read_text())) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def layout(*, rest: bool = True) -> str:
    """The modules in the order a post travels, then (with ``rest``) the others, each with
    its first line."""
    package = ROOT / "ledger"
    others = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in package.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
        and p.name not in ("__init__.py", "__main__.py")
        and p.name + ("/" if p.is_dir() else "") not in DATA_PATH
    )
    lines = [f"- `ledger/{name}` — {_summary(package / name.rstrip('/'))}" for name in DATA_PATH]
    if rest:
        lines.append("")
        lines += [f"- `ledger/{name}` — {_summary(package / name.rstrip('/'))}" for name in others]
    return "\n".join(lines)


def targets() -> str:
    """The benchmark's targets and the last full run's figures (bench/results/latest.json);
    the read side's pages in one row, by the slowest."""
    results = json.loads((ROOT / "bench" / "results" / "latest.json").read_text())
    machine = results["machine"]
    lines = [
        f"Last full run: commit `{machine.get('commit', '?')}`, {machine.get('cpus', '?')} CPUs"
        f" ({machine.get('cpu', '')}), Python {machine.get('python', '?')}.",
        "",
        _row("target", "measured", "limit", "met"),
        _row("---", "---:", "---:", ":-:"),
    ]
    pages = [t for t in results["targets"] if t["target"].startswith("Datasette ")]
    for t in results["targets"]:
        if t not in pages:
            lines.append(_row(t["target"], _value(t["value"]), t["limit"], _met(t["met"])))
    if pages:
        worst = max(pages, key=lambda t: t["value"])
        met = sum(bool(t["met"]) for t in pages)
        slowest = worst["target"].removeprefix("Datasette ").split(" p99")[0]
        what = f"every Datasette page p99 (ms): {met} of {len(pages)} met; slowest {slowest}"
        lines.append(_row(what, _value(worst["value"]), worst["limit"], _met(met == len(pages))))
    return "\n".join(lines)


def _value(value: object) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def _met(met: object) -> str:
    return "✅" if met else "❌"


def metrics() -> str:
    """Every series ``GET /metrics`` serves, from the registry the receiver builds."""
    from ledger.metrics import Metrics

    registry = Metrics(ROOT / "nonexistent.db", lambda: {"writer": True}).registry
    lines = [_row("series", "type", "what it says"), _row(*["---"] * 3)]
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        lines.append(_row(f"`{name}`", family.type, family.documentation))
    return "\n".join(lines)
