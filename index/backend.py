"""The search backend protocol that the embedded index and Elasticsearch both implement."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, runtime_checkable


@dataclass
class IndexDoc:
    """A document as the index sees it; ``key`` is "<kind>:<store id>"."""

    key: str
    kind: str  # debunk | claim
    title: str
    text: str
    source: str
    url: str | None = None
    date: dt.date | None = None


@dataclass
class SearchFilters:
    kind: str | None = None
    source: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


@dataclass
class Hit:
    key: str
    kind: str
    title: str
    source: str
    url: str | None
    date: dt.date | None
    score: float  # backend-native relevance, higher is better
    snippet: str  # HTML-escaped text with <mark> around matched terms
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def doc_id(self) -> int:
        return int(self.key.split(":", 1)[1])


class BackendError(Exception):
    """The index cannot be reached or used; the message is one line for the user."""


@runtime_checkable
class Backend(Protocol):
    name: str

    def upsert(self, docs: Iterable[IndexDoc]) -> int:
        """Add or replace documents; returns how many were written."""

    def delete(self, keys: Iterable[str]) -> int:
        """Remove documents by key; returns how many existed."""

    def search(
        self, query: str, *, limit: int = 10, offset: int = 0, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """Best matches first."""

    def count(self, kind: str | None = None) -> int:
        ...

    def rebuild(self, docs: Iterable[IndexDoc], *, progress: Callable[[int], None] | None = None) -> int:
        """Build a fresh index from ``docs`` and swap it in atomically; searches keep answering meanwhile."""

    def clear(self) -> None:
        ...

    def close(self) -> None:
        ...
