"""Benchmark: indexing throughput and search latency of the embedded and Elasticsearch backends.

Builds one corpus from ../shared/data: every debunk CSV row in debunks/ (cleaned
as the importer cleans it) plus claims from claims/*.jsonl (12.5k real posts,
topped up to ``--claims`` with deterministic perturbed copies: a few characters
dropped or appended, or two sentences swapped). Then, in one run, for each of

* ``embedded``: ``index.embedded.EmbeddedBackend`` in a temporary file, ``upsert`` in batches of 500;
* ``elasticsearch``: ``index.elastic.ElasticBackend`` behind a fresh ``piyao-bench-<uuid>`` alias,
  ``upsert`` in batches of 500 (each batch ends with the backend's refresh);
* ``elasticsearch-raw-client``: the reference for what the client alone costs: ``elasticsearch.helpers.bulk``
  of documents tokenized *before* the timer starts into a fresh index with ``index.elastic.mappings(384)``,
  then a refresh; searches are raw ``es.search`` calls with prebuilt bodies equal to the backend's,

it measures docs/s until the documents are searchable (refresh included) and the
latency of the same seeded list of searches: short 2-3 term queries cut from
debunk titles (``search(q, limit=10)``) and long claim texts matched against the
debunks (``index.matching.match_text``: first 48 terms, kind=debunk, top 5).

Prints one JSON line per backend and a final summary line (machine, Elasticsearch
version, index sizes); a progress bar goes to stderr. Indices it creates are
deleted at the end.

    python bench/index_bench.py [--es http://127.0.0.1:9200] [--searches 1000] [--claims 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elasticsearch import Elasticsearch, helpers  # noqa: E402
from tqdm import tqdm  # noqa: E402

from classifier.text import tokenize  # noqa: E402
from crawlers.extract import clean_text, parse_cn_date  # noqa: E402
from index.backend import IndexDoc, SearchFilters  # noqa: E402
from index.elastic import ElasticBackend, mappings  # noqa: E402
from index.embedded import EmbeddedBackend  # noqa: E402
from index.matching import MAX_QUERY_TERMS, match_text  # noqa: E402
from store.importer import read_file  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BATCH = 500
SEED = 20240601
PREFIX = "piyao-bench-"
_SENTENCE_RE = re.compile(r"(?<=[。！？!?；;])")
_FILLER = "的了啊呢吧哈嗯哦呀"


# corpus ---------------------------------------------------------------------
def load_debunks(folder: Path) -> list[IndexDoc]:
    docs: list[IndexDoc] = []
    for path in sorted(folder.glob("*.csv")):
        for row in read_file(path):
            if isinstance(row, str):  # a row the reader rejected
                continue
            title = " ".join(clean_text(row.get("title", "")).split())
            text = clean_text(row.get("text", "")) or title
            if not (title or text):
                continue
            docs.append(
                IndexDoc(
                    key=f"debunk:{len(docs) + 1}",
                    kind="debunk",
                    title=title or text[:80],
                    text=text,
                    source=(row.get("source") or "").strip() or path.stem,
                    url=(row.get("url") or "").strip() or None,
                    date=parse_cn_date(row.get("date")),
                )
            )
    return docs


def _claim_date(obj: dict[str, Any]) -> dt.date | None:
    if obj.get("date"):
        return parse_cn_date(obj["date"])
    if isinstance(obj.get("time"), (int, float)):
        return dt.datetime.fromtimestamp(obj["time"], dt.timezone.utc).date()
    return None


def load_posts(folder: Path) -> list[tuple[str, str, dt.date | None]]:
    """(text, source, date) of every claim post; weibo21 has ``content``, the others ``text``."""
    posts = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text("utf-8").split("\n"):  # not splitlines(): posts hold U+2028
            if not line.strip():
                continue
            obj = json.loads(line)
            text = (obj.get("content") or obj.get("text") or "").strip()
            if text:
                posts.append((text, path.stem, _claim_date(obj)))
    return posts


def perturb(text: str, rng: random.Random) -> str:
    """A near-duplicate repost: drop or append a few characters, or swap two sentences."""
    op = rng.randrange(3)
    if op == 0 and len(text) > 10:
        i = rng.randrange(len(text) - 3)
        return text[:i] + text[i + rng.randint(1, 3) :]
    if op == 1:
        return text + "".join(rng.choice(_FILLER) for _ in range(rng.randint(1, 3)))
    parts = [p for p in _SENTENCE_RE.split(text) if p]
    if len(parts) >= 2:
        i, j = rng.sample(range(len(parts)), 2)
        parts[i], parts[j] = parts[j], parts[i]
        return "".join(parts)
    return "转发：" + text


def build_claims(posts: list[tuple[str, str, dt.date | None]], n: int, rng: random.Random) -> list[IndexDoc]:
    chosen = list(posts[:n])
    while len(chosen) < n:
        text, source, date = rng.choice(posts)
        chosen.append((perturb(text, rng), source, date))
    return [
        IndexDoc(key=f"claim:{i + 1}", kind="claim", title=text[:80], text=text, source=source, url=None, date=date)
        for i, (text, source, date) in enumerate(chosen)
    ]


def build_queries(debunks: list[IndexDoc], claims: list[IndexDoc], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """A seeded mix: ("short", 2-3 terms cut from a debunk title) or ("match", a claim text)."""
    queries: list[tuple[str, str]] = []
    while len(queries) < n:
        if rng.random() < 0.5:
            terms = tokenize(rng.choice(debunks).title.replace("#微博辟谣#", ""))
            if len(terms) < 2:
                continue
            k = min(len(terms), rng.randint(2, 3))
            i = rng.randrange(len(terms) - k + 1)
            queries.append(("short", " ".join(terms[i : i + k])))
        else:
            queries.append(("match", rng.choice(claims).text))
    return queries


# measuring ----------------------------------------------------------------
def batches(docs: list[IndexDoc], size: int = BATCH) -> Iterable[list[IndexDoc]]:
    for i in range(0, len(docs), size):
        yield docs[i : i + size]


def timed_index(label: str, docs: list[IndexDoc], write: Callable[[list[IndexDoc]], Any], finish: Callable[[], Any] | None = None) -> float:
    bar = tqdm(total=len(docs), desc=f"{label}: index", unit="doc", file=sys.stderr, dynamic_ncols=True)
    t0 = time.perf_counter()
    for batch in batches(docs):
        write(batch)
        bar.update(len(batch))
    if finish:
        finish()
    seconds = time.perf_counter() - t0
    bar.close()
    return seconds


def timed_searches(label: str, run: Callable[[Any], Any], items: list[Any]) -> list[float]:
    lat = []
    for item in tqdm(items, desc=f"{label}: search", unit="q", file=sys.stderr, dynamic_ncols=True):
        t0 = time.perf_counter()
        run(item)
        lat.append((time.perf_counter() - t0) * 1000)
    return lat


def result(backend: str, docs: int, seconds: float, lat: list[float], **extra: Any) -> dict[str, Any]:
    s = sorted(lat)
    return {
        "backend": backend,
        "docs": docs,
        "index_seconds": round(seconds, 2),
        "docs_per_s": round(docs / seconds, 1),
        "searches": len(s),
        "p50_ms": round(statistics.median(s), 2),
        "p95_ms": round(s[max(0, int(round(len(s) * 0.95)) - 1)], 2),
        "mean_ms": round(statistics.fmean(s), 2),
        **extra,
    }


def backend_search(backend: Any) -> Callable[[tuple[str, str]], Any]:
    def run(q: tuple[str, str]) -> Any:
        kind, text = q
        if kind == "short":
            return backend.search(text, limit=10)
        return match_text(backend, text)

    return run


def raw_body(backend: ElasticBackend, q: tuple[str, str]) -> dict[str, Any]:
    """The body ElasticBackend.search_tokens sends for this query (built before timing)."""
    kind, text = q
    if kind == "short":
        tokens, limit, filters = list(dict.fromkeys(tokenize(text)))[:64], 10, None
    else:
        tokens, limit, filters = list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS], 5, SearchFilters(kind="debunk")
    return backend.search_body(tokens, limit=limit, filters=filters)


def raw_actions(backend: ElasticBackend, docs: list[IndexDoc], index: str) -> list[dict[str, Any]]:
    """Fully built bulk actions, the same documents ElasticBackend._actions yields."""
    return list(backend._actions(tqdm(docs, desc="raw: tokenize (untimed)", unit="doc", file=sys.stderr, dynamic_ncols=True), index))


def store_bytes(es: Elasticsearch, index: str) -> int:
    stats = es.indices.stats(index=index, metric="store")
    return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])


# main ---------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--es", default="http://127.0.0.1:9200", help="Elasticsearch URL")
    ap.add_argument("--searches", type=int, default=1000)
    ap.add_argument("--claims", type=int, default=20000)
    ap.add_argument("--debunks", type=int, default=0, help="use only the first N debunks (0 = all)")
    args = ap.parse_args()
    rng = random.Random(SEED)
    started = time.perf_counter()

    debunks = load_debunks(SHARED / "debunks")
    if args.debunks:
        debunks = debunks[: args.debunks]
    posts = load_posts(SHARED / "claims")
    claims = build_claims(posts, args.claims, rng)
    docs = debunks + claims
    random.Random(SEED + 1).shuffle(docs)  # debunks and claims interleaved, as a crawl would write them
    queries = build_queries(debunks, claims, args.searches, random.Random(SEED + 2))
    corpus = {
        "debunks": len(debunks),
        "claims": len(claims),
        "claim_posts_real": min(len(posts), len(claims)),
        "claims_perturbed": max(0, len(claims) - len(posts)),
        "searches_short": sum(k == "short" for k, _ in queries),
        "searches_match": sum(k == "match" for k, _ in queries),
    }
    print(json.dumps({"corpus": corpus}, ensure_ascii=False), file=sys.stderr)
    tokenize("预热")  # load jieba's dictionary outside every timer

    results: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}

    # (a) embedded
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.sqlite"
        emb = EmbeddedBackend(path)
        try:
            secs = timed_index("embedded", docs, emb.upsert)
            assert emb.count() == len(docs), (emb.count(), len(docs))
            lat = timed_searches("embedded", backend_search(emb), queries)
            emb._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes["embedded_file_bytes"] = path.stat().st_size
            results.append(result("embedded", len(docs), secs, lat, file_bytes=sizes["embedded_file_bytes"]))
        finally:
            emb.close()
    print(json.dumps(results[-1], ensure_ascii=False), flush=True)

    es = Elasticsearch([args.es], request_timeout=60)
    created: list[str] = []
    backend: ElasticBackend | None = None
    try:
        # (b) Elasticsearch through the backend
        backend = ElasticBackend([args.es], alias=f"{PREFIX}{uuid.uuid4().hex[:10]}", request_timeout=60)
        created.append(backend.current_index())
        secs = timed_index("elasticsearch", docs, backend.upsert)
        assert backend.count() == len(docs), (backend.count(), len(docs))
        lat = timed_searches("elasticsearch", backend_search(backend), queries)
        b_bytes = store_bytes(es, backend.current_index())
        results.append(result("elasticsearch", len(docs), secs, lat, store_bytes=b_bytes, bytes_per_doc=round(b_bytes / len(docs))))
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)

        # (c) the raw client: prebuilt actions and bodies, only the calls are timed
        raw = f"{PREFIX}raw-{uuid.uuid4().hex[:10]}"
        es.indices.create(index=raw, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings=mappings(384))
        created.append(raw)
        t_prep = time.perf_counter()
        actions = raw_actions(backend, docs, raw)
        bodies = [raw_body(backend, q) for q in queries]
        prepare_seconds = time.perf_counter() - t_prep
        bar = tqdm(total=len(actions), desc="raw: bulk", unit="doc", file=sys.stderr, dynamic_ncols=True)
        t0 = time.perf_counter()
        ok, errors = helpers.bulk(es, actions, chunk_size=BATCH, stats_only=True)
        es.indices.refresh(index=raw)
        secs = time.perf_counter() - t0
        bar.update(len(actions))
        bar.close()
        assert ok == len(docs) and not errors, (ok, errors)
        assert es.count(index=raw)["count"] == len(docs)
        lat = timed_searches("raw", lambda body: es.search(index=raw, **body), bodies)
        r_bytes = store_bytes(es, raw)
        results.append(
            result(
                "elasticsearch-raw-client",
                len(docs),
                secs,
                lat,
                store_bytes=r_bytes,
                bytes_per_doc=round(r_bytes / len(docs)),
                untimed_prepare_seconds=round(prepare_seconds, 2),
            )
        )
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)

        # Size after merging to one segment: the steady state of an index that is no longer written.
        segments = int(es.indices.stats(index=raw, metric="segments")["_all"]["primaries"]["segments"]["count"])
        es.options(request_timeout=600).indices.forcemerge(index=raw, max_num_segments=1)
        merged = store_bytes(es, raw)
        sizes.update(es_store_bytes=r_bytes, es_segments_before_merge=segments, es_store_bytes_merged=merged, es_bytes_per_doc_merged=round(merged / len(docs)))
        # Bytes per document of each kind alone (debunks are long articles, claims short posts),
        # from the same prebuilt actions, each kind in its own index, merged to one segment.
        for kind in ("debunk", "claim"):
            name = f"{PREFIX}{kind}-{uuid.uuid4().hex[:10]}"
            es.indices.create(index=name, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings=mappings(384))
            created.append(name)
            part = [{**a, "_index": name} for a in actions if a["_source"]["kind"] == kind]
            helpers.bulk(es, part, chunk_size=BATCH, stats_only=True)
            es.indices.refresh(index=name)
            es.options(request_timeout=600).indices.forcemerge(index=name, max_num_segments=1)
            size = store_bytes(es, name)
            sizes[f"es_{kind}_only_docs"] = len(part)
            sizes[f"es_{kind}_only_bytes_merged"] = size
            sizes[f"es_{kind}_bytes_per_doc_merged"] = round(size / len(part))
            es.indices.delete(index=name)
            created.remove(name)

        nodes = es.nodes.info()["nodes"]
        health = es.cluster.health()
        summary = {
            "summary": "index_bench",
            "docs": len(docs),
            "corpus": corpus,
            "batch": BATCH,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "elasticsearch": {
                "version": sorted({n["version"] for n in nodes.values()}),
                "nodes": health["number_of_nodes"],
                "status": health["status"],
                "heap_max_bytes": [n.get("jvm", {}).get("mem", {}).get("heap_max_in_bytes") for n in nodes.values()],
            },
            "sizes": sizes,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(summary, ensure_ascii=False), flush=True)
    finally:
        for name in list(es.indices.get(index=f"{PREFIX}*")):
            if name in created or (backend is not None and name.startswith(backend.alias)):
                es.indices.delete(index=name)
        if backend is not None:
            backend.close()
        es.close()


if __name__ == "__main__":
    main()
