"""The review queue: flagged claims waiting for an editor, most pressing first."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from store.audit import ClaimQueued
from store.db import Store
from store.models import Claim, ClaimMatch, utcnow

# Recency halves a claim's priority every this many days since it was last seen.
HALF_LIFE_DAYS = 3.0


def priority(score: float, sightings: int, last_seen: dt.datetime, now: dt.datetime | None = None) -> float:
    """score × log-damped sightings × recency decay."""
    now = now or utcnow()
    age_days = max(0.0, (now - last_seen).total_seconds() / 86400)
    return score * (1.0 + math.log(max(1, sightings))) * 0.5 ** (age_days / HALF_LIFE_DAYS)


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


def list_queue(store: Store, *, limit: int = 20) -> list[QueueEntry]:
    now = utcnow()
    with store.session() as s:
        claims = s.scalars(
            select(Claim)
            .where(Claim.status == "queued")
            .options(selectinload(Claim.matches).selectinload(ClaimMatch.debunk))
        ).all()
        entries = [
            QueueEntry(
                claim_id=c.id,
                text=c.text,
                source=c.source,
                url=c.url,
                score=c.score or 0.0,
                label=c.label,
                sightings=c.sightings,
                last_seen=c.last_seen,
                priority=priority(c.score or 0.0, c.sightings, c.last_seen, now),
                matches=[
                    {"title": m.debunk.title, "url": m.debunk.url, "source": m.debunk.source, "score": round(m.score, 4)}
                    for m in c.matches
                ],
            )
            for c in claims
        ]
    entries.sort(key=lambda e: (-e.priority, e.claim_id))
    return entries[:limit]
