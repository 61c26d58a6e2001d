"""Computing the e5 vectors of indexed debunk passages: once, incrementally, resumably.

``embed_pending`` asks the backend for passages of the configured kinds that have no
vector yet, encodes them in batches (e5 ``passage:`` role; the shared on-disk cache
means a rebuilt index re-uses every vector computed before) and stores each batch
before taking the next, so an interrupted run loses at most one batch and the next
run continues where it stopped. Matching uses whatever vectors exist meanwhile (BM25
answers for passages still waiting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from index.backend import Backend

if TYPE_CHECKING:
    from classifier.encoder import E5Encoder

__all__ = ["embed_pending"]


def embed_pending(
    backend: Backend,
    encoder: E5Encoder,
    kinds: Sequence[str],
    *,
    batch: int = 256,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed passages still without a vector (at most ``limit``); returns how many were stored."""
    done = 0
    while limit is None or done < limit:
        want = batch if limit is None else min(batch, limit - done)
        todo = backend.pending_vectors(kinds, limit=want)
        if not todo:
            break
        vectors = encoder.encode([t for _, t in todo], role="passage")
        stored = backend.set_vectors([(key, vec) for (key, _), vec in zip(todo, vectors)])
        done += len(todo)
        if progress:
            progress(len(todo))
        if stored == 0:  # the passages vanished meanwhile (a concurrent rebuild): ask again
            continue
    return done
