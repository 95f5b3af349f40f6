"""Settings read from an environment given in full: no process environment, no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import ConfigError
from ledger.settings import Settings, declared


def test_each_variable_sets_its_field_and_nothing_else_is_read() -> None:
    settings = Settings.from_env(
        {"LEDGER_DB": "/data/l.db", "LEDGER_BUSY_TIMEOUT_MS": "300", "ORDERDESK_STORE_ID": "1",
         "ORDERDESK_API_KEY": "k", "ORDERDESK_STORES": "2:k2", "LEDGER_KEY_FILE": ""}
    )  # fmt: skip
    assert settings.db_path == Path("/data/l.db") and settings.busy_timeout_ms == 300
    assert dict(settings.stores) == {"1": "k", "2": "k2"}
    assert settings.key_file is None  # empty means unset
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEDGER_BUSY_TIMEOUT_MS": "soon"}, "LEDGER_BUSY_TIMEOUT_MS is not a int"),
        ({"ORDERDESK_STORE_ID": "1"}, "set both ORDERDESK_STORE_ID and ORDERDESK_API_KEY"),
        ({"ORDERDESK_STORES": "1"}, "entry 1: no ':' between a store id and its API key"),
    ],
)
def test_a_malformed_setting_is_a_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


SECRET = "s3cr3t-KEY"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (f"70412:{SECRET};70413:other", "entry 1 (store 70412): the API key holds ';'"),
        (f"70412 {SECRET}", "entry 1: no ':' between a store id and its API key"),
        ("1234567890", "entry 1: no ':' between a store id and its API key"),  # a key, maybe
        (f"{SECRET}:70412", "entry 1: the store id is not a number"),
        (f"70412:{SECRET},,70413:k", "entry 2: empty"),
        (f"70412:{SECRET},", "entry 2: empty"),
        (f"70412:{SECRET}, 70413:k", "entry 2 (store 70413): whitespace around the store id"),
        (f"70412: {SECRET}", "entry 1 (store 70412): the API key holds whitespace"),
        (f"70412:{SECRET} ", "entry 1 (store 70412): the API key holds whitespace"),
        (f"70412:{SECRET}:x", "entry 1 (store 70412): the API key holds ':'"),
        ("70412:", "entry 1 (store 70412): the API key is empty"),
        (f"70412:{SECRET}\x00", "entry 1 (store 70412): the API key holds a character that is not"),
        (f"70412:a,70413:b,70412:{SECRET}", "entry 3 (store 70412) repeats entry 1"),
    ],
)
def test_orderdesk_stores_is_parsed_strictly_and_no_error_shows_a_key(
    spec: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"ORDERDESK_STORES": spec})
    assert str(refused.value).startswith(f"ORDERDESK_STORES {message}")
    assert SECRET not in str(refused.value) and SECRET.lower() not in str(refused.value).lower()


def test_orderdesk_stores_is_the_whole_list_and_a_single_store_joins_it_unless_it_conflicts() -> (
    None
):
    both = {"ORDERDESK_STORES": "70412:a,70413:b", "ORDERDESK_STORE_ID": "70414",
            "ORDERDESK_API_KEY": "c"}  # fmt: skip
    assert dict(Settings.from_env(both).stores) == {"70412": "a", "70413": "b", "70414": "c"}
    same = both | {"ORDERDESK_STORE_ID": "70412", "ORDERDESK_API_KEY": "a"}
    assert dict(Settings.from_env(same).stores) == {"70412": "a", "70413": "b"}
    other = both | {"ORDERDESK_STORE_ID": "70412", "ORDERDESK_API_KEY": SECRET}
    with pytest.raises(ConfigError, match="store 70412 has one API key in ORDERDESK_STORES and"):
        Settings.from_env(other)
    with pytest.raises(ConfigError, match=r"^ORDERDESK_API_KEY \(store 70412\): the API key holds"):
        Settings.from_env({"ORDERDESK_STORE_ID": "70412", "ORDERDESK_API_KEY": f"{SECRET}\n"})
    with pytest.raises(ConfigError, match="ORDERDESK_STORE_ID is not a number"):
        Settings.from_env({"ORDERDESK_STORE_ID": "shop", "ORDERDESK_API_KEY": SECRET})


def test_every_setting_says_what_it_does() -> None:
    for field in declared():
        assert field.metadata["help"], field.name
    assert not Settings().stores
    with pytest.raises(ConfigError, match="never accepts unverified posts"):
        Settings().require_stores()


def test_rehearsal_names_stores_or_every_store() -> None:
    named = Settings.from_env({"LEDGER_REHEARSE": " 70412, 70413 ,"})
    assert named.rehearse == {"70412", "70413"}
    assert named.rehearses("70412") and not named.rehearses("1") and not named.rehearses(None)
    every = Settings.from_env({"LEDGER_REHEARSE": "*"})
    assert every.rehearses("1") and every.rehearses(None)
    assert not Settings().rehearses("70412")
