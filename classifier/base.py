"""What every piyao classifier offers, and how a model directory says which kind it is.

A model directory always holds ``meta.json``; its ``kind`` names the class that
loads it (absent = ``"linear"``, the starter model's format):

* ``linear``      — classifier.starter.StarterModel (jieba word + character TF-IDF, calibrated linear model)
* ``default``     — classifier.default.DefaultModel (a cascade: the linear model, then frozen e5
                    embeddings + retrieval features against known debunks where that changes a decision)
* ``transformer`` — classifier.transformer.TransformerModel (any Hugging Face sequence classifier)

Every model answers ``predict(texts) -> list[Prediction]`` and ``predict_proba(texts) -> (n,)``
(the probability that a text is a rumor / pseudoscience, i.e. not credible) and has
``model_version`` and ``meta``. Nothing is ever loaded with plain pickle: skops with a
trusted-types list, or safetensors + JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from classifier.labels import DISPLAY_NAMES, VERDICTS

__all__ = ["META_FILE", "KINDS", "JsonConfig", "Prediction", "Classifier", "sha256_file", "model_kind", "load_model"]

META_FILE = "meta.json"
KINDS = ("linear", "default", "transformer")


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class JsonConfig:
    """``to_dict`` / ``from_dict`` for the hyper-parameter dataclasses recorded in meta.json.

    Tuples (n-gram ranges) become JSON lists and come back as tuples; keys the dataclass
    does not know (written by another version) are ignored.
    """

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Any:
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {}
        for k, v in (d or {}).items():
            if k in known:
                kwargs[k] = tuple(v) if isinstance(v, list) and isinstance(known[k].default, tuple) else v
        return cls(**kwargs)


@dataclass(frozen=True)
class Prediction:
    """One text's verdict.

    ``score`` is P(not credible) in 0..1; ``label`` a verdict code (classifier.labels.VERDICTS);
    ``explanation`` is what an editor reads: ``{"kind": "terms", "terms": [...]}`` or
    ``{"kind": "debunk", "title", "url", "source", "similarity"}``; ``stage`` names the part of a
    cascade that decided (``linear`` / ``e5`` / ``transformer``).
    """

    score: float
    label: str
    top_terms: list[str] = field(default_factory=list)
    model_version: str = ""
    topic: str | None = None
    topic_score: float | None = None
    explanation: dict[str, Any] = field(default_factory=dict)
    stage: str = "linear"

    @property
    def display_name(self) -> str:
        return VERDICTS.get(self.label) or DISPLAY_NAMES[self.label]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "label": self.label,
            "top_terms": list(self.top_terms),
            "model_version": self.model_version,
            "topic": self.topic,
            "topic_score": self.topic_score,
            "explanation": dict(self.explanation),
            "stage": self.stage,
        }


class Classifier(Protocol):
    meta: dict[str, Any]

    @property
    def model_version(self) -> str: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict(self, texts: Sequence[str], *, top_k: int = 5) -> list[Prediction]: ...


def model_kind(directory: str | Path) -> str:
    """The ``kind`` recorded in a model directory's meta.json (``linear`` when absent)."""
    meta_path = Path(directory) / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"model directory {directory} lacks {META_FILE}")
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({exc})") from None
    kind = meta.get("kind", "linear") if isinstance(meta, dict) else None
    if kind not in KINDS:
        raise ValueError(f"{meta_path}: unknown model kind {kind!r}; expected one of {list(KINDS)}")
    return str(kind)


def load_model(directory: str | Path, *, embedding_cache: str | Path | None = None,
               embedding_engine: str | None = None) -> Any:
    """Load any piyao model directory, dispatching on meta.json's ``kind``.

    ``embedding_cache``: an on-disk cache of e5 embeddings for a cascade (kind ``default``).
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"model directory not found: {d}")
    kind = model_kind(d)
    if kind == "default":
        from classifier.default import DefaultModel

        return DefaultModel.load(d, embedding_cache=embedding_cache, engine=embedding_engine)
    if kind == "transformer":
        from classifier.transformer import TransformerModel

        return TransformerModel.load(d)
    from classifier.starter import StarterModel

    return StarterModel.load(d)
