"""Search index backends (a derived view of the store) and claim matching."""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.backend import Backend, BackendError, Hit, IndexDoc, SearchFilters

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["Backend", "BackendError", "Hit", "IndexDoc", "SearchFilters", "open_backend"]


def open_backend(settings: Settings) -> Backend:
    """The configured backend, opened."""
    if settings.index.backend == "embedded":
        from index.embedded import EmbeddedBackend

        return EmbeddedBackend(settings.index_path)
    raise BackendError(f"index.backend: unknown backend {settings.index.backend!r}")
