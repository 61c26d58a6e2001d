"""Test-suite wide settings.

With PIYAO_NO_SKIPS=1 (set by .ci/run) a skipped test fails the run: a skip in
CI hides a broken feature.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from store.db import Store, open_store



def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("PIYAO_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"PIYAO_NO_SKIPS: {skipped} test(s) were skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.testscollected == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


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
