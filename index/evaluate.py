"""Measuring claim matching: ``piyao eval-match --data FILE.jsonl``.

Input lines ``{"id", "text", "gold": [url, ...]}``; an empty gold list means no debunk
answers the claim. For claims with gold: Recall@1, Recall@5 (a gold article among the
first 1 / 5 matches), MRR (reciprocal rank of the first gold article among the first
``depth``, 0 when none); for claims without: the false auto-link rate (share of them
given at least one "auto" match). Also the precision of auto links and of suggestions
on the claims with gold, so the two thresholds can be judged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from index.matching import Matcher

__all__ = ["EvalItem", "read_eval", "evaluate_matching"]


@dataclass
class EvalItem:
    id: str
    text: str
    gold: list[str]


class EvalDataError(ValueError):
    """A line of the evaluation file is not {"id", "text", "gold": [...]}; the message names the line."""


def read_eval(path: str | Path) -> list[EvalItem]:
    items: list[EvalItem] = []
    p = Path(path)
    try:
        lines = p.read_text("utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{p}: cannot read ({exc.__class__.__name__}: {exc})") from None
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError:
            raise EvalDataError(f"{p}:{no}: not a JSON object") from None
        if not isinstance(d, dict) or "text" not in d or not isinstance(d.get("gold"), list):
            raise EvalDataError(f'{p}:{no}: expected {{"id", "text", "gold": [url, ...]}}')
        if not all(isinstance(u, str) for u in d["gold"]):
            raise EvalDataError(f"{p}:{no}: gold must be a list of URLs")
        items.append(EvalItem(str(d.get("id", no)), str(d["text"]), list(d["gold"])))
    if not items:
        raise EvalDataError(f"{p}: no items")
    return items


def evaluate_matching(
    matcher: Matcher,
    items: Iterable[EvalItem],
    *,
    depth: int = 10,
    progress: Callable[[int], None] | None = None,
    predictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The metrics of ``matcher`` over ``items`` (see the module doc)."""
    top_k = matcher.top_k
    matcher.top_k = max(depth, 5)
    n_gold = n_empty = 0
    r1 = r5 = 0
    rr = 0.0
    false_auto = 0
    auto_links = auto_right = sugg_links = sugg_right = 0
    claims_auto_right = claims_answered = 0
    latencies: list[float] = []
    try:
        for item in items:
            t0 = time.perf_counter()
            matches = matcher.match(item.text)
            latencies.append(time.perf_counter() - t0)
            gold = set(item.gold)
            urls = [m.url for m in matches]
            if gold:
                n_gold += 1
                first = next((i for i, u in enumerate(urls[:depth], 1) if u in gold), 0)
                r1 += first == 1
                r5 += 0 < first <= 5
                rr += 1.0 / first if first else 0.0
                for m in matches:
                    if m.decision == "auto":
                        auto_links += 1
                        auto_right += m.url in gold
                    elif m.decision == "suggest":
                        sugg_links += 1
                        sugg_right += m.url in gold
                claims_auto_right += any(m.decision == "auto" and m.url in gold for m in matches)
                claims_answered += any(m.decision != "none" and m.url in gold for m in matches[:5])
            else:
                n_empty += 1
                false_auto += any(m.decision == "auto" for m in matches)
            if predictions is not None:
                predictions.append(
                    {
                        "id": item.id,
                        "gold": item.gold,
                        "matches": [{"url": m.url, "title": m.title, "score": round(m.score, 4), "decision": m.decision} for m in matches[:5]],
                    }
                )
            if progress:
                progress(1)
    finally:
        matcher.top_k = top_k
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else 0.0

    def ratio(a: float, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "claims": n_gold + n_empty,
        "with_gold": n_gold,
        "without_gold": n_empty,
        "recall_at_1": ratio(r1, n_gold),
        "recall_at_5": ratio(r5, n_gold),
        "mrr": ratio(rr, n_gold),
        "false_auto_link_rate": ratio(false_auto, n_empty),
        "false_auto_links": false_auto,
        "auto_precision": ratio(auto_right, auto_links),
        "auto_links": auto_links,
        "claims_auto_linked_correctly": ratio(claims_auto_right, n_gold),
        "claims_answered_in_top5": ratio(claims_answered, n_gold),
        "suggest_precision": ratio(sugg_right, sugg_links),
        "suggestions": sugg_links,
        "thresholds": {"auto": matcher.auto_threshold, "suggest": matcher.suggest_threshold},
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95)},
    }
