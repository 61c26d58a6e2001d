"""Fine-tune and serve any Hugging Face sequence classifier as a piyao model (kind ``transformer``).

* ``train_transformer(records, out_dir, config)`` fine-tunes
  ``AutoModelForSequenceClassification.from_pretrained(config.base_model, num_labels=2)`` on records
  ``{"text", "label"}`` (0 = credible, 1 = rumor) with a plain torch loop: AdamW (no decay on biases and
  LayerNorm weights), linear warmup then linear decay, gradient clipping, dynamic padding over
  length-grouped batches, bf16/fp16 autocast on CUDA. Given ``eval_records`` it measures them
  (``classifier.evaluate.metrics``) and fits a temperature on their logits (calibration, stored in
  meta.json and applied at predict time). It writes ``model.safetensors`` (never pickle), the
  tokenizer, ``meta.json`` (``"kind": "transformer"``) and ``MODEL_CARD.md``.
* ``TransformerModel.load(dir)`` serves such a directory: ``predict_proba(texts)`` (P(rumor), batched
  over length-sorted texts, in input order) and ``predict(texts)`` -> ``classifier.base.Prediction``.

``config.base_model`` is any model directory or hub id ``from_pretrained`` accepts (a Chinese RoBERTa
downloaded elsewhere, or the offline e5 conversion of ``classifier.convert_e5``). torch and transformers
are imported lazily: importing this module needs neither (``pip install -e '.[transformer]'``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from classifier.base import META_FILE, JsonConfig, Prediction, sha256_file
from classifier.labels import CREDIBLE, LABELS, RUMOR

__all__ = [
    "KIND",
    "MODEL_FILE",
    "INSTALL_HINT",
    "TransformerConfig",
    "TransformerModel",
    "train_transformer",
    "fit_temperature",
    "write_model_card",
]

KIND = "transformer"
MODEL_FILE = "model.safetensors"
CARD_FILE = "MODEL_CARD.md"
INSTALL_HINT = "install the transformer extra: pip install -e '.[transformer]'"
# Files a model directory must never hold: pickled weights or optimizer states.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _require() -> tuple[Any, Any]:
    """(torch, transformers), or a ModuleNotFoundError that says how to install them."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ModuleNotFoundError(f"the transformer classifier needs torch and transformers ({exc.name} is missing); "
                                  f"{INSTALL_HINT}") from exc
    return torch, transformers


@dataclass(frozen=True)
class TransformerConfig(JsonConfig):
    """Fine-tuning hyper-parameters (recorded in meta.json)."""

    base_model: str = "models/e5-small-xlmr"  # any Hugging Face model directory or hub id
    max_length: int = 128  # tokens per text (longer texts are truncated)
    batch_size: int = 32
    eval_batch_size: int = 128
    epochs: int = 3
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available) | "cpu" | "cuda" | "cuda:N"
    precision: str = "auto"  # "auto" (bf16 on CUDA where supported, else fp16; fp32 on CPU) | "fp32" | "fp16" | "bf16"
    calibrate: bool = True  # fit a temperature on eval_records
    save_fp16: bool = False  # store the fine-tuned weights in float16 (half the size)
    num_threads: int = 0  # CPU threads for torch (0 = $OMP_NUM_THREADS when set, else every core)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _device(torch: Any, name: str, num_threads: int = 0) -> Any:
    """The torch device for ``name``; on CPU, torch uses ``num_threads`` threads (0 = $OMP_NUM_THREADS
    when set, else every core)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    dev = torch.device(name)
    if dev.type == "cpu":
        if num_threads <= 0:
            env = os.environ.get("OMP_NUM_THREADS", "")
            num_threads = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
        torch.set_num_threads(num_threads)
    return dev


def _amp_dtype(torch: Any, device: Any, precision: str) -> Any:
    """The autocast dtype (None = fp32)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    if precision in ("fp16", "auto"):
        return torch.float16
    raise ValueError(f"unknown precision {precision!r}; expected auto, fp32, fp16 or bf16")


def _autocast(torch: Any, device: Any, dtype: Any) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def _quiet_loading(transformers: Any) -> Iterator[None]:
    """No weight-loading progress bars while loading (they are noise in a server log)."""
    hf_logging = transformers.utils.logging
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _seed_all(torch: Any, seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (special tokens added, truncated, not padded)."""
    out: list[list[int]] = []
    step = 4096
    for start in range(0, len(texts), step):
        chunk = [t if isinstance(t, str) else "" for t in texts[start : start + step]]
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=False)
        out.extend(list(ids) for ids in enc["input_ids"])
    return out


def _collate(torch: Any, seqs: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """Pad to the longest sequence of the batch (dynamic padding): (input_ids, attention_mask)."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return (torch.from_numpy(ids).to(device, non_blocking=True), torch.from_numpy(mask).to(device, non_blocking=True))


def _train_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches whose members have similar lengths (less padding): shuffle, sort within windows
    of 50 batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[np.ndarray] = []
    lens = np.asarray(lengths)
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lens[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _progress(show: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console, disable=not show,
    )


def _softmax_rumor(logits: np.ndarray, temperature: float, rumor_index: int) -> np.ndarray:
    z = logits.astype(np.float64) / max(temperature, 1e-6)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e[:, rumor_index] / e.sum(axis=1), dtype=float)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """The temperature T > 0 minimizing the log loss of softmax(logits / T) (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(labels, dtype=int)
    if len(y) == 0:
        return 1.0
    res = minimize_scalar(lambda lt: _nll(logits, y, math.exp(lt)), bounds=(math.log(0.05), math.log(20.0)),
                          method="bounded", options={"xatol": 1e-4})
    return float(math.exp(res.x))


def _crossfit_ece(logits: np.ndarray, y: np.ndarray, seed: int) -> float:
    """ECE of temperature-scaled scores where each half's temperature is fitted on the other half."""
    from classifier.evaluate import expected_calibration_error

    if len(y) < 4:
        return float("nan")
    idx = np.random.default_rng(seed).permutation(len(y))
    halves = (idx[: len(y) // 2], idx[len(y) // 2 :])
    scores = np.zeros(len(y))
    for a, b in (halves, halves[::-1]):
        t = fit_temperature(logits[a], y[a])
        scores[b] = _softmax_rumor(logits[b], t, 1)
    return expected_calibration_error(y, scores)


def _counts(records: Sequence[dict]) -> dict[str, Any]:
    by: dict[str, dict[str, int]] = {}
    for r in records:
        ds = str(r.get("dataset", "unknown"))
        lab = LABELS[int(r["label"])]
        by.setdefault(ds, {CREDIBLE: 0, RUMOR: 0})[lab] += 1
    return {
        "n": len(records),
        CREDIBLE: sum(1 for r in records if int(r["label"]) == 0),
        RUMOR: sum(1 for r in records if int(r["label"]) == 1),
        "by_dataset": by,
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "tokenizers", "safetensors", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _device_name(torch: Any, device: Any) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _base_description(base: str) -> dict[str, Any]:
    """What is known about the base model: its config's model_type and a conversion report if any."""
    info: dict[str, Any] = {"name_or_path": base}
    d = Path(base)
    if d.is_dir():
        conv = d / "CONVERSION.json"
        if conv.is_file():
            with contextlib.suppress(ValueError):
                info["conversion"] = json.loads(conv.read_text("utf-8"))
        cfg = d / "config.json"
        if cfg.is_file():
            with contextlib.suppress(ValueError):
                c = json.loads(cfg.read_text("utf-8"))
                info["model_type"] = c.get("model_type")
                info["architectures"] = c.get("architectures")
    return info


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def _logits(torch: Any, model: Any, seqs: Sequence[Sequence[int]], pad_id: int, device: Any, batch_size: int,
            amp: Any, bar: Any = None, task: Any = None) -> np.ndarray:
    """Logits (n, num_labels) in input order, computed over batches of length-sorted sequences."""
    n_labels = int(model.config.num_labels)
    out = np.zeros((len(seqs), n_labels), dtype=np.float32)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = _collate(torch, [seqs[i] for i in idx], pad_id, device)
            with _autocast(torch, device, amp):
                logits = model(input_ids=ids, attention_mask=mask).logits
            out[idx] = logits.float().cpu().numpy()
            if bar is not None:
                bar.advance(task, len(idx))
    return out


def _load_for_training(transformers: Any, torch: Any, base: str) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:  # decoder-only models: pad with EOS (or UNK)
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    with _quiet_loading(transformers):
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=2,
            id2label={0: CREDIBLE, 1: RUMOR},
            label2id={CREDIBLE: 0, RUMOR: 1},
            dtype=torch.float32,
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def train_transformer(
    records: Sequence[dict],
    out_dir: str | Path,
    config: TransformerConfig | None = None,
    *,
    eval_records: Sequence[dict] | None = None,
    progress: bool = True,
    command: str | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``config.base_model`` on ``records`` ({text, label 0/1}); write the model to ``out_dir``.

    Returns the report that meta.json records (config, data counts, training history and timing,
    eval metrics and the calibration temperature when ``eval_records`` are given).
    """
    torch, transformers = _require()
    cfg = config or TransformerConfig()
    records = list(records)
    if not records:
        raise ValueError("no training records")
    labels = np.asarray([int(r["label"]) for r in records], dtype=np.int64)
    if set(np.unique(labels)) - {0, 1}:
        raise ValueError("labels must be 0 (credible) or 1 (rumor)")
    out = Path(out_dir)
    if out.is_dir():
        pickles = sorted(p.name for p in out.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(f"{out} holds pickle files {pickles}; write the model to an empty directory")
    t_start = time.time()
    _seed_all(torch, cfg.seed)
    device = _device(torch, cfg.device, cfg.num_threads)
    amp = _amp_dtype(torch, device, cfg.precision)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tokenizer, model = _load_for_training(transformers, torch, cfg.base_model)
    model.to(device)
    pad_id = int(tokenizer.pad_token_id)

    seqs = _encode(tokenizer, [r["text"] for r in records], cfg.max_length)
    lengths = [len(s) for s in seqs]
    steps_per_epoch = math.ceil(len(seqs) / cfg.batch_size)
    total_steps = max(1, steps_per_epoch * cfg.epochs)
    warmup = int(round(cfg.warmup_ratio * total_steps))

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [p for p in model.named_parameters() if p[1].requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(groups, lr=cfg.lr, fused=device.type == "cuda")

    def schedule(step: int) -> float:  # linear warmup, then linear decay to 0
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optim, schedule)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    rng = np.random.default_rng(cfg.seed)
    y_all = torch.from_numpy(labels)
    history: list[dict[str, Any]] = []
    step = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_train = time.time()
    with _progress(progress) as bar:
        task = bar.add_task("fine-tuning", total=total_steps, status="")
        for epoch in range(cfg.epochs):
            model.train()
            # Per-step loss and hit counts stay on the device; the host reads them every 25 steps
            # (a read waits for the GPU), for the progress bar, and at the end of the epoch.
            step_losses: list[Any] = []
            correct = torch.zeros((), dtype=torch.long, device=device)
            for batch in _train_batches(lengths, cfg.batch_size, rng):
                ids, mask = _collate(torch, [seqs[i] for i in batch], pad_id, device)
                y = y_all[batch].to(device, non_blocking=True)
                with _autocast(torch, device, amp):
                    logits = model(input_ids=ids, attention_mask=mask).logits
                loss = torch.nn.functional.cross_entropy(logits.float(), y)
                optim.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optim)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                scaler.step(optim)
                scaler.update()
                scheduler.step()
                step += 1
                step_losses.append(loss.detach())
                correct += (logits.detach().argmax(-1) == y).sum()
                bar.advance(task)
                if progress and step % 25 == 0:
                    recent = float(torch.stack(step_losses[-25:]).mean())
                    bar.update(task, status=f"epoch {epoch + 1}/{cfg.epochs} loss {recent:.4f}")
            losses = torch.stack(step_losses).float().cpu().numpy()
            history.append({"epoch": epoch + 1, "loss": float(losses.mean()),
                            "train_accuracy": int(correct) / len(seqs)})
            bar.update(task, status=f"epoch {epoch + 1}/{cfg.epochs} loss {history[-1]['loss']:.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.time() - t_train

    created = datetime.now(timezone.utc)
    report: dict[str, Any] = {
        "kind": KIND,
        "version": f"{KIND}-{created.strftime('%Y%m%d%H%M%S')}",
        "created": created.isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "base_model": _base_description(cfg.base_model),
        "architecture": type(model).__name__,
        "model_type": getattr(model.config, "model_type", None),
        "labels": {"0": CREDIBLE, "1": RUMOR},
        "rumor_index": 1,
        "max_length": cfg.max_length,
        "temperature": 1.0,
        "training_data": _counts(records),
        "training": {
            "device": _device_name(torch, device),
            "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp],
            "steps": step,
            "epochs": cfg.epochs,
            "seconds": round(train_seconds, 2),
            "texts_per_second": round(len(seqs) * cfg.epochs / max(train_seconds, 1e-9), 1),
            "mean_tokens_per_text": round(float(np.mean(lengths)), 1),
            "truncated_share": round(float(np.mean([n >= cfg.max_length for n in lengths])), 4),
            "history": history,
        },
        "environment": _versions(),
    }
    if command:
        report["command"] = command

    if eval_records:
        from classifier.evaluate import metrics

        ev = list(eval_records)
        y_ev = np.asarray([int(r["label"]) for r in ev], dtype=int)
        ev_seqs = _encode(tokenizer, [r["text"] for r in ev], cfg.max_length)
        t_inf = time.time()
        with _progress(progress) as bar:
            task = bar.add_task("evaluating", total=len(ev_seqs), status="")
            logits_ev = _logits(torch, model, ev_seqs, pad_id, device, cfg.eval_batch_size, amp, bar, task)
        inf_seconds = time.time() - t_inf
        temperature = fit_temperature(logits_ev, y_ev) if cfg.calibrate else 1.0
        raw = _softmax_rumor(logits_ev, 1.0, 1)
        m = metrics(y_ev, _softmax_rumor(logits_ev, temperature, 1))
        m["ece_uncalibrated"] = metrics(y_ev, raw)["ece"]
        if cfg.calibrate:
            m["ece_crossfit"] = _crossfit_ece(logits_ev, y_ev, cfg.seed)
        m["eval_data"] = _counts(ev)
        m["inference_texts_per_second"] = round(len(ev) / max(inf_seconds, 1e-9), 1)
        m["note"] = (
            "threshold 0.5; 'ece' uses the temperature fitted on these same records (in-sample); 'ece_crossfit' fits "
            "it on one half and measures the other (both ways); temperature scaling does not move the 0.5 decision"
        )
        report["temperature"] = temperature
        report["metrics"] = {"eval": m}
    if extra_meta:
        report.update(extra_meta)

    # -- save ----------------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    if cfg.save_fp16:
        model.half()
    model.to("cpu")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    left = [p.name for p in out.iterdir() if p.suffix in _PICKLE_SUFFIXES]
    if left or not (out / MODEL_FILE).is_file():
        raise RuntimeError(f"{out}: expected {MODEL_FILE} and no pickle files, found {sorted(p.name for p in out.iterdir())}")
    report["format"] = "safetensors"
    report["model_file"] = MODEL_FILE
    report["model_sha256"] = sha256_file(out / MODEL_FILE)
    report["model_bytes"] = (out / MODEL_FILE).stat().st_size
    report["total_seconds"] = round(time.time() - t_start, 2)
    (out / META_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    write_model_card(out, report)
    return report


# ---------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------
def _fmt(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x)) else "n/a"


def write_model_card(out_dir: str | Path, report: dict[str, Any]) -> Path:
    """Write MODEL_CARD.md for a fine-tuned transformer model from its meta.json report."""
    out = Path(out_dir)
    cfg = report.get("config", {})
    td = report.get("training_data", {})
    tr = report.get("training", {})
    base = report.get("base_model", {})
    families: list[str] = []
    terms: list[str] = []
    try:
        from classifier.labels import dataset_family
        from classifier.train import DATASET_TERMS

        for ds in td.get("by_dataset", {}):
            with contextlib.suppress(ValueError):
                fam = dataset_family(ds)
                if fam not in families:
                    families.append(fam)
                    terms.append(f"- {DATASET_TERMS[fam]}")
    except ImportError:  # pragma: no cover - classifier.train needs the default dependencies only
        pass
    conv = base.get("conversion") or {}
    base_line = f"`{base.get('name_or_path', cfg.get('base_model'))}`"
    if conv:
        base_line += (f" — {conv.get('source_model')}, converted with `classifier.convert_e5` "
                      f"({conv.get('pieces')} vocabulary pieces{', pruned to ' + str(conv.get('prune_source')) if conv.get('pruned') else ''})")
    rows = ""
    m = (report.get("metrics") or {}).get("eval")
    if m:
        pc = m["per_class"]
        rows = (
            "| set | n | macro-F1 | accuracy | ECE (calibrated, in-sample) | ECE (cross-fitted) | ECE (T = 1) | ROC-AUC | "
            "rumor P / R / F1 | credible P / R / F1 |\n|---|---|---|---|---|---|---|---|---|---|\n"
            f"| eval records | {m['n']} | {_fmt(m['macro_f1'])} | {_fmt(m['accuracy'])} | {_fmt(m['ece'])} | "
            f"{_fmt(m.get('ece_crossfit'))} | {_fmt(m.get('ece_uncalibrated'))} | {_fmt(m.get('roc_auc'))} | "
            f"{_fmt(pc[RUMOR]['precision'])} / {_fmt(pc[RUMOR]['recall'])} / {_fmt(pc[RUMOR]['f1'])} | "
            f"{_fmt(pc[CREDIBLE]['precision'])} / {_fmt(pc[CREDIBLE]['recall'])} / {_fmt(pc[CREDIBLE]['f1'])} |\n\n"
            f"Eval data: `{json.dumps(m.get('eval_data', {}), ensure_ascii=False)}`. {m.get('note', '')}."
        )
    else:
        rows = "No eval records were given: this model is unmeasured and uncalibrated (temperature 1)."
    history = "\n".join(f"| {h['epoch']} | {h['loss']:.4f} | {h['train_accuracy']:.3f} |" for h in tr.get("history", []))
    text = f"""# Model card: piyao transformer rumor classifier

- **Version:** `{report.get('version')}`
- **Created:** {report.get('created')}
- **Kind:** `transformer` (load with `classifier.base.load_model(dir)` -> `classifier.transformer.TransformerModel`)
- **Files:** `{MODEL_FILE}` ({report.get('model_bytes', 0) / 1e6:.1f} MB, safetensors), `config.json`, tokenizer files,
  `meta.json` (configuration, data counts, metrics, temperature)
- **Task:** binary classification of a Chinese post: `rumor` (谣言, label 1) vs `credible` (可信, label 0).
  The score is P(rumor) = softmax(logits / T)[1] with the temperature T = {_fmt(report.get('temperature'), 4)}.

## Model
Base model: {base_line}; model type `{report.get('model_type')}`, `{report.get('architecture')}` with a new
2-way classification head, fine-tuned end to end. Texts are truncated to {cfg.get('max_length')} tokens
({_fmt(tr.get('truncated_share', 0) * 100, 1)}% of the training texts reached the limit).
Hyper-parameters: `{json.dumps(cfg, ensure_ascii=False)}`.
Training: {tr.get('epochs')} epochs, {tr.get('steps')} steps on {tr.get('device')} ({tr.get('precision')}), {tr.get('seconds')} s,
{tr.get('texts_per_second')} texts/s.

| epoch | mean loss | train accuracy |
|---|---|---|
{history}

## Training data and terms
`{json.dumps({k: td.get(k) for k in ('n', CREDIBLE, RUMOR, 'by_dataset')}, ensure_ascii=False)}`
{chr(10).join(terms) if terms else '- (datasets not named in the records)'}

The model inherits the terms of its training data (Weibo21 and CHECKED: research use only; CED: no license
stated) and of its base model: use it for research and for assisting human fact-checkers, not as a
commercial product.

## Evaluation
{rows}

## Intended use and limitations
Flagging Chinese Weibo-style posts for human review; a flag is never a verdict. Like the starter model it
learns the style and topics of its training posts, not facts: a well-written false claim scores low, and
machine-written or WeChat-article-style rumors are largely missed (../shared/docs/MODELS.md). Scores are calibrated on
the eval records' distribution only.

## Reproduce
```
{report.get('command') or 'see docs/transformer.md'}
```
"""
    path = out / CARD_FILE
    path.write_text(text, "utf-8")
    return path


# ---------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------
class TransformerModel:
    """A fine-tuned sequence classifier directory. Score = P(rumor), temperature-scaled."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any], *, device: Any, batch_size: int = 64,
                 max_length: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.meta: dict[str, Any] = dict(meta)
        self.device = device
        self.batch_size = batch_size
        self.max_length = int(max_length or self.meta.get("max_length") or 128)
        self.temperature = float(self.meta.get("temperature", 1.0) or 1.0)
        self.rumor_index = int(self.meta.get("rumor_index", 1))
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._amp: Any = None

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "auto", batch_size: int = 64,
             num_threads: int = 0) -> "TransformerModel":
        """Load a model directory written by :func:`train_transformer` (safetensors weights only).

        ``device``: "auto" (CUDA when available), "cpu" or "cuda[:N]"; on CPU torch uses ``num_threads``
        threads (0 = $OMP_NUM_THREADS when set, else every core; a process-wide torch setting).
        """
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"model directory not found: {d}")
        if not (d / MODEL_FILE).is_file():
            raise ValueError(f"{d} has no {MODEL_FILE}: only safetensors weights are loaded (never pickled "
                             f"pytorch_model.bin); re-save the model with save_pretrained()")
        meta: dict[str, Any] = {}
        if (d / META_FILE).is_file():
            try:
                meta = json.loads((d / META_FILE).read_text("utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{d / META_FILE}: not valid JSON ({exc})") from None
        if meta.get("kind", KIND) != KIND:
            raise ValueError(f"{d / META_FILE}: kind is {meta.get('kind')!r}, not {KIND!r}")
        torch, transformers = _require()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        dev = _device(torch, device, num_threads)
        tokenizer = AutoTokenizer.from_pretrained(str(d))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        with _quiet_loading(transformers):
            model = AutoModelForSequenceClassification.from_pretrained(str(d), use_safetensors=True, dtype=torch.float32)
        model.to(dev).eval()
        meta.setdefault("version", f"{KIND}-{d.name}")
        obj = cls(model, tokenizer, meta, device=dev, batch_size=batch_size)
        if dev.type == "cuda":
            obj._amp = _amp_dtype(torch, dev, str(meta.get("config", {}).get("precision", "auto")))
        return obj

    @property
    def model_version(self) -> str:
        return str(self.meta.get("version", f"{KIND}-unversioned"))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits (n, num_labels), in input order."""
        torch, _ = _require()
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return np.zeros((0, int(self.model.config.num_labels)), dtype=np.float32)
        seqs = _encode(self.tokenizer, texts, self.max_length)
        return _logits(torch, self.model, seqs, self.pad_id, self.device, self.batch_size, self._amp)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(rumor) for each text, shape (n,), in input order."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=float)
        return np.clip(_softmax_rumor(self.logits(texts), self.temperature, self.rumor_index), 0.0, 1.0)

    def predict(self, texts: Sequence[str], *, top_k: int = 5) -> list[Prediction]:
        """One Prediction per text: label ``rumor`` when score >= 0.5, stage ``transformer``.

        No per-token explanation is computed (``explanation.terms`` is empty); ``top_k`` is accepted for
        the common classifier interface.
        """
        texts = list(texts)
        if not texts:
            return []
        version = self.model_version
        return [
            Prediction(
                score=float(s),
                label=RUMOR if s >= 0.5 else CREDIBLE,
                top_terms=[],
                model_version=version,
                explanation={"kind": "tokens", "terms": []},
                stage=KIND,
            )
            for s in self.predict_proba(texts)
        ]


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m classifier.transformer --data-dir DIR --out DIR [--base ...]``: fine-tune on Weibo21 train
    (+ optional CED / CHECKED), measure on de-duplicated Weibo21 val, save."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m classifier.transformer", description=_main.__doc__)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default=TransformerConfig.base_model)
    ap.add_argument("--with", dest="extra", nargs="*", default=[], choices=["ced", "checked"])
    ap.add_argument("--epochs", type=int, default=TransformerConfig.epochs)
    ap.add_argument("--max-length", type=int, default=TransformerConfig.max_length)
    ap.add_argument("--batch-size", type=int, default=TransformerConfig.batch_size)
    ap.add_argument("--lr", type=float, default=TransformerConfig.lr)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from classifier.evaluate import remove_near_duplicates
    from classifier.train import DATA_FILES, dedup, load_claims

    data = Path(args.data_dir)
    names = ["weibo21_train", *args.extra, "weibo21_val"]
    kept, _ = dedup(load_claims([data / DATA_FILES[n] for n in names]))
    train = [r for r in kept if r["dataset"] != "weibo21_val"]
    val, _ = remove_near_duplicates([r for r in kept if r["dataset"] == "weibo21_val"], train)
    cfg = TransformerConfig(base_model=args.base, epochs=args.epochs, max_length=args.max_length,
                            batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed)
    command = "python -m classifier.transformer " + " ".join(sys.argv[1:] if argv is None else argv)
    report = train_transformer(train, args.out, cfg, eval_records=val, command=command)
    ev = report.get("metrics", {}).get("eval", {})
    print(json.dumps({"version": report["version"], "macro_f1": ev.get("macro_f1"), "accuracy": ev.get("accuracy"),
                      "ece": ev.get("ece"), "train_seconds": report["training"]["seconds"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
