"""Claim clusters: variants of one rumor join one cluster; the review queue shows one entry per cluster."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import create_engine, select, text, update

from review.queue import list_queue
from store.clusters import ClaimClusterer, claim_minhash, claim_shingles
from store.db import alembic_config, open_store
from store.models import Claim, ClaimCluster
from store.records import ClaimIn
from store.writes import add_claim

RUMOR = "紧急扩散！专家提醒：隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌，赶紧告诉家里的老人和孩子"
VARIANTS = [
    ("weibo", RUMOR),
    ("weibo", RUMOR + "！！转发"),
    ("wechat", "【转】专家提醒：隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌，赶紧告诉家里的老人和孩子"),
    ("wechat", "紧急扩散！！专家提醒：隔夜的西红柿炒鸡蛋千万不能吃，会产生大量的亚硝酸盐，吃了容易致癌，赶紧告诉家里的老人和孩子"),
    ("douyin", "专家提醒：隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌，赶紧告诉家里的老人和孩子们 #健康#"),
]
UNRELATED = ("weibo", "网传5G基站辐射会导致附近居民失眠脱发，通信专家表示基站电磁辐射远低于国家标准限值")


def _add_all(store) -> list[int]:
    ids = []
    with store.session() as s:
        for source, body in VARIANTS:
            claim, created = add_claim(s, ClaimIn(source=source, text=body))
            assert created
            ids.append(claim.id)
    return ids


def test_shingles_are_three_token_windows() -> None:
    grams = claim_shingles("隔夜的西红柿炒鸡蛋不能吃")
    assert grams and all(len(g.split(" ")) == 3 for g in grams)
    assert claim_minhash(VARIANTS[0][1]).jaccard(claim_minhash(VARIANTS[4][1])) >= 0.6
    assert claim_minhash(VARIANTS[0][1]).jaccard(claim_minhash(UNRELATED[1])) < 0.3


def test_variants_from_three_sources_are_one_cluster(store) -> None:
    ids = _add_all(store)
    with store.session() as s:
        other, created = add_claim(s, ClaimIn(source=UNRELATED[0], text=UNRELATED[1]))
        assert created
        other_id = other.id
    with store.session() as s:
        claims = {c.id: c for c in s.scalars(select(Claim))}
        assert len({claims[i].cluster_id for i in ids}) == 1
        cluster = s.get(ClaimCluster, claims[ids[0]].cluster_id)
        assert (cluster.size, cluster.sightings, cluster.sources) == (5, 5, 3)
        assert sorted(cluster.source_names) == ["douyin", "wechat", "weibo"]
        assert cluster.representative_claim_id == ids[0]
        assert all(claims[i].minhash for i in ids)
        lone = s.get(ClaimCluster, claims[other_id].cluster_id)
        assert lone.id != cluster.id and (lone.size, lone.sightings, lone.sources) == (1, 1, 1)
        assert lone.representative_claim_id == other_id


def test_exact_text_counts_a_sighting_and_a_new_source(store) -> None:
    ids = _add_all(store)
    with store.session() as s:
        again, created = add_claim(s, ClaimIn(source="weibo", text=RUMOR))
        assert not created and again.id == ids[0] and again.sightings == 2
        copied, created = add_claim(s, ClaimIn(source="toutiao", text=RUMOR))  # same text, another platform
        assert not created and copied.id == ids[0] and copied.sightings == 3
    with store.session() as s:
        cluster = s.get(ClaimCluster, s.get(Claim, ids[0]).cluster_id)
        assert (cluster.size, cluster.sightings, cluster.sources) == (5, 7, 4)
        assert s.scalar(select(ClaimCluster.id).order_by(ClaimCluster.id.desc()).limit(1)) == cluster.id


def test_lsh_is_rebuilt_from_stored_signatures(store, db_url) -> None:
    ids = _add_all(store)
    with store.session() as s:  # claims stored before clustering existed: no signature
        s.execute(update(Claim).where(Claim.id == ids[0]).values(minhash=None))
    store.close()
    reopened = open_store(db_url)  # a new process: a new, empty session cache
    try:
        with reopened.session() as s:
            late, created = add_claim(s, ClaimIn(source="kuaishou", text="扩散：专家提醒隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌，告诉家里的老人和孩子"))
            assert created
            first = s.get(Claim, ids[0])
            assert late.cluster_id == first.cluster_id
            assert first.minhash  # recomputed from the text and stored
            cluster = s.get(ClaimCluster, late.cluster_id)
            assert (cluster.size, cluster.sightings, cluster.sources) == (6, 6, 4)
    finally:
        reopened.close()


def test_queue_shows_one_entry_per_cluster(store) -> None:
    ids = _add_all(store)
    with store.session() as s:
        other, _ = add_claim(s, ClaimIn(source=UNRELATED[0], text=UNRELATED[1]))
        other_id = other.id
        for i, cid in enumerate(ids + [other_id]):
            s.execute(update(Claim).where(Claim.id == cid).values(status="queued", flagged=True, score=0.9 - 0.01 * i))
    entries = list_queue(store, limit=20)
    assert len(entries) == 2
    top = entries[0]
    assert top.claim_id == ids[0]  # the best-scored variant stands for the cluster
    assert (top.cluster_size, top.sightings, top.sources) == (5, 5, 3)
    assert top.cluster_id is not None
    lone = entries[1]
    assert lone.claim_id == other_id and (lone.cluster_size, lone.sightings, lone.sources) == (1, 1, 1)
    assert top.priority > lone.priority


def test_migration_puts_existing_claims_in_their_own_clusters(db_url) -> None:
    cfg = alembic_config(db_url)
    if db_url.startswith("sqlite:///"):
        from pathlib import Path

        Path(db_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(cfg, "0001")
    engine = create_engine(db_url)
    now = dt.datetime(2025, 7, 1, 12, 0)
    with engine.begin() as conn:
        for i, (source, body) in enumerate(VARIANTS[:3]):
            conn.execute(
                text(
                    "INSERT INTO claims (source, external_id, text, first_seen, last_seen, sightings, content_hash, flagged, status, version) "
                    "VALUES (:s, :e, :t, :n, :n, :k, :h, false, 'new', 1)"
                ),
                {"s": source, "e": f"x{i}", "t": body, "n": now, "k": i + 1, "h": f"{i:064d}"},
            )
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT c.id, c.cluster_id, k.representative_claim_id, k.size, k.sightings, k.sources FROM claims c JOIN claim_clusters k ON k.id = c.cluster_id ORDER BY c.id")).all()
    assert len(rows) == 3 and len({r[1] for r in rows}) == 3
    assert [(r[0] == r[2], r[3], r[4], r[5]) for r in rows] == [(True, 1, 1, 1), (True, 1, 2, 1), (True, 1, 3, 1)]
    command.downgrade(cfg, "0001")
    command.upgrade(cfg, "head")  # and back again (SQLite keeps the emptied cluster_id column)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM claims WHERE cluster_id IS NULL")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM seen_urls")).scalar() == 0
    engine.dispose()


def test_a_given_clusterer_is_used_even_while_empty(store) -> None:
    """add_claim(clusterer=...) uses that clusterer from the first claim on, across sessions, instead of
    building each session its own from every stored signature (an empty clusterer is falsy)."""
    with store.session() as s:
        clusterer = ClaimClusterer(s)
    assert len(clusterer) == 0
    ids = []
    for source, body in VARIANTS:
        with store.session() as s:
            claim, created = add_claim(s, ClaimIn(source=source, text=body), clusterer=clusterer)
            assert created and not [k for k in s.info if isinstance(k, tuple) and k and k[0] == "piyao_claim_clusterer"]
            ids.append(claim.id)
    assert len(clusterer) == len(VARIANTS)
    with store.session() as s:
        assert len({s.get(Claim, i).cluster_id for i in ids}) == 1
