"""The review queue: flagged claims waiting for an editor, most pressing first.

One entry per claim cluster (store/clusters.py): the cluster's best queued claim,
with the cluster's sightings, size and number of sources, so that variants of one
rumor do not flood the queue. Claims without a cluster are entries of their own.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from store.audit import ClaimQueued
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, utcnow

# Recency halves a claim's priority every this many days since it was last seen.
HALF_LIFE_DAYS = 3.0


def priority(score: float, sightings: int, last_seen: dt.datetime, now: dt.datetime | None = None) -> float:
    """score × log-damped sightings × recency decay."""
    now = now or utcnow()
    age_days = max(0.0, (now - last_seen).total_seconds() / 86400)
    return score * (1.0 + math.log(max(1, sightings))) * 0.5 ** (age_days / HALF_LIFE_DAYS)


def uncertainty(score: float) -> float:
    """1 at score 0.5 (the model cannot tell), 0 at 0 or 1: editors' decisions there teach the model most."""
    return 1.0 - 2.0 * abs(float(score) - 0.5)


ORDERS = ("priority", "uncertainty")


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

    @property
    def uncertainty(self) -> float:
        return uncertainty(self.score)


def list_queue(store: Store, *, limit: int = 20, order: str = "priority") -> list[QueueEntry]:
    """The queue, one entry per cluster: its most pressing queued claim, counted with the cluster's sightings.

    ``order="uncertainty"`` puts the claims the model is least sure about first (active
    learning: an editor's decision there is the most useful training label).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown queue order {order!r}; expected one of {', '.join(ORDERS)}")
    now = utcnow()
    with store.session() as s:
        claims = s.scalars(
            select(Claim)
            .where(Claim.status == "queued")
            .options(selectinload(Claim.matches).selectinload(ClaimMatch.debunk))
        ).all()
        cluster_ids = {c.cluster_id for c in claims if c.cluster_id is not None}
        clusters = {k.id: k for k in s.scalars(select(ClaimCluster).where(ClaimCluster.id.in_(cluster_ids)))} if cluster_ids else {}
        best: dict[object, QueueEntry] = {}
        for c in claims:
            k = clusters.get(c.cluster_id) if c.cluster_id is not None else None
            sightings = max(k.sightings, c.sightings) if k is not None else c.sightings
            last_seen = max(k.last_seen, c.last_seen) if k is not None else c.last_seen
            entry = QueueEntry(
                claim_id=c.id,
                text=c.text,
                source=c.source,
                url=c.url,
                score=c.score or 0.0,
                label=c.label,
                sightings=sightings,
                last_seen=last_seen,
                priority=priority(c.score or 0.0, sightings, last_seen, now),
                matches=[
                    {"title": m.debunk.title, "url": m.debunk.url, "source": m.debunk.source, "score": round(m.score, 4)}
                    for m in c.matches
                ],
                cluster_id=k.id if k is not None else None,
                cluster_size=k.size if k is not None else 1,
                sources=k.sources if k is not None else 1,
                topic=c.topic,
                explanation=c.explanation,
            )
            key: object = ("cluster", k.id) if k is not None else ("claim", c.id)
            held = best.get(key)
            if held is None or (-entry.priority, entry.claim_id) < (-held.priority, held.claim_id):
                if held is not None and not entry.matches:
                    entry.matches = held.matches  # keep the debunks a variant was matched with
                best[key] = entry
            elif not held.matches and entry.matches:
                held.matches = entry.matches
        entries = list(best.values())
    if order == "uncertainty":
        entries.sort(key=lambda e: (-e.uncertainty, -e.priority, e.claim_id))
    else:
        entries.sort(key=lambda e: (-e.priority, e.claim_id))
    return entries[:limit]
