from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from ledger.settings import Settings
from ledger.web import create_app

from .helpers import API_KEY, STORE_ID


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "ledger.db", stores={STORE_ID: API_KEY})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings)) as c:
        yield c
