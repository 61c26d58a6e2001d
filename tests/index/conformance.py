"""One behaviour for every search backend (the Haystack way): a base class each backend's tests inherit.

Subclasses provide a ``backend`` fixture yielding an empty, open backend.

Stated tolerance for "the same top results": BM25 implementations differ in
their IDF and length-norm formulas (FTS5 vs Lucene), so for every query in
``QUERIES`` the expected article must be the top hit, and at least 2 of the
expected top 3 must be in the backend's top 5.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from index.backend import Backend, IndexDoc, SearchFilters

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "conformance_corpus.jsonl"

# query → the expected top-3 titles' distinctive fragments, best first (judged by reading the corpus).
QUERIES: dict[str, list[str]] = {
    "隔夜菜 致癌": ["剩饭剩菜后导致失明", "千滚水不会致癌", "致癌"],
    "转基因食品 安全": ["转基因食品的安全考虑", "转基因食品会致癌", "转基因"],
    "口腔用品协会 牙膏 原料": ["牙膏原料致癌", "牙膏中含有这几种化学物质", "致癌"],
    "碘钾片 防辐射": ["碘钾片能防辐射", "防辐射物品没用", "辐射"],
    "高铁 辐射 女性": ["中国高铁辐射严重", "辐射", "辐射"],
    "咖啡 致癌物": ["59款咖啡检出2A类致癌物", "致癌物", "致癌"],
    "醋蛋 骗术": ["醋蛋归元液", "骗", "骗"],
    "积石山 地震": ["甘肃积石山地震", "地震", "地震"],
    "保鲜膜 有毒": ["保鲜膜别再这样用了", "塑料包装", "毒"],
    "玩手机 双下巴": ["双下巴", "手机", "手机"],
}


def load_corpus() -> list[IndexDoc]:
    docs = []
    for line in CORPUS.read_text("utf-8").splitlines():
        r = json.loads(line)
        docs.append(
            IndexDoc(
                key=r["key"],
                kind=r["kind"],
                title=r["title"],
                text=r["text"],
                source=r["source"],
                url=r["url"],
                date=dt.date.fromisoformat(r["date"]) if r["date"] else None,
            )
        )
    return docs


class BackendConformance:
    """Tests every backend must pass. Subclasses define the ``backend`` fixture."""

    @pytest.fixture
    def loaded(self, backend: Backend) -> Backend:
        backend.upsert(load_corpus())
        return backend

    def test_counts(self, loaded: Backend) -> None:
        n = len(load_corpus())
        assert loaded.count() == n
        assert loaded.count("debunk") == n
        assert loaded.count("claim") == 0

    @pytest.mark.parametrize("query", list(QUERIES))
    def test_same_top_results(self, loaded: Backend, query: str) -> None:
        expected = QUERIES[query]
        hits = loaded.search(query, limit=5)
        assert hits, query
        assert expected[0] in hits[0].title, [h.title for h in hits]
        top5 = [h.title for h in hits]
        found = sum(1 for frag in expected if any(frag in t for t in top5))
        assert found >= 2, (query, top5)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)

    def test_snippet_marks_terms_and_escapes_html(self, backend: Backend) -> None:
        backend.upsert(
            [IndexDoc(key="debunk:900", kind="debunk", title="隔夜菜真相", text="<script>alert(1)</script> 网传隔夜菜会致癌，其实不然。", source="测试", url="https://example.org/a")]
        )
        hit = backend.search("隔夜菜 致癌", limit=1)[0]
        assert "<mark>隔夜菜</mark>" in hit.snippet
        assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet

    def test_filters(self, loaded: Backend) -> None:
        docs = load_corpus()
        source = next(d.source for d in docs if "转基因食品的安全考虑" in d.title)
        hits = loaded.search("转基因", limit=20, filters=SearchFilters(source=source))
        assert hits and all(h.source == source for h in hits)
        assert loaded.search("转基因", filters=SearchFilters(kind="claim")) == []
        cut = dt.date(2023, 1, 1)
        recent = loaded.search("致癌", limit=50, filters=SearchFilters(date_from=cut))
        assert recent and all(h.date is not None and h.date >= cut for h in recent)
        old = loaded.search("致癌", limit=50, filters=SearchFilters(date_to=cut))
        assert all(h.date is not None and h.date <= cut for h in old)
        assert {h.key for h in recent}.isdisjoint({h.key for h in old if h.date and h.date < cut})

    def test_upsert_replaces_and_delete_removes(self, loaded: Backend) -> None:
        n = loaded.count()
        doc = load_corpus()[0]
        loaded.upsert([IndexDoc(key=doc.key, kind="debunk", title="全新标题 蓝莓花青素", text="蓝莓花青素 护眼 说法", source=doc.source, url=doc.url)])
        assert loaded.count() == n
        assert loaded.search("蓝莓花青素", limit=1)[0].key == doc.key
        assert loaded.delete([doc.key, "debunk:does-not-exist"]) == 1
        assert loaded.count() == n - 1
        assert loaded.search("蓝莓花青素") == []

    @pytest.mark.parametrize("query", ["", "   ", "，。！？", '"', "AND OR NOT", "致癌*", "(隔夜菜", "title:隔夜菜", "a" * 500])
    def test_odd_queries_do_not_raise(self, loaded: Backend, query: str) -> None:
        hits = loaded.search(query, limit=3)
        assert isinstance(hits, list)

    def test_offset_pages_do_not_overlap(self, loaded: Backend) -> None:
        first = loaded.search("致癌", limit=5)
        second = loaded.search("致癌", limit=5, offset=5)
        assert first and second
        assert {h.key for h in first}.isdisjoint({h.key for h in second})

    def test_rebuild_swaps_in_a_fresh_index_and_searches_keep_answering(self, loaded: Backend) -> None:
        docs = load_corpus()
        answered: list[int] = []
        failures: list[BaseException] = []
        building = threading.Event()

        def slow_docs() -> Any:
            for i, d in enumerate(docs):
                if i == 1:
                    building.set()
                time.sleep(0.01)
                yield IndexDoc(**{**d.__dict__, "title": d.title + " 重建"})

        def searcher() -> None:
            building.wait(10)
            while building.is_set():
                try:
                    answered.append(len(loaded.search("致癌", limit=3)))
                except BaseException as exc:  # noqa: BLE001 - recorded and asserted below
                    failures.append(exc)
                time.sleep(0.02)

        t = threading.Thread(target=searcher)
        t.start()
        try:
            n = loaded.rebuild(slow_docs())
        finally:
            building.clear()
            t.join(10)
        assert n == len(docs)
        assert not failures, failures
        assert answered and all(k > 0 for k in answered), answered
        assert loaded.count() == len(docs)
        assert all("重建" in h.title for h in loaded.search("致癌", limit=5))
