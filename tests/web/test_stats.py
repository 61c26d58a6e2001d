"""科普统计 on a small, known dataset (SQLite and PostgreSQL): exact figures per Shanghai day,
the week's top rumor clusters, time to review, per source, and the monthly list in each format."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient

from review.stats import StatsRange, monthly_list, quantile, stats_data
from store.db import Store
from store.models import ClaimMatch, Debunk, Review
from store.records import ClaimIn
from store.writes import add_claim, content_hash

Login = Callable[[str], tuple[TestClient, str]]
T = dt.datetime  # naive UTC, as stored

HOSTILE = '=HYPERLINK("http://evil.example/x","点我")量子水杯能治百病，老年人喝了延年益寿<script>alert(1)</script>'

# key: (text, source, first seen, topic, label, flagged, status, further sightings)
CLAIMS: dict[str, tuple[str, str, dt.datetime, str | None, str | None, bool, str, list[dt.datetime]]] = {
    # Shanghai 11-01 10:00
    "c1": ("隔夜菜千万不能吃，吃了会致癌，赶紧转给家里人", "weibo", T(2026, 11, 1, 2), "food_safety", "rumor", True, "confirmed",
           [T(2026, 11, 2, 3), T(2026, 11, 3, 3), T(2026, 11, 4, 3), T(2026, 11, 6, 3)]),
    # Shanghai 11-01 01:00: UTC 10-31, but counted on 11-01
    "c2": ("今天北京地铁运营时间延长到凌晨一点", "weibo", T(2026, 10, 31, 17), "food_safety", "credible", False, "new", []),
    # Shanghai 11-01 18:00; dismissed: never a rumor cluster, however often seen
    "c3": ("每天喝八杯水有助于身体健康代谢", "wechat", T(2026, 11, 1, 10), "health_wellness", "rumor", True, "dismissed",
           [T(2026, 11, 2, 1)] * 9),
    # Shanghai 11-02 00:00 exactly: the next day; not classified yet
    "c4": ("小区门口新开了一家面包店味道不错", "wechat", T(2026, 11, 1, 16), None, None, False, "new", []),
    # Shanghai 11-03 12:00
    "c5": ("打了流感疫苗反而更容易得流感，千万别打", "douyin", T(2026, 11, 3, 4), "disease_medicine", "pseudoscience", True,
           "needs_debunk", [T(2026, 11, 4, 4), T(2026, 11, 5, 4)]),
    # Shanghai 10-31 23:00: outside the range; seen twice the week before and once this week
    "c6": (HOSTILE, "wechat", T(2026, 10, 31, 15), "elderly_scams", "rumor", True, "confirmed",
           [T(2026, 10, 31, 15, 30), T(2026, 11, 2, 9)]),
    # Shanghai 11-08 00:00: the day after the range
    "c7": ("手机充电时打电话会爆炸", "douyin", T(2026, 11, 7, 16), "science_technology", "rumor", True, "queued", []),
    # October: confirmed in October (Shanghai time), so not on November's list
    "c8": ("吃香蕉能治便秘是谣言吗，香蕉越吃越便秘", "weibo", T(2026, 10, 20, 1), "health_wellness", "rumor", True, "confirmed", []),
}

# (claim, decision, verdict, at (UTC), debunk key or None)
REVIEWS = [
    ("c6", "confirmed", "misleading", T(2026, 10, 31, 16, 30), None),  # Shanghai 11-01 00:30: 1.5 h
    ("c1", "confirmed", "rumor", T(2026, 11, 1, 8), "d2"),  # 6 h
    ("c1", "confirmed", "rumor", T(2026, 11, 3, 8), None),  # a second review: not the first
    ("c3", "dismissed", "credible", T(2026, 11, 1, 22), None),  # Shanghai 11-02 06:00: 12 h, the next week
    ("c5", "needs_debunk", "unproven", T(2026, 11, 5, 4), None),  # 48 h
    ("c8", "confirmed", "rumor", T(2026, 10, 31, 15), None),  # Shanghai 10-31 23:00: October
]

RANGE = {"date_from": "2026-11-01", "date_to": "2026-11-07"}


def build(store: Store) -> dict[str, int]:
    ids: dict[str, int] = {}
    with store.session() as s:
        debunks = {}
        for key, title in (("d1", "隔夜菜会致癌？别再传了"), ("d2", "隔夜菜致癌说法不准确")):
            d = Debunk(url=f"https://example.org/{key}", title=title, source="科普中国", text=title + "。正文。",
                       content_hash=content_hash(title))
            s.add(d)
            s.flush()
            debunks[key] = d.id
        for key, (text, source, seen, topic, label, flagged, status, more) in CLAIMS.items():
            claim, new = add_claim(s, ClaimIn(source=source, text=text, external_id=key), seen_at=seen)
            assert new
            for at in more:
                add_claim(s, ClaimIn(source=source, text=text, external_id=key), seen_at=at)
            claim.topic, claim.label, claim.flagged, claim.status = topic, label, flagged, status
            claim.score = 0.9 if flagged else 0.1
            s.flush()
            ids[key] = claim.id
        for key, decision, verdict, at, debunk in REVIEWS:
            s.add(Review(claim_id=ids[key], editor="ed", decision=decision, verdict=verdict, created_at=at,
                         topic=CLAIMS[key][3], debunk_id=debunks[debunk] if debunk else None))
        s.add(ClaimMatch(claim_id=ids["c1"], debunk_id=debunks["d1"], rank=1, score=0.9, decision="auto", linked=True,
                         linked_by="ed"))
        s.add(ClaimMatch(claim_id=ids["c1"], debunk_id=debunks["d2"], rank=2, score=0.5, decision="suggest"))
        ids.update(debunks)
    return ids


def zeros(**at: int) -> list[int]:
    """Seven days of counts, 0 except at the given day indices (d0 = 11-01 … d6 = 11-07)."""
    out = [0] * 7
    for k, v in at.items():
        out[int(k[1:])] = v
    return out


def test_quantile_interpolates() -> None:
    assert quantile([], 0.5) is None
    assert quantile([4.0], 0.9) == 4.0
    assert quantile([1.5, 6, 12, 48], 0.5) == 9.0
    assert quantile([1.5, 6, 12, 48], 0.9) == pytest.approx(37.2)


def test_stats_figures_on_a_known_dataset(store: Store) -> None:
    ids = build(store)
    rng = StatsRange(dt.date(2026, 11, 1), dt.date(2026, 11, 7))
    data = stats_data(store, rng, now=T(2026, 11, 30))
    pd = data["per_day"]
    assert pd["days"] == [f"2026-11-0{i}" for i in range(1, 8)]
    assert pd["totals"] == zeros(d0=3, d1=1, d2=1)
    assert pd["flagged"] == zeros(d0=2, d2=1)
    assert pd["flagged_rate"] == [0.6667, 0.0, 1.0, None, None, None, None]
    assert {s["code"]: s["counts"] for s in pd["by_topic"]} == {
        "food_safety": zeros(d0=2), "health_wellness": zeros(d0=1), "disease_medicine": zeros(d2=1), "none": zeros(d1=1)}
    assert [s["name"] for s in pd["by_topic"]][-1] == "未分类"
    assert {s["code"]: s["counts"] for s in pd["by_label"]} == {
        "rumor": zeros(d0=2), "credible": zeros(d0=1), "pseudoscience": zeros(d2=1), "none": zeros(d1=1)}
    # The week ending with the range: c1 +5, c5 +3, c6 1 - 2; c3 is dismissed, c2 and c4 not rumors.
    top = [(c["claim_id"], c["recent"], c["previous"], c["increase"], c["total"]) for c in data["clusters"]]
    assert top == [(ids["c1"], 5, 0, 5, 5), (ids["c5"], 3, 0, 3, 3), (ids["c6"], 1, 2, -1, 3)]
    assert data["clusters_week"] == {"from": "2026-11-01", "to": "2026-11-07"}
    # First reviews: c6 1.5 h and c1 6 h in the week of Monday 10-26; c3 12 h and c5 48 h in the week of 11-02.
    assert data["review_time"]["weeks"] == [
        {"week": "2026-10-26", "n": 2, "median_hours": 3.75, "p90_hours": 5.55},
        {"week": "2026-11-02", "n": 2, "median_hours": 30.0, "p90_hours": 44.4},
    ]
    assert data["review_time"]["overall"] == {"n": 4, "median_hours": 9.0, "p90_hours": 37.2}
    assert data["sources"] == [
        {"source": "wechat", "claims": 2, "flagged": 1, "confirmed": 0, "dismissed": 1},
        {"source": "weibo", "claims": 2, "flagged": 1, "confirmed": 1, "dismissed": 0},
        {"source": "douyin", "claims": 1, "flagged": 1, "confirmed": 0, "dismissed": 0},
    ]


def test_stats_page_carries_the_data_and_the_charts(login_as: Login, store: Store, accounts: dict[str, Any]) -> None:
    ids = build(store)
    client, _ = login_as("viewer")
    r = client.get("/stats", params=RANGE)
    assert r.status_code == 200
    m = re.search(r'<script type="application/json" id="stats-data">(.*?)</script>', r.text, re.S)
    assert m
    data = json.loads(m.group(1))
    assert data["per_day"]["totals"] == zeros(d0=3, d1=1, d2=1)
    assert [c["claim_id"] for c in data["clusters"]] == [ids["c1"], ids["c5"], ids["c6"]]
    for chart in ("topics", "labels", "flagged", "clusters", "review-time", "sources"):
        assert f'id="chart-{chart}"' in r.text
    for table in ("topics", "labels", "flagged", "clusters", "review-time", "sources"):
        assert f'id="table-{table}"' in r.text
    assert '<script src="/static/vendor/echarts.min.js" defer></script>' in r.text and "/static/stats.js" in r.text
    # Hostile claim text: escaped in the table, and "<" escaped inside the JSON too.
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;alert(1)" in r.text
    assert f'href="/claims/{ids["c1"]}"' in r.text and "/stats/monthly?month=" in r.text
    assert client.get("/static/vendor/echarts.min.js").status_code == 200
    assert client.get("/static/stats.js").status_code == 200
    # Bad ranges are messages, not errors.
    r = client.get("/stats", params={"date_from": "2026-11-08", "date_to": "2026-11-01"})
    assert r.status_code == 422 and "起始日期晚于截止日期" in r.text
    r = client.get("/stats", params={"date_from": "2020-01-01", "date_to": "2026-11-01"})
    assert r.status_code == 422 and "最长 366 天" in r.text
    assert client.get("/stats", params={"date_from": "yesterday"}).status_code == 422
    assert client.get("/stats").status_code == 200  # the default: the last 30 days


def test_monthly_list_in_every_format(login_as: Login, store: Store, accounts: dict[str, Any]) -> None:
    ids = build(store)
    entries = monthly_list(store, "2026-11")
    assert [(e.rank, e.claim_id, e.sightings, e.total_sightings, e.verdict) for e in entries] == [
        (1, ids["c1"], 5, 5, "rumor"), (2, ids["c6"], 1, 3, "misleading")]
    assert [d["id"] for d in entries[0].debunks] == [ids["d1"], ids["d2"]]  # linked match, then the review's debunk
    assert entries[0].first_seen == "2026-11-01 10:00" and entries[0].topic_name == "食品安全"
    assert [e.claim_id for e in monthly_list(store, "2026-10")] == [ids["c8"]]

    client, _ = login_as("viewer")
    r = client.get("/stats/monthly", params={"month": "2026-11", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="piyao-monthly-2026-11.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["排名", "说法", "结论"] and len(rows) == 3
    assert rows[1][0] == "1" and rows[1][1] == CLAIMS["c1"][0] and rows[1][2] == "谣言" and rows[1][5] == "5"
    assert "隔夜菜会致癌？别再传了 https://example.org/d1" in rows[1][8] and "https://example.org/d2" in rows[1][8]
    assert rows[2][1] == "'" + HOSTILE  # no formula in a spreadsheet
    r = client.get("/stats/monthly", params={"month": "2026-11", "format": "md"})
    assert r.status_code == 200 and r.text.startswith("# 月度辟谣榜 2026-11")
    lines = [ln for ln in r.text.splitlines() if ln.startswith("| ")]
    assert len(lines) == 3 and "[隔夜菜会致癌？别再传了](https://example.org/d1)" in lines[1]
    assert "<script>" not in r.text and "\\<script\\>" in r.text
    r = client.get("/stats/monthly", params={"month": "2026-11", "format": "json"})
    doc = r.json()
    assert doc["month"] == "2026-11" and [e["claim_id"] for e in doc["entries"]] == [ids["c1"], ids["c6"]]
    assert doc["entries"][1]["sources"] == ["wechat"]
    r = client.get("/stats/monthly", params={"month": "2026-13", "format": "csv"})
    assert r.status_code == 422 and "月份格式应为 YYYY-MM" in r.text
    r = client.get("/stats/monthly", params={"month": "2026-11", "format": "xls"})
    assert r.status_code == 422 and "导出格式" in r.text
    assert client.get("/stats/monthly", params={"month": "2026-12", "format": "json"}).json()["entries"] == []
