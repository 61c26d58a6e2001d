"""The embedded index written by several processes at once (`piyao serve --workers`, a crawl beside it).

Upsert reads a key's old rows and then writes; under a plain deferred BEGIN two processes could both
see a key missing and both insert it ("UNIQUE constraint failed: docs.key"). Upsert and delete take
the write lock first (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from index.backend import IndexDoc
from index.embedded import EmbeddedBackend
from index.passages import article_passages


def _doc(i: int, round_: int) -> IndexDoc:
    title = f"第{i}条：喝隔夜茶会致癌吗？（第{round_}版）"
    text = f"网传喝隔夜茶会致癌。真相：隔夜茶里的亚硝酸盐含量很低，第{i}条辟谣，第{round_}版。"
    return IndexDoc(f"debunk:{i}", "debunk", title, text, "测试", f"https://example.org/{i}", None,
                    passages=article_passages(title, text))


def _writer(path: str, round_: int, out: "mp.Queue[str]") -> None:
    try:
        backend = EmbeddedBackend(Path(path))
        for _ in range(3):
            for i in range(20):
                backend.upsert([_doc(i, round_)])
        backend.close()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"{exc.__class__.__name__}: {exc}")


def test_two_processes_upsert_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    EmbeddedBackend(path).close()  # the tables exist before the writers start
    ctx = mp.get_context("spawn")
    out: "mp.Queue[str]" = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), r, out)) for r in (1, 2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = sorted(out.get(timeout=5) for _ in procs)
    assert results == ["ok", "ok", "ok"], results
    backend = EmbeddedBackend(path)
    try:
        assert backend.count() == 20
        hits = backend.search("隔夜茶", limit=50)
        assert len({h.key for h in hits}) == 20
    finally:
        backend.close()
