"""The piyao_org_cn spider: real Scrapy crawls of the synthetic mirror, plus parser unit tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request, TextResponse

from crawlers.items import DebunkItem
from crawlers.spiders.piyao_org_cn import PiyaoOrgCnSpider, date_from_url, is_article_url

A1 = "/20250717/ef39a204545b491c8d12d4c1def14519/c.html"
A2 = "/20250711/bd023518677844abb2d477f29e0a2eaf/c.html"
A3 = "/20250716/3db7a852e92d4208b6ec1f3ce13ddb64/c.html"
A4 = "/2021-04/10/c_1211105439.htm"
A5 = "/2021-04/02/c_1211095299.htm"
BLOCKED = "/20250718/10840b02ee3e430389edee91151e8b3c/c.html"

EXPECTED = {
    A1: ("为博流量编造谣言，温州公安依法查处一起编造虚假警情案", dt.date(2025, 7, 17), None),
    A2: ("网传太阳能板释放有害电磁辐射？谣言！", dt.date(2025, 7, 11), "测试编辑"),
    A3: ("北京有水龙头流绿水？实为“洁厕宝水”倒灌", dt.date(2025, 7, 16), None),
    A4: ("注射新冠疫苗会影响性功能？", dt.date(2021, 4, 10), "杜畅"),
    A5: ("接种疫苗将致病毒“免疫逃逸”？", dt.date(2021, 4, 2), "杜畅"),
}
HOSTILE_MARKERS = ["HOSTILE", "<script", "document.", "alert(", "微信扫一扫", "分享到", "QQ空间", "红包"]


@pytest.fixture
def mirror(tmp_path, serve_dir, crawl_tools):
    return serve_dir(crawl_tools.site_copy("piyao_org_cn", tmp_path))


def test_crawl_stores_the_articles(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("piyao_org_cn", data, "-a", f"start_url={mirror.url}/ld.htm")
    debunks, runs = crawl_tools.rows(data / "piyao.db")

    by_path = {d.url.removeprefix(mirror.url): d for d in debunks}
    assert set(by_path) == set(EXPECTED)
    for path, (title, published, editor) in EXPECTED.items():
        row = by_path[path]
        assert row.title == title
        assert row.published == published
        assert row.source == "中国互联网联合辟谣平台"
        assert row.editor == editor
        assert row.text.strip()
        for marker in HOSTILE_MARKERS:
            assert marker not in row.text, (path, marker)
        assert "责任编辑：" not in row.text
    # The page's 来源 line names the original publisher, kept beside the carrying platform.
    assert by_path[A1].origin == "浙江辟谣平台"
    hostile = by_path[A2].text
    assert "国家统计局数据显示" in hostile and "不具备储电功能" in hostile
    assert "这种说法有科学依据吗？" in hostile  # the paragraph that carried onclick/onmouseover keeps its text

    # robots.txt obeyed; nothing but the list pages, the data source and article pages fetched.
    paths = mirror.paths()
    assert "/robots.txt" in paths
    assert BLOCKED not in paths
    assert "/xxjbrk.htm" not in paths
    assert {"/ld.htm", "/ld_2.htm"} <= paths
    assert sum(1 for p in mirror.requests if p.startswith(A1)) == 1  # "#comments" duplicate not refetched

    assert len(runs) == 1
    run = runs[0]
    assert run.spider == "piyao_org_cn" and run.status == "finished"
    assert run.finished_at is not None and run.pages > 0
    assert run.items == 5 and run.new_debunks == 5 and run.errors == 0
    assert run.stats.get("piyao/crawl_run_id") == run.id
    assert run.stats.get("robotstxt/forbidden") == 1


def test_recrawl_creates_no_duplicates(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("piyao_org_cn", data, "-a", f"start_url={mirror.url}/ld.htm")
    crawl_tools.run_scrapy("piyao_org_cn", data, "-a", f"start_url={mirror.url}/ld.htm")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 5
    assert len({d.url for d in debunks}) == 5
    assert [r.status for r in runs] == ["finished", "finished"]
    # The second run refetches the list pages only: every article was seen within crawl.seen_expiry_hours.
    assert runs[1].new_debunks == 0 and runs[1].items == 0
    assert runs[1].stats["piyao/seen/skipped"] == 5


def test_max_items_limits_detail_pages(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("piyao_org_cn", data, "-a", f"start_url={mirror.url}/ld.htm", "-a", "max_items=2")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 2
    assert runs[0].items == 2
    assert runs[0].status == "finished"


# Parser unit tests (no network) ------------------------------------------------

BASE = "http://mirror.test"


def _spider(**kwargs) -> PiyaoOrgCnSpider:
    spider = PiyaoOrgCnSpider(start_url=f"{BASE}/ld.htm", **kwargs)
    return spider


def _response(path: str, cls=HtmlResponse):
    body = (Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "piyao_org_cn" / path.lstrip("/")).read_bytes()
    return cls(url=BASE + path, body=body, encoding="utf-8", request=Request(BASE + path))


def test_url_patterns() -> None:
    assert is_article_url("https://www.piyao.org.cn" + A1)
    assert is_article_url("http://www.piyao.org.cn" + A4)
    assert not is_article_url("https://www.piyao.org.cn/ld.htm")
    assert not is_article_url("https://www.piyao.org.cn/20250717/XYZ/c.html")
    assert date_from_url(BASE + A1) == dt.date(2025, 7, 17)
    assert date_from_url(BASE + A4) == dt.date(2021, 4, 10)


def test_list_page_follows_articles_and_pagination_only() -> None:
    out = list(_spider().parse(_response("/ld.htm")))
    urls = [r.url for r in out]
    assert urls == [BASE + A1, BASE + BLOCKED, BASE + A2, BASE + A4, BASE + "/ld_2.htm"]
    assert out[0].cb_kwargs["list_title"] == "为博流量编造谣言，温州公安依法查处一起编造虚假警情案"


def test_page_two_reads_its_json_data_source() -> None:
    spider = _spider()
    out = list(spider.parse(_response("/ld_2.htm")))
    assert [r.url for r in out] == [BASE + "/ds_5f2b8c0d9e1a4b3c8d7e6f5a4b3c2d1e.json"]
    ds = list(spider.parse_datasource(_response("/ds_5f2b8c0d9e1a4b3c8d7e6f5a4b3c2d1e.json", TextResponse)))
    assert [r.url for r in ds] == [BASE + A3, BASE + A5, BASE + A4]


def test_article_page_fields() -> None:
    (item,) = list(_spider().parse_article(_response(A2)))
    assert isinstance(item, DebunkItem)
    assert item["title"] == "网传太阳能板释放有害电磁辐射？谣言！"
    assert item["origin"] == "央视新闻客户端"
    assert item["published"] == dt.date(2025, 7, 11)
    assert item["editor"] == "测试编辑"
    assert item["source"] == "中国互联网联合辟谣平台"
    assert item["text"].split("\n")[0] == "央视新闻客户端"
    (legacy,) = list(_spider().parse_article(_response(A5)))
    assert legacy["origin"] == "北京科技报 | 科学加客户端"
    assert legacy["published"] == dt.date(2021, 4, 2)
    assert legacy["editor"] == "杜畅"
