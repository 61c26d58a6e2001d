"""How closely the Elasticsearch backend agrees with the embedded one on the shared debunk corpus.

Imports ../shared/data/debunks into a temporary store, indexes it in both
backends, embeds the passages of the kinds piyao embeds (``matching.embed_kinds``)
in both, as ``piyao embed`` does, then runs searches (short queries cut from debunk
titles) and matches (real Weibo posts) through both. Matching is measured as piyao
runs it (hybrid BM25 + e5) and with BM25 alone, where the two backends' own
scoring is all that differs. Prints one JSON object: top-1 agreement and mean
top-5 overlap for each.

    python bench/backend_agreement.py [--es http://127.0.0.1:9200] [--n 200] [--cache var/cache/e5.sqlite]

``--cache``: the on-disk e5 cache (``piyao embed`` fills one under the data dir);
with it the passages' vectors are read, not computed (about 4 minutes for the
18,916 passages here otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.backend import SearchFilters  # noqa: E402
from index.elastic import ElasticBackend  # noqa: E402
from index.embedded import EmbeddedBackend  # noqa: E402
from index.embedding import embed_pending  # noqa: E402
from index.matching import Matcher  # noqa: E402
from index.outbox import drain, store_docs  # noqa: E402
from store.db import open_store  # noqa: E402
from store.importer import import_debunks  # noqa: E402
from store.models import Debunk  # noqa: E402
from settings import MatchingSettings  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def agreement(pairs: list[tuple[list[str], list[str]]]) -> dict[str, float]:
    both = [(a, b) for a, b in pairs if a and b]
    return {
        "queries": len(pairs),
        "answered_by_both": len(both),
        "top1_agreement": round(sum(a[0] == b[0] for a, b in both) / max(1, len(both)), 4),
        "mean_top5_overlap": round(sum(len(set(a) & set(b)) for a, b in both) / max(1, len(both)), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--es", default="http://127.0.0.1:9200")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--cache", default=str(ROOT / "var" / "cache" / "e5.sqlite"),
                    help="on-disk e5 cache (used when it exists; vectors missing from it are computed)")
    args = ap.parse_args()
    from classifier.encoder import E5Encoder

    cache = Path(args.cache) if Path(args.cache).exists() else None
    matching = MatchingSettings()
    # As piyao runs them: passages embedded by `piyao embed`'s encoder, claims cut to matching.query_max_chars.
    passage_encoder = E5Encoder(cache_path=cache)
    encoder = E5Encoder(cache_path=cache, max_chars=matching.query_max_chars)
    kinds = matching.embed_kinds
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/piyao.db")
        emb = EmbeddedBackend(Path(tmp) / "index.sqlite")
        es = ElasticBackend([args.es], alias=f"piyao-agreement-{uuid.uuid4().hex[:8]}")
        try:
            t0 = time.perf_counter()
            import_debunks(store, sorted((SHARED / "debunks").glob("*.csv")))
            drain(store, emb)
            t1 = time.perf_counter()
            es.rebuild(store_docs(store))
            t2 = time.perf_counter()
            embedded_vectors = embed_pending(emb, passage_encoder, kinds)
            t3 = time.perf_counter()
            es_vectors = embed_pending(es, passage_encoder, kinds)
            es.refresh()
            t4 = time.perf_counter()
            with store.session() as s:
                titles = [t for (t,) in s.query(Debunk.title).all()]
            queries = [t.replace("#微博辟谣#", "").strip()[:12] for t in rng.sample(titles, args.n)]
            posts = [json.loads(line)["content"] for line in (SHARED / "claims" / "weibo21_val.jsonl").read_text("utf-8").splitlines()]
            claims = rng.sample(posts, args.n)
            f = SearchFilters(kind="debunk")
            search = [([h.key for h in es.search(q, limit=5, filters=f)], [h.key for h in emb.search(q, limit=5, filters=f)]) for q in queries]
            matchers = {
                (name, dense): Matcher(backend, encoder=encoder, use_dense=dense)
                for name, backend in (("es", es), ("emb", emb))
                for dense in (True, False)
            }

            def ids(name: str, dense: bool, text: str) -> tuple[list[str], bool]:
                found = matchers[name, dense].match(text)
                return [str(m.debunk_id) for m in found], bool(found) and found[0].decision != "none"

            def compare(dense: bool) -> tuple[list[tuple[list[str], list[str]]], list[tuple[list[str], list[str]]]]:
                """All claims, and those where either backend's first match is an auto-link or a suggestion
                (most posts have no debunk in the corpus: their weak candidates are near ties)."""
                every, confident = [], []
                for c in claims:
                    (a, sure_a), (b, sure_b) = ids("es", dense, c), ids("emb", dense, c)
                    every.append((a, b))
                    if sure_a or sure_b:
                        confident.append((a, b))
                return every, confident

            match, match_confident = compare(True)
            match_bm25, match_bm25_confident = compare(False)
            print(
                json.dumps(
                    {
                        "benchmark": "backend_agreement",
                        "debunks": es.count("debunk"),
                        "embedded_import_and_index_s": round(t1 - t0, 1),
                        "elasticsearch_rebuild_s": round(t2 - t1, 1),
                        "passage_vectors": {"embedded": embedded_vectors, "elasticsearch": es_vectors,
                                            "embedded_s": round(t3 - t2, 1), "elasticsearch_s": round(t4 - t3, 1),
                                            "cache": bool(cache)},
                        "search": agreement(search),
                        "match": agreement(match),
                        "match_confident": agreement(match_confident),
                        "match_bm25_only": agreement(match_bm25),
                        "match_bm25_only_confident": agreement(match_bm25_confident),
                    },
                    ensure_ascii=False,
                )
            )
        finally:
            for name in list(es.es.indices.get(index=f"{es.alias}*")):  # the main and the passages indices
                es.es.indices.delete(index=name)
            es.close()
            emb.close()


if __name__ == "__main__":
    main()
