"""Draining the store's outbox into the embedded index: nothing lost when the index fails."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Iterator

import pytest
from sqlalchemy import func, select

from index.backend import IndexDoc
from index.embedded import EmbeddedBackend
from index.outbox import OutboxError, backlog, drain
from store.importer import import_debunks
from store.models import Debunk, IndexOutbox
from store.records import ClaimIn
from store.writes import add_claim, enqueue

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "debunks"
FILES = [FIXTURES / "articles.csv", FIXTURES / "articles.jsonl"]


class FlakyBackend(EmbeddedBackend):
    """A real embedded index whose first ``failures`` upserts fail like an outage would."""

    def __init__(self, path: Path, failures: int = 1) -> None:
        super().__init__(path)
        self.failures = failures
        self.calls = 0

    def upsert(self, docs: Iterable[IndexDoc], *, refresh: bool = True) -> int:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("index unavailable")
        return super().upsert(docs, refresh=refresh)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(tmp_path / "index.sqlite")
    yield b
    b.close()


def _debunk_ids(store) -> set[int]:
    with store.session() as s:
        return set(s.scalars(select(Debunk.id)))


def _outbox(store) -> list[tuple[int, int, str, int, str | None]]:
    with store.session() as s:
        return [(r.id, r.doc_id, r.op, r.attempts, r.last_error) for r in s.scalars(select(IndexOutbox).order_by(IndexOutbox.id))]


def test_import_then_drain(store, backend) -> None:
    report = import_debunks(store, FILES)
    assert backlog(store) == report.imported + report.updated == 11
    assert drain(store, backend, batch_size=4) == 11
    assert backlog(store) == 0
    ids = _debunk_ids(store)
    assert backend.count("debunk") == len(ids) == 10
    assert backend.keys("debunk") == {f"debunk:{i}" for i in ids}
    # The updated article is indexed in its newest version.
    hits = backend.search("醋 补充 高血压")
    assert hits and "【更新】" in backend._db.execute("SELECT text FROM docs WHERE key = ?", (hits[0].key,)).fetchone()[0]
    # Draining again is a no-op.
    assert drain(store, backend) == 0
    assert backend.count() == 10


def test_drain_reports_progress(store, backend) -> None:
    import_debunks(store, FILES)
    seen: list[int] = []
    drain(store, backend, batch_size=5, progress=seen.append)
    assert seen == [5, 5, 1]


def test_claims_and_deletes_go_through_the_outbox(store, backend) -> None:
    import_debunks(store, FILES)
    with store.session() as s:
        claim, _ = add_claim(s, ClaimIn(source="weibo", text="腐乳是发霉的豆腐，吃了会致癌"))
    drain(store, backend)
    assert backend.count("claim") == 1
    victim = min(_debunk_ids(store))
    with store.session() as s:
        s.delete(s.get(Debunk, victim))
        enqueue(s, "debunk", victim, op="delete")
        enqueue(s, "debunk", 98765)  # an upsert for a row that no longer exists is a delete
    assert drain(store, backend) == 2
    assert f"debunk:{victim}" not in backend.keys()
    assert backend.count("debunk") == len(_debunk_ids(store)) == 9
    assert backlog(store) == 0


def test_failed_drain_keeps_the_outbox_and_a_second_drain_succeeds(store, tmp_path: Path) -> None:
    import_debunks(store, FILES)
    before = _outbox(store)
    flaky = FlakyBackend(tmp_path / "flaky.sqlite", failures=1)
    try:
        with pytest.raises(OutboxError, match="index unavailable"):
            drain(store, flaky)
        assert [r[:3] for r in _outbox(store)] == [r[:3] for r in before]
        assert backlog(store) == 11
        assert flaky.count() == 0

        assert drain(store, flaky) == 11
        assert backlog(store) == 0
        assert flaky.count("debunk") == len(_debunk_ids(store)) == 10
        assert flaky.calls == 2
    finally:
        flaky.close()


def test_failure_in_a_later_batch_keeps_earlier_progress(store, tmp_path: Path) -> None:
    import_debunks(store, FILES)

    class FailSecond(EmbeddedBackend):
        calls = 0

        def upsert(self, docs: Iterable[IndexDoc], *, refresh: bool = True) -> int:
            self.calls += 1
            if self.calls == 2:
                raise ConnectionError("timeout")
            return super().upsert(docs, refresh=refresh)

    b = FailSecond(tmp_path / "b.sqlite")
    try:
        with pytest.raises(OutboxError):
            drain(store, b, batch_size=4)
        assert backlog(store) == 11 - 4
        assert b.count() == 4
        assert drain(store, b, batch_size=4) == 7
        assert backlog(store) == 0
        assert b.count() == len(_debunk_ids(store))
    finally:
        b.close()


def test_failed_drain_records_attempts_and_error(store, tmp_path: Path) -> None:
    import_debunks(store, FILES)
    flaky = FlakyBackend(tmp_path / "flaky.sqlite", failures=1)
    try:
        with pytest.raises(OutboxError):
            drain(store, flaky)
        rows = _outbox(store)
        assert {r[3] for r in rows} == {1}
        assert all(r[4] and "index unavailable" in r[4] for r in rows)
    finally:
        flaky.close()


def test_status_counts_agree_after_cli_index(clean_env: Path) -> None:
    from click.testing import CliRunner

    from pipeline import cli

    r = CliRunner().invoke(cli, ["debunks", "import", "--no-index", *map(str, FILES)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["status", "--json"])
    import json

    counts = json.loads(r.stdout)
    assert counts["outbox_backlog"] == 11 and counts["index_documents"] == 0
    r = CliRunner().invoke(cli, ["index"])
    assert r.exit_code == 0, r.output
    assert "indexed 11 pending change(s); 10 documents in the index" in " ".join(r.stdout.split())
    counts = json.loads(CliRunner().invoke(cli, ["status", "--json"]).stdout)
    assert counts["outbox_backlog"] == 0
    assert counts["index_documents"] == counts["debunks"] == 10


def test_backlog_counts_rows(store) -> None:
    assert backlog(store) == 0
    with store.session() as s:
        enqueue(s, "debunk", 1)
        enqueue(s, "claim", 2)
    assert backlog(store) == 2
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(IndexOutbox)) == 2


class PausedBackend(EmbeddedBackend):
    """A real embedded index whose upserts wait until ``go`` is set (``entered`` says one is waiting)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered, self.go = threading.Event(), threading.Event()

    def upsert(self, docs: Iterable[IndexDoc], *, refresh: bool = True) -> int:
        self.entered.set()
        assert self.go.wait(30)
        return super().upsert(docs, refresh=refresh)


def test_a_slow_drain_never_deletes_a_later_write_that_took_a_freed_id(store, tmp_path: Path) -> None:
    # Two drains at once (two intake requests): the slow one read row 1 (claim A); the fast one indexes A
    # and deletes row 1; claim B is written next. On SQLite without AUTOINCREMENT B's row took id 1 again,
    # and the slow drain's delete of "its" row 1 removed B's write: B stayed in the store, out of the index,
    # not pending (tests/faults/test_fault_kill_server.py caught it after a kill -9).
    with store.session() as s:
        a, _ = add_claim(s, ClaimIn(source="weibo", text="隔夜菜千万不能吃，吃了会致癌"))
    shared = tmp_path / "index.sqlite"
    slow, fast = PausedBackend(shared), EmbeddedBackend(shared)
    try:
        t = threading.Thread(target=drain, args=(store, slow))
        t.start()
        assert slow.entered.wait(30)
        assert drain(store, fast) == 1 and backlog(store) == 0
        with store.session() as s:
            b, _ = add_claim(s, ClaimIn(source="weibo", text="手机放在枕边充电，辐射会导致脑瘤"))
        slow.go.set()
        t.join(30)
        assert not t.is_alive()
        # B was indexed (the slow drain goes on to the rows written meanwhile) or is still pending, never dropped.
        drain(store, fast)
        assert backlog(store) == 0
        assert fast.keys("claim") == {f"claim:{a.id}", f"claim:{b.id}"}
    finally:
        slow.go.set()
        slow.close()
        fast.close()
