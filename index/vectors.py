"""In-memory nearest-neighbour search over passage vectors for the embedded backend.

Vectors are L2-normalized e5 embeddings, so cosine similarity is a dot product.

* Up to ``EXACT_LIMIT`` vectors: an exact float32 matrix product (about 5 ms for
  60,000 × 384 on two cores) — exact, and nothing to build.
* Beyond: an HNSW graph from ``usearch`` (a well-kept single-file vector search
  library; cosine metric, float16 storage). Building one over 600,000 vectors
  takes a while, so the graph is saved beside the index file with the vectors
  generation it was built from, and loaded instead of rebuilt while the
  generation is unchanged. Candidates it returns are re-scored exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from classifier.encoder import DIM

__all__ = ["EXACT_LIMIT", "VectorIndex"]

EXACT_LIMIT = 200_000
_CONNECTIVITY = 16
_EXPANSION_ADD = 128
_EXPANSION_SEARCH = 96


class VectorIndex:
    """``search(vector, k) -> {rowid: cosine}`` best first."""

    def __init__(self, rowids: np.ndarray, matrix: np.ndarray, *, generation: int = 0, path: Path | None = None) -> None:
        self.rowids = np.asarray(rowids, dtype=np.int64)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32).reshape(len(self.rowids), DIM)
        self.generation = generation
        self._graph = None
        if len(self.rowids) > EXACT_LIMIT:
            self._graph = self._load_or_build(path)

    @classmethod
    def from_blobs(cls, rows: Sequence[tuple[int, bytes]], *, generation: int = 0, path: Path | None = None) -> "VectorIndex":
        rowids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
        matrix = np.zeros((len(rows), DIM), dtype=np.float32)
        if rows:
            matrix[:] = np.frombuffer(b"".join(b for _, b in rows), dtype=np.float16).reshape(len(rows), DIM)
        return cls(rowids, matrix, generation=generation, path=path)

    def __len__(self) -> int:
        return len(self.rowids)

    # -- HNSW ------------------------------------------------------------------
    def _load_or_build(self, path: Path | None):  # type: ignore[no-untyped-def]
        from usearch.index import Index

        graph = Index(ndim=DIM, metric="cos", dtype="f16", connectivity=_CONNECTIVITY, expansion_add=_EXPANSION_ADD, expansion_search=_EXPANSION_SEARCH)
        stamp = path.with_name(path.name + ".json") if path else None
        if path and stamp and path.exists() and stamp.exists():
            try:
                info = json.loads(stamp.read_text("utf-8"))
                if info.get("generation") == self.generation and info.get("size") == len(self.rowids):
                    graph.load(str(path))
                    return graph
            except (OSError, ValueError, RuntimeError):
                pass  # stale or damaged: rebuild below
        graph.add(np.arange(len(self.rowids), dtype=np.uint64), self.matrix)
        if path and stamp:
            try:
                tmp = path.with_name(path.name + ".tmp")
                graph.save(str(tmp))
                os.replace(tmp, path)
                stamp.write_text(json.dumps({"generation": self.generation, "size": len(self.rowids)}), "utf-8")
            except OSError:
                pass  # a read-only index still answers; the graph is rebuilt next time
        return graph

    # -- search ------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int) -> dict[int, float]:
        n = len(self.rowids)
        if n == 0 or k <= 0:
            return {}
        q = np.asarray(vector, dtype=np.float32).reshape(DIM)
        k = min(k, n)
        if self._graph is not None:
            found = self._graph.search(q, k)
            idx = np.asarray(found.keys, dtype=np.int64)
            idx = idx[idx < n]
            sims = self.matrix[idx] @ q
        else:
            scores = self.matrix @ q
            idx = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
            sims = scores[idx]
        order = np.argsort(-sims, kind="stable")
        return {int(self.rowids[idx[i]]): float(sims[i]) for i in order}
