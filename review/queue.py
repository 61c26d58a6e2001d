"""The review queue: flagged claims waiting for an editor, most pressing first.

One entry per claim cluster (store/clusters.py): the cluster's best queued claim,
with the cluster's sightings, size and number of sources, so that variants of one
rumor do not flood the queue. Claims without a cluster are entries of their own.
Claims an editor marked urgent come first, in either order.

``query_queue`` is the filtered, paged form the web app uses (topic, source, label,
status, last-seen date range); ``list_queue`` is its first page over queued claims
(the ``piyao queue`` command).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from store.audit import ClaimQueued
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, utcnow

# Recency halves a claim's priority every this many days since it was last seen.
HALF_LIFE_DAYS = 3.0
# Editors read dates in Beijing time; the store keeps naive UTC.
BEIJING_OFFSET = dt.timedelta(hours=8)


def priority(score: float, sightings: int, last_seen: dt.datetime, now: dt.datetime | None = None) -> float:
    """score × log-damped sightings × recency decay."""
    now = now or utcnow()
    age_days = max(0.0, (now - last_seen).total_seconds() / 86400)
    return score * (1.0 + math.log(max(1, sightings))) * 0.5 ** (age_days / HALF_LIFE_DAYS)


def uncertainty(score: float) -> float:
    """1 at score 0.5 (the model cannot tell), 0 at 0 or 1: editors' decisions there teach the model most."""
    return 1.0 - 2.0 * abs(float(score) - 0.5)


ORDERS = ("priority", "uncertainty")
# Statuses a flagged claim can have in the queue's views; "all" is every one of them.
STATUSES = ("queued", "confirmed", "dismissed", "needs_debunk")


def enqueue_flagged(store: Store, *, actor: str = "pipeline") -> int:
    """Move flagged, newly classified claims into the queue; returns how many."""
    n = 0
    with store.session() as s:
        for c in s.scalars(select(Claim).where(Claim.status == "new", Claim.flagged.is_(True))).all():
            c.status = "queued"
            ClaimQueued(actor, c.id, {"status": "new"}, {"status": "queued", "score": c.score}).record(s)
            n += 1
    return n


@dataclass
class QueueEntry:
    claim_id: int
    text: str
    source: str
    url: str | None
    score: float
    label: str | None
    sightings: int
    last_seen: dt.datetime
    priority: float
    matches: list[dict[str, object]] = field(default_factory=list)
    # The claim's cluster: its id (None: not clustered), claims in it, distinct sources.
    # sightings and last_seen above are the cluster's when the claim has one.
    cluster_id: int | None = None
    cluster_size: int = 1
    sources: int = 1
    topic: str | None = None
    explanation: dict[str, object] | None = None
    urgent: bool = False
    status: str = "queued"
    # The claim's version (optimistic locking: bulk actions send it back).
    version: int = 0
    first_seen: dt.datetime | None = None

    @property
    def uncertainty(self) -> float:
        return uncertainty(self.score)


@dataclass(frozen=True)
class QueueFilters:
    """What the queue shows. Dates are Beijing calendar days of the entry's last sighting, both inclusive."""

    status: str = "queued"
    topic: str | None = None
    source: str | None = None
    label: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def __post_init__(self) -> None:
        if self.status != "all" and self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected all or one of {', '.join(STATUSES)}")


@dataclass
class QueuePage:
    entries: list[QueueEntry]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


def _utc_bounds(filters: QueueFilters) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) in naive UTC for the Beijing days ``date_from`` … ``date_to``."""
    start = end = None
    if filters.date_from is not None:
        start = dt.datetime.combine(filters.date_from, dt.time()) - BEIJING_OFFSET
    if filters.date_to is not None:
        end = dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time()) - BEIJING_OFFSET
    return start, end


@dataclass
class _Row:
    id: int
    score: float
    sightings: int
    last_seen: dt.datetime
    cluster_id: int | None
    urgent: bool


def _match_dicts(matches: list[ClaimMatch]) -> list[dict[str, object]]:
    return [{"debunk_id": m.debunk_id, "title": m.debunk.title, "url": m.debunk.url, "source": m.debunk.source,
             "score": round(m.score, 4), "decision": m.decision} for m in matches]


def query_queue(store: Store, filters: QueueFilters | None = None, *, order: str = "priority", page: int = 1,
                page_size: int = 20, now: dt.datetime | None = None) -> QueuePage:
    """One page of the queue under ``filters``: one entry per cluster, urgent first, then by ``order``.

    A cluster's entry is its most pressing claim among those the filters admit (urgent first,
    then priority), counted with the cluster's sightings and last sighting; the date range
    applies to that last sighting. An entry whose claim has no matched debunks shows those
    of its best matched variant.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown queue order {order!r}; expected one of {', '.join(ORDERS)}")
    filters = filters or QueueFilters()
    page, page_size = max(1, int(page)), max(1, int(page_size))
    now = now or utcnow()
    # Only the columns the ranking needs, with the cluster's counters joined in: one query, plain tuples
    # (ORM objects for every queued claim and cluster cost more than the ranking as the queue grows).
    q = (select(Claim.id, Claim.score, Claim.sightings, Claim.last_seen, Claim.cluster_id, Claim.urgent,
                ClaimCluster.sightings, ClaimCluster.last_seen)
         .outerjoin(ClaimCluster, ClaimCluster.id == Claim.cluster_id))
    q = q.where(Claim.status.in_(STATUSES) if filters.status == "all" else Claim.status == filters.status)
    if filters.topic:
        q = q.where(Claim.topic == filters.topic)
    if filters.source:
        q = q.where(Claim.source == filters.source)
    if filters.label:
        q = q.where(Claim.label == filters.label)
    start, end = _utc_bounds(filters)
    with store.session() as s:
        rows: list[tuple[_Row, tuple[int, int, dt.datetime] | None]] = []
        for t in s.execute(q):
            row = _Row(t[0], t[1] or 0.0, t[2] or 1, t[3], t[4], bool(t[5]))
            # (cluster id, its sightings, its last sighting), or None: no cluster (or one deleted meanwhile).
            rows.append((row, (t[4], t[6], t[7]) if t[4] is not None and t[6] is not None else None))
        groups: dict[object, list[tuple[tuple[Any, ...], _Row, float, tuple[int, int, dt.datetime] | None]]] = {}
        for r, ck in rows:
            sightings = max(ck[1], r.sightings) if ck is not None else r.sightings
            last_seen = max(ck[2], r.last_seen) if ck is not None else r.last_seen
            pr = priority(r.score, sightings, last_seen, now)
            key: object = ("cluster", ck[0]) if ck is not None else ("claim", r.id)
            groups.setdefault(key, []).append(((not r.urgent, -pr, r.id), r, pr, ck))
        ranked: list[tuple[tuple[Any, ...], _Row, float, list[int]]] = []
        for members in groups.values():
            members.sort(key=lambda m: m[0])
            _, rep, pr, ck = members[0]
            last_seen = max(ck[2], rep.last_seen) if ck is not None else rep.last_seen
            if (start is not None and last_seen < start) or (end is not None and last_seen >= end):
                continue
            if order == "uncertainty":
                sort_key: tuple[Any, ...] = (not rep.urgent, -uncertainty(rep.score), -pr, rep.id)
            else:
                sort_key = (not rep.urgent, -pr, rep.id)
            ranked.append((sort_key, rep, pr, [m[1].id for m in members[1:]]))
        ranked.sort(key=lambda t: t[0])
        total = len(ranked)
        chosen = ranked[(page - 1) * page_size: page * page_size]
        want = [rep.id for _, rep, _, _ in chosen]
        full = {c.id: c for c in s.scalars(
            select(Claim).where(Claim.id.in_(want)).options(selectinload(Claim.matches).selectinload(ClaimMatch.debunk))
        )} if want else {}
        page_clusters = {c.cluster_id for c in full.values() if c.cluster_id is not None}
        clusters = {k.id: k for k in s.scalars(select(ClaimCluster).where(ClaimCluster.id.in_(page_clusters)))} if page_clusters else {}
        # Variants' matches, for entries whose own claim was matched with nothing.
        chosen = [t for t in chosen if t[1].id in full]  # a claim deleted meanwhile drops out
        bare = {rep.id: variants for _, rep, _, variants in chosen if variants and not full[rep.id].matches}
        variant_ids = [v for variants in bare.values() for v in variants]
        variant_matches: dict[int, list[ClaimMatch]] = {}
        for i in range(0, len(variant_ids), 500):
            for m in s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id.in_(variant_ids[i:i + 500]))
                               .options(selectinload(ClaimMatch.debunk)).order_by(ClaimMatch.rank)):
                variant_matches.setdefault(m.claim_id, []).append(m)
        entries = []
        for _, rep, pr, variants in chosen:
            c = full[rep.id]
            k = clusters.get(c.cluster_id) if c.cluster_id is not None else None
            matches = list(c.matches)
            if not matches:
                matches = next((variant_matches[v] for v in variants if variant_matches.get(v)), [])
            entries.append(QueueEntry(
                claim_id=c.id,
                text=c.text,
                source=c.source,
                url=c.url,
                score=c.score or 0.0,
                label=c.label,
                sightings=max(k.sightings, c.sightings) if k is not None else c.sightings,
                last_seen=max(k.last_seen, c.last_seen) if k is not None else c.last_seen,
                priority=pr,
                matches=_match_dicts(matches),
                cluster_id=k.id if k is not None else None,
                cluster_size=k.size if k is not None else 1,
                sources=k.sources if k is not None else 1,
                topic=c.topic,
                explanation=c.explanation,
                urgent=bool(c.urgent),
                status=c.status,
                version=c.version,
                first_seen=min(k.first_seen, c.first_seen) if k is not None else c.first_seen,
            ))
    return QueuePage(entries, total, page, page_size)


def list_queue(store: Store, *, limit: int = 20, order: str = "priority") -> list[QueueEntry]:
    """The queue, one entry per cluster: its most pressing queued claim, counted with the cluster's sightings.

    ``order="uncertainty"`` puts the claims the model is least sure about first (active
    learning: an editor's decision there is the most useful training label).
    """
    return query_queue(store, QueueFilters(), order=order, page=1, page_size=limit).entries


def next_in_queue(store: Store, *, exclude: int | None = None, order: str = "priority") -> int | None:
    """The claim an editor should look at next: the head of the queued claims, other than ``exclude``."""
    for e in query_queue(store, QueueFilters(), order=order, page=1, page_size=2).entries:
        if e.claim_id != exclude:
            return e.claim_id
    return None


def queue_sources(store: Store) -> list[str]:
    """The sources of flagged claims, for the queue's source filter."""
    with store.session() as s:
        return sorted(s.scalars(select(Claim.source).where(Claim.status.in_(STATUSES)).distinct()))
