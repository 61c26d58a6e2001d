"""The gap list: flagged claims no debunk answers, ranked by sightings and growth (review/gaps.py, `piyao gaps`)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from index.embedded import EmbeddedBackend
from index.matching import MatchCalibration, Matcher, match_stored_claims
from index.outbox import drain
from review.decisions import record_decision
from review.gaps import gap_rank, growth, list_gaps, rematch_gaps
from store.importer import import_debunks
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, Sighting
from store.records import ClaimIn, DebunkIn
from store.writes import DebunkWriter, add_claim

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "debunks"
CSV, JSONL = FIXTURES / "articles.csv", FIXTURES / "articles.jsonl"
NOW = dt.datetime(2026, 3, 10, 12, 0, 0)
H = dt.timedelta(hours=1)

WRAP = "用保鲜膜包着饭菜放进微波炉加热会致癌"  # answered by articles.jsonl only
TOFU = "吃腐乳会致癌，腐乳是发霉的豆腐，千万别吃！"  # answered by articles.csv
# Distinct rumors (they must not cluster together).
TEXTS = {
    "steady": "网传5G基站辐射会导致附近居民失眠脱发，通信专家表示基站电磁辐射远低于国家标准限值",
    "rising": "紧急扩散！隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌",
    "fading": "喝咖啡会让骨头里的钙流失，每天一杯咖啡十年后骨质疏松",
    "single": "用微波炉热牛奶会破坏全部营养还会产生致癌物质",
}


def _matcher(backend: EmbeddedBackend) -> Matcher:
    """BM25 only, with a calibration on how much of the claim the best passage covers: the decision
    does not depend on e5 vectors. Thresholds are explicit."""
    calibration = MatchCalibration(coef=[0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0], intercept=-2.5)
    return Matcher(backend, use_dense=False, calibration=calibration, suggest_threshold=0.5, auto_threshold=0.95)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(tmp_path / "index.sqlite")
    yield b
    b.close()


def _seen(store, text: str, times: list[dt.datetime], source: str = "weibo") -> int:
    """Add the claim once per time (the first creates it); returns its id."""
    cid = None
    for t in times:
        with store.session() as s:
            claim, _ = add_claim(s, ClaimIn(source=source, text=text), seen_at=t)
            cid = claim.id
    assert cid is not None
    return cid


def _flag(store, *ids: int, matched: bool = True, score: float = 0.8) -> None:
    with store.session() as s:
        for cid in ids:
            c = s.get(Claim, cid)
            c.flagged, c.score, c.label, c.status = True, score, "rumor", "queued"
            if matched:
                c.matched_at = NOW


# --------------------------------------------------------------------------- the sightings log
def test_add_claim_logs_every_sighting(store) -> None:
    t0 = NOW - 30 * H
    with store.session() as s:
        claim, created = add_claim(s, ClaimIn(source="weibo", text=TEXTS["steady"]), seen_at=t0)
        assert created
        # In the same transaction as the claim: visible before commit.
        rows = s.scalars(select(Sighting).where(Sighting.claim_id == claim.id)).all()
        assert [(r.cluster_id, r.seen_at, r.count) for r in rows] == [(claim.cluster_id, t0, 1)]
        cid = claim.id
    with store.session() as s:
        again, created = add_claim(s, ClaimIn(source="wechat", text=TEXTS["steady"]), seen_at=t0 + H)
        assert not created and again.id == cid
        add_claim(s, ClaimIn(source="weibo", text=TEXTS["steady"]))  # default: now
    with store.session() as s:
        rows = s.scalars(select(Sighting).where(Sighting.claim_id == cid).order_by(Sighting.id)).all()
        claim = s.get(Claim, cid)
        assert len(rows) == 3 == claim.sightings
        assert rows[1].seen_at == t0 + H and rows[2].seen_at > NOW - dt.timedelta(days=3650)
        assert {r.cluster_id for r in rows} == {claim.cluster_id}
        assert s.get(ClaimCluster, claim.cluster_id).sightings == 3
        # The log goes with its claim.
        s.delete(claim)
    with store.session() as s:
        assert s.scalars(select(Sighting)).all() == []


def test_a_rolled_back_claim_leaves_no_sighting(store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as s:
            add_claim(s, ClaimIn(source="weibo", text=TEXTS["single"]))
            raise RuntimeError("crawler died")
    with store.session() as s:
        assert s.scalars(select(Sighting)).all() == [] and s.scalars(select(Claim)).all() == []


# --------------------------------------------------------------------------- ranking
def _ranked_store(store) -> dict[str, int]:
    ids = {
        # 10 sightings, 5 in each window: growth 1.
        "steady": _seen(store, TEXTS["steady"], [NOW - 47 * H + i * H for i in range(5)] + [NOW - 20 * H + i * H for i in range(5)]),
        # 4 sightings, all in the last window: growth 5.
        "rising": _seen(store, TEXTS["rising"], [NOW - 4 * H + i * H for i in range(4)]),
        # 10 sightings, 8 before and 2 in the last window: growth 1/3.
        "fading": _seen(store, TEXTS["fading"], [NOW - 40 * H + i * H for i in range(8)] + [NOW - 3 * H, NOW - 2 * H]),
        # 1 sighting, just now: growth 2.
        "single": _seen(store, TEXTS["single"], [NOW - H]),
    }
    _flag(store, *ids.values())
    return ids


def test_ranking_by_sightings_and_growth(store) -> None:
    ids = _ranked_store(store)
    gaps = list_gaps(store, now=NOW)
    by_id = {g.claim_id: g for g in gaps}
    assert [g.claim_id for g in gaps] == [ids["rising"], ids["steady"], ids["fading"], ids["single"]]
    steady, rising, fading, single = (by_id[ids[k]] for k in ("steady", "rising", "fading", "single"))
    assert (steady.sightings, steady.recent_sightings, steady.previous_sightings, steady.growth) == (10, 5, 5, 1.0)
    assert (rising.sightings, rising.recent_sightings, rising.previous_sightings, rising.growth) == (4, 4, 0, 5.0)
    assert (fading.sightings, fading.recent_sightings, fading.previous_sightings) == (10, 2, 8)
    assert fading.growth == pytest.approx(1 / 3)
    assert single.growth == 2.0
    # The documented formula: log1p(sightings) × sqrt(growth) × 0.5 ** (days since last seen / 3).
    assert rising.rank == pytest.approx(math.log1p(4) * math.sqrt(5) * 0.5 ** ((1 / 24) / 3))
    for g in gaps:
        assert g.rank == pytest.approx(gap_rank(g.sightings, g.recent_sightings, g.previous_sightings, g.last_seen, NOW))
        assert g.text == TEXTS[next(k for k, v in ids.items() if v == g.claim_id)]
        assert g.label == "rumor" and g.score == 0.8 and g.sources == 1 and g.source_names == ["weibo"]
        assert g.reason == "no_debunk" and g.closest is None and g.claim_ids == [g.claim_id]
    assert steady.first_seen == NOW - 47 * H and steady.last_seen == NOW - 16 * H
    assert growth(0, 0) == 1.0 and growth(3, 0) == 4.0

    # Another moment, another order: a day later nothing has been seen again; every rumor shrinks, the
    # one that had grown most shrinks most (its four sightings are now the window before).
    later = list_gaps(store, now=NOW + 24 * H)
    assert [g.claim_id for g in later] == [ids["fading"], ids["steady"], ids["rising"], ids["single"]]
    assert {g.claim_id: g for g in later}[ids["rising"]].growth == 1 / 5
    # A wider window sees the fading rumor's whole burst as recent.
    wide = {g.claim_id: g for g in list_gaps(store, now=NOW, window_hours=48)}
    assert (wide[ids["fading"]].recent_sightings, wide[ids["fading"]].previous_sightings) == (10, 0)
    # limit and min_sightings.
    assert [g.claim_id for g in list_gaps(store, now=NOW, limit=2)] == [ids["rising"], ids["steady"]]
    assert {g.claim_id for g in list_gaps(store, now=NOW, min_sightings=5)} == {ids["steady"], ids["fading"]}
    with pytest.raises(ValueError):
        list_gaps(store, now=NOW, window_hours=0)


def test_ties_are_broken_deterministically(store) -> None:
    times = [NOW - 2 * H, NOW - H]
    a = _seen(store, TEXTS["steady"], times)
    b = _seen(store, TEXTS["fading"], times)
    _flag(store, a, b)
    first = [g.claim_id for g in list_gaps(store, now=NOW)]
    assert first == [a, b]  # same rank, sightings and last sighting: the lower claim id first
    assert [g.claim_id for g in list_gaps(store, now=NOW)] == first


def test_a_cluster_is_one_gap_with_the_sightings_of_all_its_variants(store) -> None:
    rumor = TEXTS["rising"]
    one = _seen(store, rumor, [NOW - 30 * H, NOW - 2 * H], source="weibo")
    two = _seen(store, "【转】" + rumor + "！！转发给家里人", [NOW - H], source="wechat")
    _flag(store, one)
    _flag(store, two, matched=False, score=0.9)  # a variant not matched yet still counts its sightings
    with store.session() as s:
        assert s.get(Claim, one).cluster_id == s.get(Claim, two).cluster_id is not None
    [gap] = list_gaps(store, now=NOW)
    assert gap.claim_id == one and gap.claim_ids == [one]
    assert (gap.sightings, gap.recent_sightings, gap.previous_sightings) == (3, 2, 1)
    assert gap.sources == 2 and sorted(gap.source_names) == ["wechat", "weibo"]
    assert gap.cluster_size == 2 and gap.score == 0.9

    # A claim without a cluster (stored before clustering) is a gap of its own.
    lone = _seen(store, TEXTS["single"], [NOW - H])
    _flag(store, lone)
    with store.session() as s:
        s.execute(update(Claim).where(Claim.id == lone).values(cluster_id=None))
    gaps = {g.claim_id: g for g in list_gaps(store, now=NOW)}
    assert gaps[lone].cluster_id is None and gaps[lone].sightings == 1 and gaps[lone].recent_sightings == 1


# --------------------------------------------------------------------------- what is (not) a gap
def _debunk(store, title: str, url: str) -> int:
    with store.session() as s:
        res = DebunkWriter(s).add(DebunkIn(url=url, title=title, text=title + "。这是一篇辟谣文章的正文。", source="test"))
        assert res.debunk_id is not None
        return res.debunk_id


def _match(store, claim_id: int, debunk_id: int, decision: str | None, score: float) -> None:
    with store.session() as s:
        s.add(ClaimMatch(claim_id=claim_id, debunk_id=debunk_id, rank=1, score=score, decision=decision))


def test_which_claims_are_gaps(store) -> None:
    d1 = _debunk(store, "微波炉热牛奶会致癌？", "https://example.org/milk")
    d2 = _debunk(store, "基站辐射致失眠？", "https://example.org/5g")
    ids = {k: _seen(store, t, [NOW - H]) for k, t in TEXTS.items()}
    unmatched = _seen(store, "吃西瓜籽会得阑尾炎，一定要吐出来", [NOW - H])
    unflagged = _seen(store, "每天喝八杯水才健康，少一杯都不行", [NOW - H])
    _flag(store, *ids.values())
    _flag(store, unmatched, matched=False)
    with store.session() as s:
        s.get(Claim, unflagged).matched_at = NOW
    _match(store, ids["single"], d1, "auto", 0.97)  # answered automatically
    _match(store, ids["steady"], d2, "suggest", 0.6)  # answered by a suggestion
    _match(store, ids["rising"], d1, "none", 0.2)  # only a weak match: still a gap
    _match(store, ids["rising"], d2, None, 0.3)  # (a match stored before decisions existed does not answer either)
    gaps = {g.claim_id: g for g in list_gaps(store, now=NOW)}
    assert set(gaps) == {ids["rising"], ids["fading"]}
    assert gaps[ids["rising"]].closest == {"debunk_id": d2, "title": "基站辐射致失眠？", "url": "https://example.org/5g",
                                           "source": "test", "score": 0.3, "decision": "none"}  # fmt: skip

    # Editors' decisions: dismissed (credible) and confirmed claims leave the list; needs_debunk joins it.
    record_decision(store, ids["fading"], "credible", editor="编辑甲")
    record_decision(store, ids["rising"], "rumor", editor="编辑甲")
    record_decision(store, unmatched, "unproven", editor="编辑乙")  # not matched, but an editor asked
    record_decision(store, ids["steady"], "unproven", editor="编辑乙")  # the suggestion did not answer it
    gaps = {g.claim_id: g for g in list_gaps(store, now=NOW)}
    assert set(gaps) == {unmatched, ids["steady"]}
    assert {g.reason for g in gaps.values()} == {"needs_debunk"}
    assert gaps[ids["steady"]].closest is not None and gaps[ids["steady"]].closest["decision"] == "suggest"

    # A debunk written after the editor's request, suggested for the claim, closes the gap.
    d3 = _debunk(store, "5G基站辐射导致失眠脱发？真相来了", "https://example.org/5g-new")
    _match(store, ids["steady"], d3, "suggest", 0.7)
    assert {g.claim_id for g in list_gaps(store, now=NOW)} == {unmatched}


# --------------------------------------------------------------------------- rematch
def test_rematch_closes_a_gap_once_a_matching_debunk_is_indexed(store, backend: EmbeddedBackend) -> None:
    import_debunks(store, [CSV])
    drain(store, backend)
    matcher = _matcher(backend)
    wrap = _seen(store, WRAP, [NOW - 3 * H, NOW - H])
    tofu = _seen(store, TOFU, [NOW - H])
    _flag(store, wrap, tofu, matched=False)
    assert match_stored_claims(store, backend, matcher=matcher) == (2, 1)

    [gap] = list_gaps(store, now=NOW)
    assert gap.claim_id == wrap and gap.sightings == 2
    assert gap.closest is not None and gap.closest["decision"] == "none" and gap.closest["score"] < 0.5
    assert gap.closest["title"] and gap.closest["url"]

    # Nothing new: re-matching changes nothing.
    assert rematch_gaps(store, matcher) == 1
    assert [g.claim_id for g in list_gaps(store, now=NOW)] == [wrap]

    # The editor marks the tofu claim needs_debunk: its (older) suggestion does not close it, nor does re-matching.
    record_decision(store, tofu, "unproven", editor="编辑甲")
    assert {g.claim_id for g in list_gaps(store, now=NOW)} == {wrap, tofu}

    # A debunk that answers the wrap claim is imported and indexed; re-matching closes its gap.
    import_debunks(store, [JSONL])
    drain(store, backend)
    assert rematch_gaps(store, matcher) == 2
    assert [g.claim_id for g in list_gaps(store, now=NOW)] == [tofu]
    with store.session() as s:
        rows = s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == wrap).order_by(ClaimMatch.rank)).all()
        assert rows[0].decision in ("auto", "suggest") and rows[0].evidence_kind
        assert s.get(Debunk, rows[0].debunk_id).title == "用保鲜膜包裹食物直接加热，会致癌？"
        assert len({r.debunk_id for r in rows}) == len(rows)  # replaced, not added to

    # A new tofu debunk, after the editor's request, closes the last gap.
    with store.session() as s:
        DebunkWriter(s).add(DebunkIn(url="https://example.org/furu", title="吃腐乳会致癌吗？腐乳是发霉的豆腐吗？",
                                     text="腐乳是豆腐经霉菌发酵制成的，吃腐乳不会致癌，千万别信。", source="test"))  # fmt: skip
    drain(store, backend)
    assert rematch_gaps(store, matcher) == 1
    assert list_gaps(store, now=NOW) == []
    assert rematch_gaps(store, matcher) == 0


# --------------------------------------------------------------------------- CLI
def test_cli_gaps(store, db_url: str, clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import cli

    calibration = tmp_path / "matcher.json"
    MatchCalibration(coef=[0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0], intercept=-2.5).save(calibration)
    for key, value in {"STORE__URL": db_url, "MATCHING__DENSE": "false", "MATCHING__CALIBRATION": str(calibration),
                       "MATCHING__SUGGEST_THRESHOLD": "0.5", "MATCHING__AUTO_THRESHOLD": "0.95"}.items():  # fmt: skip
        monkeypatch.setenv(f"PIYAO_{key}", value)
    runner = CliRunner()
    r = runner.invoke(cli, ["gaps", "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    r = runner.invoke(cli, ["gaps"])
    assert r.exit_code == 0 and "no gaps" in r.stdout

    r = runner.invoke(cli, ["debunks", "import", str(CSV)])
    assert r.exit_code == 0, r.output
    wrap = _seen(store, WRAP, [dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)] * 3)
    tofu = _seen(store, TOFU, [dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)])
    _flag(store, wrap, tofu, matched=False)
    b = EmbeddedBackend(clean_env / "index.sqlite")
    try:
        assert match_stored_claims(store, b, matcher=_matcher(b)) == (2, 1)
    finally:
        b.close()

    r = runner.invoke(cli, ["gaps", "--json", "--window-hours", "12"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["claim_id"] for row in rows] == [wrap]
    row = rows[0]
    assert row["text"] == WRAP and row["sightings"] == 3 and row["recent_sightings"] == 3 and row["growth"] == 4.0
    assert row["closest"]["decision"] == "none" and row["closest"]["title"]
    assert dt.datetime.fromisoformat(row["last_seen"]) >= dt.datetime.fromisoformat(row["first_seen"])
    assert {"rank", "sources", "source_names", "topic", "label", "score", "previous_sightings", "reason"} <= set(row)

    r = runner.invoke(cli, ["gaps", "--min-sightings", "4", "--json"])
    assert r.exit_code == 0 and r.stdout == ""
    r = runner.invoke(cli, ["gaps", "--limit", "5"])
    assert r.exit_code == 0, r.output
    assert "gap list" in r.stdout and "growth" in r.stdout and str(wrap) in r.stdout and "×4.00" in r.stdout

    # A new debunk, then --rematch: the gap closes.
    r = runner.invoke(cli, ["debunks", "import", str(JSONL), "--no-index"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["gaps", "--rematch", "--json"])
    assert r.exit_code == 0, r.output
    assert "re-matched 1 gap claim(s)" in r.stderr
    assert r.stdout == ""
    r = runner.invoke(cli, ["gaps", "--window-hours", "0"])
    assert r.exit_code == 2
