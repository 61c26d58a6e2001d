"""How closely the Elasticsearch backend agrees with the embedded one on the shared debunk corpus.

Imports ../shared/data/debunks into a temporary store, indexes it in both
backends, then runs searches (short queries cut from debunk titles) and
matches (real Weibo posts) through both. Prints one JSON object: top-1
agreement and mean top-5 overlap for each.

    python bench/backend_agreement.py [--es http://127.0.0.1:9200] [--n 200]
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
from index.matching import match_text  # noqa: E402
from index.outbox import drain, store_docs  # noqa: E402
from store.db import open_store  # noqa: E402
from store.importer import import_debunks  # noqa: E402
from store.models import Debunk  # noqa: E402

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
    args = ap.parse_args()
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
            with store.session() as s:
                titles = [t for (t,) in s.query(Debunk.title).all()]
            queries = [t.replace("#微博辟谣#", "").strip()[:12] for t in rng.sample(titles, args.n)]
            posts = [json.loads(line)["content"] for line in (SHARED / "claims" / "weibo21_val.jsonl").read_text("utf-8").splitlines()]
            claims = rng.sample(posts, args.n)
            f = SearchFilters(kind="debunk")
            search = [([h.key for h in es.search(q, limit=5, filters=f)], [h.key for h in emb.search(q, limit=5, filters=f)]) for q in queries]
            match = [([str(m.debunk_id) for m in match_text(es, c)], [str(m.debunk_id) for m in match_text(emb, c)]) for c in claims]
            print(
                json.dumps(
                    {
                        "benchmark": "backend_agreement",
                        "debunks": es.count("debunk"),
                        "embedded_import_and_index_s": round(t1 - t0, 1),
                        "elasticsearch_rebuild_s": round(t2 - t1, 1),
                        "search": agreement(search),
                        "match": agreement(match),
                    },
                    ensure_ascii=False,
                )
            )
        finally:
            for name in list(es.es.indices.get(index=f"{es.alias}-*")):
                es.es.indices.delete(index=name)
            es.close()
            emb.close()


if __name__ == "__main__":
    main()
