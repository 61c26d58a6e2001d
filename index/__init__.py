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
    if settings.index.backend == "elasticsearch":
        from index.elastic import ElasticBackend

        es = settings.index.elasticsearch
        return ElasticBackend(
            es.hosts,
            alias=es.alias,
            api_key=es.api_key,
            username=es.username,
            password=es.password,
            verify_certs=es.verify_certs,
            ca_certs=es.ca_certs,
            request_timeout=es.request_timeout,
            max_retries=es.max_retries,
            shards=es.shards,
            replicas=es.replicas,
            vector_dims=es.vector_dims,
            chunk_size=settings.index.batch_size,
        )
    raise BackendError(f"index.backend: unknown backend {settings.index.backend!r}")
