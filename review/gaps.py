"""The gap list: rumors no debunk answers yet, ranked by how much they are seen and how fast that grows.

This is what the editors must write next. A **gap** is one claim cluster (variants of one
rumor, store/clusters.py) or one claim without a cluster, such that either

* **no debunk answers it**: at least one of its claims is flagged and has been matched
  (``claims.matched_at`` set), none of its claims has a stored match with decision ``auto`` or
  ``suggest`` (index/matching.py; ``none`` matches, and matches stored before decisions existed,
  do not answer), and none of its claims has been ``dismissed`` or ``confirmed`` by an editor; or
* **an editor asked for one**: one of its claims has status ``needs_debunk`` (verdict
  ``unproven``, review/decisions.py). Such a gap closes only when an ``auto`` or ``suggest``
  match points to a debunk stored *after* the editor's latest ``needs_debunk`` decision: the
  matches the editor had already seen did not answer the claim. Without a recorded review the
  editor's status stands until the editor changes it.

Claims that are flagged but not matched yet are not gaps: matching has not had its say.

**Ranking.** Sightings are logged per claim (``store.models.Sighting``, written by
``store.writes.add_claim``). For a gap, with ``w`` = ``window_hours`` and ``now``:

* ``sightings``: the cluster's total (``claim_clusters.sightings``; a lone claim's own count);
* ``recent``: sightings logged in ``(now - w, now]``; ``previous``: in ``(now - 2w, now - w]``;
* ``growth = (recent + 1) / (previous + 1)`` (add-one smoothing: 0 → 3 sightings is growth 4,
  a rumor seen steadily has growth 1, a fading one less than 1);
* ``recency = 0.5 ** (age_days / 3)``, ``age_days`` = days since the gap was last seen (the
  review queue's half-life, review.queue.HALF_LIFE_DAYS);
* ``rank = log1p(sightings) * sqrt(growth) * recency``.

The log damps sheer volume (a rumor seen 1,000 times is not 100 × as urgent as one seen 10
times), the square root lets a fast-growing rumor overtake a larger but steady one without
letting three fresh sightings outrank everything, and the decay sinks rumors nobody repeats any
more. Gaps are sorted by rank, highest first; ties go to more sightings, then more recent
sightings, then the later ``last_seen``, then the lower representative claim id, so the order
is fully deterministic.

``rematch_gaps`` re-runs matching on the gaps' claims (replacing their stored matches), so that
a debunk imported and indexed since closes the gaps it answers.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Protocol, Sequence

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from review.queue import HALF_LIFE_DAYS
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, Review, Sighting, utcnow

__all__ = ["ANSWERS", "CLOSED", "Gap", "gap_rank", "growth", "list_gaps", "rematch_gaps"]

# Match decisions that answer a claim, and editors' statuses that take a claim off the gap list.
ANSWERS = ("auto", "suggest")
CLOSED = ("dismissed", "confirmed")
NEEDS_DEBUNK = "needs_debunk"
# Ids per IN (...) list: far below SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500

Key = tuple[str, int]  # ("cluster", cluster id) or ("claim", claim id)


def growth(recent: int, previous: int) -> float:
    """(recent + 1) / (previous + 1): above 1 the rumor spreads faster than in the window before."""
    return (max(0, recent) + 1) / (max(0, previous) + 1)


def gap_rank(sightings: int, recent: int, previous: int, last_seen: dt.datetime, now: dt.datetime) -> float:
    """log1p(sightings) × sqrt(growth) × 0.5 ** (days since last seen / HALF_LIFE_DAYS); see the module doc."""
    age_days = max(0.0, (now - last_seen).total_seconds() / 86400)
    return math.log1p(max(0, sightings)) * math.sqrt(growth(recent, previous)) * 0.5 ** (age_days / HALF_LIFE_DAYS)


@dataclass
class Gap:
    """One rumor that needs a new debunk: its representative claim and the cluster's counts."""

    claim_id: int
    text: str
    topic: str | None
    label: str | None
    score: float  # the highest classifier score among the gap's claims
    sightings: int
    recent_sightings: int
    previous_sightings: int
    growth: float
    sources: int
    source_names: list[str]
    first_seen: dt.datetime
    last_seen: dt.datetime
    rank: float
    # The best stored match (a debunk that came closest without answering), for context; None: no match.
    closest: dict[str, Any] | None = None
    cluster_id: int | None = None
    cluster_size: int = 1
    # no_debunk (matching found none) or needs_debunk (an editor asked for one).
    reason: str = "no_debunk"
    # The gap's claims that matching looks at (flagged and matched, or needs_debunk), ascending.
    claim_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "text": self.text,
            "topic": self.topic,
            "label": self.label,
            "score": round(self.score, 4),
            "sightings": self.sightings,
            "recent_sightings": self.recent_sightings,
            "previous_sightings": self.previous_sightings,
            "growth": round(self.growth, 4),
            "rank": round(self.rank, 4),
            "sources": self.sources,
            "source_names": self.source_names,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "closest": self.closest,
            "cluster_id": self.cluster_id,
            "cluster_size": self.cluster_size,
            "reason": self.reason,
            "claim_ids": self.claim_ids,
        }


class _Matches(Protocol):
    def match(self, text: str) -> Sequence[Any]: ...


def _chunks(ids: Iterable[int], n: int = _CHUNK) -> Iterator[list[int]]:
    items = sorted(set(ids))
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _key(claim_id: int, cluster_id: int | None) -> Key:
    return ("cluster", cluster_id) if cluster_id is not None else ("claim", claim_id)


@dataclass
class _Group:
    key: Key
    candidates: set[int] = field(default_factory=set)  # flagged and matched, or needs_debunk
    requested: set[int] = field(default_factory=set)  # needs_debunk


def _gap_groups(s: Session) -> dict[Key, _Group]:
    """The gaps by key, each with the claims that make it one (see the module doc)."""
    groups: dict[Key, _Group] = {}
    rows = s.execute(
        select(Claim.id, Claim.cluster_id, Claim.status).where(
            or_(and_(Claim.flagged.is_(True), Claim.matched_at.is_not(None)), Claim.status == NEEDS_DEBUNK)
        )
    ).all()
    for cid, cluster_id, status in rows:
        g = groups.setdefault(_key(cid, cluster_id), _Group(_key(cid, cluster_id)))
        g.candidates.add(cid)
        if status == NEEDS_DEBUNK:
            g.requested.add(cid)
    if not groups:
        return groups
    closed = {_key(cid, k) for cid, k in s.execute(select(Claim.id, Claim.cluster_id).where(Claim.status.in_(CLOSED)))}
    # When each requested claim was last marked needs_debunk (its latest such review).
    asked: dict[Key, dt.datetime] = {}
    for cid, cluster_id, at in s.execute(
        select(Claim.id, Claim.cluster_id, func.max(Review.created_at))
        .join(Review, Review.claim_id == Claim.id)
        .where(Claim.status == NEEDS_DEBUNK, Review.decision == NEEDS_DEBUNK)
        .group_by(Claim.id, Claim.cluster_id)
    ):
        k = _key(cid, cluster_id)
        if at is not None and (k not in asked or at > asked[k]):
            asked[k] = at
    # The newest debunk that answers some claim of each group.
    answered: dict[Key, dt.datetime | None] = {}
    for cid, cluster_id, newest in s.execute(
        select(Claim.id, Claim.cluster_id, func.max(Debunk.created_at))
        .join(ClaimMatch, ClaimMatch.claim_id == Claim.id)
        .join(Debunk, Debunk.id == ClaimMatch.debunk_id)
        .where(ClaimMatch.decision.in_(ANSWERS))
        .group_by(Claim.id, Claim.cluster_id)
    ):
        k = _key(cid, cluster_id)
        held = answered.get(k)
        answered[k] = newest if held is None or (newest is not None and newest > held) else held
    out: dict[Key, _Group] = {}
    for k, g in groups.items():
        if g.requested:
            since, latest = asked.get(k), answered.get(k)
            if since is None or latest is None or latest <= since:
                out[k] = g
        elif k not in closed and k not in answered:
            out[k] = g
    return out


def _collect(s: Session, groups: dict[Key, _Group], now: dt.datetime, window: dt.timedelta) -> list[Gap]:
    cluster_ids = [k[1] for k in groups if k[0] == "cluster"]
    lone_ids = [k[1] for k in groups if k[0] == "claim"]
    clusters: dict[int, ClaimCluster] = {}
    members: dict[Key, list[Any]] = {}
    cols = (Claim.id, Claim.cluster_id, Claim.text, Claim.score, Claim.label, Claim.topic, Claim.status,
            Claim.sightings, Claim.source, Claim.first_seen, Claim.last_seen)  # fmt: skip
    for chunk in _chunks(cluster_ids):
        clusters.update({c.id: c for c in s.scalars(select(ClaimCluster).where(ClaimCluster.id.in_(chunk)))})
        for row in s.execute(select(*cols).where(Claim.cluster_id.in_(chunk))):
            members.setdefault(("cluster", row.cluster_id), []).append(row)
    for chunk in _chunks(lone_ids):
        for row in s.execute(select(*cols).where(Claim.id.in_(chunk))):
            members.setdefault(("claim", row.id), []).append(row)
    key_of = {row.id: k for k, rows in members.items() for row in rows}

    # Sightings in the two windows, from the log (by each claim's current cluster).
    recent_from, previous_from = now - window, now - 2 * window
    counts: dict[Key, list[int]] = {}
    for cid, cluster_id, recent, previous in s.execute(
        select(
            Claim.id,
            Claim.cluster_id,
            func.sum(case((Sighting.seen_at > recent_from, Sighting.count), else_=0)),
            func.sum(case((Sighting.seen_at <= recent_from, Sighting.count), else_=0)),
        )
        .join(Claim, Claim.id == Sighting.claim_id)
        .where(Sighting.seen_at > previous_from, Sighting.seen_at <= now)
        .group_by(Claim.id, Claim.cluster_id)
    ):
        k = _key(cid, cluster_id)
        if k in groups:
            c = counts.setdefault(k, [0, 0])
            c[0] += int(recent or 0)
            c[1] += int(previous or 0)

    # The closest debunk of each gap: its best stored match, whatever the decision.
    closest: dict[Key, tuple[tuple[float, int, int], dict[str, Any]]] = {}
    for chunk in _chunks(key_of):
        for m_claim, m_rank, m_score, m_decision, d_id, d_title, d_url, d_source in s.execute(
            select(ClaimMatch.claim_id, ClaimMatch.rank, ClaimMatch.score, ClaimMatch.decision,
                   Debunk.id, Debunk.title, Debunk.url, Debunk.source)  # fmt: skip
            .join(Debunk, Debunk.id == ClaimMatch.debunk_id)
            .where(ClaimMatch.claim_id.in_(chunk))
        ):
            k = key_of[m_claim]
            order = (-float(m_score), int(d_id), int(m_claim))
            if k not in closest or order < closest[k][0]:
                closest[k] = (order, {"debunk_id": d_id, "title": d_title, "url": d_url, "source": d_source,
                                      "score": round(float(m_score), 4), "decision": m_decision or "none"})  # fmt: skip

    gaps = []
    for k, g in groups.items():
        rows = members.get(k)
        if not rows:
            continue
        by_id = {r.id: r for r in rows}
        # The representative: a claim the editor asked about first, then the highest score, then the lowest id.
        pool = [by_id[i] for i in (g.requested or g.candidates) if i in by_id] or rows
        rep = min(pool, key=lambda r: (-(r.score or 0.0), r.id))
        cluster = clusters.get(k[1]) if k[0] == "cluster" else None
        own = sum(r.sightings or 0 for r in rows)
        sightings = max(cluster.sightings, own) if cluster is not None else own
        first_seen = min(r.first_seen for r in rows)
        last_seen = max(r.last_seen for r in rows)
        if cluster is not None:
            first_seen, last_seen = min(first_seen, cluster.first_seen), max(last_seen, cluster.last_seen)
            names = list(cluster.source_names or [])
        else:
            names = sorted({r.source for r in rows})
        recent, previous = counts.get(k, [0, 0])
        topic = rep.topic or next((r.topic for r in sorted(rows, key=lambda r: (-(r.score or 0.0), r.id)) if r.topic), None)
        gaps.append(
            Gap(
                claim_id=rep.id,
                text=rep.text,
                topic=topic,
                label=rep.label,
                score=max((r.score for r in rows if r.score is not None), default=0.0),
                sightings=sightings,
                recent_sightings=recent,
                previous_sightings=previous,
                growth=growth(recent, previous),
                sources=max(cluster.sources, len(names)) if cluster is not None else len(names),
                source_names=names,
                first_seen=first_seen,
                last_seen=last_seen,
                rank=gap_rank(sightings, recent, previous, last_seen, now),
                closest=closest[k][1] if k in closest else None,
                cluster_id=cluster.id if cluster is not None else None,
                cluster_size=len(rows),
                reason=NEEDS_DEBUNK if g.requested else "no_debunk",
                claim_ids=sorted(g.candidates),
            )
        )
    return gaps


def _sort_key(g: Gap) -> tuple[float, int, int, float, int]:
    return (-g.rank, -g.sightings, -g.recent_sightings, -g.last_seen.timestamp(), g.claim_id)


def list_gaps(
    store: Store,
    *,
    now: dt.datetime | None = None,
    window_hours: float = 24,
    limit: int | None = 50,
    min_sightings: int = 1,
) -> list[Gap]:
    """The rumors that need a new debunk, most pressing first (ranking: see the module doc).

    ``now``: the end of the recent window (naive UTC, like every stored time; default the current
    time). ``limit``: at most this many gaps (None: all). ``min_sightings``: leave out gaps seen
    fewer times.
    """
    if window_hours <= 0:
        raise ValueError("window_hours must be positive")
    now = now or utcnow()
    with store.session() as s:
        groups = _gap_groups(s)
        gaps = _collect(s, groups, now, dt.timedelta(hours=window_hours)) if groups else []
    gaps = [g for g in gaps if g.sightings >= min_sightings]
    gaps.sort(key=_sort_key)
    return gaps if limit is None else gaps[:limit]


def rematch_gaps(store: Store, matcher: _Matches, *, batch_size: int = 50) -> int:
    """Match the gaps' claims again (``matcher.match(text)``), replacing their stored matches;
    returns how many claims were re-matched.

    A debunk imported and indexed since the claims were last matched then answers them (an
    ``auto`` or ``suggest`` match) and closes their gap. Matching runs outside the write
    transactions; each batch of claims is written in one.
    """
    with store.session() as s:
        ids = sorted({cid for g in _gap_groups(s).values() for cid in g.candidates})
    done = 0
    for chunk in _chunks(ids, batch_size):
        with store.session() as s:
            texts: dict[int, str] = {cid: text for cid, text in s.execute(select(Claim.id, Claim.text).where(Claim.id.in_(chunk)))}
        found = {cid: list(matcher.match(text)) for cid, text in sorted(texts.items())}
        wanted = {x.debunk_id for ms in found.values() for x in ms}
        with store.session() as s:
            valid = set(s.scalars(select(Debunk.id).where(Debunk.id.in_(wanted)))) if wanted else set()
            now = utcnow()
            for cid, matches in found.items():
                claim = s.get(Claim, cid)
                if claim is None:  # deleted meanwhile
                    continue
                s.execute(delete(ClaimMatch).where(ClaimMatch.claim_id == cid))
                seen: set[int] = set()
                for rank, x in enumerate(matches, 1):
                    if x.debunk_id not in valid or x.debunk_id in seen:
                        continue
                    seen.add(x.debunk_id)
                    s.add(
                        ClaimMatch(
                            claim_id=cid,
                            debunk_id=x.debunk_id,
                            rank=rank,
                            score=float(x.score),
                            snippet=x.snippet,
                            decision=x.decision,
                            evidence_kind=x.evidence_kind or None,
                            evidence=(x.evidence or "")[:1000] or None,
                        )
                    )
                claim.matched_at = now
                done += 1
    return done
