"""The search backend protocol that the embedded index and Elasticsearch both implement."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from index.passages import Passage


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
    # Debunks only: the article's passages (index.passages.article_passages), indexed beside it
    # as "<key>#<position>" for claim matching.
    passages: list[Passage] = field(default_factory=list)


@dataclass
class PassageHit:
    """A passage found for a claim, with its article's display fields."""

    key: str  # "<doc key>#<position>"
    doc_key: str
    kind: str  # title | rumor | verdict | body
    position: int
    text: str
    score: float  # BM25 (backend-native) or cosine similarity, higher is better
    title: str
    source: str
    url: str | None
    date: dt.date | None


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


# Both backends keep this much of a document's text for display; a fingerprint covers what they keep.
FINGERPRINT_TEXT_CHARS = 20_000


def passage_digest(position: int, kind: str, text: str) -> str:
    """One passage as a fingerprint sees it (backends keep digests, not texts, while they scan)."""
    return hashlib.sha256(json.dumps([position, kind, text], ensure_ascii=False).encode("utf-8")).hexdigest()


def fields_digest(*, kind: str, title: str, text: str, source: str, url: str | None, date: dt.date | str | None) -> str:
    """A document's stored fields (its text as far as backends keep it) as one digest."""
    day = date.isoformat() if isinstance(date, dt.date) else (date or None)
    fields = [kind, title, text[:FINGERPRINT_TEXT_CHARS], source, url or None, day]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


def combine(fields: str, passages: Iterable[tuple[int, str]] = ()) -> str:
    """The fingerprint: a document's ``fields_digest`` and its passages' digests by position."""
    h = hashlib.sha256(fields.encode("ascii"))
    for position, digest in sorted(passages):
        h.update(f"\n{position}:{digest}".encode("ascii"))
    return h.hexdigest()


def fingerprint(
    *,
    kind: str,
    title: str,
    text: str,
    source: str,
    url: str | None,
    date: dt.date | str | None,
    passages: Iterable[tuple[int, str]] = (),
) -> str:
    """The content hash of an indexed document: its stored fields and its passages' digests by position.

    The store side (``doc_fingerprint``) and each backend (``Backend.fingerprints``, from what it stored)
    compute it the same way, so ``index.consistency`` can tell a stale or half-written document apart.
    """
    return combine(fields_digest(kind=kind, title=title, text=text, source=source, url=url, date=date), passages)


def doc_fingerprint(doc: IndexDoc) -> str:
    """What ``fingerprint`` gives for ``doc`` once a backend has indexed it."""
    return fingerprint(
        kind=doc.kind,
        title=doc.title,
        text=doc.text,
        source=doc.source,
        url=doc.url,
        date=doc.date,
        passages=[(p.position, passage_digest(p.position, p.kind, p.text)) for p in doc.passages],
    )


def orphan_fingerprint(doc_key: str, passages: Iterable[tuple[int, str]]) -> str:
    """Passages left indexed without their document: a fingerprint no stored document has."""
    return fingerprint(kind=doc_key.split(":", 1)[0], title="", text="", source="", url=None, date=None, passages=passages)


class BackendError(Exception):
    """The index cannot be reached or used; the message is one line for the user."""


@runtime_checkable
class Backend(Protocol):
    name: str

    def upsert(self, docs: Iterable[IndexDoc], *, refresh: bool = True) -> int:
        """Add or replace documents; returns how many were written.

        They are searchable when this returns, except that with ``refresh=False`` Elasticsearch may show
        new claims only at its next periodic refresh (``index.refresh_interval``, 1 s by default), which
        spares it a refresh per call (partner intake). Writes with passages always refresh; the embedded
        index is always read-after-write.
        """

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

    def fingerprints(self, kind: str | None = None) -> Iterator[tuple[str, str]]:
        """(key, ``fingerprint``) of every indexed document (of ``kind``), computed from what the index stored,
        passages included; read from one snapshot where the backend has one (``index.consistency``)."""

    # Passages of debunks, for claim matching (index.matching). Filters apply to the article
    # (source, dates); ``kind`` is ignored: passages belong to debunks.
    def search_passages(self, tokens: list[str], *, limit: int = 50, filters: SearchFilters | None = None) -> list[PassageHit]:
        """BM25 over passage texts, best first."""

    def knn_passages(self, vector: np.ndarray, *, limit: int = 50, filters: SearchFilters | None = None) -> list[PassageHit]:
        """Passages whose e5 vectors are nearest to ``vector`` (cosine, best first); passages without one are skipped."""

    def pending_vectors(self, kinds: Sequence[str], *, limit: int = 256) -> list[tuple[str, str]]:
        """Up to ``limit`` (passage key, text) of the given kinds that have no vector yet."""

    def set_vectors(self, items: Sequence[tuple[str, np.ndarray]]) -> int:
        """Store vectors by passage key; keys no longer indexed are ignored. Returns how many were stored."""

    def vector_counts(self, kinds: Sequence[str]) -> tuple[int, int]:
        """(passages of these kinds, of which with a vector)."""
