"""`piyao check` on the embedded index (SQLite and PostgreSQL stores): every kind of difference is found and
named, pending outbox rows are not differences, `--repair` re-enqueues what differs and the check agrees after.

The index is damaged the ways a crash can leave it: a document gone, a document without its passages (a
half-written upsert), an old version, passages whose document is gone, a document the store never had.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import select

from index.embedded import EmbeddedBackend
from index.outbox import drain
from settings import load_settings
from store.db import Store
from store.importer import import_debunks
from store.models import Debunk
from store.records import ClaimIn
from store.writes import add_claim, enqueue
from tests.faults.tools import ROOT, check, env_for, piyao

FIXTURES = ROOT / "tests" / "fixtures" / "debunks"


def _setup(tmp_path: Path, store: Store, db_url: str) -> tuple[dict[str, str], Path]:
    env = env_for(tmp_path / "data", PIYAO_STORE__URL=db_url)
    index_path = load_settings(data_dir=tmp_path / "data", environ=env).index_path
    import_debunks(store, [FIXTURES / "articles.csv", FIXTURES / "articles.jsonl"])
    with store.session() as s:
        for i, text in enumerate(["隔夜菜会致癌，千万别吃", "微波炉加热会让食物有辐射", "吃味精会脱发"]):
            add_claim(s, ClaimIn(source="weibo", text=text, external_id=f"c-{i}"))
    backend = EmbeddedBackend(index_path)
    try:
        drain(store, backend)
    finally:
        backend.close()
    return env, index_path


def _damage(index_path: Path, ids: list[int]) -> None:
    """What crashes leave behind, written straight into the index file."""
    a, b, c, d = (f"debunk:{i}" for i in ids[:4])
    db = sqlite3.connect(str(index_path))
    with db:
        # a: the document row gone, its passages left (orphans under a key the store has).
        rowid = db.execute("SELECT rowid FROM docs WHERE key = ?", (a,)).fetchone()[0]
        db.execute("DELETE FROM docs_fts WHERE rowid = ?", (rowid,))
        db.execute("DELETE FROM docs WHERE rowid = ?", (rowid,))
        # c: a passage lost (an upsert cut half way); d: an older title.
        db.execute("DELETE FROM passages WHERE doc_key = ? AND position = 1", (c,))
        db.execute("UPDATE docs SET title = '旧标题' WHERE key = ?", (d,))
        # Documents the store does not have: a claim, and passages of a deleted debunk.
        db.execute("INSERT INTO docs(key, kind, source, title, text) VALUES ('claim:999', 'claim', 's', 't', 't')")
        db.execute("INSERT INTO passages(key, doc_key, kind, position, text) VALUES ('debunk:888#0', 'debunk:888', 'title', 0, 't')")
    db.close()
    backend = EmbeddedBackend(index_path)
    try:
        backend.delete([b])  # b: gone from the index altogether
    finally:
        backend.close()


def test_check_finds_each_difference_and_repair_fixes_them(tmp_path: Path, store: Store, db_url: str) -> None:
    env, index_path = _setup(tmp_path, store, db_url)
    rc, report = check(env)
    assert rc == 0 and report["agree"] and report["pending"] == 0, report
    assert report["store"] == report["index"] and report["store"]["debunk"]["count"] == 10 and report["store"]["claim"]["count"] == 3
    with store.session() as s:
        ids = list(s.scalars(select(Debunk.id).order_by(Debunk.id)))
    _damage(index_path, ids)
    # And a write the next `piyao index` makes: changed in the store, waiting in the outbox (pending, not stale).
    with store.session() as s:
        e = s.get(Debunk, ids[4])
        assert e is not None
        e.title = e.title + "（更新）"
        enqueue(s, "debunk", e.id)

    res = piyao(env, "check")
    assert res.returncode == 1, res.stdout + res.stderr
    a, b, c, d, e_key = (f"debunk:{i}" for i in ids[:5])
    lines = res.stdout.splitlines()
    assert f"missing from the index: 1 ({b})" in lines
    assert f"stale in the index (other content): 3 ({', '.join(sorted([a, c, d]))})" in lines
    assert "only in the index: 2 (claim:999, debunk:888)" in lines
    assert "pending in the outbox: 1 document(s), written by the next `piyao index`" in lines
    assert lines[-1] == "store and index differ: run `piyao check --repair`"
    rc, report = check(env)
    assert rc == 1 and not report["agree"] and report["missing"] == [b] and report["pending"] == 1
    assert e_key not in report["stale"] and report["store"]["debunk"]["checksum"] != report["index"]["debunk"]["checksum"]

    res = piyao(env, "check", "--repair")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "repaired: 6 document(s) re-enqueued and indexed" in res.stdout and res.stdout.splitlines()[-1] == "store and index agree"
    rc, report = check(env)
    assert rc == 0 and report["agree"] and report["pending"] == 0 and report["store"] == report["index"], report
    backend = EmbeddedBackend(index_path)
    try:
        assert backend.search("更新", limit=20) and "debunk:888" not in {k for k, _ in backend.fingerprints()}
    finally:
        backend.close()


def test_check_with_the_index_unreadable_is_one_line(tmp_path: Path, store: Store, db_url: str) -> None:
    env, index_path = _setup(tmp_path, store, db_url)
    index_path.write_bytes(b"this is not a database" * 100)
    res = piyao(env, "check")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines: list[Any] = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("piyao: error: ") and "index" in lines[0], res.stderr
