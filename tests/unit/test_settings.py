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
        ({"ORDERDESK_STORES": "1"}, "is not of the form id:key"),
    ],
)
def test_a_malformed_setting_is_a_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


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
