"""Draining the store's outbox into the search index.

Every store write that the index must see adds an outbox row in the same
transaction. Draining reads rows in order, writes the documents, and deletes
the rows only after the backend accepted them: an index outage loses nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, Iterator

from sqlalchemy import delete, func, select

from index.backend import Backend, IndexDoc
from index.passages import split_passages
from store.db import Store
from store.models import Claim, Debunk, IndexOutbox, utcnow


def debunk_doc(d: Debunk) -> IndexDoc:
    """A debunk with its passages (the stored text is already cleaned: split it as is)."""
    return IndexDoc(
        key=f"debunk:{d.id}",
        kind="debunk",
        title=d.title,
        text=d.text,
        source=d.source,
        url=d.url,
        date=d.published,
        passages=split_passages(d.title, d.text),
    )


def claim_doc(c: Claim) -> IndexDoc:
    return IndexDoc(
        key=f"claim:{c.id}",
        kind="claim",
        title=c.text[:80],
        text=c.text,
        source=c.source,
        url=c.url,
        date=(c.published or c.first_seen).date() if (c.published or c.first_seen) else None,
    )


class OutboxError(Exception):
    """The backend refused a batch; the outbox rows are kept for the next drain."""


def _record_failure(store: Store, ids: list[int], error: str) -> None:
    with store.session() as s:
        for row in s.scalars(select(IndexOutbox).where(IndexOutbox.id.in_(ids))):
            row.attempts += 1
            row.last_error = error


def store_docs(store: Store, *, since: dt.datetime | None = None, batch: int = 1000) -> Iterator[IndexDoc]:
    """Every debunk and claim in the store as index documents (those changed since ``since`` if given)."""
    with store.session() as s:
        dq = select(Debunk).order_by(Debunk.id).execution_options(yield_per=batch)
        cq = select(Claim).order_by(Claim.id).execution_options(yield_per=batch)
        if since is not None:
            dq = dq.where((Debunk.updated_at >= since) | (Debunk.created_at >= since))
            cq = cq.where((Claim.last_seen >= since) | (Claim.first_seen >= since))
        for d in s.scalars(dq):
            yield debunk_doc(d)
        for c in s.scalars(cq):
            yield claim_doc(c)


def store_count(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Debunk)) or 0) + int(s.scalar(select(func.count()).select_from(Claim)) or 0)


def reindex(store: Store, backend: Backend, *, progress: Callable[[int], None] | None = None) -> int:
    """Rebuild the index from the store and swap it in; then catch up with writes made meanwhile."""
    started = utcnow()
    n = backend.rebuild(store_docs(store), progress=progress)
    late = list(store_docs(store, since=started))
    if late:
        backend.upsert(late)
    drain(store, backend)
    return n


def backlog(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(IndexOutbox)) or 0)


def drain(
    store: Store,
    backend: Backend,
    *,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    refresh: bool = True,
) -> int:
    """Index everything pending; returns the number of outbox rows processed.

    ``refresh=False`` is passed on to ``Backend.upsert`` (partner intake: new claims may reach
    Elasticsearch's search at its next periodic refresh, within a second)."""
    done = 0
    while True:
        with store.session() as s:
            rows = s.scalars(select(IndexOutbox).order_by(IndexOutbox.id).limit(batch_size)).all()
            if not rows:
                return done
            # The newest operation per document wins.
            latest: dict[tuple[str, int], str] = {}
            for r in rows:
                latest[(r.doc_kind, r.doc_id)] = r.op
            upserts: list[IndexDoc] = []
            deletes: list[str] = []
            deb_ids = [i for (k, i), op in latest.items() if k == "debunk" and op == "upsert"]
            clm_ids = [i for (k, i), op in latest.items() if k == "claim" and op == "upsert"]
            found: set[tuple[str, int]] = set()
            for d in s.scalars(select(Debunk).where(Debunk.id.in_(deb_ids))) if deb_ids else []:
                upserts.append(debunk_doc(d))
                found.add(("debunk", d.id))
            for c in s.scalars(select(Claim).where(Claim.id.in_(clm_ids))) if clm_ids else []:
                upserts.append(claim_doc(c))
                found.add(("claim", c.id))
            for (k, i), op in latest.items():
                if op == "delete" or (k, i) not in found:
                    deletes.append(f"{k}:{i}")
            ids = [r.id for r in rows]
            try:
                if upserts:
                    backend.upsert(upserts, refresh=refresh)
                if deletes:
                    backend.delete(deletes)
            except Exception as exc:
                error: str | None = f"{exc.__class__.__name__}: {exc}"[:2000]
            else:
                error = None
                s.execute(delete(IndexOutbox).where(IndexOutbox.id.in_(ids)))
        if error is not None:
            _record_failure(store, ids, error)
            raise OutboxError(f"index write failed, {backlog(store)} change(s) kept in the outbox: {error}")
        done += len(ids)
        if progress:
            progress(len(ids))
