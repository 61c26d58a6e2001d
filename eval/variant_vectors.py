"""Can a variant's e5 query vector be its cluster representative's?

A post forwarded with 转发/emoji/punctuation edits joins the cluster of the post it copies
(MinHash over jieba shingles ≥ claims.cluster_threshold). Encoding the variant costs as much as
encoding a new claim (about 1 ms per character here), although its meaning is the original's.
This measures what matching loses when the variant is matched with its own text (BM25, the
coverage features, the scorer) but the representative's e5 vector:

    python eval/match_sets.py                      # var/eval/match_*_dev.jsonl
    python eval/variant_vectors.py [--data-dir var/full] [--seed 5]
                                   [--sets var/eval/match_weibo_dev.jsonl,var/eval/match_rewritten_dev.jsonl]

Each claim of the sets gets one variant made by bench/daily.py's forward edits (seeded); the
variants that would join the original's cluster and do not normalize to the same text are kept.
Prints one JSON object: per set, the metrics of ``piyao eval-match`` for the variants matched with
their own vectors and with the original's, and how often the two agree (same first debunk, same
top-5 set, same decisions).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


class _WithVectors:
    """A matcher whose ``match(text)`` uses the given vector for each text (evaluate_matching's interface)."""

    def __init__(self, matcher: Any, vectors: dict[str, Any]) -> None:
        self.__dict__.update(_m=matcher, _v=vectors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._m, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._m, name, value)

    def match(self, text: str) -> Any:
        return self._m.match(text, vector=self._v[text])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="var/full", help="a data dir holding the shared debunks and their passage vectors")
    ap.add_argument("--sets", default="var/eval/match_weibo_dev.jsonl,var/eval/match_rewritten_dev.jsonl")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    from daily import Editor
    from index.evaluate import EvalItem, evaluate_matching, read_eval
    from pipeline import Context, make_matcher
    from settings import load_settings
    from store.clusters import DEFAULT_THRESHOLD, claim_minhash
    from store.writes import content_hash

    settings = load_settings(data_dir=args.data_dir)
    ctx = Context(settings)
    threshold = settings.claims.cluster_threshold or DEFAULT_THRESHOLD
    editor = Editor(random.Random(args.seed))
    out: dict[str, Any] = {"data_dir": args.data_dir, "seed": args.seed, "cluster_threshold": threshold, "sets": {}}
    for path in args.sets.split(","):
        items = read_eval(path)
        pairs: list[tuple[EvalItem, str]] = []
        for it in items:
            v = editor.variant(it.text)
            if content_hash(v) == content_hash(it.text):
                continue  # stored as one more sighting of the original, not a variant
            if claim_minhash(v).jaccard(claim_minhash(it.text)) >= threshold:
                pairs.append((it, v))
        matcher = make_matcher(ctx)
        originals = matcher.query_vectors([it.text for it, _ in pairs])
        owns = matcher.query_vectors([v for _, v in pairs])
        variants = [EvalItem(it.id, v, it.gold) for it, v in pairs]
        got: dict[str, Any] = {"claims": len(items), "variants_in_cluster": len(pairs)}
        preds: dict[str, list[dict[str, Any]]] = {}
        for name, vecs in (("own_vector", owns), ("representative_vector", originals)):
            preds[name] = []
            m = _WithVectors(matcher, {v: vec for (_, v), vec in zip(pairs, vecs)})
            got[name] = evaluate_matching(m, variants, predictions=preds[name])
            got[name].pop("latency_ms", None)
            got[name].pop("thresholds", None)
        a, b = preds["own_vector"], preds["representative_vector"]
        n = len(a)
        first = sum((x["matches"][:1] and x["matches"][0]["url"]) == (y["matches"][:1] and y["matches"][0]["url"]) for x, y in zip(a, b))
        top5 = sum({m["url"] for m in x["matches"]} == {m["url"] for m in y["matches"]} for x, y in zip(a, b))
        decisions = sum([(m["url"], m["decision"]) for m in x["matches"] if m["decision"] != "none"]
                        == [(m["url"], m["decision"]) for m in y["matches"] if m["decision"] != "none"] for x, y in zip(a, b))
        got["agreement"] = {"same_first": round(first / n, 4) if n else None, "same_top5": round(top5 / n, 4) if n else None,
                            "same_links_and_suggestions": round(decisions / n, 4) if n else None}
        out["sets"][Path(path).stem] = got
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
