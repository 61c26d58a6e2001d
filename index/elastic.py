"""The Elasticsearch backend: jieba tokens in whitespace-analyzed fields, BM25, behind an alias.

Chinese analysis plugins cannot be installed offline, so text is segmented with
the project's jieba tokenizer in Python and indexed as space-joined tokens in
fields analyzed by the built-in ``whitespace`` analyzer; queries are segmented
the same way. The raw title and text are kept for display: Elasticsearch's
highlighter reports which terms matched, and the snippet is cut from the raw
text by the same code as the embedded backend's.

Indices are named ``<alias>-<timestamp>`` and searched through the alias, so a
rebuild can fill a new index and swap the alias in one atomic request.

Debunk passages (claim matching, index.matching) live in a second index behind
its own alias ``<alias>_passages`` (indices ``<alias>_passages-<timestamp>``), so
the main index's counts, keys and searches do not see them. A passage document
(``_id`` ``"<doc key>#<position>"``) carries its jieba tokens (BM25), its raw
text, its article's title, source, url and date, and, once ``piyao embed`` has
computed it, its e5 vector in a ``dense_vector`` field (cosine, int8-quantized
HNSW; kNN hits are rescored with the float vectors, so their scores are exact
cosines). Upserts and rebuilds carry vectors over for passages whose key and text
are unchanged; a rebuild swaps both aliases in one request.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from classifier.text import tokenize
from index.backend import BackendError, Hit, IndexDoc, PassageHit, SearchFilters, combine, fields_digest, orphan_fingerprint, passage_digest
from index.snippets import make_snippet

logger = logging.getLogger(__name__)

TITLE_BOOST = 3.0
STORED_TEXT_CHARS = 20_000
_MARK_RE = re.compile(r"\x02(.*?)\x03")
PASSAGES_SUFFIX = "_passages"
# Passage vectors: int8-quantized HNSW (a quarter of the float vectors' memory for the graph
# search); the float vectors are kept and the best ``k × oversample`` candidates rescored with
# them, so a hit's score is its exact cosine (ES's default for 384 dims, bbq_hnsw, recalls less).
VECTOR_INDEX_OPTIONS: dict[str, Any] = {"type": "int8_hnsw"}
KNN_RESCORE_OVERSAMPLE = 2.0
# Elasticsearch's limits: kNN candidates per shard, and hits per request.
_MAX_NUM_CANDIDATES = 10_000
_MAX_WINDOW = 10_000
# Passage ids per mget / delete-by-query request.
_IDS_PER_REQUEST = 5_000
_PASSAGE_SOURCE = ["key", "doc_key", "kind", "position", "text", "title", "source", "url", "date"]


def mappings(vector_dims: int) -> dict[str, Any]:
    return {
        "dynamic": "strict",
        "properties": {
            "key": {"type": "keyword"},
            "kind": {"type": "keyword"},
            "source": {"type": "keyword"},
            "url": {"type": "keyword", "index": False, "doc_values": False},
            "date": {"type": "date", "format": "strict_date"},
            # Space-joined jieba tokens: what is searched and highlighted.
            "title_tokens": {"type": "text", "analyzer": "whitespace"},
            "text_tokens": {"type": "text", "analyzer": "whitespace"},
            # The raw text, for display and snippets; not searched.
            "title": {"type": "text", "index": False},
            "text": {"type": "text", "index": False},
            # Dense embeddings of the document (filled by the matching work; optional per document).
            "vector": {"type": "dense_vector", "dims": vector_dims, "index": True, "similarity": "cosine"},
        },
    }


def passage_mappings(vector_dims: int) -> dict[str, Any]:
    """The passages index: one document per debunk passage, "<doc key>#<position>"."""
    return {
        "dynamic": "strict",
        "properties": {
            "key": {"type": "keyword"},
            "doc_key": {"type": "keyword"},
            "kind": {"type": "keyword"},  # title | rumor | verdict | body
            "position": {"type": "integer"},
            # Space-joined jieba tokens: what BM25 searches.
            "text_tokens": {"type": "text", "analyzer": "whitespace"},
            "text": {"type": "text", "index": False},
            # The article's fields: source and date filter, title and url are shown.
            "title": {"type": "text", "index": False},
            "source": {"type": "keyword"},
            "url": {"type": "keyword", "index": False, "doc_values": False},
            "date": {"type": "date", "format": "strict_date"},
            # The passage's e5 vector (role "passage"); absent until index.embedding computes it.
            "vector": {
                "type": "dense_vector",
                "dims": vector_dims,
                "index": True,
                "similarity": "cosine",
                "index_options": dict(VECTOR_INDEX_OPTIONS),
            },
        },
    }


class ElasticBackend:
    name = "elasticsearch"

    def __init__(
        self,
        hosts: list[str],
        *,
        alias: str = "piyao",
        api_key: str = "",
        username: str = "",
        password: str = "",
        verify_certs: bool = True,
        ca_certs: str = "",
        request_timeout: float = 10.0,
        max_retries: int = 3,
        shards: int = 1,
        replicas: int = 0,
        vector_dims: int = 384,
        chunk_size: int = 500,
    ) -> None:
        self.alias = alias
        self.passages_alias = alias + PASSAGES_SUFFIX
        self.hosts = hosts
        self.shards, self.replicas, self.vector_dims = shards, replicas, vector_dims
        self.max_retries, self.chunk_size = max_retries, chunk_size
        kwargs: dict[str, Any] = {"request_timeout": request_timeout, "max_retries": max_retries, "retry_on_timeout": True}
        if api_key:
            kwargs["api_key"] = api_key
        elif username:
            kwargs["basic_auth"] = (username, password)
        if any(h.startswith("https") for h in hosts):
            kwargs["verify_certs"] = verify_certs
            if ca_certs:
                kwargs["ca_certs"] = ca_certs
        try:
            self.es = Elasticsearch(hosts, **kwargs)
            health = self.es.cluster.health(timeout="5s")
        except (TransportError, ApiError, ValueError) as exc:
            raise BackendError(f"cannot reach Elasticsearch at {', '.join(hosts)}: {_reason(exc)}") from None
        if health.get("status") == "red":
            raise BackendError(f"Elasticsearch at {', '.join(hosts)} reports cluster health red")
        self._ensure_alias()

    # index management ---------------------------------------------------
    def _new_index_name(self, alias: str | None = None) -> str:
        return f"{alias or self.alias}-{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S%f}"

    def create_index(self) -> str:
        name = self._new_index_name()
        self._call(
            self.es.indices.create,
            index=name,
            settings={"number_of_shards": self.shards, "number_of_replicas": self.replicas},
            mappings=mappings(self.vector_dims),
        )
        return name

    def create_passages_index(self) -> str:
        name = self._new_index_name(self.passages_alias)
        self._call(
            self.es.indices.create,
            index=name,
            settings={"number_of_shards": self.shards, "number_of_replicas": self.replicas},
            mappings=passage_mappings(self.vector_dims),
        )
        return name

    def _ensure_alias(self) -> None:
        """Both aliases exist (a deployment from before passages gets an empty passages index: reindex fills it)."""
        if not self._call(self.es.indices.exists_alias, name=self.alias):
            name = self.create_index()
            self._call(self.es.indices.put_alias, index=name, name=self.alias)
        if not self._call(self.es.indices.exists_alias, name=self.passages_alias):
            name = self.create_passages_index()
            self._call(self.es.indices.put_alias, index=name, name=self.passages_alias)
            if self.count("debunk"):
                logger.warning("created the passages index %s: run `piyao reindex` to fill it for claim matching", name)

    def current_index(self) -> str:
        resp = self._call(self.es.indices.get_alias, name=self.alias)
        return sorted(resp.keys())[-1]

    def current_passages_index(self) -> str:
        resp = self._call(self.es.indices.get_alias, name=self.passages_alias)
        return sorted(resp.keys())[-1]

    def _aliased(self, alias: str) -> list[str]:
        """The indices behind ``alias`` (none when it is missing)."""
        if not self._call(self.es.indices.exists_alias, name=alias):
            return []
        return sorted(self._call(self.es.indices.get_alias, name=alias).keys())

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (TransportError, ApiError) as exc:
            raise BackendError(f"Elasticsearch request failed: {_reason(exc)}") from None

    # writes --------------------------------------------------------------
    def _actions(self, docs: Iterable[IndexDoc], index: str) -> Iterator[dict[str, Any]]:
        for d in docs:
            yield {
                "_op_type": "index",
                "_index": index,
                "_id": d.key,
                "_source": {
                    "key": d.key,
                    "kind": d.kind,
                    "source": d.source,
                    "url": d.url,
                    "date": d.date.isoformat() if d.date else None,
                    "title_tokens": " ".join(tokenize(d.title)),
                    "text_tokens": " ".join(tokenize(d.text)),
                    "title": d.title,
                    "text": d.text[:STORED_TEXT_CHARS],
                },
            }

    def _passage_actions(self, d: IndexDoc, index: str, carried: dict[str, list[float]]) -> Iterator[dict[str, Any]]:
        """Index actions for ``d``'s passages; ``carried`` holds vectors to keep, by passage key."""
        date = d.date.isoformat() if d.date else None
        for p in d.passages:
            key = f"{d.key}#{p.position}"
            src: dict[str, Any] = {
                "key": key,
                "doc_key": d.key,
                "kind": p.kind,
                "position": p.position,
                "text_tokens": " ".join(tokenize(p.text)),
                "text": p.text,
                "title": d.title,
                "source": d.source,
                "url": d.url,
                "date": date,
            }
            vec = carried.get(key)
            if vec is not None:
                src["vector"] = vec
            yield {"_op_type": "index", "_index": index, "_id": key, "_source": src}

    def _carried(self, docs: Sequence[IndexDoc]) -> dict[str, list[float]]:
        """Vectors of the live passages of ``docs`` whose key and text are unchanged (one mget per few thousand)."""
        want = {f"{d.key}#{p.position}": p.text for d in docs for p in d.passages}
        out: dict[str, list[float]] = {}
        ids = list(want)
        for i in range(0, len(ids), _IDS_PER_REQUEST):
            resp = self._call(
                self.es.mget, index=self.passages_alias, ids=ids[i : i + _IDS_PER_REQUEST], source_includes=["text", "vector"]
            )
            for doc in resp["docs"]:
                src = doc.get("_source") or {}
                if doc.get("found") and src.get("vector") and src.get("text") == want.get(doc["_id"]):
                    out[doc["_id"]] = src["vector"]
        return out

    def _bulk(self, actions: Iterable[dict[str, Any]]) -> int:
        ok, errors = 0, []
        try:
            for success, info in helpers.streaming_bulk(
                self.es,
                actions,
                chunk_size=self.chunk_size,
                max_retries=self.max_retries,
                initial_backoff=1,
                max_backoff=30,
                raise_on_error=False,
                raise_on_exception=True,
            ):
                if success:
                    ok += 1
                else:
                    errors.append(info)
        except (TransportError, ApiError) as exc:
            raise BackendError(f"Elasticsearch bulk write failed: {_reason(exc)}") from None
        if errors:
            first = [f"{_doc_id(e)}: {_doc_error(e)}" for e in errors[:3]]
            raise BackendError(f"{len(errors)} document(s) refused by Elasticsearch, e.g. {'; '.join(first)}")
        return ok

    def upsert(self, docs: Iterable[IndexDoc], *, refresh: bool = True) -> int:
        """Write ``docs``; each one's passages replace its old ones (vectors of unchanged passages kept).

        The new passages overwrite the old ones of the same key and only then are the old ones left
        over deleted, so a debunk never lacks its passages in between. Claims alone with
        ``refresh=False`` are left to the index's periodic refresh (see ``Backend.upsert``): a refresh
        per intake call writes a new segment each time and was most of the node's work under load.
        """
        docs = list(docs)
        # Claims have no passages (a partner's intake writes one claim at a time): no passages to look
        # up or delete, and only the documents' index to refresh.
        claims_only = all(d.kind == "claim" and not d.passages for d in docs)
        old = set() if claims_only else self._passage_ids([d.key for d in docs])
        carried = self._carried(docs) if any(d.passages for d in docs) else {}

        def actions() -> Iterator[dict[str, Any]]:
            for d in docs:
                yield from self._actions([d], self.alias)
                yield from self._passage_actions(d, self.passages_alias, carried)

        self._bulk(actions())
        if not claims_only:
            self._delete_passages(old - {f"{d.key}#{p.position}" for d in docs for p in d.passages})
            self.refresh()
        elif refresh:
            self._call(self.es.indices.refresh, index=self.alias)
        return len(docs)

    def _passage_ids(self, doc_keys: Sequence[str]) -> set[str]:
        """The ids of the (searchable) passages of these documents.

        Found with a search and then removed with bulk deletes rather than with _delete_by_query,
        which minimal Elasticsearch builds lack (it lives in the reindex module).
        """
        found: set[str] = set()
        for i in range(0, len(doc_keys), 1000):
            after: list[Any] | None = None
            while True:
                page: dict[str, Any] = {"search_after": after} if after else {}
                resp = self._call(
                    self.es.search,
                    index=self.passages_alias,
                    query={"bool": {"filter": [{"terms": {"doc_key": list(doc_keys[i : i + 1000])}}]}},
                    size=_MAX_WINDOW,
                    sort=[{"key": "asc"}],
                    source=False,
                    track_total_hits=False,
                    **page,
                )
                hits = resp["hits"]["hits"]
                found.update(h["_id"] for h in hits)
                if len(hits) < _MAX_WINDOW:
                    break
                after = hits[-1]["sort"]
        return found

    def _delete_passages(self, ids: Iterable[str]) -> None:
        """Delete passages by id (those already gone are fine)."""
        actions = ({"_op_type": "delete", "_index": self.passages_alias, "_id": k} for k in sorted(ids))
        try:
            for success, info in helpers.streaming_bulk(self.es, actions, chunk_size=self.chunk_size, raise_on_error=False):
                if not success and next(iter(info.values())).get("status") != 404:
                    raise BackendError(f"Elasticsearch refused a passage delete: {_doc_error(info)}")
        except (TransportError, ApiError) as exc:
            raise BackendError(f"Elasticsearch delete failed: {_reason(exc)}") from None

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        passages = self._passage_ids(keys)
        actions = ({"_op_type": "delete", "_index": self.alias, "_id": k} for k in keys)
        n = 0
        try:
            for success, info in helpers.streaming_bulk(self.es, actions, chunk_size=self.chunk_size, raise_on_error=False):
                status = next(iter(info.values())).get("status")
                if success:
                    n += 1
                elif status != 404:
                    raise BackendError(f"Elasticsearch refused a delete: {_doc_error(info)}")
        except (TransportError, ApiError) as exc:
            raise BackendError(f"Elasticsearch delete failed: {_reason(exc)}") from None
        self._delete_passages(passages)
        self.refresh()
        return n

    def refresh(self) -> None:
        self._call(self.es.indices.refresh, index=f"{self.alias},{self.passages_alias}")

    def clear(self) -> None:
        """Swap fresh, empty indices in behind both aliases (no _delete_by_query: minimal builds lack it)."""
        self.rebuild([])

    def rebuild(self, docs: Iterable[IndexDoc], *, progress: Callable[[int], None] | None = None) -> int:
        """Fill new indices (documents and passages), then point both aliases at them in one atomic
        request; searches never stop. Vectors of unchanged passages are carried over from the live index."""
        old = self._aliased(self.alias)
        old_passages = self._aliased(self.passages_alias)
        new = self.create_index()
        try:
            new_passages = self.create_passages_index()
        except BaseException:
            self.es.options(ignore_status=404).indices.delete(index=new)
            raise
        n = 0
        try:

            def actions() -> Iterator[dict[str, Any]]:
                nonlocal n
                it = iter(docs)
                while True:
                    batch = [d for _, d in zip(range(self.chunk_size), it)]
                    if not batch:
                        return
                    carried = self._carried(batch) if old_passages and any(d.passages for d in batch) else {}
                    for d in batch:
                        yield from self._actions([d], new)
                        yield from self._passage_actions(d, new_passages, carried)
                        n += 1
                        if progress:
                            progress(1)

            self._bulk(actions())
            self._call(self.es.indices.refresh, index=f"{new},{new_passages}")
            swap: list[dict[str, Any]] = [
                {"add": {"index": new, "alias": self.alias}},
                {"add": {"index": new_passages, "alias": self.passages_alias}},
            ]
            swap += [{"remove": {"index": name, "alias": self.alias}} for name in old]
            swap += [{"remove": {"index": name, "alias": self.passages_alias}} for name in old_passages]
            self._call(self.es.indices.update_aliases, actions=swap)
        except BaseException:
            self.es.options(ignore_status=404).indices.delete(index=f"{new},{new_passages}")
            raise
        for name in old + old_passages:
            self.es.options(ignore_status=404).indices.delete(index=name)
        return n

    # reads ---------------------------------------------------------------
    @staticmethod
    def _filters(filters: SearchFilters | None, *, kind: bool = True) -> list[dict[str, Any]]:
        """Filter clauses for ``filters`` (``kind=False``: passages, whose kind is not the document's)."""
        f = filters or SearchFilters()
        flt: list[dict[str, Any]] = []
        if f.kind and kind:
            flt.append({"term": {"kind": f.kind}})
        if f.source:
            flt.append({"term": {"source": f.source}})
        if f.date_from or f.date_to:
            rng: dict[str, str] = {}
            if f.date_from:
                rng["gte"] = f.date_from.isoformat()
            if f.date_to:
                rng["lte"] = f.date_to.isoformat()
            flt.append({"range": {"date": rng}})
        return flt

    def _query(self, tokens: list[str], filters: SearchFilters | None) -> dict[str, Any]:
        text = " ".join(tokens)
        flt = self._filters(filters)
        # BM25F over title and body as one field, title terms weighted ×3: the same model as
        # SQLite FTS5's bm25() with column weights, so both backends rank alike.
        return {
            "bool": {
                "must": [
                    {
                        "combined_fields": {
                            "query": text,
                            "fields": [f"title_tokens^{TITLE_BOOST:g}", "text_tokens"],
                            "operator": "or",
                        }
                    }
                ],
                "filter": flt,
            }
        }

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        offset: int = 0,
        filters: SearchFilters | None = None,
        search_after: list[Any] | None = None,
    ) -> list[Hit]:
        return self.search_tokens(tokenize(query), limit=limit, offset=offset, filters=filters, search_after=search_after)

    def search_tokens(
        self,
        tokens: list[str],
        *,
        limit: int = 10,
        offset: int = 0,
        filters: SearchFilters | None = None,
        search_after: list[Any] | None = None,
    ) -> list[Hit]:
        """Best first; page with ``offset`` or, past the first pages, with ``search_after`` = the last hit's ``extra["sort"]``."""
        tokens = list(dict.fromkeys(tokens))[:64]
        if not tokens:
            return []
        body = self.search_body(tokens, limit=limit, offset=offset, filters=filters, search_after=search_after)
        resp = self._call(self.es.search, index=self.alias, **body)
        return [self._hit(h, tokens) for h in resp["hits"]["hits"]]

    def search_body(
        self,
        tokens: list[str],
        *,
        limit: int = 10,
        offset: int = 0,
        filters: SearchFilters | None = None,
        search_after: list[Any] | None = None,
    ) -> dict[str, Any]:
        """The search request for ``tokens`` (what the benchmark's raw-client reference sends too)."""
        body: dict[str, Any] = {
            "query": self._query(tokens, filters),
            "size": limit,
            "sort": [{"_score": "desc"}, {"key": "asc"}],
            "track_scores": True,
            "_source": ["key", "kind", "source", "url", "date", "title", "text"],
            "highlight": {
                "pre_tags": ["\x02"],
                "post_tags": ["\x03"],
                "fields": {"title_tokens": {"number_of_fragments": 0}, "text_tokens": {"fragment_size": 300, "number_of_fragments": 3}},
            },
        }
        if search_after is not None:
            body["search_after"] = search_after
        elif offset:
            body["from"] = offset
        return body

    @staticmethod
    def _hit(h: dict[str, Any], tokens: list[str]) -> Hit:
        src = h["_source"]
        # The highlighter says which terms matched; the snippet is cut from the raw text.
        matched = sorted({t for frags in h.get("highlight", {}).values() for f in frags for t in _MARK_RE.findall(f)}) or tokens
        return Hit(
            key=src["key"],
            kind=src["kind"],
            title=src["title"],
            source=src["source"],
            url=src.get("url"),
            date=dt.date.fromisoformat(src["date"]) if src.get("date") else None,
            score=float(h["_score"] or 0.0),
            snippet=make_snippet(src.get("text") or "", matched),
            extra={"title_html": make_snippet(src["title"], matched, width=200), "sort": h.get("sort"), "matched_terms": matched},
        )

    def count(self, kind: str | None = None) -> int:
        query = {"term": {"kind": kind}} if kind else {"match_all": {}}
        return int(self._call(self.es.count, index=self.alias, query=query)["count"])

    def keys(self, kind: str | None = None) -> set[str]:
        query = {"term": {"kind": kind}} if kind else {"match_all": {}}
        return {h["_id"] for h in helpers.scan(self.es, index=self.alias, query={"query": query}, _source=False)}

    def fingerprints(self, kind: str | None = None) -> Iterator[tuple[str, str]]:
        """(key, fingerprint) of every document, from what the indices keep in ``_source``: one scroll over both
        aliases, so documents and passages come from the same point in time."""
        query: dict[str, Any]
        if kind == "claim":
            index, query = self.alias, {"term": {"kind": "claim"}}
        else:
            index = f"{self.alias},{self.passages_alias}"
            query = {"match_all": {}} if kind is None else {
                # Documents of the kind, and passages (their "kind" is the passage's; only passages have doc_key).
                "bool": {"should": [{"term": {"kind": kind}}, {"exists": {"field": "doc_key"}}], "minimum_should_match": 1}}
        docs: dict[str, str] = {}  # key → fields_digest (not the texts: the corpus need not fit in memory)
        parts: dict[str, list[tuple[int, str]]] = {}
        self.refresh()  # claims written without a refresh (partner intake) count as indexed
        try:
            for h in helpers.scan(self.es, index=index, query={"query": query}, size=500,
                                  _source=["kind", "title", "text", "source", "url", "date", "doc_key", "position"]):
                src = h.get("_source") or {}
                if "doc_key" in src:
                    pos = int(src["position"])
                    parts.setdefault(src["doc_key"], []).append((pos, passage_digest(pos, src["kind"], src.get("text") or "")))
                else:
                    docs[h["_id"]] = fields_digest(kind=src["kind"], title=src.get("title") or "", text=src.get("text") or "",
                                                   source=src.get("source") or "", url=src.get("url"), date=src.get("date"))
        except (TransportError, ApiError) as exc:
            raise BackendError(f"Elasticsearch request failed: {_reason(exc)}") from None
        except helpers.ScanError as exc:
            raise BackendError(f"Elasticsearch scan failed: {str(exc)[:300]}") from None
        out: list[tuple[str, str]] = []
        for key in sorted(docs):
            out.append((key, combine(docs[key], parts.pop(key, ()))))
        # Passages whose document is gone: listed under that key, so that a check sees them.
        for doc_key, orphans in sorted(parts.items()):
            if kind is None or doc_key.startswith(kind + ":"):
                out.append((doc_key, orphan_fingerprint(doc_key, orphans)))
        return iter(out)

    # passages ------------------------------------------------------------
    def search_passages(self, tokens: list[str], *, limit: int = 50, filters: SearchFilters | None = None) -> list[PassageHit]:
        """BM25 over the passages' jieba tokens, best first (ties by key); filters on the article's source and date."""
        tokens = list(dict.fromkeys(tokens))[:64]
        if not tokens or limit <= 0:
            return []
        resp = self._call(
            self.es.search,
            index=self.passages_alias,
            query={
                "bool": {
                    "must": [{"match": {"text_tokens": {"query": " ".join(tokens), "operator": "or"}}}],
                    "filter": self._filters(filters, kind=False),
                }
            },
            size=min(limit, _MAX_WINDOW),
            sort=[{"_score": "desc"}, {"key": "asc"}],
            track_scores=True,
            track_total_hits=False,
            source_includes=_PASSAGE_SOURCE,
        )
        return [_passage_hit(h, float(h["_score"] or 0.0)) for h in resp["hits"]["hits"]]

    def knn_passages(self, vector: np.ndarray, *, limit: int = 50, filters: SearchFilters | None = None) -> list[PassageHit]:
        """Approximate kNN (HNSW) over the passage vectors, rescored exactly; ``score`` is the cosine similarity."""
        if limit <= 0:
            return []
        k = min(limit, _MAX_NUM_CANDIDATES)
        knn: dict[str, Any] = {
            "field": "vector",
            "query_vector": _floats(vector),
            "k": k,
            "num_candidates": min(_MAX_NUM_CANDIDATES, max(100, 4 * k)),
            "rescore_vector": {"oversample": KNN_RESCORE_OVERSAMPLE},
        }
        flt = self._filters(filters, kind=False)
        if flt:
            knn["filter"] = flt
        resp = self._call(
            self.es.search, index=self.passages_alias, knn=knn, size=k, track_total_hits=False, source_includes=_PASSAGE_SOURCE
        )
        # Elasticsearch scores cosine as (1 + cos) / 2, so that scores are never negative.
        return [_passage_hit(h, 2.0 * float(h["_score"] or 0.0) - 1.0) for h in resp["hits"]["hits"]]

    def pending_vectors(self, kinds: Sequence[str], *, limit: int = 256) -> list[tuple[str, str]]:
        if not kinds or limit <= 0:
            return []
        resp = self._call(
            self.es.search,
            index=self.passages_alias,
            query={"bool": {"filter": [{"terms": {"kind": list(kinds)}}], "must_not": [{"exists": {"field": "vector"}}]}},
            size=min(limit, _MAX_WINDOW),
            sort=[{"key": "asc"}],
            track_total_hits=False,
            source_includes=["key", "text"],
        )
        return [(h["_source"]["key"], h["_source"]["text"]) for h in resp["hits"]["hits"]]

    def set_vectors(self, items: Sequence[tuple[str, np.ndarray]]) -> int:
        """Partial updates ``{"vector": [...]}`` by passage key; passages gone meanwhile (404) are skipped."""
        if not items:
            return 0
        actions = (
            {"_op_type": "update", "_index": self.passages_alias, "_id": key, "doc": {"vector": _floats(vec)}}
            for key, vec in items
        )
        n, errors = 0, []
        try:
            for success, info in helpers.streaming_bulk(
                self.es, actions, chunk_size=self.chunk_size, max_retries=self.max_retries, raise_on_error=False
            ):
                if success:
                    n += 1
                elif next(iter(info.values())).get("status") != 404:
                    errors.append(info)
        except (TransportError, ApiError) as exc:
            raise BackendError(f"Elasticsearch vector update failed: {_reason(exc)}") from None
        if errors:
            first = [f"{_doc_id(e)}: {_doc_error(e)}" for e in errors[:3]]
            raise BackendError(f"{len(errors)} vector update(s) refused by Elasticsearch, e.g. {'; '.join(first)}")
        self._call(self.es.indices.refresh, index=self.passages_alias)
        return n

    def vector_counts(self, kinds: Sequence[str]) -> tuple[int, int]:
        if not kinds:
            return 0, 0
        of_kinds = {"terms": {"kind": list(kinds)}}
        total = self._call(self.es.count, index=self.passages_alias, query=of_kinds)["count"]
        done = self._call(
            self.es.count, index=self.passages_alias, query={"bool": {"filter": [of_kinds, {"exists": {"field": "vector"}}]}}
        )["count"]
        return int(total), int(done)

    def close(self) -> None:
        self.es.close()


def _floats(vector: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(vector, dtype=np.float32).reshape(-1)]


def _passage_hit(h: dict[str, Any], score: float) -> PassageHit:
    src = h["_source"]
    return PassageHit(
        key=src["key"],
        doc_key=src["doc_key"],
        kind=src["kind"],
        position=int(src["position"]),
        text=src.get("text") or "",
        score=score,
        title=src.get("title") or "",
        source=src.get("source") or "",
        url=src.get("url"),
        date=dt.date.fromisoformat(src["date"]) if src.get("date") else None,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"HTTP {exc.meta.status}: {exc.message}"
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:300]


def _doc_id(info: dict[str, Any]) -> str:
    return str(next(iter(info.values())).get("_id", "?"))


def _doc_error(info: dict[str, Any]) -> str:
    err = next(iter(info.values())).get("error", {})
    if isinstance(err, dict):
        return f"{err.get('type', 'error')}: {err.get('reason', '')}"[:300]
    return str(err)[:300]
