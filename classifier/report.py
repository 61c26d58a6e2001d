"""Held-out evaluation of a model on a labelled JSONL file: the machinery behind ``piyao eval``.

``evaluate_file`` reads lines ``{"id", "text", "label"}``, removes the items that
duplicate or near-duplicate the model's training data (via the model directory's
training fingerprints, ``classifier.fingerprints``, or the training records when
given), scores the rest with ``model.predict_proba`` and writes into ``out_dir``:

* ``report.json`` — counts, de-duplication, metrics (per-class precision / recall /
  F1, macro-F1, accuracy, top-label ECE, ROC-AUC, average precision, Brier score),
  reliability bins, model version, data file, threshold, date;
* ``confusion_matrix.png``, ``precision_recall.png``, ``reliability.png``;
* ``predictions.jsonl`` — per labelled item: id, line, label, score and prediction
  (or why it was not scored).

Labels: 1 / 0, ``rumor`` / ``credible``, the verdict codes of
``classifier.labels.VERDICTS`` (``pseudoscience`` and ``misleading`` count as rumor,
``unproven`` items are skipped and counted) or their Chinese names (谣言, 伪科学,
误导/有失实, 误导, 有失实, 可信, 尚无定论). Every problem with the input file raises a
``ValueError`` whose message names the file and the line.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from classifier.base import sha256_file
from classifier.evaluate import DEFAULT_THRESHOLD, NearDuplicateIndex, format_report, metrics
from classifier.labels import (
    CREDIBLE,
    RUMOR,
    VERDICT_CREDIBLE,
    VERDICT_MISLEADING,
    VERDICT_PSEUDOSCIENCE,
    VERDICT_RUMOR,
    VERDICT_UNPROVEN,
    VERDICTS,
)

__all__ = [
    "REPORT_FILE",
    "CONFUSION_PNG",
    "PR_PNG",
    "RELIABILITY_PNG",
    "PREDICTIONS_FILE",
    "parse_label",
    "read_labelled",
    "score_metrics",
    "evaluate_file",
    "format_summary",
]

REPORT_FILE = "report.json"
CONFUSION_PNG = "confusion_matrix.png"
PR_PNG = "precision_recall.png"
RELIABILITY_PNG = "reliability.png"
PREDICTIONS_FILE = "predictions.jsonl"

# Label (code or Chinese name, lower-cased) -> 1 rumor, 0 credible, None skipped (no verdict).
_VERDICT_BINARY: dict[str, int | None] = {
    VERDICT_RUMOR: 1,
    VERDICT_PSEUDOSCIENCE: 1,
    VERDICT_MISLEADING: 1,
    VERDICT_CREDIBLE: 0,
    VERDICT_UNPROVEN: None,
}
LABEL_VALUES: dict[str, int | None] = {
    **_VERDICT_BINARY,
    **{VERDICTS[code]: value for code, value in _VERDICT_BINARY.items()},
    **{part: value for code, value in _VERDICT_BINARY.items() for part in VERDICTS[code].split("/")},
    "0": 0,
    "1": 1,
}


def parse_label(raw: Any) -> int | None:
    """1 (rumor), 0 (credible) or None (unproven: no verdict to test against); ValueError otherwise."""
    if isinstance(raw, bool):
        raise ValueError(f"unknown label {raw!r}")
    if isinstance(raw, int) and raw in (0, 1):
        return raw
    if isinstance(raw, float) and raw in (0.0, 1.0):
        return int(raw)
    if isinstance(raw, str):
        key = raw.strip().lower()
        if key in LABEL_VALUES:
            return LABEL_VALUES[key]
    raise ValueError(
        f"unknown label {raw!r}; expected 1/0, rumor/credible, a verdict code "
        f"({', '.join(_VERDICT_BINARY)}) or its Chinese name ({', '.join(VERDICTS.values())})"
    )


def read_labelled(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Labelled records ``{id, text, label (1 = rumor), line}`` of a JSONL file, and counts.

    Counts: ``lines`` (non-blank lines), ``skipped_unproven``. Raises ValueError naming
    the line for invalid JSON, a line that is not an object, a missing or empty ``text``,
    a missing or unknown ``label``; and for a missing or non-UTF-8 file.
    """
    p = Path(path)
    try:
        text = p.read_text("utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a JSONL file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    records: list[dict[str, Any]] = []
    lines = skipped = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        lines += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object with \"text\" and \"label\"")
        body = row.get("text")
        if not isinstance(body, str) or not body.strip():
            raise ValueError(f"{path}:{n}: needs a non-empty string \"text\"")
        if "label" not in row:
            raise ValueError(f"{path}:{n}: has no \"label\"")
        try:
            label = parse_label(row["label"])
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
        if label is None:
            skipped += 1
            continue
        records.append({"id": row.get("id"), "text": body, "label": label, "line": n})
    return records, {"lines": lines, "skipped_unproven": skipped}


# --------------------------------------------------------------------------- metrics
def _none_if_nan(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict[str, Any]]:
    edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 10)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    out = []
    for i in range(n_bins):
        mask = idx == i
        n = int(mask.sum())
        out.append({
            "lo": float(edges[i]),
            "hi": float(edges[i + 1]),
            "n": n,
            "mean_score": float(p[mask].mean()) if n else None,
            "rumor_rate": float(y[mask].mean()) if n else None,
        })
    return out


def score_metrics(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, *, threshold: float = 0.5) -> dict[str, Any]:
    """``classifier.evaluate.metrics`` plus ROC-AUC (None with one class), average precision per class
    (None for a class without items), Brier score and reliability bins of P(rumor)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(scores, dtype=float)
    m = metrics(y, p, threshold=threshold)
    m["roc_auc"] = m.get("roc_auc")
    ap: dict[str, float | None] = {RUMOR: None, CREDIBLE: None}
    if (y == 1).any():
        ap[RUMOR] = _none_if_nan(float(average_precision_score(y, p)))
    if (y == 0).any():
        ap[CREDIBLE] = _none_if_nan(float(average_precision_score(1 - y, 1.0 - p)))
    m["average_precision"] = ap
    m["brier"] = float(np.mean((p - y) ** 2)) if y.size else None
    m["reliability_bins"] = _reliability_bins(y, p)
    return m


# --------------------------------------------------------------------------- plots
_CJK_HINTS = ("wqy", "wenquanyi", "cjk", "noto sans sc", "noto serif sc", "source han", "sourcehan", "droid sans fallback",
              "droidsansfallback", "ukai", "uming", "simhei", "simsun", "msyh", "yahei", "pingfang", "hiragino")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """An installed font family with Chinese glyphs, or None.

    matplotlib's font cache may predate a font installed since (it is built once), so the system's
    font files with a CJK-looking name are added to the font manager when the cache knows none.
    """
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    def known() -> str | None:
        for entry in font_manager.fontManager.ttflist:
            hay = (entry.name + " " + entry.fname).lower()
            if not any(h in hay for h in _CJK_HINTS):
                continue
            try:
                if all(FT2Font(entry.fname).get_char_index(ord(ch)) for ch in "谣言辟传播"):
                    return str(entry.name)
            except Exception:  # noqa: BLE001 - an unreadable font file is just not a candidate
                continue
        return None

    name = known()
    if name is None:
        try:
            for path in font_manager.findSystemFonts():
                if any(h in path.lower() for h in _CJK_HINTS):
                    try:
                        font_manager.fontManager.addfont(path)
                    except Exception:  # noqa: BLE001
                        continue
        except Exception:  # noqa: BLE001 - no fc-list, unreadable folders: plain labels then
            return None
        name = known()
    return name


def _plain(text: str) -> str:
    """Text for a figure: CJK characters become '?' when no CJK font is installed (no missing-glyph warnings)."""
    if cjk_font():
        return text
    return "".join(ch if ord(ch) < 0x2E80 else "?" for ch in text)


def _class_names() -> list[str]:
    if cjk_font():
        return ["credible 可信", "rumor 谣言"]
    return ["credible", "rumor"]


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _rc() -> Any:
    font = cjk_font()
    if font:
        return {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"], "axes.unicode_minus": False}
    return {"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}


def _plot_confusion(m: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    cm = np.asarray(m["confusion_matrix"]["rows_true_cols_pred"], dtype=int)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    with matplotlib.rc_context(_rc()):
        fig = _new_figure(5.0, 4.4)
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        names = _class_names()
        ax.set_xticks([0, 1], labels=names)
        ax.set_yticks([0, 1], labels=names)
        ax.set_xlabel("Predicted label")
        ax.set_ylabel("True label")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.1%}", ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black", fontsize=12)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        ax.set_title(_plain(title), fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png")


def _plot_precision_recall(y: np.ndarray, p: np.ndarray, m: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib
    from sklearn.metrics import precision_recall_curve

    threshold = m["threshold"]
    with matplotlib.rc_context(_rc()):
        fig = _new_figure(5.6, 4.6)
        ax = fig.add_subplot(1, 1, 1)
        names = _class_names()
        drawn = False
        for cls, truth, score, color in ((1, y, p, "tab:red"), (0, 1 - y, 1.0 - p, "tab:blue")):
            code = RUMOR if cls == 1 else CREDIBLE
            if not truth.any():
                continue
            prec, rec, _ = precision_recall_curve(truth, score)
            ap = m["average_precision"][code]
            ax.step(rec, prec, where="post", color=color, label=f"{names[cls]} (AP {ap:.3f})")
            ax.axhline(truth.mean(), color=color, linestyle=":", linewidth=1)
            pc = m["per_class"][code]
            ax.plot([pc["recall"]], [pc["precision"]], "o", color=color, markersize=7)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no items", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        ax.set_title(_plain(title), fontsize=10)
        if drawn:
            ax.legend(loc="lower left", title=f"dots: threshold {threshold:g}; dotted: base rate", fontsize=8,
                      title_fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png")


def _plot_reliability(m: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    bins = m["reliability_bins"]
    with matplotlib.rc_context(_rc()):
        fig = _new_figure(5.2, 5.4)
        ax, hx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
        xs = [b["mean_score"] for b in bins if b["n"]]
        ys = [b["rumor_rate"] for b in bins if b["n"]]
        ax.plot(xs, ys, "o-", color="tab:red", label="model")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("Observed share of rumors")
        ece, brier = m["ece"], m["brier"]
        ax.set_title(_plain(f"{title}\nECE (top-label) {ece:.3f}, Brier {brier:.3f}"), fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(True, alpha=0.3)
        centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
        hx.bar(centers, [b["n"] for b in bins], width=0.09, color="tab:gray")
        hx.set_xlabel("Predicted P(rumor)")
        hx.set_ylabel("Items")
        fig.tight_layout()
        fig.savefig(path, format="png")


# --------------------------------------------------------------------------- evaluation
class _Bar:
    """A rich progress bar on stderr, shown only on a terminal."""

    def __init__(self, show: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=True, disable=not (show and console.is_terminal),
        )

    def __enter__(self) -> Any:
        return self.progress.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _match_training(
    texts: list[str],
    *,
    model_dir: Path | None,
    train_records: Sequence[Any] | None,
    threshold: float,
    bar: Any,
) -> tuple[list[str | None], dict[str, Any]]:
    """Per test text "exact" / "near" / None, and the report's description of how it was decided."""
    info: dict[str, Any] = {"threshold": threshold}
    if train_records is not None:
        index = NearDuplicateIndex(threshold)
        task = bar.add_task("indexing training texts", total=len(train_records))
        for rec in train_records:
            index.add(index.prepare(rec if isinstance(rec, str) else rec["text"]))
            bar.advance(task)
        found: list[str | None] = []
        task = bar.add_task("checking for training duplicates", total=len(texts))
        for text in texts:
            prepared = index.prepare(text)
            hit = index.find(prepared)
            found.append(None if hit is None else ("exact" if prepared[0] in index._keys else "near"))
            bar.advance(task)
        info.update({
            "method": "training records",
            "training_texts": len(train_records),
            "description": (
                f"exact normalized text, or Jaccard of {index.k}-character shingles >= {threshold} "
                "(MinHash LSH candidates confirmed on the exact shingle sets)"
            ),
        })
        return found, info
    from classifier.fingerprints import FINGERPRINT_FILE, load_fingerprints

    fp = load_fingerprints(model_dir) if model_dir is not None else None
    if fp is None:
        where = f"the model directory {model_dir} has no {FINGERPRINT_FILE}" if model_dir is not None else (
            "the model directory is unknown")
        info.update({
            "method": "none",
            "note": (
                f"{where} and no training records were given: test items that duplicate or near-duplicate the "
                "training data could NOT be removed, so these figures may be optimistic"
            ),
        })
        return [None] * len(texts), info
    found = []
    task = bar.add_task("checking for training duplicates", total=len(texts))
    for start, end in _chunks(len(texts), 256):
        found.extend(fp.match(texts[start:end], threshold))
        bar.advance(task, end - start)
    info.update({
        "method": "fingerprints",
        "fingerprints": {key: value for key, value in fp.header.items() if value is not None},
        "description": (
            f"exact normalized text (64-bit hash), or MinHash-estimated Jaccard of {fp.k}-character shingles "
            f">= {threshold} ({fp.num_perm} permutations, standard error about "
            f"{np.sqrt(threshold * (1 - threshold) / fp.num_perm):.3f} at the threshold)"
        ),
    })
    return found, info


def _model_version(model: Any) -> str | None:
    version = getattr(model, "model_version", None)
    if not version:
        meta = getattr(model, "meta", None)
        version = meta.get("version") if isinstance(meta, dict) else None
    return str(version) if version else None


def evaluate_file(
    data_path: str | Path,
    model: Any,
    *,
    out_dir: str | Path,
    train_records: Sequence[Any] | None = None,
    threshold: float = 0.5,
    progress: bool = True,
    model_dir: str | Path | None = None,
    dedup_threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Evaluate ``model`` on the labelled JSONL file ``data_path``; write report.json, plots and
    predictions.jsonl into ``out_dir``; return the report.

    ``model``: an object with ``predict_proba(texts)`` -> P(rumor) (and ``model_version``), or a
    model directory (loaded with ``classifier.base.load_model``). ``model_dir``: where to find the
    training fingerprints when ``model`` is an object. ``train_records`` (records with ``text``, or
    plain strings) replace the fingerprints and are compared exactly. Items near-duplicating
    training data at Jaccard >= ``dedup_threshold`` are removed before scoring. ``threshold``:
    the score at or above which an item is predicted rumor. Raises ValueError for bad input.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(model, (str, Path)):
        from classifier.base import load_model

        model_dir = model_dir or model
        model = load_model(model)
    mdir = Path(model_dir) if model_dir is not None else None
    data = Path(data_path)
    records, counts = read_labelled(data)
    if not records:
        raise ValueError(f"{data_path}: no labelled records to evaluate")
    texts = [r["text"] for r in records]

    with _Bar(progress) as bar:
        found, dedup = _match_training(texts, model_dir=mdir, train_records=train_records,
                                       threshold=dedup_threshold, bar=bar)
        keep = [i for i, f in enumerate(found) if f is None]
        dedup.update({
            "removed": len(records) - len(keep),
            "removed_exact": sum(f == "exact" for f in found),
            "removed_near": sum(f == "near" for f in found),
        })
        if not keep:
            raise ValueError(
                f"{data_path}: all {len(records)} labelled records duplicate the model's training data; nothing to evaluate"
            )
        task = bar.add_task("scoring", total=len(keep))
        scores = np.empty(len(keep), dtype=float)
        for start, end in _chunks(len(keep), batch_size):
            batch = [texts[i] for i in keep[start:end]]
            got = np.asarray(model.predict_proba(batch), dtype=float).reshape(-1)
            if got.shape[0] != len(batch):
                raise ValueError(f"the model returned {got.shape[0]} scores for {len(batch)} texts")
            scores[start:end] = got
            bar.advance(task, end - start)
    if not np.all(np.isfinite(scores)) or scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError("the model returned scores outside 0..1")

    version = _model_version(model)
    fp_version = (dedup.get("fingerprints") or {}).get("model_version")
    if fp_version and version and fp_version != version:
        dedup["warning"] = (
            f"the fingerprints were written for model {fp_version}, not {version}: they may not describe its training data"
        )
    y = np.array([records[i]["label"] for i in keep], dtype=int)
    m = score_metrics(y, scores, threshold=threshold)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = int(y.size)
    title = f"{version or 'model'} on {data.name} (n={n})"
    _plot_confusion(m, out / CONFUSION_PNG, f"Confusion matrix at threshold {threshold:g}\n{title}")
    _plot_precision_recall(y, scores, m, out / PR_PNG, f"Precision-recall\n{title}")
    _plot_reliability(m, out / RELIABILITY_PNG, f"Reliability of P(rumor)\n{title}")

    score_at = dict(zip(keep, scores.tolist()))
    with open(out / PREDICTIONS_FILE, "w", encoding="utf-8") as fh:
        for i, rec in enumerate(records):
            row: dict[str, Any] = {"id": rec["id"], "line": rec["line"], "label": RUMOR if rec["label"] else CREDIBLE}
            if i in score_at:
                row["score"] = round(score_at[i], 6)
                row["predicted"] = RUMOR if score_at[i] >= threshold else CREDIBLE
            else:
                row["removed"] = f"{found[i]} duplicate of training data"
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    report: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_version": version,
        "model_dir": str(mdir) if mdir is not None else None,
        "data_file": data.name,
        "data_sha256": sha256_file(data),
        "threshold": float(threshold),
        "counts": {
            "lines": counts["lines"],
            "skipped_unproven": counts["skipped_unproven"],
            "labelled": len(records),
            "removed_duplicates_of_training": dedup["removed"],
            "evaluated": n,
            RUMOR: int(y.sum()),
            CREDIBLE: int(n - y.sum()),
        },
        "dedup": dedup,
        "metrics": m,
        "files": {
            "report": REPORT_FILE,
            "confusion_matrix": CONFUSION_PNG,
            "precision_recall": PR_PNG,
            "reliability": RELIABILITY_PNG,
            "predictions": PREDICTIONS_FILE,
        },
        "out_dir": str(out),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return report


def format_summary(report: dict[str, Any]) -> str:
    """Terminal summary of an ``evaluate_file`` report."""
    c = report["counts"]
    d = report["dedup"]
    m = report["metrics"]
    lines = [
        f"model {report.get('model_version') or '?'} on {report['data_file']}: {c['lines']} lines, "
        f"{c['skipped_unproven']} unproven skipped, {c['labelled']} labelled",
    ]
    if d["method"] == "none":
        lines.append(f"WARNING: {d['note']}")
    else:
        source = "training fingerprints" if d["method"] == "fingerprints" else f"{d.get('training_texts')} training texts"
        lines.append(
            f"removed {d['removed']} item(s) duplicating the training data ({d['removed_exact']} exact, "
            f"{d['removed_near']} near, Jaccard >= {d['threshold']}; checked against {source})"
        )
    if d.get("warning"):
        lines.append(f"WARNING: {d['warning']}")
    lines.append(f"evaluated {c['evaluated']} ({c[RUMOR]} rumor, {c[CREDIBLE]} credible) at threshold {report['threshold']:g}")
    lines.append(format_report("held-out", {k: v for k, v in m.items() if not (k == "roc_auc" and v is None)}))
    ap = m["average_precision"]
    extra = [f"average precision rumor={ap[RUMOR]:.4f}" if ap[RUMOR] is not None else "average precision rumor=n/a",
             f"credible={ap[CREDIBLE]:.4f}" if ap[CREDIBLE] is not None else "credible=n/a"]
    if m.get("roc_auc") is None:
        extra.append("ROC-AUC n/a (one class only)")
    if m.get("brier") is not None:
        extra.append(f"Brier={m['brier']:.4f}")
    lines.append("  " + " ".join(extra))
    files = report.get("files", {})
    out_dir = report.get("out_dir", "")
    lines.append(f"wrote {', '.join(files.values())} to {out_dir}")
    return "\n".join(lines)
