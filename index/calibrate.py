"""Fitting the match calibration and the two thresholds on labelled claim sets.

``python -m index.calibrate --data DEV.jsonl [DEV2.jsonl …] --out models/matcher.json``

For every claim of the development sets (lines ``{"id", "text", "gold": [url, …]}``,
an empty gold list for claims no debunk answers) the matcher's fused candidates are
labelled 1 when their URL is gold, 0 otherwise; a gradient-boosted tree model over
``index.matching.FEATURES`` (``--kind gbdt``, the default: it learns the interactions —
a high cosine *and* a high character overlap — that separate sure matches; saved with
skops) or a logistic regression (``--kind logistic``, kept in the JSON file) turns them
into a probability. The thresholds are then read off the same development data:

* ``auto_threshold``: the lowest score at which (a) at most ``--max-false-auto`` of the
  claims without a debunk would get an automatic link and (b) at least
  ``--auto-precision`` of the automatic links on claims with gold are right;
* ``suggest_threshold``: the lowest score at which suggestions (each claim's top
  candidates, on all claims) are right at least ``--suggest-precision`` of the time.

The scores thresholds are read from are out-of-fold (5 folds by claim): in-sample scores
would be overconfident and the thresholds too low. Both go into the calibration file's
``info`` and are printed as config.yaml lines;
config.yaml holds the values in use. Measure on held-out sets with ``piyao eval-match``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.evaluate import EvalItem, read_eval
from index.matching import FEATURES, MatchCalibration, Matcher

__all__ = ["collect", "fit", "out_of_fold", "choose_thresholds"]


def collect(matcher: Matcher, items: Sequence[EvalItem], *, progress: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels, claim index) over every fused candidate of every claim."""
    X: list[list[float]] = []
    y: list[int] = []
    group: list[int] = []
    for i, item in enumerate(items):
        gold = set(item.gold)
        for c in matcher.candidates_for(item.text):
            X.append(c.features())
            y.append(int(c.url in gold))
            group.append(i)
        if progress:
            progress(1)
    return np.array(X, dtype=np.float64).reshape(-1, len(FEATURES)), np.array(y), np.array(group)


def fit(X: np.ndarray, y: np.ndarray, *, kind: str = "gbdt", C: float = 1.0, rrf_k: int = 60, seed: int = 0) -> MatchCalibration:
    """A gradient-boosted tree model ("gbdt", the default) or a logistic regression over the features."""
    if kind == "gbdt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
        model.fit(X, y)
        return MatchCalibration(kind="gbdt", model=model, rrf_k=rrf_k)
    from sklearn.linear_model import LogisticRegression

    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    lr = LogisticRegression(C=C, max_iter=2000)
    lr.fit((X - mu) / sd, y)
    coef = lr.coef_[0] / sd
    intercept = float(lr.intercept_[0] - np.sum(lr.coef_[0] * mu / sd))
    return MatchCalibration(coef=[float(c) for c in coef], intercept=intercept, rrf_k=rrf_k)


def out_of_fold(X: np.ndarray, y: np.ndarray, group: np.ndarray, *, kind: str = "gbdt", C: float = 1.0, folds: int = 5) -> np.ndarray:
    """Each candidate's score from a model fitted without its claim (claims split into ``folds`` groups).

    Thresholds read off in-sample scores would be too low: a model scores the data it was fitted
    on more confidently than new claims.
    """
    from sklearn.model_selection import GroupKFold

    scores = np.zeros(len(y))
    n = min(folds, len(np.unique(group)))
    if n < 2:
        return fit(X, y, kind=kind, C=C).score(X)
    for train, test in GroupKFold(n_splits=n).split(X, y, group):
        if len(np.unique(y[train])) < 2:
            scores[test] = float(y[train].mean()) if len(train) else 0.0
            continue
        scores[test] = fit(X[train], y[train], kind=kind, C=C).score(X[test])
    return scores


def choose_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    group: np.ndarray,
    has_gold: np.ndarray,
    *,
    max_false_auto: float = 0.01,
    auto_precision: float = 0.95,
    suggest_precision: float = 0.5,
    top_k: int = 5,
) -> dict[str, float]:
    """Thresholds on development scores (see the module doc); only each claim's top_k candidates count."""
    keep = np.zeros(len(scores), dtype=bool)
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        keep[idx[np.argsort(-scores[idx])[:top_k]]] = True
    s, lab, grp = scores[keep], y[keep], group[keep]
    gold_claim = has_gold[grp]
    empty_claims = int((~has_gold).sum())
    grid = np.unique(np.round(np.concatenate([s, [1.0]]), 4))
    auto = 1.0
    for t in grid:  # ascending: the lowest threshold meeting both conditions
        above = s >= t
        false_claims = len(np.unique(grp[above & ~gold_claim]))
        links = above & gold_claim
        prec = lab[links].mean() if links.any() else 1.0
        if (not empty_claims or false_claims / empty_claims <= max_false_auto) and prec >= auto_precision:
            auto = float(t)
            break
    suggest = auto
    for t in grid:  # suggestions on claims without any debunk count as wrong ones
        above = s >= t
        if above.any() and lab[above].mean() >= suggest_precision and t <= auto:
            suggest = float(t)
            break
    return {"auto_threshold": round(auto, 4), "suggest_threshold": round(min(suggest, auto), 4)}


def main(argv: Sequence[str] | None = None) -> int:
    from settings import load_settings

    ap = argparse.ArgumentParser(prog="python -m index.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="development sets (JSONL: id, text, gold)")
    ap.add_argument("--out", default="models/matcher.json")
    ap.add_argument("--data-dir", default=None, help="piyao data directory whose index to use")
    ap.add_argument("--max-false-auto", type=float, default=0.01)
    ap.add_argument("--auto-precision", type=float, default=0.95)
    ap.add_argument("--suggest-precision", type=float, default=0.5)
    ap.add_argument("--kind", choices=["gbdt", "logistic"], default="gbdt")
    ap.add_argument("--C", type=float, default=1.0, help="regularization of the logistic kind")
    args = ap.parse_args(argv)

    from rich.progress import Progress

    from index import open_backend

    settings = load_settings(data_dir=args.data_dir)
    backend = open_backend(settings)
    matcher = Matcher.from_settings(settings, backend)
    items = [it for path in args.data for it in read_eval(path)]
    with Progress(transient=True) as prog:
        task = prog.add_task("candidates", total=len(items))
        X, y, group = collect(matcher, items, progress=lambda n: prog.advance(task, n))
    cal = fit(X, y, kind=args.kind, C=args.C, rrf_k=matcher.calibration.rrf_k)
    scores = out_of_fold(X, y, group, kind=args.kind, C=args.C)
    has_gold = np.array([bool(it.gold) for it in items])
    th = choose_thresholds(
        scores, y, group, has_gold,
        max_false_auto=args.max_false_auto, auto_precision=args.auto_precision, suggest_precision=args.suggest_precision,
        top_k=settings.matching.top_k,
    )
    cal.info = {
        "fitted": True,
        "date": dt.date.today().isoformat(),
        "data": [Path(p).name for p in args.data],
        "claims": len(items),
        "claims_with_gold": int(has_gold.sum()),
        "candidates": int(len(y)),
        "positives": int(y.sum()),
        "kind": args.kind,
        "criteria": {"max_false_auto": args.max_false_auto, "auto_precision": args.auto_precision, "suggest_precision": args.suggest_precision},
        **th,
    }
    cal.save(args.out)
    print(json.dumps(cal.to_dict(), ensure_ascii=False, indent=1))
    print(f"\n# config.yaml\nmatching:\n  auto_threshold: {th['auto_threshold']}\n  suggest_threshold: {th['suggest_threshold']}", file=sys.stderr)
    backend.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
