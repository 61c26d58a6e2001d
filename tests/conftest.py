"""Test-suite wide settings.

With PIYAO_NO_SKIPS=1 (set by .ci/run) a skipped test fails the run: a skip in
CI hides a broken feature.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from contextlib import contextmanager
from types import ModuleType
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from store.db import Store, open_store



# PIYAO_REQUIRE=elasticsearch,browser,postgresql (set by .ci/run): each group must have passed tests,
# so a run that quietly deselected or lost them fails even with no skip.
REQUIRED_GROUPS = {
    "elasticsearch": lambda nodeid: "test_conformance_elastic.py" in nodeid,
    "browser": lambda nodeid: "tests/web/browser/" in nodeid,
    "postgresql": lambda nodeid: "[postgresql" in nodeid,
}


def _missing_groups(reporter: object) -> list[str]:
    wanted = [g.strip() for g in os.environ.get("PIYAO_REQUIRE", "").split(",") if g.strip()]
    passed = [r.nodeid for r in getattr(reporter, "stats", {}).get("passed", []) if getattr(r, "when", "call") == "call"]
    return [g for g in wanted if g not in REQUIRED_GROUPS or not any(REQUIRED_GROUPS[g](n) for n in passed)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    missing = _missing_groups(reporter) if reporter else []
    if missing:
        if reporter:
            reporter.write_line(f"PIYAO_REQUIRE: no passed test in {', '.join(missing)}; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if os.environ.get("PIYAO_NO_SKIPS") != "1":
        return
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"PIYAO_NO_SKIPS: {skipped} test(s) were skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.testscollected == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests named ``*sqlite*`` check SQLite specifics (pragmas, WAL files): they run on SQLite only.

    Their PostgreSQL variants are deselected rather than skipped, so PIYAO_NO_SKIPS stays meaningful.
    """
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("db_url") == "postgresql"
        (drop if on_pg and "sqlite" in getattr(item, "originalname", item.name) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test database (scripts/postgres.sh; `make test` sets PIYAO_TEST_PG_URL)."""
    url = os.environ.get("PIYAO_TEST_PG_URL")
    if not url:
        pytest.skip("PIYAO_TEST_PG_URL is not set: run scripts/postgres.sh start and set it (make test does both)")
    return url


@pytest.fixture(scope="session")
def _pg_admin(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - a set but unreachable database is an error, not a skip
        pytest.fail(f"PIYAO_TEST_PG_URL={pg_url} does not answer: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    yield engine
    engine.dispose()


@pytest.fixture
def _pg_schema_url(pg_url: str, _pg_admin: Engine) -> Iterator[str]:
    """A fresh, empty schema per test, made the connection's search_path: as isolated as a new
    database, but created and dropped in milliseconds."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _pg_admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with _pg_admin.connect() as conn:
        conn.execute(text("SET lock_timeout = '20s'"))
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that uses the store runs on SQLite (the embedded default) and on PostgreSQL."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("_pg_schema_url"))
    return f"sqlite:///{tmp_path / 'data' / 'piyao.db'}"


@pytest.fixture(scope="session")
def es_url() -> str:
    """The Elasticsearch test node (scripts/elasticsearch.sh; `make test` sets PIYAO_TEST_ES_URL)."""
    url = os.environ.get("PIYAO_TEST_ES_URL")
    if not url:
        pytest.skip("PIYAO_TEST_ES_URL is not set: run scripts/elasticsearch.sh start and set it (make test does both)")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_cluster/health?wait_for_status=yellow&timeout=30s", timeout=40) as r:
            health = json.load(r)
    except Exception as exc:  # noqa: BLE001 - a set but unreachable node is an error, not a skip
        pytest.fail(f"PIYAO_TEST_ES_URL={url} does not answer: {exc.__class__.__name__}: {exc}")
    if health.get("status") not in ("green", "yellow"):
        pytest.fail(f"PIYAO_TEST_ES_URL={url} is not healthy: {health}")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = open_store(db_url)
    yield st
    st.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PIYAO_* variable from the caller's shell; the CLI's data dir is tmp_path/data."""
    for key in list(os.environ):
        if key.startswith("PIYAO_"):
            monkeypatch.delenv(key)
    data = tmp_path / "data"
    monkeypatch.setenv("PIYAO_DATA_DIR", str(data))
    return data


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis test server (scripts/redis.sh; `make test` sets PIYAO_TEST_REDIS_URL)."""
    url = os.environ.get("PIYAO_TEST_REDIS_URL")
    if not url:
        pytest.skip("PIYAO_TEST_REDIS_URL is not set: run scripts/redis.sh start and set it (make test does both)")
    try:
        import redis

        redis.Redis.from_url(url, socket_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - a set but unreachable server is an error, not a skip
        pytest.fail(f"PIYAO_TEST_REDIS_URL={url} does not answer: {exc.__class__.__name__}: {exc}")
    return url


@contextmanager
def bench_script(filename: str, module_name: str) -> Iterator[ModuleType]:
    """bench/<filename> imported as the module ``module_name`` (bench/ is scripts, not a package)."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(module_name, root / "bench" / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)
