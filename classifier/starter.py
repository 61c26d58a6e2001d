"""The starter rumor classifier: word + character TF-IDF, a linear model, calibrated probabilities.

Design
------
* Text preparation happens in Python, *before* scikit-learn sees the text:
  each text becomes two strings, the space-joined jieba tokens of
  ``classifier.text.tokenize`` and the normalized text (``normalize``) without
  whitespace. The vectorizers therefore use only built-in options
  (``token_pattern=r"\\S+"`` for words, ``analyzer="char"`` for characters) and no
  custom callables, so the fitted pipeline persists with skops without pickling
  any function. Whoever changes the tokenizer must retrain the model.
* Pipeline: ``ColumnTransformer`` (word 1-2 gram TF-IDF, char n-gram TF-IDF; both
  hashed with ``HashingVectorizer`` + ``TfidfTransformer``, so no vocabulary is
  stored: skops writes a vocabulary dict entry by entry, which gave files of
  100+ MB; ``top_terms`` recover n-gram names per text by hashing its n-grams)
  -> ``CalibratedClassifierCV`` (sigmoid calibration, ``ensemble=False``) around a
  ``LogisticRegression`` or ``LinearSVC``. With ``ensemble=False`` one linear model
  is fitted on all the data, which keeps the file small and gives one set of
  coefficients for the ``top_terms`` explanation.
* Persistence: ``model.skops`` (``skops.io``), ``trusted_types.json`` (the types
  ``skops.io.get_untrusted_types`` reported at save time) and ``meta.json``.
  Loading refuses a model whose file holds a type that is not in the trusted
  list, a trusted list naming types outside the scientific stack, and a model
  file whose SHA-256 differs from the one in ``meta.json``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from classifier.base import JsonConfig, Prediction, sha256_file
from classifier.labels import CREDIBLE, RUMOR
from classifier.text import _tokenizer, normalize, tokenize

__all__ = [
    "set_workers",
    "MODEL_FILE",
    "TRUSTED_FILE",
    "META_FILE",
    "StarterConfig",
    "Prediction",
    "StarterModel",
    "UntrustedModelError",
    "prepare",
]

MODEL_FILE = "model.skops"
TRUSTED_FILE = "trusted_types.json"
META_FILE = "meta.json"

# A trusted-types file may only name types from these modules; anything else
# (builtins.eval, os.system, ...) is refused even if listed.
_ALLOWED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")


class UntrustedModelError(ValueError):
    """The model directory holds types or content that are not trusted."""


@dataclass(frozen=True)
class StarterConfig(JsonConfig):
    """Hyper-parameters of the starter model (recorded in meta.json)."""

    word_ngram: tuple[int, int] = (1, 2)
    char_ngram: tuple[int, int] = (1, 3)
    # Features are hashed (no vocabulary to persist: skops stores a vocabulary dict
    # entry by entry, which made files of 100+ MB and slow loads). 2**bits columns each.
    word_hash_bits: int = 20
    char_hash_bits: int = 20
    sublinear_tf: bool = True
    # Chosen by a small grid on held-out evaluation (a) (see models/starter/MODEL_CARD.md).
    classifier: str = "svm"  # "svm" (LinearSVC) or "logreg" (LogisticRegression)
    C: float = 0.5
    calibration: str = "sigmoid"
    calibration_cv: int = 5
    seed: int = 0


def _char_input(norm: str) -> str:
    return "".join(norm.split())


def _prepare_rows(texts: Sequence[str]) -> list[tuple[str, str]]:
    rows = []
    for text in texts:
        norm = normalize(text or "")
        rows.append((" ".join(tokenize(norm, normalized=True)), _char_input(norm)))
    return rows


# Text preparation (normalization + jieba) is most of the linear model's time and is pure Python:
# with more than one worker, large batches are split over worker processes (one per core).
_WORKERS = 1
_MIN_PARALLEL = 64
_POOL: Any = None
_POOL_LOCK = threading.Lock()


def _init_worker() -> None:
    from classifier.text import _tokenizer

    _tokenizer().lcut("预热")  # load the dictionary once per worker


def set_workers(workers: int) -> int:
    """Processes that prepare texts (0 = one per core, at most 8); returns the number in effect."""
    global _WORKERS, _POOL
    n = min(os.cpu_count() or 1, 8) if workers <= 0 else workers
    with _POOL_LOCK:
        if n != _WORKERS and _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        _WORKERS = n
    return n


def _pool() -> Any:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # fork: a worker starts as a copy of this process with the dictionary already loaded, and does
            # not re-run the calling script (spawn and forkserver re-import __main__, which breaks scripts
            # without a `if __name__ == "__main__"` guard). Workers run only normalization and jieba.
            _tokenizer().lcut("预热")
            _POOL = ProcessPoolExecutor(_WORKERS, mp_context=mp.get_context("fork"), initializer=_init_worker)
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        return _POOL


def _prepare_parallel(texts: list[str]) -> list[tuple[str, str]]:
    """Split over the worker processes; on any pool failure, warn once and prepare in-process from then on."""
    global _WORKERS, _POOL
    size = -(-len(texts) // _WORKERS)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    try:
        return [row for part in _pool().map(_prepare_rows, chunks) for row in part]
    except Exception as exc:  # noqa: BLE001 - a broken pool must not lose the batch
        import warnings

        warnings.warn(f"text preparation workers failed ({exc.__class__.__name__}: {exc}); continuing in-process",
                      RuntimeWarning, stacklevel=3)
        with _POOL_LOCK:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
                _POOL = None
            _WORKERS = 1
        return _prepare_rows(texts)


def prepare(texts: Iterable[str]) -> np.ndarray:
    """Texts -> (n, 2) object array: [space-joined jieba tokens, normalized text without spaces]."""
    texts = list(texts)
    if _WORKERS > 1 and len(texts) >= _MIN_PARALLEL:
        rows = _prepare_parallel(texts)
    else:
        rows = _prepare_rows(texts)
    arr = np.empty((len(rows), 2), dtype=object)
    for i, (w, c) in enumerate(rows):
        arr[i, 0] = w
        arr[i, 1] = c
    return arr


def hashed_features(cfg: Any) -> Any:
    """Word n-gram and character n-gram TF-IDF over the two ``prepare`` columns, hashed (no vocabulary).

    ``cfg`` gives word_ngram, char_ngram, word_hash_bits, char_hash_bits and sublinear_tf.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import Pipeline

    def hashed(bits: int, ngram: tuple[int, int], **kw: Any) -> Pipeline:
        return Pipeline([
            ("hash", HashingVectorizer(
                lowercase=False, ngram_range=tuple(ngram), n_features=2**bits, alternate_sign=False, norm=None,
                dtype=np.float32, **kw,
            )),
            ("tfidf", TfidfTransformer(sublinear_tf=cfg.sublinear_tf)),
        ])

    return ColumnTransformer(
        [
            ("word", hashed(cfg.word_hash_bits, cfg.word_ngram, token_pattern=r"\S+"), 0),
            ("char", hashed(cfg.char_hash_bits, cfg.char_ngram, analyzer="char"), 1),
        ],
        sparse_threshold=1.0,
    )


def _build_pipeline(cfg: StarterConfig):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    features = hashed_features(cfg)
    if cfg.classifier == "logreg":
        base = LogisticRegression(C=cfg.C, max_iter=2000, solver="liblinear", random_state=cfg.seed)
    elif cfg.classifier == "svm":
        base = LinearSVC(C=cfg.C, max_iter=5000, random_state=cfg.seed)
    else:
        raise ValueError(f"unknown classifier {cfg.classifier!r}; expected 'logreg' or 'svm'")
    clf = CalibratedClassifierCV(base, method=cfg.calibration, cv=cfg.calibration_cv, ensemble=False)
    return Pipeline([("features", features), ("clf", clf)])


def dump_skops(pipeline: Any, model_path: Path, trusted_path: Path) -> str:
    """Write a fitted pipeline with skops and its trusted-types list; return the file's SHA-256.

    Refuses (and removes the file) when the pipeline holds types outside the scientific stack.
    """
    import skops.io as sio

    sio.dump(pipeline, model_path, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    trusted = sorted(sio.get_untrusted_types(file=model_path))
    bad = [t for t in trusted if not t.startswith(_ALLOWED_TYPE_PREFIXES)]
    if bad:
        model_path.unlink()
        raise UntrustedModelError(f"refusing to save a model holding types outside the allow-list: {bad}")
    trusted_path.write_text(json.dumps(trusted, indent=2) + "\n", "utf-8")
    return sha256_file(model_path)


def load_skops(model_path: Path, trusted_path: Path, expected_sha256: str | None, *, require_sha256: bool = False) -> Any:
    """Load a skops file, refusing types outside the trusted list or the allow-list, and a file whose SHA-256 changed."""
    import skops.io as sio

    try:
        trusted = json.loads(trusted_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise UntrustedModelError(f"{trusted_path}: not valid JSON ({exc})") from None
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise UntrustedModelError(f"{trusted_path}: must be a JSON list of type names")
    bad = [t for t in trusted if not t.startswith(_ALLOWED_TYPE_PREFIXES)]
    if bad:
        raise UntrustedModelError(f"{trusted_path}: types outside the allow-list {_ALLOWED_TYPE_PREFIXES}: {bad}")
    if not expected_sha256 and require_sha256:
        raise UntrustedModelError(f"{model_path.parent / META_FILE}: no model_sha256 to check the model file against")
    if expected_sha256 and sha256_file(model_path) != expected_sha256:
        raise UntrustedModelError(f"{model_path}: SHA-256 differs from meta.json; the model file was changed")
    found = sio.get_untrusted_types(file=model_path)
    unexpected = sorted(set(found) - set(trusted))
    if unexpected:
        raise UntrustedModelError(f"{model_path}: refusing to load unexpected types {unexpected}")
    return sio.load(model_path, trusted=trusted)


PREPARATION = (
    "columns [tokens, chars]: ' '.join(classifier.text.tokenize(text)) and "
    "classifier.text.normalize(text) without whitespace (classifier.starter.prepare)"
)


def save_model_dir(directory: str | Path, pipeline: Any, meta: dict[str, Any], *, version_prefix: str) -> Path:
    """Write ``model.skops`` + ``trusted_types.json`` + ``meta.json`` (version, created, file, SHA-256, format)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sha = dump_skops(pipeline, d / MODEL_FILE, d / TRUSTED_FILE)
    now = datetime.now(timezone.utc)
    meta.setdefault("version", f"{version_prefix}-" + now.strftime("%Y%m%d%H%M%S"))
    meta.setdefault("created", now.isoformat(timespec="seconds"))
    meta.update({"model_file": MODEL_FILE, "model_sha256": sha, "format": "skops", "preprocessing": PREPARATION})
    (d / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return d


def load_model_dir(directory: str | Path, *, kind: str | None = None, require_sha256: bool = False) -> tuple[Any, dict[str, Any]]:
    """(pipeline, meta) of a directory written by ``save_model_dir``; refuses untrusted or changed files."""
    d = Path(directory)
    model_path, trusted_path, meta_path = d / MODEL_FILE, d / TRUSTED_FILE, d / META_FILE
    for p in (model_path, trusted_path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"model directory {d} lacks {p.name}")
    meta = json.loads(meta_path.read_text("utf-8"))
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{meta_path}: kind is {meta.get('kind')!r}, not {kind!r}")
    return load_skops(model_path, trusted_path, meta.get("model_sha256"), require_sha256=require_sha256), meta


def _hash_index(token: str, n_features: int) -> int:
    """Column of ``token`` in a HashingVectorizer(alternate_sign=False) with ``n_features`` columns."""
    from sklearn.utils import murmurhash3_32

    h = murmurhash3_32(token, seed=0)
    if h == -2147483648:
        return (2147483647 - (n_features - 1)) % n_features
    return abs(h) % n_features


def _is_term(term: str) -> bool:
    """Letters and digits (and the space between word n-grams) only: no punctuation fragments."""
    return any(ch != " " for ch in term) and all(ch == " " or unicodedata.category(ch)[0] in ("L", "N") for ch in term)


class StarterModel:
    """Word + character TF-IDF -> calibrated linear model. Score = P(rumor)."""

    def __init__(self, config: StarterConfig | None = None, *, pipeline: Any = None, meta: dict | None = None):
        self.config = config or StarterConfig()
        self.pipeline = pipeline
        self.meta: dict[str, Any] = dict(meta or {})
        self._coef: np.ndarray | None = None

    # -- training ---------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence[int], *, prepared: np.ndarray | None = None) -> "StarterModel":
        """Fit on texts with binary labels (1 = rumor). ``prepared`` may pass ``prepare(texts)`` already done."""
        y = np.asarray(labels, dtype=int)
        if set(np.unique(y)) - {0, 1}:
            raise ValueError("labels must be 0 (credible) or 1 (rumor)")
        X = prepare(texts) if prepared is None else prepared
        self.pipeline = _build_pipeline(self.config)
        self.pipeline.fit(X, y)
        self._coef = None
        self.meta.setdefault("version", "starter-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"))
        return self

    # -- inference --------------------------------------------------------
    @property
    def model_version(self) -> str:
        return str(self.meta.get("version", "starter-unversioned"))

    def _check_fitted(self) -> None:
        if self.pipeline is None:
            raise RuntimeError("the model is not trained or loaded")

    def predict_proba(self, texts: Sequence[str] | None = None, *, prepared: np.ndarray | None = None,
                      features: Any = None) -> np.ndarray:
        """Probability of rumor for each text, shape (n,). ``features``: ``self.features(prepared)`` when a
        caller computed them already (they are then used for the terms as well: one transform, not two)."""
        self._check_fitted()
        if features is not None:
            clf = self.pipeline.named_steps["clf"]
            return np.clip(clf.predict_proba(features)[:, list(clf.classes_).index(1)].astype(float), 0.0, 1.0)
        X = prepare(list(texts) if texts is not None else []) if prepared is None else prepared
        if len(X) == 0:
            return np.zeros(0, dtype=float)
        proba = self.pipeline.predict_proba(X)
        col = list(self.pipeline.classes_).index(1)
        return np.clip(proba[:, col].astype(float), 0.0, 1.0)

    def features(self, prepared: np.ndarray) -> Any:
        """The model's feature rows (sparse) of prepared texts."""
        self._check_fitted()
        return self.pipeline.named_steps["features"].transform(prepared).tocsr()

    def _coefficients(self) -> np.ndarray:
        if self._coef is None:
            clf = self.pipeline.named_steps["clf"]
            coefs = [np.ravel(cc.estimator.coef_) for cc in clf.calibrated_classifiers_]
            self._coef = np.mean(coefs, axis=0)
        return self._coef

    def _feature_names(self, prepared_row: np.ndarray) -> dict[int, str]:
        """Column index -> n-gram for the n-grams of one prepared text (hashing is one-way, so per text)."""
        ct = self.pipeline.named_steps["features"]
        names: dict[int, str] = {}
        offset = 0
        for (_, pipe, col) in ct.transformers_:
            if pipe == "drop" or not hasattr(pipe, "named_steps"):
                continue
            hv = pipe.named_steps["hash"]
            n = int(hv.n_features)
            for gram in set(hv.build_analyzer()(prepared_row[col])):
                j = offset + _hash_index(gram, n)
                if len(gram) > len(names.get(j, "")):
                    names[j] = gram
            offset += n
        return names

    def _top_terms(self, row, prepared_row: np.ndarray, toward_rumor: bool, k: int) -> list[str]:
        coef = self._coefficients()
        idx = row.indices
        if idx.size == 0:
            return []
        contrib = row.data * coef[idx]
        if not toward_rumor:
            contrib = -contrib
        names = self._feature_names(prepared_row)
        out: list[str] = []
        for j in np.argsort(-contrib):
            if contrib[j] <= 0 or len(out) >= k:
                break
            term = names.get(int(idx[j]))
            if not term or not _is_term(term) or (len(term) < 2 and " " not in term):
                continue
            flat = term.replace(" ", "")
            if any(flat in t.replace(" ", "") for t in out):
                continue
            out.append(term)
        return out

    def predict(self, texts: Sequence[str], *, top_k: int = 5, prepared: np.ndarray | None = None,
                features: Any = None) -> list[Prediction]:
        """Score each text; label is "rumor" when score >= 0.5; top_terms are the features that pushed it there.

        ``prepared`` may pass ``prepare(texts)`` already done (a cascade tokenizes once for all its models),
        ``features`` the feature rows too (``self.features(prepared)``).
        """
        self._check_fitted()
        texts = list(texts)
        if not texts:
            return []
        X = prepare(texts) if prepared is None else prepared
        if not top_k:
            scores, feats = self.predict_proba(prepared=X, features=features), None
        else:  # the features once, for the scores and for the terms
            feats = features if features is not None else self.features(X)
            scores = self.predict_proba(features=feats)
        version = self.model_version
        out = []
        for i, s in enumerate(scores):
            label = RUMOR if s >= 0.5 else CREDIBLE
            terms = self._top_terms(feats[i], X[i], label == RUMOR, top_k) if feats is not None else []
            out.append(Prediction(score=float(s), label=label, top_terms=terms, model_version=version,
                                  explanation={"kind": "terms", "terms": terms}, stage="linear"))
        return out

    # -- persistence ------------------------------------------------------
    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write model.skops, trusted_types.json and meta.json into ``directory``."""
        self._check_fitted()
        self.meta.update(meta or {})
        self.meta["config"] = self.config.to_dict()
        return save_model_dir(directory, self.pipeline, self.meta, version_prefix="starter")

    @classmethod
    def load(cls, directory: str | Path) -> "StarterModel":
        """Load a saved model; raise UntrustedModelError on unexpected types or a changed model file."""
        pipeline, meta = load_model_dir(directory)
        config = StarterConfig.from_dict(meta.get("config", {}))
        return cls(config, pipeline=pipeline, meta=meta)
