"""The default classifier: a cascade of the cheap linear model and an e5 + retrieval stage.

Stage 1 (every claim): two linear models (classifier.starter: jieba word + character
TF-IDF, calibrated; one tokenization serves both) — the *style* model, trained on the
labelled posts only, and the *knowledge* model, trained on them plus the rumor statements
and advice sentences drawn from debunk articles — and a hashed character n-gram comparison
with the known debunk titles (classifier.knowledge; ``lex_top1``, the closest lexical
match) are combined by a small logistic regression into ``p1``. The style model alone is
best on Weibo posts; the knowledge model alone is best on texts written unlike them (it
knows what the rumors say); the combination keeps most of both.

Stage 2 (only where it can change a decision): frozen multilingual-e5 embeddings of
the claim (classifier.encoder, batched over both cores, cached) plus retrieval features
(e5 and lexical similarity to the nearest known debunks) plus the stage-1 logit go into
a logistic regression. A claim is routed to stage 2 when ``route_low <= p1 <= route_high``
(stage 1 is unsure) or ``lex_top1 >= route_lexical`` (it resembles a known debunk, which
stage 1 cannot weigh). Everything else keeps ``p1``: it is decided at jieba speed.

Explanations: the debunk a claim matched (title, URL, outlet, similarity) when the match
is close (``explain_similarity``), otherwise the linear model's top terms.

Files of a model directory: ``meta.json`` (kind "default", routing parameters, metrics),
``linear/`` and ``style/`` (StarterModel directories), ``stage1.safetensors`` and ``stage2.safetensors`` (standardization and
logistic-regression weights), ``knowledge.json`` + ``knowledge.safetensors``, optionally
``topics/`` (classifier.topics.TopicModel) and ``train_fingerprints.*``; ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from classifier.base import META_FILE, JsonConfig, Prediction
from classifier.encoder import DIM, ENCODER_NAME, ENCODER_NAMES, E5Encoder
from classifier.knowledge import NEIGHBOUR_FEATURES, NEIGHBOUR_FILE, RETRIEVAL_FEATURES, Knowledge, Neighbours, retrieval_features
from classifier.labels import CREDIBLE, RUMOR, TOPIC_PSEUDOSCIENCE, VERDICT_PSEUDOSCIENCE
from classifier.starter import StarterModel, prepare

__all__ = ["STAGE1_FILE", "STAGE2_FILE", "CascadeConfig", "DefaultModel", "route_mask", "stage1_features", "stage2_features"]

STAGE1_FILE = "stage1.safetensors"
STAGE2_FILE = "stage2.safetensors"


@dataclass
class CascadeConfig(JsonConfig):
    """Routing and explanation parameters (chosen at training time, recorded in meta.json)."""

    route_low: float = 0.25
    route_high: float = 0.75
    route_lexical: float = 0.45
    explain_similarity: float = 0.9
    max_chars: int = 256
    batch_size: int = 32


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def stage1_features(p_style: np.ndarray, p_knowledge: np.ndarray, lex: np.ndarray) -> np.ndarray:
    """[logit of the style model, logit of the knowledge model, best and top-3 lexical debunk similarity]."""
    return np.column_stack([_logit(p_style), _logit(p_knowledge), np.asarray(lex[:, 0], dtype=np.float64), np.asarray(lex[:, 1], dtype=np.float64)])


def stage2_features(p1: np.ndarray, vectors: np.ndarray, retrieval: np.ndarray) -> np.ndarray:
    """[logit(p1), e5 vector (384), retrieval features] per claim."""
    return np.column_stack([_logit(p1), np.asarray(vectors, dtype=np.float64), np.asarray(retrieval, dtype=np.float64)])


class Stage2:
    """Standardize → logistic regression; weights kept as plain arrays (safetensors)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: float):
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, float(intercept)

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, *, C: float = 0.5, seed: int = 0) -> "Stage2":
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        lr = LogisticRegression(C=C, max_iter=3000, random_state=seed)
        lr.fit((X - mean) / scale, y)
        return cls(mean, scale, lr.coef_.ravel(), float(lr.intercept_[0]))

    def proba(self, X: np.ndarray) -> np.ndarray:
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file(
            {"mean": self.mean.astype(np.float64), "scale": self.scale.astype(np.float64),
             "coef": self.coef.astype(np.float64), "intercept": np.array([self.intercept])},
            str(path),
        )

    @classmethod
    def load(cls, path: Path) -> "Stage2":
        from safetensors.numpy import load_file

        t = load_file(str(path))
        return cls(t["mean"], t["scale"], t["coef"], float(t["intercept"][0]))


class DefaultModel:
    """Cascade: linear model everywhere, e5 + retrieval stage where it changes a decision."""

    kind = "default"

    def __init__(
        self,
        linear: StarterModel,
        stage2: Stage2,
        knowledge: Knowledge,
        *,
        cascade: CascadeConfig | None = None,
        style: StarterModel | None = None,
        stage1: "Stage2 | None" = None,
        neighbours: Neighbours | None = None,
        topics: Any = None,
        meta: dict[str, Any] | None = None,
        encoder: E5Encoder | None = None,
    ):
        self.linear = linear  # trained on claims + statements drawn from debunks (knows rumors' content)
        self.style = style  # trained on the labelled posts only (knows how rumors are written)
        self.stage1 = stage1  # combines both with the lexical debunk match
        self.stage2 = stage2
        self.knowledge = knowledge
        self.neighbours = neighbours  # labelled training texts in e5 space (stage-2 features)
        self.cascade = cascade or CascadeConfig()
        self.topics = topics
        self.meta: dict[str, Any] = dict(meta or {})
        self.encoder = encoder or E5Encoder(max_chars=self.cascade.max_chars, batch_size=self.cascade.batch_size)
        # Counters for benchmarks and logs: claims seen, claims routed to stage 2.
        self.seen = 0
        self.routed = 0
        self.stage2_seconds = 0.0

    @property
    def model_version(self) -> str:
        return str(self.meta.get("version", "default-unversioned"))

    # -- scoring -------------------------------------------------------------
    def _stage1(self, texts: Sequence[str]) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray]:
        prepared = prepare(texts)
        feats = self.linear.features(prepared)  # kept for the explanation's terms (predict)
        p1 = self.linear.predict_proba(features=feats)
        lex = self.knowledge.lexical_top(texts)
        if self.style is not None and self.stage1 is not None:
            p_style = self.style.predict_proba(prepared=prepared)
            p1 = self.stage1.proba(stage1_features(p_style, p1, lex))
        return prepared, feats, p1, lex

    def _route(self, p1: np.ndarray, lex: np.ndarray) -> np.ndarray:
        return route_mask(p1, lex[:, 0], self.cascade)

    def _score(self, texts: Sequence[str]) -> dict[str, Any]:
        prepared, feats, p1, lex = self._stage1(texts)
        routed = self._route(p1, lex)
        scores = p1.astype(float).copy()
        dense = np.zeros((len(texts), 4), dtype=np.float32)
        idx = np.flatnonzero(routed)
        if idx.size:
            t = time.perf_counter()
            vecs = self.encoder.encode([texts[int(i)] for i in idx])
            sub_dense = self.knowledge.dense_top(vecs)
            retrieval = retrieval_features(sub_dense, lex[idx])
            if self.neighbours is not None:
                retrieval = np.column_stack([retrieval, self.neighbours.features(vecs)])
            scores[idx] = self.stage2.proba(stage2_features(p1[idx], vecs, retrieval))
            dense[idx] = sub_dense
            self.stage2_seconds += time.perf_counter() - t
        self.seen += len(texts)
        self.routed += int(idx.size)
        return {"prepared": prepared, "features": feats, "p1": p1, "lex": lex, "routed": routed, "scores": np.clip(scores, 0.0, 1.0), "dense": dense}

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=float)
        return self._score(texts)["scores"]

    def predict(self, texts: Sequence[str], *, top_k: int = 5) -> list[Prediction]:
        texts = list(texts)
        if not texts:
            return []
        r = self._score(texts)
        linear_preds = self.linear.predict(texts, top_k=top_k, prepared=r["prepared"], features=r["features"]) if top_k else []
        topics = self.topics.predict(texts) if self.topics is not None else [(None, None)] * len(texts)
        out = []
        version = self.model_version
        for i, s in enumerate(r["scores"]):
            topic, topic_score = topics[i]
            false_label = VERDICT_PSEUDOSCIENCE if topic == TOPIC_PSEUDOSCIENCE else RUMOR
            label = false_label if s >= 0.5 else CREDIBLE
            terms = linear_preds[i].top_terms if linear_preds else []
            explanation: dict[str, Any] = {"kind": "terms", "terms": terms}
            if r["routed"][i] and r["dense"][i, 0] >= self.cascade.explain_similarity:
                explanation = self.knowledge.match(int(r["dense"][i, 3]), float(r["dense"][i, 0])).to_dict()
            elif r["lex"][i, 0] >= max(self.cascade.route_lexical, 0.6):
                explanation = self.knowledge.match(int(r["lex"][i, 2]), float(r["lex"][i, 0])).to_dict()
            out.append(Prediction(
                score=float(s), label=label, top_terms=terms, model_version=version,
                topic=topic, topic_score=None if topic_score is None else float(topic_score),
                explanation=explanation, stage="e5" if r["routed"][i] else "linear",
            ))
        return out

    # -- persistence ---------------------------------------------------------
    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.meta.update(meta or {})
        self.meta.setdefault("version", "default-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"))
        self.linear.save(d / "linear", meta={"version": self.model_version + "/linear"})
        if self.style is not None and self.stage1 is not None:
            self.style.save(d / "style", meta={"version": self.model_version + "/style"})
            self.stage1.save(d / STAGE1_FILE)
        self.stage2.save(d / STAGE2_FILE)
        self.knowledge.save(d)
        if self.neighbours is not None:
            self.neighbours.save(d / NEIGHBOUR_FILE)
        if self.topics is not None:
            source = getattr(self.topics, "source_dir", None)
            if source is not None and Path(source).is_dir() and Path(source).resolve() != (d / "topics").resolve():
                import shutil

                # Byte-identical copy of the topic model's directory (one git blob for both copies).
                shutil.rmtree(d / "topics", ignore_errors=True)
                shutil.copytree(source, d / "topics")
            elif source is None:
                self.topics.save(d / "topics")
        self.meta.update({
            "kind": self.kind,
            "created": self.meta.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cascade": self.cascade.to_dict(),
            "stage2_features": ["logit_p1"] + [f"e5_{i}" for i in range(DIM)] + list(RETRIEVAL_FEATURES)
            + (list(NEIGHBOUR_FEATURES) if self.neighbours is not None else []),
            "encoder": self.meta.get("encoder") or ENCODER_NAME,
            "format": "safetensors + json; linear/ and topics/ are skops with trusted-type lists",
        })
        (d / META_FILE).write_text(json.dumps(self.meta, ensure_ascii=False, indent=2) + "\n", "utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, *, encoder: E5Encoder | None = None,
             embedding_cache: str | Path | None = None, engine: str | None = None) -> "DefaultModel":
        """Load a cascade; ``embedding_cache`` gives its encoder an on-disk cache (ignored when ``encoder`` is given).

        Its e5 stage runs on the engine the model was trained with (meta.json ``encoder``): the stage-2 weights
        fit that engine's vectors. ``engine`` is used only for a model that does not name a known one."""
        d = Path(directory)
        meta = json.loads((d / META_FILE).read_text("utf-8"))
        if meta.get("kind") != cls.kind:
            raise ValueError(f"{d}: not a default model (kind {meta.get('kind')!r})")
        for name in (STAGE2_FILE, "knowledge.json", "knowledge.safetensors"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"model directory {d} lacks {name}")
        linear = StarterModel.load(d / "linear")
        style = stage1 = None
        if (d / "style").is_dir():
            if not (d / STAGE1_FILE).is_file():
                raise FileNotFoundError(f"model directory {d} lacks {STAGE1_FILE}")
            style, stage1 = StarterModel.load(d / "style"), Stage2.load(d / STAGE1_FILE)
        neighbours = Neighbours.load(d / NEIGHBOUR_FILE) if (d / NEIGHBOUR_FILE).is_file() else None
        topics = None
        if (d / "topics").is_dir():
            from classifier.topics import TopicModel

            topics = TopicModel.load(d / "topics")
            topics.source_dir = d / "topics"
        cascade = CascadeConfig.from_dict(meta.get("cascade", {}))
        trained = {name: e for e, name in ENCODER_NAMES.items()}.get(str(meta.get("encoder")))
        if encoder is None:
            encoder = E5Encoder(max_chars=cascade.max_chars, batch_size=cascade.batch_size, cache_path=embedding_cache,
                                engine=trained or engine)
        return cls(linear, Stage2.load(d / STAGE2_FILE), Knowledge.load(d), cascade=cascade, style=style, stage1=stage1,
                   neighbours=neighbours, topics=topics, meta=meta, encoder=encoder)


def route_mask(p1: np.ndarray, lex_top1: np.ndarray, cascade: CascadeConfig) -> np.ndarray:
    """Which claims go to stage 2: stage 1 unsure (p1 within the band) or a close lexical debunk match."""
    return ((p1 >= cascade.route_low) & (p1 <= cascade.route_high)) | (lex_top1 >= cascade.route_lexical)

