"""The claim_feed spider (RSS 2.0 and Atom) and crawlers.run.crawl, against local synthetic feeds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from scrapy.http import Request, XmlResponse
from sqlalchemy import select

from crawlers.items import ClaimItem
from crawlers.spiders.claim_feed import ClaimFeedSpider
from store.db import open_store
from store.models import Claim, CrawlRun

HOSTILE_MARKERS = ["HOSTILE", "<script", "alert(", "onclick", "微信扫一扫", "分享到", "<p>"]


def _rows(db: Path) -> tuple[list[Claim], list[CrawlRun]]:
    store = open_store(f"sqlite:///{db}")
    try:
        with store.session() as s:
            return list(s.scalars(select(Claim).order_by(Claim.id))), list(s.scalars(select(CrawlRun).order_by(CrawlRun.id)))
    finally:
        store.close()


@pytest.fixture
def feeds(tmp_path, serve_dir, crawl_tools):
    return serve_dir(crawl_tools.site_copy("claim_feed", tmp_path))


def test_crawl_stores_feed_claims(tmp_path, feeds, crawl_tools) -> None:
    data = tmp_path / "data"
    starts = f"start_url={feeds.url}/feed.xml,{feeds.url}/atom.xml"
    crawl_tools.run_scrapy("claim_feed", data, "-a", starts)
    claims, runs = _rows(data / "piyao.db")
    assert len(claims) == 10
    rss = [c for c in claims if c.source == "合成测试信息流"]
    atom = [c for c in claims if c.source == "合成测试Atom源"]
    assert len(rss) == 8 and len(atom) == 2
    for c in claims:
        for marker in HOSTILE_MARKERS:
            assert marker not in c.text, (c.external_id, marker)
        assert c.crawl_run_id == runs[0].id
    first = next(c for c in rss if c.external_id == "synthetic-1001")
    assert first.text.startswith("隔夜菜会致癌，千万别吃\n")
    assert first.url == "http://feed.example.invalid/posts/1001"
    assert first.published == dt.datetime(2025, 7, 17, 0, 30)  # +08:00 stored as UTC
    vinegar = next(c for c in rss if c.external_id == "synthetic-1002")
    assert "血管就能变软" in vinegar.text and "转发给爸妈看！" in vinegar.text
    no_guid = next(c for c in rss if c.text.startswith("微波炉"))
    assert no_guid.external_id == "http://feed.example.invalid/posts/1004"
    no_link = next(c for c in rss if c.external_id == "synthetic-1005")
    assert no_link.url is None
    dc_date = next(c for c in rss if c.external_id == "synthetic-1008")
    assert dc_date.published == dt.datetime(2025, 7, 14, 1, 0)
    water = next(c for c in atom if c.external_id == "urn:synthetic:atom-1")
    assert water.url == "http://atom.example.invalid/e/1" and "八杯水" in water.text
    assert runs[0].status == "finished" and runs[0].new_claims == 10 and runs[0].pages >= 2


def test_recrawl_counts_sightings_not_rows(tmp_path, feeds, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("claim_feed", data, "-a", f"start_url={feeds.url}/feed.xml")
    crawl_tools.run_scrapy("claim_feed", data, "-a", f"start_url={feeds.url}/feed.xml")
    claims, runs = _rows(data / "piyao.db")
    assert len(claims) == 8
    assert all(c.sightings == 2 for c in claims)
    assert [r.new_claims for r in runs] == [8, 0]


def test_run_crawl_runs_spiders_in_one_process(tmp_path, feeds, serve_dir, crawl_tools) -> None:
    site = serve_dir(crawl_tools.site_copy("piyao_org_cn", tmp_path / "p"))
    data = tmp_path / "data"
    code = (
        "import json\n"
        "from settings import load_settings\n"
        "from crawlers.run import crawl\n"
        "res = crawl(load_settings(), ['piyao_org_cn', 'claim_feed', 'no_such_spider'],"
        f" overrides={{'piyao_org_cn': ['{site.url}/ld.htm'], 'claim_feed': ['{feeds.url}/feed.xml']}})\n"
        "print('RESULT=' + json.dumps(res))\n"
    )
    proc = crawl_tools.run_python(code, data)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT="))
    res = {r["spider"]: r for r in json.loads(line[len("RESULT=") :])}
    assert res["piyao_org_cn"]["status"] == "finished" and res["piyao_org_cn"]["new_debunks"] == 5
    assert res["claim_feed"]["status"] == "finished" and res["claim_feed"]["new_claims"] == 8
    assert res["piyao_org_cn"]["pages"] > 0 and res["piyao_org_cn"]["errors"] == 0
    assert res["no_such_spider"]["status"] == "skipped"
    assert res["claim_feed"]["crawl_run_id"] != res["piyao_org_cn"]["crawl_run_id"]
    summary = json.loads((data / "crawl" / "last_crawl.json").read_text("utf-8"))
    assert [r["spider"] for r in summary] == ["piyao_org_cn", "claim_feed", "no_such_spider"]


def test_run_crawl_skips_disabled_and_unconfigured_spiders(tmp_path, crawl_tools) -> None:
    code = (
        "import json\n"
        "from settings import load_settings\n"
        "from crawlers.run import crawl\n"
        "print('RESULT=' + json.dumps(crawl(load_settings(), ['piyao_org_cn', 'claim_feed'])))\n"
    )
    proc = crawl_tools.run_python(
        code, tmp_path / "data", PIYAO_CRAWL__SPIDERS__PIYAO_ORG_CN__ENABLED="false", PIYAO_CRAWL__SPIDERS__CLAIM_FEED__START_URLS="[]"
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT="))
    res = {r["spider"]: r for r in json.loads(line[len("RESULT=") :])}
    assert res["piyao_org_cn"]["status"] == "skipped" and "disabled" in res["piyao_org_cn"]["reason"]
    assert res["claim_feed"]["status"] == "skipped" and "start_urls" in res["claim_feed"]["reason"]


# Parser unit tests (no network) ---------------------------------------------------


def _feed(name: str) -> XmlResponse:
    body = (Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "claim_feed" / name).read_bytes()
    url = f"http://feeds.test/{name}"
    return XmlResponse(url=url, body=body, request=Request(url))


def test_parse_rss_items() -> None:
    items = list(ClaimFeedSpider(start_url="http://feeds.test/feed.xml").parse(_feed("feed.xml")))
    assert len(items) == 8 and all(isinstance(i, ClaimItem) for i in items)
    assert {i["source"] for i in items} == {"合成测试信息流"}
    assert items[1]["text"].startswith("喝醋能软化血管\n")
    assert "HOSTILE" not in items[1]["text"]


def test_parse_respects_max_items_and_bad_xml() -> None:
    spider = ClaimFeedSpider(start_url="http://feeds.test/feed.xml", max_items="3")
    assert len(list(spider.parse(_feed("feed.xml")))) == 3
    bad = XmlResponse(url="http://feeds.test/x", body=b"<html><p>not a feed", request=Request("http://feeds.test/x"))
    assert list(ClaimFeedSpider(start_url="http://feeds.test/x").parse(bad)) == []


def test_source_falls_back_to_host() -> None:
    body = b"<rss version='2.0'><channel><item><title>\xe6\xb5\x8b\xe8\xaf\x95</title><link>http://h.test/1</link></item></channel></rss>"
    resp = XmlResponse(url="http://h.test/rss", body=body, request=Request("http://h.test/rss"))
    (item,) = list(ClaimFeedSpider(start_url="http://h.test/rss").parse(resp))
    assert item["source"] == "h.test" and item["external_id"] == "http://h.test/1"
