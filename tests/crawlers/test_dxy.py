"""The dxy (丁香医生 COVID rumor feed) spider: real Scrapy crawls of the loopback mirror, plus unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, TextResponse

from classifier.labels import VERDICTS
from crawlers.spiders.dxy import RUMOR_TYPES, SYNTHETIC_URL, DxySpider, entries_of, entry_url, verdict_of

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "dxy"
FEED = "/2020/0130/454/3393874921745912507-115.json"
H5 = "/newh5/view/pneumonia.html"


def _u(eid: int) -> str:
    return SYNTHETIC_URL.format(id=eid)


# url → (title, verdict)
FEED_EXPECTED = {
    _u(185): ("哈尔滨香坊区 70 多人核酸阳性？", "rumor"),
    _u(186): ("上海某区正进行全员核酸检测？", "rumor"),
    _u(194): ("桑拿、汗蒸能预防新冠病毒？", "rumor"),
    _u(189): ("上海 27 日起对入沪车辆逢车必检？", "rumor"),
    _u(107): ("84 消毒液不能和洁厕灵一起用？", "credible"),
    _u(88): ("紫外线消毒灯能杀灭新冠病毒？", "credible"),
    _u(113): ("别往空气中喷撒酒精，会爆炸？", "credible"),
    _u(96): ("目前还没有可防治新冠病毒的药物？", "credible"),
    _u(192): ("多喝茶可以清除新冠病毒？", "unproven"),
    _u(103): ("下雪可以杀死病毒？", "unproven"),
    _u(157): ("新冠病毒可能伤睾丸和伤肾？", "unproven"),
    _u(135): ("新冠病毒可通过气溶胶传播？", "unproven"),
}
H5_EXPECTED = {
    "https://example.org/dxy-synthetic/990001": ("合成测试条目：喝高度白酒能杀死新冠病毒？", "rumor"),  # sourceUrl used
    _u(990002): ("合成测试条目：未知 rumorType 的条目？", None),  # javascript: sourceUrl ignored; rumorType 7
}
HOSTILE_MARKERS = ["HOSTILE", "<script", "alert(", "javascript:", "onclick", "onerror", "红包", "<p", "<img", "<a "]


@pytest.fixture
def mirror(tmp_path, serve_dir, crawl_tools):
    return serve_dir(crawl_tools.site_copy("dxy", tmp_path))


def test_crawl_stores_every_entry(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("dxy", data, "-a", f"start_url={mirror.url}{FEED},{mirror.url}{H5}")
    debunks, runs = crawl_tools.rows(data / "piyao.db")

    expected = {**FEED_EXPECTED, **H5_EXPECTED}
    by_url = {d.url: d for d in debunks}
    assert len(debunks) == 14  # 12 feed entries + 2 new ones on the H5 page (185 is on both)
    assert set(by_url) == set(expected)
    for url, (title, verdict) in expected.items():
        row = by_url[url]
        assert row.title == title, url
        assert row.verdict == verdict, (url, row.verdict)
        assert row.source == "丁香医生"
        assert row.published is None  # the feed carries no dates
        assert row.editor is None
        assert row.text.strip(), url
        for marker in HOSTILE_MARKERS:
            assert marker not in row.text, (url, marker)
            assert marker not in row.title, (url, marker)

    # Text: mainSummary then body, verbatim (real entry 107).
    assert by_url[_u(107)].text == (
        "丁香医生团队：确实，含氯消毒剂不能和洁厕灵同时使用，容易产生有毒气体\n"
        + json.loads((SITE / FEED.lstrip("/")).read_text("utf-8"))["data"][4]["body"]
    )
    assert "半径<0.1微米的气溶胶微粒" in by_url[_u(135)].text  # a real "<" in plain text survives
    hostile = by_url["https://example.org/dxy-synthetic/990001"].text
    assert hostile == "丁香医生团队（合成测试文本）：饮酒不能杀灭体内病毒。\n饮用的酒精进入血液后浓度很低，无法杀灭病毒，过量饮酒反而损伤肝脏。"

    assert {"/robots.txt", FEED, H5} <= mirror.paths()
    (run,) = runs
    assert run.spider == "dxy" and run.status == "finished"
    assert run.items == 14 and run.new_debunks == 14 and run.errors == 0
    assert run.stats.get("piyao/dxy/verdict_unknown") == 1
    assert run.stats.get("piyao/dxy/verdict_unknown/7") == 1


def test_recrawl_creates_no_duplicates(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("dxy", data, "-a", f"start_url={mirror.url}{FEED}")
    crawl_tools.run_scrapy("dxy", data, "-a", f"start_url={mirror.url}{FEED}")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 12 and len({d.url for d in debunks}) == 12
    assert [r.status for r in runs] == ["finished", "finished"]
    # Articles fetched again are "unchanged" (or not fetched at all: crawlers/seen.py); none is new.
    assert runs[1].new_debunks == 0 and runs[1].items <= 12


def test_max_items(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("dxy", data, "-a", f"start_url={mirror.url}{FEED}", "-a", "max_items=5")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 5 and runs[0].status == "finished"


# Verdict mapping ------------------------------------------------------------------


@pytest.mark.parametrize(("rumor_type", "code"), [(0, "rumor"), (1, "credible"), (2, "unproven"), ("1", "credible")])
def test_rumor_type_mapping(rumor_type, code) -> None:
    assert verdict_of(rumor_type) == code
    assert code in VERDICTS


def test_every_rumor_type_in_the_real_data_is_mapped() -> None:
    entries = json.loads((SITE / FEED.lstrip("/")).read_text("utf-8"))["data"]
    assert {e["rumorType"] for e in entries} == set(RUMOR_TYPES)
    by_id = {e["id"]: e for e in entries}
    # The evidence behind the mapping (see crawlers/spiders/dxy.py), on real entries of the mirror.
    assert by_id[185]["rumorType"] == 0 and "此信息为谣言" in by_id[185]["mainSummary"]
    assert by_id[186]["rumorType"] == 0 and "不属实" in by_id[186]["mainSummary"]
    assert by_id[107]["rumorType"] == 1 and "确实" in by_id[107]["mainSummary"]
    assert by_id[96]["rumorType"] == 1 and "证实" in by_id[96]["mainSummary"]
    assert by_id[192]["rumorType"] == 2 and "尚无证据" in by_id[192]["mainSummary"]
    assert by_id[103]["rumorType"] == 2 and "尚无定论" in by_id[103]["mainSummary"]


def test_unknown_rumor_type_gives_none_and_a_stat(crawl_tools) -> None:
    stats = crawl_tools.Stats()
    assert verdict_of(3, stats) is None
    assert verdict_of(None, stats) is None
    assert verdict_of("x", stats) is None
    assert stats.values["piyao/dxy/verdict_unknown"] == 3


# Parsers ---------------------------------------------------------------------------


def test_entry_url() -> None:
    assert entry_url({"id": 196, "sourceUrl": ""}) == "https://ncov.dxy.cn/ncovh5/view/pneumonia_rumors?id=196"
    assert entry_url({"id": 1, "sourceUrl": " https://example.org/a "}) == "https://example.org/a"
    assert entry_url({"id": 2, "sourceUrl": "javascript:alert(1)"}) == _u(2)
    assert entry_url({"id": None, "sourceUrl": ""}) is None
    assert entry_url({"id": "1 OR 1=1", "sourceUrl": ""}) is None


def test_entries_of_feed_list_and_embedded_page() -> None:
    feed = (SITE / FEED.lstrip("/")).read_text("utf-8")
    assert len(entries_of(feed) or []) == 12
    assert len(entries_of(json.dumps(json.loads(feed)["data"])) or []) == 12  # a bare list
    page = (SITE / H5.lstrip("/")).read_text("utf-8")
    assert [e["id"] for e in entries_of(page) or []] == [185, 990001, 990002]
    assert entries_of("<html><body>nothing</body></html>") is None


def test_parse_yields_items_in_feed_order() -> None:
    body = (SITE / FEED.lstrip("/")).read_bytes()
    resp = TextResponse(url="http://mirror.test" + FEED, body=body, encoding="utf-8")
    items = list(DxySpider().parse(resp))
    assert [i["url"] for i in items] == list(FEED_EXPECTED)
    assert [i["verdict"] for i in items] == [v for _t, v in FEED_EXPECTED.values()]
    page = HtmlResponse(url="http://mirror.test" + H5, body=(SITE / H5.lstrip("/")).read_bytes(), encoding="utf-8")
    spider = DxySpider()
    assert len(list(spider.parse(page))) == 3
    assert list(spider.parse(page)) == []  # the same entries again: nothing new in one run
