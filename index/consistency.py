"""Do the store and the search index agree? (`piyao check`)

The store is the source of truth; the index is derived from it through the outbox
(index.outbox). After a crash, an index outage or a full disk, this module says whether
the index holds exactly what the store would put there: per kind, the number of
documents on each side and a checksum over (key, fingerprint), where a fingerprint
(index.backend.fingerprint) hashes a document's stored fields and its passages. The
store's side is computed from the documents ``index.outbox`` would write; the index's
side from what the backend kept (``Backend.fingerprints``).

Keys with rows in the outbox are *pending*: a write the next ``piyao index`` makes, not a
disagreement. Every other differing key is one of:

- ``missing``: in the store, not in the index;
- ``extra``: in the index, not in the store (or passages left without their document);
- ``stale``: in both, but the index holds other content (an older version, lost passages).

``repair`` re-enqueues exactly those keys (upsert or delete) and drains the outbox.
Writes made while a check runs can show up as a difference that is gone a moment later;
``compare`` therefore looks again at what differs and reports only what differed twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import select

from index.backend import Backend, doc_fingerprint
from index.outbox import drain, store_docs
from store.db import Store
from store.models import IndexOutbox
from store.writes import enqueue

KINDS = ("debunk", "claim")
# Keys named per difference kind in the one-line summaries.
SHOWN_KEYS = 5


def checksum(pairs: Iterable[tuple[str, str]]) -> str:
    """An order-independent checksum of (key, fingerprint) pairs."""
    h = hashlib.sha256()
    for key, fp in sorted(pairs):
        h.update(f"{key}\t{fp}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def _kind(key: str) -> str:
    return key.split(":", 1)[0]


def store_fingerprints(store: Store) -> dict[str, str]:
    """key → fingerprint of every document the store would index."""
    return {d.key: doc_fingerprint(d) for d in store_docs(store)}


def pending_keys(store: Store) -> set[str]:
    """The documents with a write waiting in the outbox."""
    with store.session() as s:
        return {f"{k}:{i}" for k, i in s.execute(select(IndexOutbox.doc_kind, IndexOutbox.doc_id))}


@dataclass
class Report:
    """The outcome of a comparison; ``agree`` when nothing differs except pending writes."""

    backend: str
    store_counts: dict[str, int]
    index_counts: dict[str, int]
    store_checksums: dict[str, str]
    index_checksums: dict[str, str]
    pending: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    repaired: int = 0

    @property
    def agree(self) -> bool:
        return not (self.missing or self.extra or self.stale)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "backend": self.backend,
            "store": {k: {"count": self.store_counts[k], "checksum": self.store_checksums[k]} for k in KINDS},
            "index": {k: {"count": self.index_counts[k], "checksum": self.index_checksums[k]} for k in KINDS},
            "pending": len(self.pending),
            "missing": self.missing,
            "extra": self.extra,
            "stale": self.stale,
            "repaired": self.repaired,
        }

    def lines(self) -> list[str]:
        """The human summary: counts and checksums, then one line per kind of difference."""
        def side(counts: dict[str, int], sums: dict[str, str]) -> str:
            return ", ".join(f"{counts[k]} {k}s ({sums[k]})" for k in KINDS)

        out = [f"store: {side(self.store_counts, self.store_checksums)}",
               f"index ({self.backend}): {side(self.index_counts, self.index_checksums)}"]
        if self.pending:
            out.append(f"pending in the outbox: {len(self.pending)} document(s), written by the next `piyao index`")
        for name, keys in (("missing from the index", self.missing), ("only in the index", self.extra),
                           ("stale in the index (other content)", self.stale)):
            if keys:
                more = f", … {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
                out.append(f"{name}: {len(keys)} ({', '.join(keys[:SHOWN_KEYS])}{more})")
        if self.repaired:
            out.append(f"repaired: {self.repaired} document(s) re-enqueued and indexed")
        if not self.agree:
            out.append("store and index differ: run `piyao check --repair`")
        else:
            out.append("store and index agree" + (f" (once the {len(self.pending)} pending write(s) are indexed)" if self.pending else ""))
        return out


def _diff(ours: dict[str, str], theirs: dict[str, str], pending: set[str]) -> tuple[list[str], list[str], list[str]]:
    missing = sorted(k for k in ours.keys() - theirs.keys() if k not in pending)
    extra = sorted(k for k in theirs.keys() - ours.keys() if k not in pending)
    stale = sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k] and k not in pending)
    return missing, extra, stale


def compare(store: Store, backend: Backend, *, recheck: bool = True) -> Report:
    """Compare the store with the index; see the module docstring."""
    before = pending_keys(store)
    theirs = dict(backend.fingerprints())
    ours = store_fingerprints(store)
    pending = before | pending_keys(store)
    missing, extra, stale = _diff(ours, theirs, pending)
    if recheck and (missing or extra or stale):
        # A write that committed and was drained while we read shows up once: keep what differs again.
        pending |= pending_keys(store)
        theirs2 = dict(backend.fingerprints())
        ours2 = store_fingerprints(store)
        pending |= pending_keys(store)
        m2, e2, s2 = _diff(ours2, theirs2, pending)
        missing = [k for k in missing if k in set(m2)]
        extra = [k for k in extra if k in set(e2)]
        stale = [k for k in stale if k in set(s2)]
        ours, theirs = ours2, theirs2
    by_kind = {k: ({key: fp for key, fp in ours.items() if _kind(key) == k},
                   {key: fp for key, fp in theirs.items() if _kind(key) == k}) for k in KINDS}
    return Report(
        backend=getattr(backend, "name", type(backend).__name__),
        store_counts={k: len(by_kind[k][0]) for k in KINDS},
        index_counts={k: len(by_kind[k][1]) for k in KINDS},
        store_checksums={k: checksum(by_kind[k][0].items()) for k in KINDS},
        index_checksums={k: checksum(by_kind[k][1].items()) for k in KINDS},
        pending=sorted(pending),
        missing=missing,
        extra=extra,
        stale=stale,
    )


def repair(store: Store, backend: Backend, report: Report, *, batch_size: int = 500) -> int:
    """Re-enqueue what differs (upserts for missing and stale, deletes for extra) and drain the outbox.

    Keys the store cannot name (not "<kind>:<integer id>") are deleted from the index directly.
    Returns how many documents were re-enqueued or deleted.
    """
    odd: list[str] = []
    n = 0
    with store.session() as s:
        for key, op in [*((k, "upsert") for k in report.missing + report.stale), *((k, "delete") for k in report.extra)]:
            kind, _, ident = key.partition(":")
            if kind in KINDS and ident.isdigit():
                enqueue(s, kind, int(ident), op)
            else:
                odd.append(key)
            n += 1
    if odd:
        backend.delete(odd)
    drain(store, backend, batch_size=batch_size)
    return n
