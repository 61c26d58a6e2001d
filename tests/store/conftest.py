"""Fixtures for the store tests: a migrated SQLite store in tmp_path and the debunk fixture files."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from store.db import Store, open_store

REPO = Path(__file__).resolve().parents[2]
DEBUNKS = REPO / "tests" / "fixtures" / "debunks"
CSV = DEBUNKS / "articles.csv"
JSONL = DEBUNKS / "articles.jsonl"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'piyao.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = open_store(db_url)
    yield st
    st.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PIYAO_* variable from the caller's shell; the CLI's data dir is tmp_path/data."""
    import os

    for key in list(os.environ):
        if key.startswith("PIYAO_"):
            monkeypatch.delenv(key)
    data = tmp_path / "data"
    monkeypatch.setenv("PIYAO_DATA_DIR", str(data))
    return data
