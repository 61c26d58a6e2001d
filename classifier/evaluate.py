"""Held-out evaluation of a classifier and the near-duplicate tools the evaluation depends on.

Near duplicates: two texts are the same post when their exact keys match
(normalized text, only letters and digits kept) or when the Jaccard similarity
of their 5-character shingles (``classifier.text.shingles``) is at least the
threshold (0.8). MinHash LSH (datasketch) finds candidates; each candidate is
confirmed on the exact shingle sets, so LSH only speeds things up.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from classifier.labels import CREDIBLE, LABELS, RUMOR
from classifier.text import normalize, shingles

__all__ = [
    "DEFAULT_THRESHOLD",
    "SHINGLE_K",
    "NUM_PERM",
    "dedup_key",
    "NearDuplicateIndex",
    "remove_near_duplicates",
    "metrics",
    "expected_calibration_error",
    "evaluate",
]

DEFAULT_THRESHOLD = 0.8
SHINGLE_K = 5
NUM_PERM = 128


def dedup_key(text: str) -> str:
    """Exact-duplicate key: normalized text with only letters and digits."""
    return "".join(ch for ch in normalize(text or "") if unicodedata.category(ch)[0] in ("L", "N"))


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class NearDuplicateIndex:
    """Exact keys + MinHash LSH over character shingles, with exact Jaccard confirmation."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, k: int = SHINGLE_K, num_perm: int = NUM_PERM, seed: int = 1):
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.k = k
        self.num_perm = num_perm
        self.seed = seed
        from classifier.fingerprints import _lsh_params

        # Banding that finds a pair at the threshold almost always (datasketch's default finds a pair at
        # Jaccard 0.8 only ~40% of the time); every candidate is confirmed on the exact shingle sets below.
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=_lsh_params(threshold, num_perm))
        self._keys: dict[str, int] = {}
        self._shingles: dict[int, set[str]] = {}
        self._n = 0

    def _minhash(self, sh: set[str]):
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=self.seed)
        if sh:
            m.update_batch(s.encode("utf-8") for s in sh)
        return m

    def prepare(self, text: str) -> tuple[str, set[str], Any]:
        sh = shingles(text or "", self.k)
        return dedup_key(text), sh, self._minhash(sh)

    def find(self, prepared: tuple[str, set[str], Any]) -> int | None:
        """Position of an indexed item that duplicates ``prepared``, or None."""
        key, sh, mh = prepared
        if key in self._keys:
            return self._keys[key]
        if not sh:
            return None
        best, best_j = None, 0.0
        for cand in self._lsh.query(mh):
            j = _jaccard(sh, self._shingles[cand])
            if j >= self.threshold and j > best_j:
                best, best_j = cand, j
        return best

    def add(self, prepared: tuple[str, set[str], Any]) -> int:
        key, sh, mh = prepared
        pos = self._n
        self._n += 1
        self._keys.setdefault(key, pos)
        if sh:
            self._shingles[pos] = sh
            self._lsh.insert(pos, mh)
        return pos

    def __len__(self) -> int:
        return self._n


def _progress(iterable: Iterable, total: int | None, description: str, show: bool):
    if not show:
        return iterable
    from rich.progress import track

    return track(iterable, total=total, description=description, transient=True)


def remove_near_duplicates(
    test: Sequence[dict],
    train: Sequence[dict],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    progress: bool = False,
) -> tuple[list[dict], int]:
    """Drop test records whose text duplicates or near-duplicates any training record.

    Returns (kept test records, number removed).
    """
    index = NearDuplicateIndex(threshold)
    for rec in _progress(train, len(train), "indexing training texts", progress):
        index.add(index.prepare(rec["text"]))
    kept: list[dict] = []
    for rec in _progress(test, len(test), "checking test texts", progress):
        if index.find(index.prepare(rec["text"])) is None:
            kept.append(rec)
    return kept, len(test) - len(kept)


def expected_calibration_error(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: bins of the predicted label's confidence, weighted |accuracy - confidence|."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(scores, dtype=float)
    if y.size == 0:
        return 0.0
    pred = (p >= 0.5).astype(int)
    conf = np.where(pred == 1, p, 1.0 - p)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    ece = 0.0
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (conf >= lo) & ((conf < hi) if i < n_bins - 1 else (conf <= hi))
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def metrics(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, *, threshold: float = 0.5) -> dict[str, Any]:
    """Macro-F1, per-class precision/recall/F1, accuracy, ECE and confusion matrix of binary scores."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(scores, dtype=float)
    pred = (p >= threshold).astype(int)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    per_class = {
        LABELS[i]: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in (0, 1)
    }
    cm = confusion_matrix(y, pred, labels=[0, 1])
    out = {
        "n": int(y.size),
        "threshold": float(threshold),
        "macro_f1": float(f1_score(y, pred, labels=[0, 1], average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)) if y.size else 0.0,
        "ece": expected_calibration_error(y, p),
        "per_class": per_class,
        "confusion_matrix": {
            "labels": [CREDIBLE, RUMOR],
            "rows_true_cols_pred": cm.astype(int).tolist(),
        },
    }
    if y.size and len(np.unique(y)) == 2:
        from sklearn.metrics import roc_auc_score

        out["roc_auc"] = float(roc_auc_score(y, p))
    return out


def evaluate(model: Any, records: Sequence[dict], *, threshold: float = 0.5, batch_size: int = 2048) -> dict[str, Any]:
    """Score ``records`` ({text, label 0/1}) with ``model`` (``predict_proba(texts)`` -> P(rumor)) and compute metrics."""
    records = list(records)
    texts = [r["text"] for r in records]
    y = [int(r["label"]) for r in records]
    scores: list[float] = []
    for i in range(0, len(texts), batch_size):
        scores.extend(float(s) for s in model.predict_proba(texts[i : i + batch_size]))
    return metrics(y, scores, threshold=threshold)


def format_report(name: str, m: dict[str, Any]) -> str:
    """One-paragraph text summary of ``metrics`` output."""
    pc = m["per_class"]
    cm = m["confusion_matrix"]["rows_true_cols_pred"]
    return (
        f"{name}: n={m['n']} macro-F1={m['macro_f1']:.4f} accuracy={m['accuracy']:.4f} "
        f"ECE={m['ece']:.4f}" + (f" ROC-AUC={m['roc_auc']:.4f}" if "roc_auc" in m else "") + "\n"
        f"  rumor    P={pc[RUMOR]['precision']:.4f} R={pc[RUMOR]['recall']:.4f} F1={pc[RUMOR]['f1']:.4f} "
        f"(n={pc[RUMOR]['support']})\n"
        f"  credible P={pc[CREDIBLE]['precision']:.4f} R={pc[CREDIBLE]['recall']:.4f} F1={pc[CREDIBLE]['f1']:.4f} "
        f"(n={pc[CREDIBLE]['support']})\n"
        f"  confusion [[TN FP] [FN TP]] = {cm}"
    )
