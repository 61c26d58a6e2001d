"""The Elasticsearch backend passes the conformance suite against a real node, and agrees with the embedded one.

The node comes from PIYAO_TEST_ES_URL (`make test` starts one with scripts/elasticsearch.sh).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from index.backend import BackendError
from index.elastic import ElasticBackend
from index.embedded import EmbeddedBackend
from tests.index.conformance import QUERIES, BackendConformance, load_corpus


def _backend(es_url: str) -> ElasticBackend:
    return ElasticBackend([es_url], alias=f"piyao-test-{uuid.uuid4().hex[:10]}", chunk_size=50)


def _drop(b: ElasticBackend) -> None:
    names = list(b.es.indices.get(index=f"{b.alias}-*", expand_wildcards="all"))
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
