"""The Elasticsearch backend: jieba tokens in whitespace-analyzed fields, BM25, behind an alias.

Chinese analysis plugins cannot be installed offline, so text is segmented with
the project's jieba tokenizer in Python and indexed as space-joined tokens in
fields analyzed by the built-in ``whitespace`` analyzer; queries are segmented
the same way. The raw title and text are kept for display: Elasticsearch's
highlighter reports which terms matched, and the snippet is cut from the raw
text by the same code as the embedded backend's.

Indices are named ``<alias>-<timestamp>`` and searched through the alias, so a
rebuild can fill a new index and swap the alias in one atomic request.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Callable, Iterable, Iterator

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from classifier.text import tokenize
from index.backend import BackendError, Hit, IndexDoc, SearchFilters
from index.snippets import make_snippet

logger = logging.getLogger(__name__)

TITLE_BOOST = 3.0
STORED_TEXT_CHARS = 20_000
_MARK_RE = re.compile(r"\x02(.*?)\x03")


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
    def _new_index_name(self) -> str:
        return f"{self.alias}-{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S%f}"

    def create_index(self) -> str:
        name = self._new_index_name()
        self._call(
            self.es.indices.create,
            index=name,
            settings={"number_of_shards": self.shards, "number_of_replicas": self.replicas},
            mappings=mappings(self.vector_dims),
        )
        return name

    def _ensure_alias(self) -> None:
        if self._call(self.es.indices.exists_alias, name=self.alias):
            return
        name = self.create_index()
        self._call(self.es.indices.put_alias, index=name, name=self.alias)

    def current_index(self) -> str:
        resp = self._call(self.es.indices.get_alias, name=self.alias)
        return sorted(resp.keys())[-1]

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

    def upsert(self, docs: Iterable[IndexDoc]) -> int:
        n = self._bulk(self._actions(docs, self.alias))
        self.refresh()
        return n

    def delete(self, keys: Iterable[str]) -> int:
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
        self.refresh()
        return n

    def refresh(self) -> None:
        self._call(self.es.indices.refresh, index=self.alias)

    def clear(self) -> None:
        self._call(self.es.delete_by_query, index=self.alias, query={"match_all": {}}, refresh=True, conflicts="proceed")

    def rebuild(self, docs: Iterable[IndexDoc], *, progress: Callable[[int], None] | None = None) -> int:
        """Fill a new index, then point the alias at it in one atomic request; searches never stop."""
        old = self._call(self.es.indices.get_alias, name=self.alias)
        new = self.create_index()
        try:

            def counted() -> Iterator[IndexDoc]:
                for d in docs:
                    yield d
                    if progress:
                        progress(1)

            n = self._bulk(self._actions(counted(), new))
            self._call(self.es.indices.refresh, index=new)
            actions = [{"add": {"index": new, "alias": self.alias}}] + [
                {"remove": {"index": name, "alias": self.alias}} for name in old
            ]
            self._call(self.es.indices.update_aliases, actions=actions)
        except BaseException:
            self.es.options(ignore_status=404).indices.delete(index=new)
            raise
        for name in old:
            self.es.options(ignore_status=404).indices.delete(index=name)
        return n

    # reads ---------------------------------------------------------------
    def _query(self, tokens: list[str], filters: SearchFilters | None) -> dict[str, Any]:
        text = " ".join(tokens)
        f = filters or SearchFilters()
        flt: list[dict[str, Any]] = []
        if f.kind:
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

    def close(self) -> None:
        self.es.close()


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
