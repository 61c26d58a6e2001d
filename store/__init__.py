"""The SQL store: the source of truth for claims, debunks, reviews, audit events and crawl runs."""

from store.db import Store, open_store

__all__ = ["Store", "open_store"]
