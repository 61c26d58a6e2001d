"""The topic model: what a claim is about (classifier.labels.TOPICS), for editors' desks and statistics.

Design
------
* Features as in the starter model (``classifier.starter``): ``prepare`` turns each text into
  [space-joined jieba tokens, normalized characters]; word 1-2 grams and character 1-3 grams are
  hashed (``HashingVectorizer``, no stored vocabulary) and TF-IDF weighted. A multinomial
  ``LogisticRegression`` (``class_weight="balanced"``) gives one probability per topic.
* Persistence as in the starter model: ``model.skops`` + ``trusted_types.json`` + ``meta.json``
  (``"kind": "topics"``). Loading refuses types outside the trusted list or the scientific stack
  and a model file whose SHA-256 differs from meta.json.
* Training labels (docs/taxonomy.md): Weibo21 domains through ``WEIBO21_TOPICS``; whole datasets
  and outlets through ``DATASET_TOPICS`` and the seed file's priors; and **weak labels** from the
  seed keywords of ``classifier/data/topic_seeds.txt`` (``SeedRules``) for debunk titles, CED
  posts and for refining Weibo21 posts into the topics Weibo21's domains lack. Each seed entry also
  joins the training data as a one-line text (``seed_documents``): elderly_scams and
  superstition_pseudoscience have about 20 labelled texts each, and the model learns their
  vocabulary from the seeds.

Run: ``python -m classifier.topics --claims ../shared/data/claims --debunks ../shared/data/debunks --out models/topics``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from classifier.base import JsonConfig
from classifier.labels import (
    DATASET_TOPICS,
    TOPIC_ELDERLY_SCAMS,
    TOPIC_FOOD,
    TOPIC_HEALTH,
    TOPIC_MEDICINE,
    TOPIC_OTHER,
    TOPIC_PSEUDOSCIENCE,
    TOPICS,
    WEIBO21_TOPICS,
    topic_name,
)
from classifier.starter import (
    MODEL_FILE,
    UntrustedModelError,
    hashed_features,
    load_model_dir,
    prepare,
    save_model_dir,
)
from classifier.text import normalize

__all__ = [
    "KIND",
    "FINE_TOPICS",
    "TITLE_MIN_SCORE",
    "CLAIM_MIN_SCORE",
    "SeedEntry",
    "SeedRules",
    "load_seeds",
    "seed_label",
    "TopicConfig",
    "TopicModel",
    "UntrustedModelError",
    "clean_title",
    "seed_documents",
    "build_topic_records",
    "train_topics",
    "write_model_card",
    "main",
]

KIND = "topics"
SEEDS_RESOURCE = "data/topic_seeds.txt"

# Topics that Weibo21's domains do not have: a seed label of one of these refines a Weibo21 post's
# domain topic (a 社会生活 post about 地沟油 becomes food_safety).
FINE_TOPICS: tuple[str, ...] = (TOPIC_HEALTH, TOPIC_FOOD, TOPIC_PSEUDOSCIENCE, TOPIC_ELDERLY_SCAMS)
# Score a seed label needs: a debunk title is short and on one subject, so one strong keyword
# (weight 2) suffices; a post is longer and wanders, so it needs two.
TITLE_MIN_SCORE = 2.0
CLAIM_MIN_SCORE = 4.0
PRIOR_BONUS = 0.5
# Evaluation (b) also reports macro-F1 over the topics with at least this many test items.
MIN_SUPPORT = 30


# ---------------------------------------------------------------------------
# Seed rules (weak labels)
# ---------------------------------------------------------------------------
_ASCII_WORD = re.compile(r"^[0-9a-z.]+$")


@dataclass(frozen=True)
class SeedEntry:
    """One entry of the seed file: all ``parts`` must occur; adds ``weight`` to its topic."""

    parts: tuple[str, ...]
    weight: float = 1.0

    @property
    def text(self) -> str:
        return "+".join(self.parts) + (f"*{self.weight:g}" if self.weight != 1 else "")


def _occurrences(text: str, word: str) -> list[tuple[int, int]]:
    """Spans of ``word`` in ``text``; ASCII words only where not inside a longer ASCII word."""
    spans = []
    start = text.find(word)
    ascii_word = bool(_ASCII_WORD.match(word))
    while start != -1:
        end = start + len(word)
        if not ascii_word or (
            (start == 0 or not text[start - 1].isascii() or not text[start - 1].isalnum())
            and (end == len(text) or not text[end].isascii() or not text[end].isalnum())
        ):
            spans.append((start, end))
        start = text.find(word, start + 1)
    return spans


class SeedRules:
    """Keyword rules that give a text a weak topic label (format: classifier/data/topic_seeds.txt).

    ``topics`` keeps the file's section order, which is the tie-break priority.
    """

    def __init__(
        self,
        topics: dict[str, list[SeedEntry]],
        priors: dict[str, str] | None = None,
        ignore: Sequence[str] = (),
    ):
        for code in topics:
            topic_name(code)  # raises for an unknown topic
        self.topics = topics
        self.priors: dict[str, str] = dict(DATASET_TOPICS)
        for outlet, code in (priors or {}).items():
            topic_name(code)
            self.priors[outlet] = code
        self._order = {code: i for i, code in enumerate(topics)}
        self.ignore = tuple(ignore)
        singles: dict[str, tuple[str | None, SeedEntry]] = {}
        for word in self.ignore:
            singles.setdefault(word, (None, SeedEntry((word,), 0.0)))
        for code, entries in topics.items():
            for e in entries:
                if len(e.parts) == 1:
                    singles.setdefault(e.parts[0], (code, e))
        # Longest first: a shorter keyword inside a longer matched one is not counted again.
        self._singles = sorted(singles.items(), key=lambda kv: -len(kv[0]))

    @classmethod
    def parse(cls, text: str) -> "SeedRules":
        topics: dict[str, list[SeedEntry]] = {}
        priors: dict[str, str] = {}
        ignore: list[str] = []
        section: str | None = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"\[([a-z_]+)\]", line)
            if m:
                section = m.group(1)
                if section not in ("priors", "ignore"):
                    if section not in TOPICS:
                        raise ValueError(f"seed file line {lineno}: unknown topic {section!r}")
                    topics.setdefault(section, [])
                continue
            if section is None:
                raise ValueError(f"seed file line {lineno}: entry before any [section]")
            if section == "priors":
                outlet, sep, code = line.partition("=")
                if not sep or code.strip() not in TOPICS:
                    raise ValueError(f"seed file line {lineno}: expected 'outlet = topic_code'")
                priors[outlet.strip()] = code.strip()
                continue
            if section == "ignore":
                ignore.extend(w for w in (normalize(t) for t in line.split()) if w)
                continue
            for token in line.split():
                word, star, weight = token.partition("*")
                try:
                    w = float(weight) if star else 1.0
                except ValueError:
                    raise ValueError(f"seed file line {lineno}: bad weight in {token!r}") from None
                parts = tuple(normalize(p) for p in word.split("+") if p)
                if not parts or not all(parts) or w <= 0:
                    raise ValueError(f"seed file line {lineno}: bad entry {token!r}")
                topics[section].append(SeedEntry(parts, w))
        return cls(topics, priors, ignore)

    def matches(self, text: str, *, normalized: bool = False) -> dict[str, list[SeedEntry]]:
        """Topic -> the entries that occur in ``text`` (single keywords inside longer matches excluded)."""
        norm = text if normalized else normalize(text or "")
        out: dict[str, list[SeedEntry]] = {}
        if not norm:
            return out
        taken: list[tuple[int, int]] = []
        for word, (code, entry) in self._singles:
            if word not in norm:
                continue
            found = False
            for s, e in _occurrences(norm, word):
                if any(ts <= s and e <= te for ts, te in taken):
                    continue
                taken.append((s, e))
                found = True
            if found and code is not None:
                out.setdefault(code, []).append(entry)
        for code, entries in self.topics.items():
            for entry in entries:
                if len(entry.parts) > 1 and all(p in norm for p in entry.parts):
                    out.setdefault(code, []).append(entry)
        return out

    def scores(self, text: str, *, prior: str | None = None, normalized: bool = False) -> dict[str, float]:
        """Topic -> summed weight of its matching entries (+ PRIOR_BONUS for the outlet's prior topic)."""
        out = {code: float(sum(e.weight for e in entries)) for code, entries in self.matches(text, normalized=normalized).items()}
        code = self.priors.get(prior) if prior else None
        if code:
            out[code] = out.get(code, 0.0) + PRIOR_BONUS
        return out

    def label(
        self,
        text: str,
        *,
        prior: str | None = None,
        min_score: float = TITLE_MIN_SCORE,
        fallback: bool = True,
    ) -> str | None:
        """Weak topic label of ``text``: the best-scoring topic when its score reaches ``min_score``.

        Ties go to the topic listed first in the seed file. ``prior`` names an outlet (file stem):
        its prior topic gets PRIOR_BONUS and, with ``fallback``, is the label when no topic reaches
        ``min_score``. None when nothing applies.
        """
        scores = self.scores(text, prior=prior)
        best = max(scores.items(), key=lambda kv: (kv[1], -self._order.get(kv[0], 99)), default=None)
        if best is not None and best[1] >= min_score:
            return best[0]
        return self.priors.get(prior) if (prior and fallback) else None


def load_seeds(path: str | Path | None = None) -> SeedRules:
    """Seed rules from ``path``, by default the packaged classifier/data/topic_seeds.txt."""
    if path is None:
        text = resources.files("classifier").joinpath(SEEDS_RESOURCE).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return SeedRules.parse(text)


_DEFAULT_RULES: SeedRules | None = None


def seed_label(
    text: str,
    *,
    prior: str | None = None,
    min_score: float = TITLE_MIN_SCORE,
    rules: SeedRules | None = None,
) -> str | None:
    """Weak topic label of one text by the packaged seed rules (None when no rule fires)."""
    global _DEFAULT_RULES
    if rules is None:
        if _DEFAULT_RULES is None:
            _DEFAULT_RULES = load_seeds()
        rules = _DEFAULT_RULES
    return rules.label(text, prior=prior, min_score=min_score)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicConfig(JsonConfig):
    """Hyper-parameters of the topic model (recorded in meta.json)."""

    word_ngram: tuple[int, int] = (1, 2)
    char_ngram: tuple[int, int] = (1, 3)
    word_hash_bits: int = 17
    char_hash_bits: int = 17
    sublinear_tf: bool = True
    # C: 1, 4 and 16 gave the same figures within 0.01 on evaluations (a) and (b); 4 is the middle.
    C: float = 4.0
    max_iter: int = 300
    # Coefficients and idf stored as float32: half the file; the features are float32 already, and on
    # 3,000 training texts the probabilities were identical to those of the float64 model.
    float32: bool = True
    seed: int = 0


def _build_pipeline(cfg: TopicConfig) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    features = hashed_features(cfg)
    # lbfgs fits the multinomial (softmax) model for more than two classes.
    clf = LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter, solver="lbfgs",
                             random_state=cfg.seed)
    return Pipeline([("features", features), ("clf", clf)])


def _shrink(pipeline: Any) -> None:
    """Store the coefficients and idf weights as float32 (the file is half as large)."""
    clf = pipeline.named_steps["clf"]
    clf.coef_ = np.ascontiguousarray(clf.coef_, dtype=np.float32)
    clf.intercept_ = np.asarray(clf.intercept_, dtype=np.float32)
    for _, pipe, _ in pipeline.named_steps["features"].transformers_:
        if hasattr(pipe, "named_steps"):
            tfidf = pipe.named_steps["tfidf"]
            tfidf.idf_ = np.asarray(tfidf.idf_, dtype=np.float32)


class TopicModel:
    """Hashed word + character TF-IDF -> multinomial logistic regression over the topic codes."""

    def __init__(self, config: TopicConfig | None = None, *, pipeline: Any = None, meta: dict[str, Any] | None = None):
        # The directory this model was loaded from, if any (a cascade copies it byte for byte).
        self.source_dir: Path | None = None
        self.config = config or TopicConfig()
        self.pipeline = pipeline
        self.meta: dict[str, Any] = dict(meta or {})

    # -- training ---------------------------------------------------------
    def fit(self, texts: Sequence[str], topics: Sequence[str], *, prepared: np.ndarray | None = None) -> "TopicModel":
        """Fit on texts with topic codes (classifier.labels.TOPICS); at least two topics must occur."""
        y = np.asarray([str(t) for t in topics], dtype=object)
        unknown = sorted(set(y) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topic codes {unknown}; expected codes of classifier.labels.TOPICS")
        if len(set(y)) < 2:
            raise ValueError("the training data needs at least two topics")
        X = prepare(texts) if prepared is None else prepared
        if len(X) != len(y):
            raise ValueError(f"{len(X)} texts but {len(y)} topics")
        from threadpoolctl import threadpool_limits

        self.pipeline = _build_pipeline(self.config)
        # lbfgs on sparse features spends its time in BLAS vector operations, which threads do not speed
        # up: on a busy machine several BLAS threads made the fit 2x (large data) to 25x (small) slower.
        # One thread is also reproducible.
        with threadpool_limits(limits=1):
            self.pipeline.fit(X, y)
        if self.config.float32:
            _shrink(self.pipeline)
        counts = {str(c): int(n) for c, n in zip(*np.unique(y, return_counts=True))}
        self.meta["counts"] = counts
        self.meta.setdefault("version", "topics-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"))
        return self

    # -- inference --------------------------------------------------------
    @property
    def model_version(self) -> str:
        return str(self.meta.get("version", "topics-unversioned"))

    @property
    def classes(self) -> list[str]:
        """Topic codes in the column order of ``predict_proba``."""
        self._check_fitted()
        return [str(c) for c in self.pipeline.classes_]

    def _check_fitted(self) -> None:
        if self.pipeline is None:
            raise RuntimeError("the topic model is not trained or loaded")

    def predict_proba(self, texts: Sequence[str] | None = None, *, prepared: np.ndarray | None = None) -> np.ndarray:
        """Topic probabilities, shape (n, len(classes)); columns in the order of ``classes``."""
        self._check_fitted()
        X = prepare(list(texts) if texts is not None else []) if prepared is None else prepared
        if len(X) == 0:
            return np.zeros((0, len(self.pipeline.classes_)), dtype=float)
        return np.asarray(self.pipeline.predict_proba(X), dtype=float)

    def predict(self, texts: Sequence[str] | None = None, *, prepared: np.ndarray | None = None) -> list[tuple[str, float]]:
        """(topic code, probability) of the most probable topic of each text."""
        proba = self.predict_proba(texts, prepared=prepared)
        classes = self.classes
        best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        return [(classes[int(j)], float(proba[i, j])) for i, j in enumerate(best)]

    # -- persistence ------------------------------------------------------
    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write model.skops, trusted_types.json and meta.json (``"kind": "topics"``) into ``directory``."""
        self._check_fitted()
        self.meta.update(meta or {})
        self.meta["kind"] = KIND
        self.meta["classes"] = self.classes
        self.meta["class_names"] = {c: TOPICS[c] for c in self.classes}
        self.meta["config"] = self.config.to_dict()
        return save_model_dir(directory, self.pipeline, self.meta, version_prefix="topics")

    @classmethod
    def load(cls, directory: str | Path) -> "TopicModel":
        """Load a saved topic model; raise UntrustedModelError on unexpected types or a changed model file."""
        pipeline, meta = load_model_dir(directory, kind=KIND, require_sha256=True)
        return cls(TopicConfig.from_dict(meta.get("config", {})), pipeline=pipeline, meta=meta)


# ---------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------
# Outlet markers and roundup furniture in debunk titles: they name the outlet, not the topic.
_TITLE_NOISE = re.compile(
    r"#[^#]{0,20}辟谣#|^\s*捉谣记\s*[|｜]|[|｜]\s*百度辟谣\s*$|^\s*一周辟谣\s*[|｜]|#今日辟谣#|"
    r"【?熊猫斩谣[^】]*】?|[（(]\d{4}年\d{1,2}月\d{1,2}日[)）]"
)
# Field labels at the start of some outlets' texts (百度辟谣, 果壳, 较真).
_LEAD_LABELS = re.compile(r"流传内容\s*[:：]|鉴定结果\s*[:：]\s*\S{0,4}|要点\s*[:：]|(?:流言|传言|真相)\s*[:：]")
LEAD_CHARS = 300
# Roundups ("今日辟谣（2023年12月29日）", "十大谣言") list unrelated rumors: no one topic, so not used.
_ROUNDUP = re.compile(r"今日辟谣|熊猫斩谣|辟谣标签|流言榜|谣言榜|十大谣言|一周辟谣|谣言治理公告|辟谣榜|谣言盘点|典型案例")


def clean_title(title: str) -> str:
    """A debunk title without outlet markers (#微博辟谣#, 捉谣记|, ｜百度辟谣)."""
    return " ".join(_TITLE_NOISE.sub(" ", title or "").split())


def _debunk_text(title: str, text: str) -> str:
    from crawlers.extract import clean_text

    title = clean_title(title)
    body = clean_text(text or "")
    flat = " ".join(body.split())
    raw_title = " ".join((title or "").split())
    if raw_title and flat.startswith(raw_title):
        flat = flat[len(raw_title):]
    lead = " ".join(_LEAD_LABELS.sub(" ", flat).split())[:LEAD_CHARS]
    return f"{title}。{lead}" if lead else title


def _read_debunks(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [row for row in csv.DictReader(fh)]


def seed_documents(rules: SeedRules | None = None) -> list[dict[str, Any]]:
    """One short training record per seed entry (its parts joined by spaces), labelled with its topic.

    They teach the model the seed vocabulary directly, which matters for the topics with few labelled
    texts (elderly_scams, superstition_pseudoscience). Training only: never part of a test set.
    """
    rules = rules or load_seeds()
    return [
        {"id": f"seed:{code}:{i}", "text": " ".join(e.parts), "label": code, "dataset": "seeds", "source": "seed_keyword"}
        for code, entries in rules.topics.items()
        for i, e in enumerate(entries)
    ]


def build_topic_records(
    claims_dir: str | Path,
    debunks_dir: str | Path,
    *,
    rules: SeedRules | None = None,
    stats: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Labelled records ``{id, text, label (topic code), dataset, source}``, in de-duplication order.

    ``source`` says how the label was derived: ``domain`` (Weibo21 category through
    WEIBO21_TOPICS), ``dataset`` (DATASET_TOPICS), ``seed`` (seed keywords of a claim or of a
    debunk title), ``seed_lead`` (seed keywords of a debunk's title + lead, the claims' threshold),
    ``prior`` (the outlet's prior topic; no keyword reached a threshold). ``weibo21_val`` records keep their
    domain topic in ``domain_topic`` for the evaluation. ``stats`` receives per-source counts.
    """
    from classifier.train import DATA_FILES, load_claims

    rules = rules or load_seeds()
    claims_dir, debunks_dir = Path(claims_dir), Path(debunks_dir)
    out: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    unlabeled: dict[str, int] = {}

    def add(rec: dict[str, Any]) -> None:
        out.append(rec)
        c = counts.setdefault(rec["dataset"], {})
        key = f"{rec['label']}/{rec['source']}"
        c[key] = c.get(key, 0) + 1

    for name in ("weibo21_train", "weibo21_val", "checked", "ced"):
        path = claims_dir / DATA_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(f"missing data file: {path}")
        for r in load_claims([path]):
            rec = {"id": r["id"], "text": r["text"], "dataset": r["dataset"]}
            if r["dataset"].startswith("weibo21"):
                domain = WEIBO21_TOPICS.get(str(r.get("category") or "无法确定"), TOPIC_OTHER)
                weak = rules.label(r["text"], min_score=CLAIM_MIN_SCORE)
                if weak in FINE_TOPICS and weak != domain:
                    rec.update(label=weak, source="seed")
                else:
                    rec.update(label=domain, source="domain")
                rec["domain_topic"] = domain
                rec["category"] = r.get("category")
            elif r["dataset"] in DATASET_TOPICS:
                rec.update(label=DATASET_TOPICS[r["dataset"]], source="dataset")
            else:
                weak = rules.label(r["text"], min_score=CLAIM_MIN_SCORE)
                if weak is None:
                    unlabeled[r["dataset"]] = unlabeled.get(r["dataset"], 0) + 1
                    continue
                rec.update(label=weak, source="seed")
            add(rec)

    roundups = 0
    paths = sorted(debunks_dir.glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no debunk CSV files in {debunks_dir}")
    for path in paths:
        outlet = path.stem
        for i, row in enumerate(_read_debunks(path)):
            title = (row.get("title") or "").strip()
            if not title:
                continue
            if _ROUNDUP.search(title) or len(clean_title(title)) < 4:
                roundups += 1
                continue
            text = _debunk_text(title, row.get("text") or "")
            # The title's keywords; else those of title + lead with the claims' threshold; else the prior.
            source = "seed"
            weak = rules.label(clean_title(title), prior=outlet, min_score=TITLE_MIN_SCORE, fallback=False)
            if weak is None:
                weak = rules.label(text, prior=outlet, min_score=CLAIM_MIN_SCORE, fallback=False)
                source = "seed_lead"
            if weak is None and outlet in rules.priors:
                weak, source = rules.priors[outlet], "prior"
            if weak is None:
                unlabeled[outlet] = unlabeled.get(outlet, 0) + 1
                continue
            add({"id": f"{outlet}:{i}", "text": text, "label": weak, "dataset": "debunk:" + outlet, "source": source})
    if stats is not None:
        stats["labelled"] = counts
        stats["unlabeled"] = unlabeled
        stats["roundups_skipped"] = roundups
    return out


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------
def _progress(iterable: Iterable[Any], total: int, description: str, show: bool) -> Iterable[Any]:
    if not show:
        return iterable
    from rich.progress import track

    return track(iterable, total=total, description=description, transient=True)


def _prepare_all(records: Sequence[dict[str, Any]], progress: bool, chunk: int = 500) -> np.ndarray:
    parts = []
    starts = range(0, len(records), chunk)
    for start in _progress(starts, len(starts), "tokenizing", progress):
        parts.append(prepare([r["text"] for r in records[start : start + chunk]]))
    return np.concatenate(parts) if parts else np.empty((0, 2), dtype=object)


def _stratified_split(records: Sequence[dict[str, Any]], test_size: float, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r["label"], []).append(i)
    train, test = [], []
    for key in sorted(groups):
        g = list(groups[key])
        rng.shuffle(g)
        n = int(round(len(g) * test_size))
        test += g[:n]
        train += g[n:]
    return sorted(train), sorted(test)


def topic_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Per-topic precision/recall/F1/support, macro-F1 over ``labels`` and accuracy."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_topic": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(labels)
        },
    }


def _format_metrics(title: str, m: dict[str, Any]) -> str:
    lines = [f"{title}: n={m['n']} macro-F1={m['macro_f1']:.3f} accuracy={m['accuracy']:.3f}"]
    for c, v in m["per_topic"].items():
        lines.append(f"  {c:<28} P={v['precision']:.3f} R={v['recall']:.3f} F1={v['f1']:.3f} n={v['support']}")
    return "\n".join(lines)


def _speed(model: TopicModel, texts: Sequence[str], repeat: int = 3) -> dict[str, float]:
    """Texts per second of ``predict`` (tokenization included, one process) on ``texts``: best of ``repeat``."""
    texts = list(texts)
    model.predict(texts[:50])  # load jieba and the dictionaries first
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        model.predict(texts)
        best = min(best, time.perf_counter() - t)
    return {"texts_per_s": round(len(texts) / best), "n": len(texts),
            "mean_chars": round(float(np.mean([len(x) for x in texts])), 1) if texts else 0.0}


DEBUNK_TERMS = (
    "Debunk articles of 12 Chinese outlets (GitHub hush-cd/HRDE, reference_date/, commit 40c305d; repository "
    "marked Apache-2.0): the texts are the publishers' copyright; the model uses titles and the first "
    f"{LEAD_CHARS} characters, and ships no text"
)


def train_topics(
    claims_dir: str | Path,
    debunks_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    progress: bool = True,
    config: TopicConfig | None = None,
    holdout_size: float = 0.2,
    log: Callable[[str], Any] | None = print,
    command: str | None = None,
) -> dict[str, Any]:
    """Build the topic data, measure on held-out data, refit on everything and save; return the report.

    1. ``build_topic_records`` (labels: docs/taxonomy.md), de-duplicated with ``classifier.train.dedup``
       (exact + MinHash near duplicates; items whose duplicates carry another topic are dropped).
    2. (a) train on all but Weibo21 val, predict de-duplicated Weibo21 val (near-duplicates of
       training items removed): accuracy against its domains mapped through WEIBO21_TOPICS.
    3. (b) stratified 20% hold-out over all records: per-topic precision/recall/F1 and macro-F1.
    Every fit also gets the ``seed_documents`` (one short text per seed entry; never tested on).
    4. Refit on all records; write the model, MODEL_CARD.md and TRAINING_LOG.txt into ``out_dir``.
    """
    from classifier.evaluate import DEFAULT_THRESHOLD, remove_near_duplicates
    from classifier.train import DATASET_TERMS, dedup

    t0 = time.time()
    out_dir = Path(out_dir)
    config = config or TopicConfig(seed=seed)
    if config.seed != seed:
        config = TopicConfig.from_dict({**config.to_dict(), "seed": seed})
    lines: list[str] = []

    def say(msg: str = "") -> None:
        lines.append(msg)
        if log:
            log(msg)

    created = datetime.now(timezone.utc)
    say(f"piyao topic model training, {created.isoformat(timespec='seconds')}")
    if command:
        say(f"command: {command}")
    say(f"seed={seed} config={json.dumps(config.to_dict())}")

    bstats: dict[str, Any] = {}
    records = build_topic_records(claims_dir, debunks_dir, stats=bstats)
    say(f"built {len(records)} labelled records; per dataset label/source: "
        f"{json.dumps(bstats['labelled'], ensure_ascii=False)}")
    say(f"left unlabelled (no seed rule fired): {json.dumps(bstats['unlabeled'], ensure_ascii=False)}")

    dstats: dict[str, int] = {}
    kept, removed = dedup(records, threshold=DEFAULT_THRESHOLD, stats=dstats, progress=progress)
    say(f"de-duplication: removed {removed} of {len(records)} ({dstats['exact']} exact, {dstats['near']} near, "
        f"{dstats['conflicts']} kept items dropped for conflicting topics); kept {len(kept)}")
    counts = _count(kept, "label")
    say(f"topics after de-duplication: {json.dumps(counts)}")
    say(f"label sources after de-duplication: {json.dumps(_count(kept, 'source'))}")

    seeds = seed_documents()
    say(f"seed-keyword documents added to every training set: {len(seeds)} ({json.dumps(_count(seeds, 'label'))})")
    X = _prepare_all(kept + seeds, progress)
    index = {id(r): i for i, r in enumerate(kept + seeds)}

    def rows(recs: Sequence[dict[str, Any]]) -> np.ndarray:
        return X[[index[id(r)] for r in recs]]

    def fit(recs: Sequence[dict[str, Any]]) -> TopicModel:
        recs = list(recs) + seeds
        return TopicModel(config).fit([r["text"] for r in recs], [r["label"] for r in recs], prepared=rows(recs))

    # (a) Weibo21 val, domains mapped through WEIBO21_TOPICS.
    val = [r for r in kept if r["dataset"] == "weibo21_val"]
    train_a = [r for r in kept if r["dataset"] != "weibo21_val"]
    val, n_near = remove_near_duplicates(val, train_a, threshold=DEFAULT_THRESHOLD, progress=progress)
    t = time.time()
    model_a = fit(train_a)
    fit_a = time.time() - t
    pred_a = [c for c, _ in model_a.predict(prepared=rows(val))]
    truth_a = [r["domain_topic"] for r in val]
    strict = float(np.mean([p == y for p, y in zip(pred_a, truth_a)])) if val else 0.0
    refined = float(np.mean([p == r["label"] for p, r in zip(pred_a, val)])) if val else 0.0
    per_domain: dict[str, dict[str, Any]] = {}
    for r, p in zip(val, pred_a):
        d = per_domain.setdefault(str(r.get("category")), {"n": 0, "correct": 0, "predicted": {}})
        d["n"] += 1
        d["correct"] += int(p == r["domain_topic"])
        d["predicted"][p] = d["predicted"].get(p, 0) + 1
    for d in per_domain.values():
        d["accuracy"] = d["correct"] / d["n"]
    coarse = sorted(set(truth_a))
    m_a: dict[str, Any] = {
        "description": ("train on all de-duplicated records except Weibo21 val; test on de-duplicated Weibo21 val "
                        "minus near-duplicates of training items; truth = domain mapped through WEIBO21_TOPICS"),
        "n": len(val),
        "train_n": len(train_a),
        "test_removed_near_duplicates_of_train": n_near,
        "accuracy_domain": strict,
        "accuracy_refined_labels": refined,
        "domain_topic_metrics": topic_metrics(truth_a, pred_a, coarse),
        "per_domain": dict(sorted(per_domain.items(), key=lambda kv: -kv[1]["n"])),
        "fit_seconds": round(fit_a, 1),
    }
    say(f"(a) Weibo21 val ({len(val)} de-duplicated posts; {n_near} near-duplicates of training items removed), "
        f"trained on {len(train_a)} records in {fit_a:.0f}s: accuracy vs mapped domain {strict:.3f}; "
        f"vs the training-style labels (domain refined by seed rules) {refined:.3f}")
    say(_format_metrics("(a) per mapped-domain topic", m_a["domain_topic_metrics"]))
    for cat, d in m_a["per_domain"].items():
        say(f"  domain {cat}: n={d['n']} accuracy={d['accuracy']:.3f} predicted={json.dumps(d['predicted'])}")

    # (b) Stratified random hold-out over everything.
    tr_idx, te_idx = _stratified_split(kept, holdout_size, seed)
    train_b = [kept[i] for i in tr_idx]
    test_b, n_near_b = remove_near_duplicates([kept[i] for i in te_idx], train_b, threshold=DEFAULT_THRESHOLD,
                                              progress=progress)
    model_b = fit(train_b)
    pred_b = [c for c, _ in model_b.predict(prepared=rows(test_b))]
    topics = [c for c in TOPICS if c in counts]
    m_b = topic_metrics([r["label"] for r in test_b], pred_b, topics)
    m_b["description"] = (f"stratified (by topic) random {int(holdout_size * 100)}% hold-out of all de-duplicated "
                          f"records, seed {seed}; test items near-duplicating a training item removed")
    m_b["train_n"] = len(train_b)
    m_b["test_removed_near_duplicates_of_train"] = n_near_b
    # Topics with a handful of test items swing macro-F1 by a whole F1 point each: also report without them.
    supported = [c for c, v in m_b["per_topic"].items() if v["support"] >= MIN_SUPPORT]
    m_b["macro_f1_topics_with_support"] = {
        "min_support": MIN_SUPPORT,
        "topics": supported,
        "macro_f1": float(np.mean([m_b["per_topic"][c]["f1"] for c in supported])) if supported else 0.0,
    }
    m_b["by_label_source"] = {}
    for name, sources in (("gold (Weibo21 domain, CHECKED)", {"domain", "dataset"}), ("weak (seed, seed_lead, prior)", {"seed", "seed_lead", "prior"})):
        idx = [i for i, r in enumerate(test_b) if r["source"] in sources]
        present = [c for c in topics if any(test_b[i]["label"] == c for i in idx)]
        m_b["by_label_source"][name] = topic_metrics([test_b[i]["label"] for i in idx], [pred_b[i] for i in idx], present)
    say(_format_metrics(f"(b) random hold-out ({n_near_b} near-duplicates of training removed)", m_b))
    say(f"  (b) macro-F1 over the {len(supported)} topics with >= {MIN_SUPPORT} test items: "
        f"{m_b['macro_f1_topics_with_support']['macro_f1']:.3f}")
    for name, mm in m_b["by_label_source"].items():
        say(f"  (b) {name} labels: n={mm['n']} macro-F1={mm['macro_f1']:.3f} accuracy={mm['accuracy']:.3f}")

    # Final model on everything.
    t = time.time()
    final = fit(kept)
    say(f"final model: {len(kept)} records + {len(seeds)} seed-keyword documents, fit in {time.time() - t:.0f}s")
    speed = {
        "short": _speed(final, [r["text"][:30] for r in val]),
        "posts": _speed(final, [r["text"] for r in val]),
    }
    say(f"speed of predict (tokenization included, one process) on Weibo21 val texts cut to 30 characters "
        f"and whole: {json.dumps(speed)}")

    version = f"topics-{created.strftime('%Y%m%d')}-s{seed}"
    terms = dict(DATASET_TERMS)
    terms["debunks"] = DEBUNK_TERMS
    meta = {
        "version": version,
        "created": created.isoformat(timespec="seconds"),
        "seed": seed,
        "training_data": {
            "records_labelled": bstats["labelled"],
            "unlabelled": bstats["unlabeled"],
            "dedup": {**dstats, "threshold": DEFAULT_THRESHOLD},
            "topics_after_dedup": counts,
            "label_sources_after_dedup": _count(kept, "source"),
            "seed_keyword_documents": _count(seeds, "label"),
            "terms": terms,
            "seed_file": "classifier/data/topic_seeds.txt",
            "seed_file_sha256": hashlib.sha256(
                resources.files("classifier").joinpath(SEEDS_RESOURCE).read_bytes()).hexdigest(),
        },
        "metrics": {"a_weibo21_val_domains": m_a, "b_random_holdout": m_b},
        "speed": speed,
    }
    final.save(out_dir, meta=meta)
    model_bytes = (out_dir / MODEL_FILE).stat().st_size
    say(f"saved {out_dir} (model.skops {model_bytes / 1e6:.1f} MB) in {time.time() - t0:.0f}s total")
    report: dict[str, Any] = {**meta, "kind": KIND, "classes": final.classes, "model_bytes": model_bytes,
                              "config": config.to_dict(),
                              "command": command, "out_dir": str(out_dir)}
    (out_dir / "TRAINING_LOG.txt").write_text("\n".join(lines) + "\n", "utf-8")
    write_model_card(out_dir, report, lines)
    return report


def _count(records: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[str(r[key])] = out.get(str(r[key]), 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def write_model_card(out_dir: str | Path, report: dict[str, Any], log_lines: Sequence[str] = ()) -> Path:
    """MODEL_CARD.md: data and terms, how labels are derived, metrics, limitations."""
    out_dir = Path(out_dir)
    ma = report["metrics"]["a_weibo21_val_domains"]
    mb = report["metrics"]["b_random_holdout"]
    td = report["training_data"]
    cfg = report.get("config", {})
    rows_b = "\n".join(
        f"| {c} {TOPICS[c]} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
        for c, v in mb["per_topic"].items()
    )
    rows_src = "\n".join(
        f"| {name} | {m['n']} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} |" for name, m in mb["by_label_source"].items()
    )
    rows_dom = "\n".join(
        f"| {cat} | {d['n']} | {d['accuracy']:.3f} | "
        + ", ".join(f"{k} {v}" for k, v in sorted(d["predicted"].items(), key=lambda kv: -kv[1])) + " |"
        for cat, d in ma["per_domain"].items()
    )
    terms = "\n".join(f"- {t}" for t in td["terms"].values())
    counts = ", ".join(f"{c} {n}" for c, n in td["topics_after_dedup"].items())
    sources = ", ".join(f"{c} {n}" for c, n in td["label_sources_after_dedup"].items())
    d = td["dedup"]
    sp = report.get("speed", {})
    short, posts = sp.get("short", {}), sp.get("posts", {})
    n_seed_docs = sum(td.get("seed_keyword_documents", {}).values())
    text = f"""# Model card: piyao topic model

- **Version:** `{report['version']}`
- **Created:** {report['created']}
- **Files:** `{MODEL_FILE}` (skops, {report.get('model_bytes', 0) / 1e6:.1f} MB), `trusted_types.json`, `meta.json`
  (`"kind": "topics"`), `TRAINING_LOG.txt`
- **Task:** the topic of a Chinese claim or debunk, one of {len(report['classes'])}:
  {', '.join(f'`{c}` {TOPICS[c]}' for c in report['classes'])}. `predict` gives (topic, probability).

## Model
`classifier.topics.TopicModel`: jieba word 1–2 grams and character 1–3 grams (`classifier.starter.prepare`),
hashed into 2^{cfg.get('word_hash_bits')} and 2^{cfg.get('char_hash_bits')} columns with sublinear TF-IDF (no stored vocabulary) →
multinomial logistic regression (C={cfg.get('C')}, `class_weight="balanced"`), coefficients and idf stored as
float32. Speed of `predict`, one process, tokenization included, measured on this machine at training time:
{short.get('texts_per_s')} texts/s on {short.get('n')} Weibo21 val posts cut to 30 characters,
{posts.get('texts_per_s')} texts/s on the whole posts (mean {posts.get('mean_chars')} characters).

## Training data and terms
{terms}

Weibo21 and CHECKED are licensed for research only; CED states no license; the debunk texts are their
publishers' copyright. **This model inherits those terms: research and assisting human editors only.**

Labels (docs/taxonomy.md has the details):
- Weibo21 posts: the post's domain through `WEIBO21_TOPICS` (`domain`), except where the seed keywords give one
  of the topics Weibo21 lacks ({', '.join(FINE_TOPICS)}) with score ≥ {CLAIM_MIN_SCORE:g} (`seed`).
- CHECKED: `disease_medicine` for every post (`dataset`, `DATASET_TOPICS`).
- CED: the seed label where one reaches {CLAIM_MIN_SCORE:g} (`seed`); other CED posts are not used.
- Debunk articles (title + first {LEAD_CHARS} cleaned characters): the seed label of the title (score ≥
  {TITLE_MIN_SCORE:g}; `seed`), else that of title + lead (score ≥ {CLAIM_MIN_SCORE:g}; `seed_lead`), else the outlet's prior topic (`prior`: 中国食品辟谣网, 科信食品与健康信息交流中心 →
  food_safety); titles with neither are not used. Roundups (今日辟谣, 流言榜, 典型案例 …) are skipped.
- Seed-keyword documents: each of the {n_seed_docs} entries of the seed file, as a one-line text labelled
  with its topic, joins every training set (never a test set).

`seed`, `seed_lead`, `prior` and seed-keyword labels are **weak labels**: keyword rules in `classifier/data/topic_seeds.txt`, not
human annotation. De-duplication (exact + MinHash Jaccard ≥ {d['threshold']}, earlier files win, items whose
duplicates carry another topic dropped) removed {d['input'] - d['kept']} of {d['input']}; kept {d['kept']}.
Topics: {counts}. Label sources: {sources}.

## Held-out evaluation
**(a) Weibo21 val domains.** {ma['description']}. n = {ma['n']} (training {ma['train_n']}).
Accuracy against the mapped domain: **{ma['accuracy_domain']:.3f}**; against the training-style labels
(domain, refined by the seed rules): {ma['accuracy_refined_labels']:.3f}. A prediction of a topic that Weibo21
lacks (food_safety for a 社会生活 post on 地沟油) counts as an error in the first figure.
Macro-F1 over the mapped topics: {ma['domain_topic_metrics']['macro_f1']:.3f}.

| Weibo21 domain | n | accuracy | predicted topics |
|---|---|---|---|
{rows_dom}

**(b) Random hold-out.** {mb['description']}. n = {mb['n']} (training {mb['train_n']}).
Macro-F1 **{mb['macro_f1']:.3f}** over all {len(mb['per_topic'])} topics, accuracy {mb['accuracy']:.3f}; macro-F1 over the
{len(mb['macro_f1_topics_with_support']['topics'])} topics with ≥ {mb['macro_f1_topics_with_support']['min_support']} test items:
{mb['macro_f1_topics_with_support']['macro_f1']:.3f} (elderly_scams and superstition_pseudoscience have a handful of test items each,
so their F1 moves by large steps).

| topic | precision | recall | F1 | support |
|---|---|---|---|---|
{rows_b}

| test labels | n | macro-F1 | accuracy |
|---|---|---|---|
{rows_src}

The figures on weak labels measure agreement with the keyword rules, which the model can learn back: they are
optimistic for the topics that have only weak labels (health_wellness, food_safety, superstition_pseudoscience,
elderly_scams) and say little about how often those rules are right.

## Limitations
- Weak labels: keyword rules see what a text mentions, not what it is about; a post on a food scandal at a
  school may be labelled food_safety or other. Topics with few examples (elderly_scams,
  superstition_pseudoscience) are the least reliable.
- `other` is mostly Weibo21 news domains (社会生活, 文体娱乐, 财经商业, 政治, 军事, 教育考试).
- Disease texts are dominated by COVID-19 (CHECKED, 2020–2022 debunks).
- Probabilities are not calibrated; use them to rank or to abstain, not as frequencies.

## Reproduce
```
{report.get('command') or 'python -m classifier.topics --claims ../shared/data/claims --debunks ../shared/data/debunks --out models/topics'}
```

<details><summary>Training log</summary>

```
{chr(10).join(log_lines)}
```
</details>
"""
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text, "utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m classifier.topics", description="Train the piyao topic model.")
    ap.add_argument("--claims", required=True, help="folder with weibo21_train/val.jsonl, ced_weibo.jsonl, checked_covid.jsonl")
    ap.add_argument("--debunks", required=True, help="folder with the debunk CSV files")
    ap.add_argument("--out", default="models/topics", help="model directory to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--C", type=float, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    config = TopicConfig(seed=args.seed)
    if args.C is not None:
        config = TopicConfig.from_dict({**config.to_dict(), "C": args.C})
    command = "python -m classifier.topics " + " ".join(sys.argv[1:] if argv is None else argv)
    report = train_topics(args.claims, args.debunks, args.out, seed=args.seed, config=config,
                          progress=not args.no_progress, command=command)
    print(json.dumps({
        "version": report["version"],
        "a_weibo21_val_accuracy_domain": round(report["metrics"]["a_weibo21_val_domains"]["accuracy_domain"], 4),
        "b_macro_f1": round(report["metrics"]["b_random_holdout"]["macro_f1"], 4),
        "b_macro_f1_topics_with_support": round(
            report["metrics"]["b_random_holdout"]["macro_f1_topics_with_support"]["macro_f1"], 4),
        "model_bytes": report["model_bytes"],
        "speed": report["speed"],
    }, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
