"""Weekly and monthly rumor reports (review/reports.py, `piyao report`): a small known dataset with controlled
dates, on SQLite and PostgreSQL; exact figures, ranking, growth, periods, every format parsed back, the CLI."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import time_machine
from markdown_it import MarkdownIt

from review.decisions import record_decision
from review.reports import (
    PeriodError,
    build_report,
    default_period,
    parse_period,
    render_charts,
    render_csv,
    render_html,
    render_markdown,
    write_report,
)
from store.db import Store
from store.models import Claim, ClaimMatch, Debunk
from store.records import ClaimIn, DebunkIn
from store.writes import DebunkWriter, add_claim

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"

TEXTS = {
    "G": "喝咖啡会让骨头里的钙流失，每天一杯咖啡十年后骨质疏松",
    "A1": "紧急扩散！隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌",
    # A variant of A1: the two form one cluster.
    "A2": "紧急扩散！隔夜的西红柿炒鸡蛋千万不能吃，会产生大量亚硝酸盐，吃了容易致癌！！转给家人",
    "B": "网传5G基站辐射会导致附近居民失眠脱发，通信专家表示基站电磁辐射远低于国家标准限值",
    "C": "用微波炉热牛奶会破坏全部营养还会产生致癌物质",
    "D": "每天早上空腹喝一杯淡盐水可以排毒养颜，清理肠道",
    "E": "市气象台今天发布高温黄色预警，提醒市民注意防暑降温",
    # Hostile: a spreadsheet formula, mathtext, HTML and Markdown payloads.
    "H": ("=1+1 $\\frac{$ <script>alert(1)</script> [点我](javascript:alert(1)) | **疫苗** & <img src=x onerror=alert(1)> "
          "接种流感疫苗会导致白血病，专家呼吁立即停止接种"),
    "N": "吃了含有防腐剂苯甲酸钠的饮料会在体内变成苯，长期喝必然致癌",
    "F": "手机充电时打电话会爆炸，已经有多人因此身亡",
}
TOPIC = {"G": "other", "A1": "food_safety", "A2": "food_safety", "B": "science_technology", "C": "health_wellness",
         "D": "health_wellness", "E": None, "H": "disease_medicine", "N": "food_safety", "F": "other"}
SOURCE = {"G": "weibo", "A1": "weibo", "A2": "douyin", "B": "weibo", "C": "weibo", "D": "wechat", "E": "weibo",
          "H": "douyin", "N": "weibo", "F": "weibo"}
D1_URL = "https://kepu.example.org/rumor/(1) x|y"


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A Shanghai wall-clock time in 2026 as the store keeps it: naive UTC."""
    return dt.datetime(2026, month, day, hour, minute) - dt.timedelta(hours=8)


def at(ts: dt.datetime) -> Any:
    """Freeze the clock at a naive-UTC instant (reviews and debunks take their times from it)."""
    return time_machine.travel(ts.replace(tzinfo=dt.timezone.utc), tick=False)


# Sightings, by claim, in creation order (the first one creates the claim).
SIGHTINGS: list[tuple[str, list[dt.datetime]]] = [
    ("G", [sh(11, 10, 9)]),  # W46
    ("A1", [sh(11, 16, 10), sh(11, 20, 10),  # W47
            sh(11, 23, 0), sh(11, 23, 7), sh(11, 29, 23, 30),  # W48: the first at the week's very start
            sh(11, 30, 10)]),  # W49
    ("B", [sh(11, 16, 10), sh(11, 17), sh(11, 18), sh(11, 19),  # W47
           sh(11, 24), sh(11, 25), sh(11, 26), sh(11, 27)]),  # W48
    ("C", [sh(11, 16, 8), *[sh(11, d, 12) for d in range(17, 22)], sh(11, 24, 12)]),  # 6 in W47, 1 in W48
    ("A2", [sh(11, 25, 10), sh(11, 25, 20)]),
    ("D", [sh(11, 23, 12)]),
    ("E", [sh(11, 24, 9), *[sh(11, 24 + i % 5, 10 + i) for i in range(9)]]),
    ("H", [sh(11, 26, 9)]),
    ("N", [sh(11, 25, 9)]),
    ("F", [sh(12, 2, 9)]),  # W49, December
]


def seed(store: Store) -> dict[str, int]:
    """The known dataset; returns claim ids and debunk ids by name."""
    ids: dict[str, int] = {}
    for name, times in SIGHTINGS:
        for t in times:
            with store.session() as s:
                claim, _ = add_claim(s, ClaimIn(source=SOURCE[name], text=TEXTS[name]), seen_at=t)
                ids[name] = claim.id
    with store.session() as s:
        for name in TEXTS:
            c = s.get(Claim, ids[name])
            assert c is not None
            c.topic = TOPIC[name]
            c.score, c.label = 0.8, "rumor"
            if name != "E":
                c.flagged, c.status, c.matched_at = True, "queued", c.first_seen
    debunks = [
        ("D1", sh(11, 12, 9), DebunkIn(url=D1_URL, title="5G基站辐射不会导致失眠脱发", source="科普中国",
                                       text="通信专家解释：5G基站的电磁辐射强度远低于国家标准，不会导致失眠和脱发。")),
        ("D2", sh(11, 18, 12), DebunkIn(url="https://piyao.example.org/milk", title="微波炉热牛奶不会产生致癌物",
                                        source="中国食品辟谣网", text="微波加热只是让水分子振动产生热量，不会让牛奶产生致癌物质。")),
        ("D3", sh(11, 24, 9), DebunkIn(url="https://kepu.example.org/salt", title="空腹喝淡盐水不能排毒",
                                       source="科普中国", text="人体排毒依靠肝脏和肾脏，空腹喝淡盐水反而增加钠的摄入。")),
        ("D4", sh(11, 26, 9), DebunkIn(url="https://kepu.example.org/phone", title="充电时打电话不会爆炸",
                                       source="科普中国", text="合格的手机和充电器有多重保护，正常使用时边充电边打电话不会爆炸。")),
    ]
    for name, when, item in debunks:
        with at(when), store.session() as s:
            res = DebunkWriter(s).add(item)
            assert res.outcome == "imported", res
            assert res.debunk_id is not None
            ids[name] = res.debunk_id
    with store.session() as s:  # a row no importer would accept: the report must still defuse it
        row = Debunk(url="javascript:alert(1)", title="<img src=x onerror=alert(2)> 恶意标题 | *x*", source="某平台",
                     text="x", content_hash="0" * 64, created_at=sh(11, 27, 9))
        s.add(row)
        s.flush()
        ids["D5"] = row.id
        s.add(ClaimMatch(claim_id=ids["B"], debunk_id=ids["D1"], rank=1, score=0.7, decision="suggest"))
        s.add(ClaimMatch(claim_id=ids["C"], debunk_id=ids["D2"], rank=1, score=0.9, decision="auto"))
    reviews = [
        ("C", "misleading", sh(11, 18, 8), None),  # W47, 48 h after first seen
        ("B", "rumor", sh(11, 24, 10), [ids["D1"]]),  # 192 h
        ("D", "credible", sh(11, 23, 14), None),  # 2 h
        ("N", "unproven", sh(11, 25, 13), None),  # 4 h
    ]
    for name, verdict, when, links in reviews:
        with at(when):
            record_decision(store, ids[name], verdict, editor="ed", debunk_ids=links)
    return ids


W48 = {"new_claims": 5, "flagged": 4, "claims_seen": 8, "sightings": 23, "reviews": 3, "confirmed": 1, "dismissed": 1,
       "needs_debunk": 1, "first_reviews": 3, "review_median_hours": 4.0, "review_p90_hours": 154.4, "new_debunks": 3}
W47 = {"new_claims": 3, "flagged": 3, "claims_seen": 3, "sightings": 12, "reviews": 1, "confirmed": 1, "dismissed": 0,
       "needs_debunk": 0, "first_reviews": 1, "review_median_hours": 48.0, "review_p90_hours": 48.0, "new_debunks": 1}


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    return seed(store)


# --------------------------------------------------------------------------- periods
def test_weeks_and_months_parse_to_shanghai_days() -> None:
    w = parse_period("weekly", "2026-W48")
    assert (w.label, w.first, w.last) == ("2026-W48", dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    assert (w.start, w.end) == (dt.datetime(2026, 11, 22, 16), dt.datetime(2026, 11, 29, 16))
    assert w.previous().label == "2026-W47"
    first = parse_period("weekly", "2026-W01")  # starts in December of the year before
    assert (first.first, first.last) == (dt.date(2025, 12, 29), dt.date(2026, 1, 4))
    prev = first.previous()
    assert (prev.label, prev.first, prev.last) == ("2025-W52", dt.date(2025, 12, 22), dt.date(2025, 12, 28))
    last = parse_period("weekly", "2026-W53")  # 2026 has 53 ISO weeks
    assert (last.first, last.last) == (dt.date(2026, 12, 28), dt.date(2027, 1, 3))
    assert parse_period("weekly", " 2026-w5 ").label == "2026-W05"
    m = parse_period("monthly", "2026-11")
    assert (m.label, m.first, m.last) == ("2026-11", dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert (m.start, m.end) == (dt.datetime(2026, 10, 31, 16), dt.datetime(2026, 11, 30, 16))
    jan = parse_period("monthly", "2026-01").previous()
    assert (jan.label, jan.first, jan.last) == ("2025-12", dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    assert parse_period("monthly", "2024-02").last == dt.date(2024, 2, 29)


@pytest.mark.parametrize("kind,text,needle", [
    ("weekly", "2025-W53", "2025 has weeks 01 to 52"),
    ("weekly", "2026-W00", "weeks 01 to 53"),
    ("weekly", "2026-11", "ISO week"),
    ("weekly", "W48", "ISO week"),
    ("monthly", "2026-W48", "YYYY-MM"),
    ("monthly", "2026-13", "01 to 12"),
    ("monthly", "2026-00", "01 to 12"),
    ("monthly", "1999-12", "2000 to 2100"),
    ("monthly", "", "YYYY-MM"),
])
def test_bad_periods_are_refused_with_one_line(kind: str, text: str, needle: str) -> None:
    with pytest.raises(PeriodError) as err:
        parse_period(kind, text)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_default_period_is_the_last_complete_one_in_shanghai() -> None:
    # 2026-11-30 23:00 in Shanghai (Monday of W49): November is not over yet.
    now = dt.datetime(2026, 11, 30, 15)
    assert default_period("weekly", now).label == "2026-W48"
    assert default_period("monthly", now).label == "2026-10"
    # An hour later it is 1 December in Shanghai, though still 30 November in UTC.
    later = dt.datetime(2026, 11, 30, 16)
    assert default_period("weekly", later).label == "2026-W48"
    assert default_period("monthly", later).label == "2026-11"
    assert default_period("weekly", dt.datetime(2026, 1, 5, 0)).label == "2026-W01"  # Monday 08:00 in Shanghai
    assert default_period("monthly", dt.datetime(2026, 1, 1, 0)).label == "2025-12"


# --------------------------------------------------------------------------- the data
def test_figures_are_exact(store: Store, seeded: dict[str, int]) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"))
    assert r.figures == W48
    assert r.previous.label == "2026-W47"
    assert r.previous_figures == W47


def test_top_clusters_ranked_by_sightings_with_growth(store: Store, seeded: dict[str, int]) -> None:
    ids = seeded
    r = build_report(store, parse_period("weekly", "2026-W48"))
    got = [(c.claim_id, c.sightings, c.previous, c.growth_pct) for c in r.clusters]
    # A (two variants) leads; H and N tie on sightings and increase: the older claim first; C shrank.
    # D (dismissed), E (not a rumor), G and F (not seen in the week) are left out.
    assert got == [(ids["A1"], 5, 2, 150.0), (ids["B"], 4, 4, 0.0), (ids["H"], 1, 0, None), (ids["N"], 1, 0, None),
                   (ids["C"], 1, 6, -83.3)]
    assert [c.rank for c in r.clusters] == [1, 2, 3, 4, 5]
    a, b, h, n, c = r.clusters
    assert a.cluster_id is not None and a.size == 2 and sorted(a.sources) == ["douyin", "weibo"]
    assert a.text == TEXTS["A1"] and a.topic == "food_safety" and a.topic_name == "食品安全"
    assert (a.status, a.verdict) == ("queued", None)
    # Per Shanghai day: 23rd 00:00 and 07:00 (still the 22nd in UTC), the variant twice on the 25th, 23:30 on the 29th.
    assert a.daily == [2, 0, 2, 0, 0, 0, 1]
    assert a.total_sightings == 8 and a.debunks == []
    assert (b.status_name, b.verdict_name) == ("已确认谣言", "谣言")
    assert [(d["id"], d["how"], d["url"]) for d in b.debunks] == [(ids["D1"], "linked", D1_URL)]
    assert (c.status, c.verdict_name) == ("confirmed", "误导/有失实")
    assert [(d["id"], d["how"]) for d in c.debunks] == [(ids["D2"], "auto")]
    assert (n.status, n.verdict) == ("needs_debunk", "unproven")
    assert h.text == TEXTS["H"]
    assert sum(a.daily) == a.sightings and sum(b.daily) == b.sightings


def test_top_limits_the_rows(store: Store, seeded: dict[str, int]) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"), top=2)
    assert [c.claim_id for c in r.clusters] == [seeded["A1"], seeded["B"]]


def test_new_debunks_gaps_topics_and_sources(store: Store, seeded: dict[str, int]) -> None:
    ids = seeded
    r = build_report(store, parse_period("weekly", "2026-W48"))
    assert [d.id for d in r.new_debunks] == [ids["D3"], ids["D4"], ids["D5"]]
    assert r.debunks_by_source == [("科普中国", 2), ("某平台", 1)]
    d3 = r.new_debunks[0]
    assert (d3.title, d3.source, d3.added) == ("空腹喝淡盐水不能排毒", "科普中国", "2026-11-24 09:00")
    # Gaps: unanswered flagged rumors and the one an editor asked for; F appeared only after the week.
    gaps = {g.claim_id: g for g in r.gaps}
    assert set(gaps) == {ids["A1"], ids["G"], ids["H"], ids["N"]}
    assert r.gaps[0].claim_id == ids["A1"]
    assert (gaps[ids["A1"]].recent_sightings, gaps[ids["A1"]].previous_sightings) == (5, 2)
    assert gaps[ids["N"]].reason == "needs_debunk"
    assert gaps[ids["G"]].recent_sightings == 0
    assert r.topics == [
        {"topic": "health_wellness", "name": "健康养生", "claims": 1, "flagged": 1, "confirmed": 0, "dismissed": 1},
        {"topic": "food_safety", "name": "食品安全", "claims": 2, "flagged": 2, "confirmed": 0, "dismissed": 0},
        {"topic": "disease_medicine", "name": "疾病医药", "claims": 1, "flagged": 1, "confirmed": 0, "dismissed": 0},
        {"topic": "none", "name": "未分类", "claims": 1, "flagged": 0, "confirmed": 0, "dismissed": 0},
    ]
    assert r.sources == [
        {"source": "douyin", "claims": 2, "flagged": 2, "confirmed": 0, "dismissed": 0},
        {"source": "weibo", "claims": 2, "flagged": 1, "confirmed": 0, "dismissed": 0},
        {"source": "wechat", "claims": 1, "flagged": 1, "confirmed": 0, "dismissed": 1},
    ]


def test_monthly_report(store: Store, seeded: dict[str, int]) -> None:
    ids = seeded
    r = build_report(store, parse_period("monthly", "2026-11"))
    assert r.previous.label == "2026-10"
    assert r.figures["new_claims"] == 9 and r.figures["reviews"] == 4 and r.figures["new_debunks"] == 5
    assert r.previous_figures["new_claims"] == 0
    # A and B both have 8 sightings in November, all new: the lower claim id first; then G, H, N by id.
    assert [(c.claim_id, c.sightings) for c in r.clusters] == [
        (ids["A1"], 8), (ids["B"], 8), (ids["C"], 7), (ids["G"], 1), (ids["H"], 1), (ids["N"], 1)]
    assert all(c.growth_pct is None for c in r.clusters)
    assert len(r.clusters[0].daily) == 30
    december = build_report(store, parse_period("monthly", "2026-12"))
    assert [c.claim_id for c in december.clusters] == [ids["F"]]
    assert december.clusters[0].growth_pct is None


def test_an_empty_store_gives_an_empty_report(store: Store, tmp_path: Path) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"))
    assert r.clusters == [] and r.new_debunks == [] and r.gaps == [] and r.figures["new_claims"] == 0
    assert r.figures["review_median_hours"] is None
    paths = write_report(r, tmp_path / "out", ["md", "html", "csv"])
    assert "本期没有传播中的疑似谣言" in (tmp_path / "out" / "report-2026-W48.md").read_text("utf-8")
    assert all(p.stat().st_size > 0 for p in paths)


# --------------------------------------------------------------------------- formats
class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)


def test_html_is_standalone_and_escapes_hostile_text(store: Store, seeded: dict[str, int]) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"))
    html = render_html(r, render_charts(r))
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html  # the hostile debunk title
    p = _Html()
    p.feed(html)
    tags = [t for t, _ in p.tags]
    assert "script" not in tags and "iframe" not in tags and "img" in tags
    assert "<script>alert(1)</script>" in "".join(p.text)  # shown as text
    hrefs = [a.get("href") or "" for t, a in p.tags if t == "a"]
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert D1_URL in hrefs
    srcs = [a.get("src") or "" for t, a in p.tags if t == "img"]
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(base64.b64decode(s.split(",", 1)[1])[:8] == PNG for s in srcs)
    assert not any("on" + ev in a for _, a in p.tags for ev in ("error", "load", "click"))
    csp = next(a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None and "default-src 'none'" in csp and "script-src" not in csp
    digest = base64.b64encode(hashlib.sha256(p.style.encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp  # the one style block is the only style allowed
    assert not any("style" in a for _, a in p.tags)  # no style attributes


def test_markdown_escapes_hostile_text(store: Store, seeded: dict[str, int]) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"))
    md = render_markdown(r, {"sightings": "s.png", "topics": "t.png", "sources": "u.png"})
    assert not re.search(r"(?<!\\)<(?!br>)", md)  # every "<" escaped but the line breaks between links
    assert "\\<script\\>" in md
    assert "\\[点我\\]\\(javascript:alert\\(1\\)\\)" in md
    assert "](javascript:" not in md
    # The link with a space, parentheses and a pipe in its URL stays one link in one cell.
    assert "](https://kepu.example.org/rumor/%281%29%20x%7Cy)" in md
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in rendered and "<img src=\"x\"" not in rendered and "<img src=x" not in rendered
    assert 'href="javascript' not in rendered
    assert 'href="https://kepu.example.org/rumor/%281%29%20x%7Cy"' in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    images = re.findall(r'<img src="([^"]+)"', rendered)
    assert images == ["s.png", "t.png", "u.png"]
    # Every row of the clusters table has its 10 cells: no crawled "|" split one.
    tables = re.findall(r"<table>(.*?)</table>", rendered, re.S)
    clusters = next(t for t in tables if "本期传播" in t and "变体数" in t)
    rows = re.findall(r"<tr>(.*?)</tr>", clusters.split("<tbody>")[1], re.S)
    assert len(rows) == 5 and all(row.count("<td") == 10 for row in rows)
    assert any("alert(1)" in row for row in rows)


def test_csv_files_parse_and_guard_formulas(store: Store, seeded: dict[str, int]) -> None:
    ids = seeded
    r = build_report(store, parse_period("weekly", "2026-W48"))
    files = render_csv(r)
    assert set(files) == {"figures", "clusters", "new_debunks", "gaps", "topics", "sources"}
    assert all(text.startswith("\ufeff") for text in files.values())
    table = {name: list(csv.reader(io.StringIO(text[1:]))) for name, text in files.items()}
    figures = {row[1]: row[2:] for row in table["figures"][1:]}
    assert figures["sightings"] == ["23", "12"] and figures["review_p90_hours"] == ["154.4", "48.0"]
    assert table["figures"][0][2:] == ["2026-W48", "2026-W47"]
    clusters = table["clusters"]
    assert clusters[0][:4] == ["排名", "说法编号", "聚类编号", "说法"]
    assert [int(row[1]) for row in clusters[1:]] == [ids["A1"], ids["B"], ids["H"], ids["N"], ids["C"]]
    hostile = clusters[3]
    assert hostile[3].startswith("'=1+1") and "<script>alert(1)</script>" in hostile[3]
    assert clusters[1][9] == "150.0" and hostile[9] == ""  # growth: none when not seen before
    assert D1_URL in clusters[2][13]
    debunks = table["new_debunks"]
    evil = next(row for row in debunks[1:] if int(row[0]) == ids["D5"])
    assert evil[3] == ""  # javascript: URL dropped
    gaps = table["gaps"]
    assert {int(row[1]) for row in gaps[1:]} == {ids["A1"], ids["G"], ids["H"], ids["N"]}


def test_charts_survive_mathtext_in_claims(store: Store, seeded: dict[str, int]) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"))
    charts = render_charts(r)
    assert set(charts) == {"sightings", "topics", "sources"}
    assert all(png[:8] == PNG and len(png) > 2000 for png in charts.values())


def test_charts_without_a_cjk_font(store: Store, seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    import review.reports as reports

    monkeypatch.setattr(reports, "cjk_font", lambda: None)
    assert reports._label("热点 #1") == "?? #1"
    r = build_report(store, parse_period("weekly", "2026-W48"))
    charts = render_charts(r)
    assert all(png[:8] == PNG for png in charts.values())


def test_write_report_formats(store: Store, seeded: dict[str, int], tmp_path: Path) -> None:
    r = build_report(store, parse_period("weekly", "2026-W48"))
    paths = write_report(r, tmp_path / "all", ["md", "html", "csv"])
    names = sorted(p.name for p in paths)
    assert names == sorted([
        "report-2026-W48.md", "report-2026-W48.html",
        "report-2026-W48-sightings.png", "report-2026-W48-topics.png", "report-2026-W48-sources.png",
        *[f"report-2026-W48-{n}.csv" for n in ("figures", "clusters", "new_debunks", "gaps", "topics", "sources")],
    ])
    md = (tmp_path / "all" / "report-2026-W48.md").read_text("utf-8")
    for png in ("sightings", "topics", "sources"):
        assert f"](report-2026-W48-{png}.png)" in md
    assert (tmp_path / "all" / "report-2026-W48-clusters.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    html_only = write_report(r, tmp_path / "html", ["html"])
    assert [p.name for p in html_only] == ["report-2026-W48.html"]  # charts embedded, no PNG files
    with pytest.raises(ValueError):
        write_report(r, tmp_path / "bad", ["pdf"])


# --------------------------------------------------------------------------- the CLI
def piyao(data_dir: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env["PIYAO_STORE__URL"] = store_url
    return subprocess.run([sys.executable, "-c", "import pipeline; pipeline.main()", "--data-dir", str(data_dir), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli_end_to_end(store: Store, seeded: dict[str, int], tmp_path: Path) -> None:
    data = tmp_path / "cli"
    out = tmp_path / "weekly"
    res = piyao(data, store.url, "report", "weekly", "--period", "2026-W48", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    paths = [Path(line) for line in res.stdout.splitlines()]
    assert len(paths) == 11 and all(p.parent == out and p.is_file() for p in paths)
    html = (out / "report-2026-W48.html").read_text("utf-8")
    assert "<script" not in html.lower() and "紧急扩散" in html
    rows = list(csv.reader(io.StringIO((out / "report-2026-W48-clusters.csv").read_text("utf-8-sig"))))
    assert int(rows[1][1]) == seeded["A1"] and rows[1][7:9] == ["5", "2"]

    # Default folder: <data_dir>/reports/<period>; one format.
    res = piyao(data, store.url, "report", "monthly", "--period", "2026-11", "--format", "csv")
    assert res.returncode == 0, res.stderr[-3000:]
    paths = [Path(line) for line in res.stdout.splitlines()]
    assert paths and all(p.parent == (data / "reports" / "2026-11").resolve() and p.suffix == ".csv" for p in paths)

    for args, needle in ((("weekly", "--period", "2026-W60"), "2026 has weeks 01 to 53"),
                         (("monthly", "--period", "2026-W48"), "YYYY-MM"),
                         (("monthly", "--period", "2026-13"), "01 to 12")):
        res = piyao(data, store.url, "report", *args)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("piyao: error: bad period") and needle in lines[0], res.stderr
        assert "Traceback" not in res.stderr
