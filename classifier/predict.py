"""Classify claims with a saved model of any kind (the functions behind ``piyao classify``).

Output contract: each output record keeps the input ``id`` and adds ``score``
(float 0..1, probability that the text is not credible), ``label`` (a verdict code:
"rumor" or "pseudoscience" if score >= 0.5, else "credible"), ``flagged`` (score at
or above the flag threshold of its label and topic), ``model_version``, ``top_terms``
(features that pushed the score), ``topic`` (a topic code or null), ``explanation``
(what an editor reads: the matched debunk or the top terms) and ``stage`` (which part
of a cascade decided).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from classifier import base

__all__ = ["load_model", "classify_records", "flag_threshold"]


def load_model(path: str | Path | None = None, *, embedding_cache: str | Path | None = None,
               embedding_engine: str | None = None) -> Any:
    """Load a model directory of any kind (default: ``classifier.model`` from the settings).

    Raises ``FileNotFoundError`` for a missing directory or file and
    ``classifier.starter.UntrustedModelError`` (a ValueError) for a model holding
    untrusted types or a file that does not match its meta.json. ``embedding_cache``
    gives a default (cascade) model an on-disk cache of e5 embeddings, ``embedding_engine`` the engine
    that runs e5 (classifier.encoder.ENGINES; default ``onnx``).
    """
    if path is None:
        from settings import load_settings

        path = load_settings().model_path
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    return base.load_model(path, embedding_cache=embedding_cache, embedding_engine=embedding_engine)


def flag_threshold(label: str, topic: str | None, default: float, thresholds: dict[str, float] | None = None,
                   topic_thresholds: dict[str, float] | None = None) -> float:
    """The flag threshold of a prediction: the lowest of the default, its label's and its topic's."""
    from classifier.labels import CREDIBLE, RUMOR

    candidates = [default]
    key = RUMOR if label == CREDIBLE else label  # a credible-labelled score is measured against the rumor threshold
    if thresholds and key in thresholds:
        candidates = [thresholds[key]]
    if topic_thresholds and topic in topic_thresholds:
        candidates.append(topic_thresholds[topic])
    return min(candidates)


def _check(rec: Any, lineno: int) -> tuple[Any, str]:
    if not isinstance(rec, dict):
        raise ValueError(f"line {lineno}: expected a JSON object with 'id' and 'text', got {type(rec).__name__}")
    rid = rec.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        raise ValueError(f"line {lineno}: record has no 'id'")
    text = rec.get("text")
    if not isinstance(text, str):
        raise ValueError(f"line {lineno}: record {rid!r} has no 'text'" if text is None
                         else f"line {lineno}: record {rid!r}: 'text' must be a string")
    return rid, text


def classify_records(
    model: Any,
    records: Iterable[dict],
    threshold: float = 0.5,
    batch_size: int = 256,
    *,
    top_k: int = 5,
    thresholds: dict[str, float] | None = None,
    topic_thresholds: dict[str, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """Score records ``{"id", "text", ...}`` in batches; yield ``{id, score, label, flagged, model_version, top_terms}``.

    ``threshold`` decides ``flagged`` (``thresholds`` per label and ``topic_thresholds``
    per topic may lower or raise it, see ``flag_threshold``); ``label`` always uses 0.5. Records are
    numbered from 1 in the order given (the line number of a JSONL file): a
    record lacking ``id`` or ``text`` raises ``ValueError`` naming that line.
    Output order equals input order; it is produced lazily, batch by batch.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")

    def flush(ids: list[Any], texts: list[str]) -> Iterator[dict[str, Any]]:
        for rid, pred in zip(ids, model.predict(texts, top_k=top_k)):
            topic = getattr(pred, "topic", None)
            limit = flag_threshold(pred.label, topic, threshold, thresholds, topic_thresholds)
            yield {
                "id": rid,
                "score": float(pred.score),
                "label": pred.label,
                "flagged": bool(pred.score >= limit),
                "model_version": pred.model_version,
                "top_terms": list(pred.top_terms),
                "topic": topic,
                "explanation": dict(getattr(pred, "explanation", None) or {"kind": "terms", "terms": list(pred.top_terms)}),
                "stage": getattr(pred, "stage", "linear"),
            }

    ids: list[Any] = []
    texts: list[str] = []
    for lineno, rec in enumerate(records, 1):
        rid, text = _check(rec, lineno)
        ids.append(rid)
        texts.append(text)
        if len(ids) >= batch_size:
            yield from flush(ids, texts)
            ids, texts = [], []
    if ids:
        yield from flush(ids, texts)
