"""The Elasticsearch backend passes the conformance suite against a real node, and agrees with the embedded one.

The node comes from PIYAO_TEST_ES_URL (`make test` starts one with scripts/elasticsearch.sh).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import numpy as np

from index.backend import BackendError, IndexDoc
from index.elastic import ElasticBackend
from index.embedded import EmbeddedBackend
from index.embedding import embed_pending
from index.matching import Matcher, MatchCalibration
from index.passages import KINDS
from tests.index.conformance import EMBED_KINDS, QUERIES, SMALL, BackendConformance, e5_encoder, fake_embed, load_corpus, unit_vector


def _backend(es_url: str) -> ElasticBackend:
    return ElasticBackend([es_url], alias=f"piyao-test-{uuid.uuid4().hex[:10]}", chunk_size=50)


def _drop(b: ElasticBackend) -> None:
    names = list(b.es.indices.get(index=f"{b.alias}-*,{b.passages_alias}-*", expand_wildcards="all"))
    if names:
        b.es.indices.delete(index=",".join(names))
    b.close()


class TestElasticConformance(BackendConformance):
    @pytest.fixture
    def backend(self, es_url: str) -> Iterator[ElasticBackend]:
        b = _backend(es_url)
        yield b
        _drop(b)


def test_same_top_results_as_the_embedded_backend(es_url: str, tmp_path: Path) -> None:
    """Stated tolerance: identical top hit for every query; on average ≥ 3.5 of the top 5 shared (3.9 measured here; 4.7 on the full corpus, bench/backend_agreement.py)."""
    es = _backend(es_url)
    emb = EmbeddedBackend(tmp_path / "index.sqlite")
    try:
        docs = load_corpus()
        es.upsert(docs)
        emb.upsert(docs)
        overlaps = []
        for q in QUERIES:
            a = [h.key for h in es.search(q, limit=5)]
            b = [h.key for h in emb.search(q, limit=5)]
            assert a[0] == b[0], (q, a, b)
            overlaps.append(len(set(a) & set(b)))
        assert sum(overlaps) / len(overlaps) >= 3.5, overlaps
    finally:
        _drop(es)
        emb.close()


# Claims and the article each should be matched with (a fragment of its title), on both backends.
CLAIMS = {
    "吃碘钾片可以防核辐射": "碘钾片能防辐射",
    "隔夜的饭菜吃了会致癌，还会让人失明": "剩饭剩菜后导致失明",
    "牙膏里的三氯生会致癌，赶紧换牙膏": "牙膏",
    "坐高铁辐射很大，未婚女性最好少坐": "中国高铁辐射严重",
    "醋蛋归元液能治百病": "醋蛋归元液",
    "低头玩手机会长出双下巴": "双下巴",
    "转基因食品吃了会不孕不育": "转基因",
    "嚼槟榔会得口腔癌": "槟榔",
}


def test_matcher_picks_the_same_article_on_both_backends(es_url: str, tmp_path: Path) -> None:
    """Hybrid matching (BM25 + real e5 vectors, the same calibration) gives every claim the same top article."""
    es = _backend(es_url)
    emb = EmbeddedBackend(tmp_path / "index.sqlite")
    try:
        docs = load_corpus(passages=True)
        enc = e5_encoder()
        calibration = MatchCalibration.fallback()
        for b in (es, emb):
            b.upsert(docs)
            assert embed_pending(b, enc, EMBED_KINDS) == sum(p.kind in EMBED_KINDS for d in docs for p in d.passages)
        assert es.vector_counts(KINDS) == emb.vector_counts(KINDS)
        for claim, title in CLAIMS.items():
            a = Matcher(es, encoder=enc, calibration=calibration).match(claim)
            b = Matcher(emb, encoder=enc, calibration=calibration).match(claim)
            assert a and b, claim
            assert a[0].debunk_id == b[0].debunk_id, (claim, [(m.title, m.score) for m in a], [(m.title, m.score) for m in b])
            assert title in a[0].title, (claim, a[0].title)
            assert a[0].score == pytest.approx(b[0].score, abs=0.1), claim
    finally:
        _drop(es)
        emb.close()


def test_search_after_pages_through_everything(es_url: str) -> None:
    b = _backend(es_url)
    try:
        b.upsert(load_corpus())
        seen: list[str] = []
        after = None
        while True:
            page = b.search("致癌", limit=4, search_after=after)
            if not page:
                break
            seen += [h.key for h in page]
            after = page[-1].extra["sort"]
        everything = [h.key for h in b.search("致癌", limit=100)]
        assert seen == everything and len(seen) > 8
    finally:
        _drop(b)


def test_claims_written_without_refresh_become_searchable_at_the_periodic_refresh(es_url: str) -> None:
    """Partner intake writes claims with refresh=False: no refresh call, the node's own refresh shows them."""
    b = _backend(es_url)
    try:
        b.upsert(load_corpus()[:3])
        claim = IndexDoc("claim:77", "claim", "喝苏打水能抗癌", "喝苏打水能抗癌，转给家人", "weibo")
        b.upsert([claim], refresh=False)
        assert "claim:77" in dict(b.fingerprints("claim"))  # the consistency check refreshes first: not "missing"
        b.upsert([IndexDoc("claim:79", "claim", "苏打水", "苏打水抗癌", "weibo")], refresh=False)
        deadline = time.monotonic() + 10
        while "claim:79" not in {h.key for h in b.search("苏打水 抗癌", limit=10)}:
            assert time.monotonic() < deadline, "a claim written without refresh never became searchable"
            time.sleep(0.2)
        other = IndexDoc("claim:78", "claim", "吃香蕉能治失眠", "吃香蕉能治失眠", "weibo")
        b.upsert([other])  # the default still refreshes: searchable when upsert returns
        assert "claim:78" in {h.key for h in b.search("香蕉 失眠", limit=10)}
    finally:
        _drop(b)


def test_documents_are_versioned_behind_the_alias(es_url: str) -> None:
    b = _backend(es_url)
    try:
        first = b.current_index()
        assert first.startswith(b.alias + "-")
        b.upsert(load_corpus()[:5])
        b.rebuild(load_corpus()[:7])
        second = b.current_index()
        assert second != first
        assert not b.es.indices.exists(index=first)
        assert b.count() == 7
    finally:
        _drop(b)


def test_passages_live_behind_their_own_alias(es_url: str) -> None:
    b = _backend(es_url)
    try:
        first = b.current_passages_index()
        assert b.passages_alias == b.alias + "_passages" and first.startswith(b.alias + "_passages-")
        mapping = b.es.indices.get_mapping(index=first)[first]["mappings"]["properties"]
        assert mapping["vector"]["type"] == "dense_vector" and mapping["vector"]["dims"] == b.vector_dims
        assert mapping["vector"]["similarity"] == "cosine" and mapping["vector"]["index"] is True
        assert mapping["doc_key"]["type"] == mapping["kind"]["type"] == mapping["source"]["type"] == "keyword"
        b.upsert(SMALL)
        doc = b.es.get(index=b.passages_alias, id="debunk:2#1")["_source"]
        assert doc["doc_key"] == "debunk:2" and doc["kind"] == "rumor" and doc["position"] == 1 and "vector" not in doc
        assert doc["text_tokens"] == "隔夜菜 含有 大量 亚硝酸盐 会 致癌" and doc["source"] == "乙" and doc["date"] == "2020-05-01"
        assert b.count() == 3 and b.keys() == {"debunk:1", "debunk:2", "debunk:3"}
        assert b.es.count(index=b.passages_alias)["count"] == 9
        # Rebuild: both aliases move in ONE update_aliases request; the old indices go.
        calls: list[list[dict]] = []
        real = b.es.indices.update_aliases

        def spy(**kwargs):  # type: ignore[no-untyped-def]
            calls.append(kwargs["actions"])
            return real(**kwargs)

        b.es.indices.update_aliases = spy  # type: ignore[method-assign]
        try:
            b.rebuild(SMALL[:2])
        finally:
            del b.es.indices.update_aliases
        assert len(calls) == 1
        moved = {(op, a[op]["alias"]) for a in calls[0] for op in a}
        assert moved == {("add", b.alias), ("remove", b.alias), ("add", b.passages_alias), ("remove", b.passages_alias)}
        second = b.current_passages_index()
        assert second != first and not b.es.indices.exists(index=first)
        assert b.es.count(index=b.passages_alias)["count"] == 6
    finally:
        _drop(b)


def test_a_deployment_without_passages_gets_the_alias_on_open(es_url: str) -> None:
    b = _backend(es_url)
    try:
        b.upsert(load_corpus())
        b.es.indices.delete(index=b.current_passages_index())  # as before passages existed
        assert not b.es.indices.exists_alias(name=b.passages_alias)
        again = ElasticBackend([es_url], alias=b.alias)
        try:
            assert again.es.indices.exists_alias(name=b.passages_alias)
            assert again.count() == 79 and again.vector_counts(KINDS) == (0, 0)
            assert again.search_passages(["致癌"]) == []
            again.upsert(load_corpus(passages=True)[:2])
            assert again.search_passages(["牙膏"], limit=3)[0].doc_key == "debunk:1"
        finally:
            again.close()
    finally:
        _drop(b)


def test_knn_scores_are_exact_cosines_and_errors_are_one_line(es_url: str) -> None:
    b = _backend(es_url)
    try:
        b.upsert(SMALL)
        fake_embed(b)
        rng = np.random.default_rng(3)
        for _ in range(5):
            q = rng.normal(size=b.vector_dims).astype(np.float32)
            q /= np.linalg.norm(q)
            for h in b.knn_passages(q, limit=9):
                assert h.score == pytest.approx(float(unit_vector(h.key) @ q), abs=1e-5)
        with pytest.raises(BackendError) as err:
            b.knn_passages(np.ones(7, dtype=np.float32), limit=3)
        assert "\n" not in str(err.value) and "Elasticsearch request failed" in str(err.value)
        with pytest.raises(BackendError, match="refused"):
            b.set_vectors([("debunk:1#0", np.zeros(b.vector_dims, dtype=np.float32))])  # cosine of a zero vector
    finally:
        _drop(b)


def test_refused_documents_are_reported_one_by_one(es_url: str) -> None:
    from index.backend import IndexDoc

    b = _backend(es_url)
    try:
        bad = IndexDoc(key="debunk:1", kind="debunk", title="t", text="x", source="s")
        b.es.indices.put_mapping(index=b.alias, properties={})  # mapping is strict: extra fields are refused
        actions = list(b._actions([bad], b.alias))
        actions[0]["_source"]["unexpected"] = 1
        with pytest.raises(BackendError, match="debunk:1"):
            b._bulk(actions)
    finally:
        _drop(b)


def test_unreachable_cluster_is_one_clear_error() -> None:
    with pytest.raises(BackendError, match="cannot reach Elasticsearch at http://127.0.0.1:9"):
        ElasticBackend(["http://127.0.0.1:9"], request_timeout=2, max_retries=0)
