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

from sqlalchemy import DateTime, and_, case, func, literal, select

from store.audit import ClaimQueued
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, utcnow

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


def _matches_of(s: Any, claim_ids: list[int]) -> dict[int, list[dict[str, object]]]:
    """Each claim's matches in rank order, as the queue shows them: plain rows, the debunk's title,
    URL and source joined in (not the debunks' texts)."""
    out: dict[int, list[dict[str, object]]] = {}
    for i in range(0, len(claim_ids), 500):
        rows = s.execute(select(ClaimMatch.claim_id, ClaimMatch.debunk_id, Debunk.title, Debunk.url, Debunk.source,
                                ClaimMatch.score, ClaimMatch.decision)
                         .join(Debunk, Debunk.id == ClaimMatch.debunk_id)
                         .where(ClaimMatch.claim_id.in_(claim_ids[i:i + 500])).order_by(ClaimMatch.claim_id, ClaimMatch.rank))
        for cid, did, title, url, source, score, decision in rows:
            out.setdefault(cid, []).append({"debunk_id": did, "title": title, "url": url, "source": source,
                                            "score": round(score, 4), "decision": decision})
    return out


def _days(col: Any, dialect: str) -> Any:
    """A timestamp as a number of days (julian days on SQLite, days since the epoch on PostgreSQL):
    only differences are used."""
    if dialect == "sqlite":
        return func.julianday(col)
    return func.extract("epoch", col) / 86400.0


def _ranked(filters: QueueFilters, now: dt.datetime, dialect: str) -> Any:
    """The filtered claims with their cluster's group key, effective last sighting and rank within
    the cluster (1: the cluster's entry), ranked by the database.

    The priority ``score × (1 + ln sightings) × 0.5^(age / half-life)`` is compared through its
    logarithm, ``ln score + ln(1 + ln sightings) − age·ln2 / half-life``: the same order, and
    computed by the database over every queued claim rather than row by row in Python.
    """
    has_k = ClaimCluster.id.is_not(None)
    c_sight = case((func.coalesce(Claim.sightings, 0) > 1, Claim.sightings), else_=1)
    sightings = case((and_(has_k, ClaimCluster.sightings > c_sight), ClaimCluster.sightings), else_=c_sight)
    last_eff = case((and_(has_k, ClaimCluster.last_seen > Claim.last_seen), ClaimCluster.last_seen), else_=Claim.last_seen)
    age = _days(literal(now, DateTime), dialect) - _days(last_eff, dialect)
    score = func.coalesce(Claim.score, 0.0)
    log_pr = case((score > 0, func.ln(score) + func.ln(1.0 + func.ln(sightings))
                   - case((age > 0, age), else_=0.0) * (math.log(2.0) / HALF_LIFE_DAYS)),
                  else_=-1e300)  # priority 0: after every other
    urgent = func.coalesce(Claim.urgent, False)
    group = case((has_k, ClaimCluster.id), else_=-Claim.id)
    rn = func.row_number().over(partition_by=group, order_by=(urgent.desc(), log_pr.desc(), Claim.id.asc()))
    q = (select(Claim.id.label("id"), group.label("grp"), last_eff.label("last_eff"), log_pr.label("log_pr"),
                urgent.label("urgent"), score.label("score"), rn.label("rn"))
         .outerjoin(ClaimCluster, ClaimCluster.id == Claim.cluster_id))
    q = q.where(Claim.status.in_(STATUSES) if filters.status == "all" else Claim.status == filters.status)
    if filters.topic:
        q = q.where(Claim.topic == filters.topic)
    if filters.source:
        q = q.where(Claim.source == filters.source)
    if filters.label:
        q = q.where(Claim.label == filters.label)
    return q.subquery("ranked")


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
    dialect = store.engine.dialect.name
    ranked = _ranked(filters, now, dialect)
    start, end = _utc_bounds(filters)
    # One entry per cluster: its first-ranked claim, if its (cluster's) last sighting is in the range.
    heads = select(ranked.c.id, ranked.c.grp).where(ranked.c.rn == 1)
    if start is not None:
        heads = heads.where(ranked.c.last_eff >= start)
    if end is not None:
        heads = heads.where(ranked.c.last_eff < end)
    if order == "uncertainty":
        heads = heads.order_by(ranked.c.urgent.desc(), func.abs(ranked.c.score - 0.5).asc(), ranked.c.log_pr.desc(), ranked.c.id.asc())
    else:
        heads = heads.order_by(ranked.c.urgent.desc(), ranked.c.log_pr.desc(), ranked.c.id.asc())
    with store.session() as s:
        chosen_rows = s.execute(heads.add_columns(func.count().over().label("total"))
                                .limit(page_size).offset((page - 1) * page_size)).all()
        if chosen_rows:
            total = int(chosen_rows[0].total)
        else:
            total = int(s.scalar(select(func.count()).select_from(heads.order_by(None).subquery())) or 0)
        want = [r.id for r in chosen_rows]
        full = {c.id: c for c in s.scalars(select(Claim).where(Claim.id.in_(want)))} if want else {}
        own = _matches_of(s, want)
        page_clusters = {c.cluster_id for c in full.values() if c.cluster_id is not None}
        clusters = {k.id: k for k in s.scalars(select(ClaimCluster).where(ClaimCluster.id.in_(page_clusters)))} if page_clusters else {}
        chosen = [(r.id, r.grp) for r in chosen_rows if r.id in full]  # a claim deleted meanwhile drops out
        # Variants' matches, for entries whose own claim was matched with nothing: the other claims of
        # its cluster that the filters admit, in rank order.
        bare = {grp for cid, grp in chosen if not own.get(cid) and grp > 0}
        variants: dict[int, list[int]] = {}
        if bare:
            for vid, grp in s.execute(select(ranked.c.id, ranked.c.grp).where(ranked.c.grp.in_(bare), ranked.c.rn > 1)
                                      .order_by(ranked.c.grp, ranked.c.rn)):
                variants.setdefault(grp, []).append(vid)
        variant_matches = _matches_of(s, [v for vs in variants.values() for v in vs])
        entries = []
        for cid, grp in chosen:
            c = full[cid]
            k = clusters.get(c.cluster_id) if c.cluster_id is not None else None
            sightings = max(k.sightings, c.sightings or 1) if k is not None else (c.sightings or 1)
            last_seen = max(k.last_seen, c.last_seen) if k is not None else c.last_seen
            pr = priority(c.score or 0.0, sightings, last_seen, now)
            matches = own.get(cid, [])
            if not matches:
                matches = next((variant_matches[v] for v in variants.get(grp, []) if variant_matches.get(v)), [])
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
                matches=matches,
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
