"""The queue's ranking, done by the database, against a plain Python reading of the same rules.

The rules (review/queue.py): one entry per cluster (a claim without a cluster is its own entry); a
cluster's entry is its urgent-first, then highest-priority, then lowest-id claim among those the filters
admit; priority = score × (1 + ln sightings) × 0.5^(age / 3 days) with the
cluster's sightings and last sighting when larger; the date range applies to the entry's last sighting;
entries sort urgent first, then by priority (or by uncertainty, then priority), then id. An entry whose
claim has no matches shows those of its first matched variant.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import pytest

from review.queue import BEIJING_OFFSET, STATUSES, QueueFilters, priority, query_queue, uncertainty
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk

NOW = dt.datetime(2026, 6, 10, 12, 0, 0)
TOPICS = ["health_wellness", "food_safety", "other"]
SOURCES = ["weibo", "wechat", "douyin"]
LABELS = ["rumor", "pseudoscience", "misleading"]


def _seed(store: Store, rnd: random.Random, n: int = 90) -> None:
    """Claims in every status, some in clusters (with larger or smaller counters than their claims),
    ties in score and time, urgent ones, matches."""
    with store.session() as s:
        debunks = []
        for i in range(6):
            d = Debunk(url=f"https://example.org/d/{i}", title=f"辟谣 {i}", source="kepu", text="正文" * 50, content_hash=f"h{i}")
            s.add(d)
            debunks.append(d)
        clusters = []
        for i in range(12):
            k = ClaimCluster(size=1, sightings=rnd.choice([1, 2, 5, 40]), sources=1,
                             first_seen=NOW - dt.timedelta(days=20), last_seen=NOW - dt.timedelta(hours=rnd.choice([1, 30, 200])))
            s.add(k)
            clusters.append(k)
        s.flush()
        scores: list[float | None] = [0.0, 0.5, 0.62, 0.7, 0.7, 0.93, 1.0, None]
        for i in range(n):
            seen = NOW - dt.timedelta(hours=rnd.choice([0, 2, 2, 26, 49, 100, 400]), minutes=rnd.choice([0, 0, 17]))
            roll = rnd.random()
            cluster_id = rnd.choice(clusters).id if roll < 0.6 else None
            c = Claim(source=rnd.choice(SOURCES), text=f"说法 {i}", content_hash=f"c{i}", external_id=f"e{i}",
                      score=rnd.choice(scores), label=rnd.choice(LABELS), topic=rnd.choice(TOPICS), flagged=True,
                      status=rnd.choice([*STATUSES, "queued", "queued", "new"]), urgent=rnd.random() < 0.1,
                      sightings=rnd.choice([1, 1, 3, 60]), first_seen=seen - dt.timedelta(hours=1), last_seen=seen,
                      cluster_id=cluster_id)
            s.add(c)
            s.flush()
            if rnd.random() < 0.4:
                for rank, d in enumerate(rnd.sample(debunks, rnd.choice([1, 2, 3])), 1):
                    s.add(ClaimMatch(claim_id=c.id, debunk_id=d.id, rank=rank, score=round(rnd.random(), 3), decision="suggest"))


def _reference(store: Store, filters: QueueFilters, order: str, page: int, size: int) -> tuple[list[tuple[int, float, list[int]]], int]:
    """The rules above, in Python over plain rows: [(claim id, priority, matched debunk ids)], total."""
    with store.session() as s:
        claims = [c for c in s.query(Claim).all()
                  if (c.status in STATUSES if filters.status == "all" else c.status == filters.status)
                  and (not filters.topic or c.topic == filters.topic) and (not filters.source or c.source == filters.source)
                  and (not filters.label or c.label == filters.label)]
        clusters = {k.id: k for k in s.query(ClaimCluster).all()}
        matches: dict[int, list[int]] = {}
        for m in s.query(ClaimMatch).order_by(ClaimMatch.claim_id, ClaimMatch.rank).all():
            matches.setdefault(m.claim_id, []).append(m.debunk_id)
    groups: dict[object, list[tuple[tuple[Any, ...], Claim, float, dt.datetime]]] = {}
    for c in claims:
        k = clusters.get(c.cluster_id) if c.cluster_id is not None else None
        sightings = max(k.sightings, c.sightings or 1) if k else (c.sightings or 1)
        last = max(k.last_seen, c.last_seen) if k else c.last_seen
        pr = priority(c.score or 0.0, sightings, last, NOW)
        groups.setdefault(("k", k.id) if k else ("c", c.id), []).append(((not c.urgent, -pr, c.id), c, pr, last))
    start = end = None
    if filters.date_from:
        start = dt.datetime.combine(filters.date_from, dt.time()) - BEIJING_OFFSET
    if filters.date_to:
        end = dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time()) - BEIJING_OFFSET
    entries = []
    for members in groups.values():
        members.sort(key=lambda m: m[0])
        _, rep, pr, last = members[0]
        if (start and last < start) or (end and last >= end):
            continue
        shown = matches.get(rep.id) or next((matches[m[1].id] for m in members[1:] if matches.get(m[1].id)), [])
        key = (not rep.urgent, -uncertainty(rep.score or 0.0), -pr, rep.id) if order == "uncertainty" else (not rep.urgent, -pr, rep.id)
        entries.append((key, rep.id, pr, shown))
    entries.sort(key=lambda e: e[0])
    return [(cid, pr, shown) for _, cid, pr, shown in entries[(page - 1) * size: page * size]], len(entries)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_database_ranking_agrees_with_the_rules(store: Store, seed: int) -> None:
    rnd = random.Random(seed)
    _seed(store, rnd)
    day = (NOW + BEIJING_OFFSET).date()
    cases = [QueueFilters(), QueueFilters(status="all"), QueueFilters(topic="food_safety"), QueueFilters(source="weibo", label="rumor"),
             QueueFilters(status="all", date_from=day - dt.timedelta(days=1)), QueueFilters(date_to=day - dt.timedelta(days=2)),
             QueueFilters(status="confirmed", date_from=day - dt.timedelta(days=4), date_to=day)]
    checked = 0
    for filters in cases:
        for order in ("priority", "uncertainty"):
            for page, size in ((1, 7), (2, 7), (1, 100), (50, 7)):
                want, want_total = _reference(store, filters, order, page, size)
                got = query_queue(store, filters, order=order, page=page, page_size=size, now=NOW)
                assert got.total == want_total, (filters, order)
                assert [e.claim_id for e in got.entries] == [cid for cid, _, _ in want], (filters, order, page)
                for e, (_, pr, shown) in zip(got.entries, want):
                    assert math.isclose(e.priority, pr, rel_tol=1e-9)
                    assert [m["debunk_id"] for m in e.matches] == shown
                checked += len(want)
    assert checked > 100  # the cases are not all empty
