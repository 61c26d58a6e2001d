"""The kepuchina (科学辟谣) spider: real Scrapy crawls of the synthetic mirror, plus parser unit tests.

The site's URLs differ only in their query strings (``/rumor/rumordetail?id=…``),
which a plain static server ignores, so the mirror is served by a handler that
maps ``/path?query`` to the file ``path/query.html`` (see the mirror's README).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from scrapy.http import HtmlResponse, Request

from classifier.labels import (
    VERDICT_CREDIBLE,
    VERDICT_MISLEADING,
    VERDICT_PSEUDOSCIENCE,
    VERDICT_RUMOR,
    VERDICT_UNPROVEN,
    VERDICTS,
)
from crawlers.items import DebunkItem
from crawlers.spiders.kepuchina import (
    DEFAULT_VERDICT,
    VERDICT_LABELS,
    KepuchinaSpider,
    article_id,
    editor_of,
    list_url,
    split_body,
    verdict_of,
    with_page,
)

LIST1 = "/rumor/rumorlist?type=0&title=&keyword=0&page=1"
LIST2 = "/rumor/rumorlist?type=0&title=&keyword=0&page=2"
AJAX1 = "/rumor/rumorajaxlist?pageType=1&type=1&year=0&page=1"
AJAX2 = "/rumor/rumorajaxlist?pageType=1&type=1&year=0&page=2"
AJAX3 = "/rumor/rumorajaxlist?pageType=1&type=1&year=0&page=3"


def D(rid: str) -> str:  # noqa: N802 - reads like a constant
    return f"/rumor/rumordetail?id={rid}"


# path → (title, published, verdict, editor)
EXPECTED = {
    D("test0001"): ("隔夜白开水会致癌？（合成测试）", dt.date(2024, 3, 5), VERDICT_RUMOR, "作者：测试作者甲 合成测试大学食品学院教授；审核：测试审核乙 合成测试研究所研究员"),
    D("test0002"): ("手机边充电边打电话会爆炸？（合成测试）", dt.date(2024, 5, 20), VERDICT_RUMOR, "作者：测试作者丙；审核：测试审核丁"),
    D("test0003"): ("每天必须喝够八杯水？（合成测试）", dt.date(2024, 6, 11), VERDICT_MISLEADING, "作者：测试作者戊；审核：测试审核己"),
    D("test0004"): ("吃鸡爪能补充胶原蛋白？（合成测试）", dt.date(2023, 12, 1), VERDICT_RUMOR, "作者：测试作者庚；审核：测试审核辛"),
    D("test0005"): ("熬夜后补觉就能补回来？（合成测试）", dt.date(2023, 11, 30), VERDICT_RUMOR, "作者：测试作者壬"),
}
ONLY_IN_CATEGORY = D("test0006")
HOSTILE_MARKERS = ["HOSTILE", "<script", "document.", "alert(", "微信扫一扫", "分享到", "QQ空间", "红包", "作者丨", "审核丨", "时间：", "所属分类", "本文由"]


@pytest.fixture
def mirror(tmp_path, serve_dir, crawl_tools):
    return serve_dir(crawl_tools.site_copy("kepuchina", tmp_path), query_files=True)


# End to end ----------------------------------------------------------------------


def test_crawl_stores_the_articles(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("kepuchina", data, "-a", f"start_url={mirror.url}{LIST1}")
    debunks, runs = crawl_tools.rows(data / "piyao.db")

    by_path = {d.url.removeprefix(mirror.url): d for d in debunks}
    assert set(by_path) == set(EXPECTED)
    for path, (title, published, verdict, editor) in EXPECTED.items():
        row = by_path[path]
        assert row.title == title
        assert row.published == published, path
        assert row.verdict == verdict, path
        assert row.editor == editor, path
        assert row.source == "科学辟谣"
        lines = row.text.split("\n")
        # 流言 and 真相 are kept, as labelled paragraphs, in that order.
        claim = next(i for i, ln in enumerate(lines) if ln.startswith("流言："))
        truth = next(i for i, ln in enumerate(lines) if ln.startswith("真相："))
        assert claim < truth and "合成测试流言" in lines[claim] and "合成测试真相" in lines[truth]
        for marker in HOSTILE_MARKERS:
            assert marker not in row.text, (path, marker)
    # Labels on lines of their own (<h3>流言</h3><p>…</p>) are joined to their paragraph.
    assert by_path[D("test0004")].text.split("\n")[:2] == [
        "流言：多吃鸡爪、猪蹄能补充胶原蛋白，让皮肤变得更有弹性。（合成测试流言）",
        "真相：胶原蛋白吃下去会被消化成氨基酸，身体不会把它原样送到皮肤里，靠吃鸡爪美容并不靠谱。（合成测试真相）",
    ]
    hostile = by_path[D("test0002")].text
    assert "合格的手机和充电器都有过充、过热保护" in hostile  # the paragraph with onclick keeps its text
    assert "请使用原装或经过认证的充电器" in hostile

    # robots.txt obeyed; only list pages and article pages fetched.
    paths = set(mirror.requests)
    assert "/robots.txt" in paths
    assert not any("blocked" in p for p in paths)
    assert "/about.html" not in paths
    assert {LIST1, LIST2} <= paths
    assert sum(1 for p in mirror.requests if p == D("test0001")) == 1  # "#comments" duplicate not refetched
    assert sum(1 for p in mirror.requests if p == D("test0002")) == 1  # listed on both pages

    assert len(runs) == 1
    run = runs[0]
    assert run.spider == "kepuchina" and run.status == "finished"
    assert run.items == 5 and run.new_debunks == 5 and run.errors == 0
    assert run.stats.get("robotstxt/forbidden") == 1


def test_recrawl_adds_no_rows(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("kepuchina", data, "-a", f"start_url={mirror.url}{LIST1}")
    first = len(mirror.requests)
    # Again: list pages are fetched anew (articles fetched recently may be skipped: crawlers/seen.py) ...
    crawl_tools.run_scrapy("kepuchina", data, "-a", f"start_url={mirror.url}{LIST1}")
    assert len(mirror.requests) > first
    # ... and once more with every article fetched again: the store recognises them all.
    crawl_tools.run_scrapy("kepuchina", data, "-a", f"start_url={mirror.url}{LIST1}", "-s", "PIYAO_SEEN_ENABLED=false")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 5 and len({d.url for d in debunks}) == 5
    assert [r.status for r in runs] == ["finished"] * 3
    assert runs[1].new_debunks == 0 and runs[2].new_debunks == 0
    assert runs[2].items == 5


def test_ajax_category_list_pages_until_a_short_page(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("kepuchina", data, "-a", f"start_url={mirror.url}{AJAX1}")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert {d.url.removeprefix(mirror.url) for d in debunks} == set(EXPECTED) | {ONLY_IN_CATEGORY}
    only = next(d for d in debunks if d.url.endswith(ONLY_IN_CATEGORY))
    assert only.published == dt.date(2023, 10, 9) and only.verdict == VERDICT_RUMOR
    assert AJAX2 in mirror.requests  # page 1 was full (15 items)
    assert AJAX3 not in mirror.requests  # page 2 had 1: the end
    assert runs[0].stats.get("robotstxt/forbidden") == 10


def test_max_items(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("kepuchina", data, "-a", f"start_url={mirror.url}{LIST1}", "-a", "max_items=2")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 2 and runs[0].items == 2 and runs[0].status == "finished"


# Unit tests (no network) ---------------------------------------------------------------

BASE = "http://mirror.test"


def _response(path: str) -> HtmlResponse:
    query = urlsplit(path).query
    rel = urlsplit(path).path.lstrip("/") + ("/" + query + ".html" if query else "")
    body = (Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "kepuchina" / rel).read_bytes()
    return HtmlResponse(url=BASE + path, body=body, encoding="utf-8", request=Request(BASE + path))


def test_verdict_map() -> None:
    assert set(VERDICT_LABELS.values()) <= set(VERDICTS)
    assert DEFAULT_VERDICT == VERDICT_RUMOR
    assert verdict_of(None) == VERDICT_RUMOR and verdict_of("  ") == VERDICT_RUMOR  # no label: a refutation
    assert verdict_of("谣言") == VERDICT_RUMOR
    assert verdict_of("伪科学") == VERDICT_PSEUDOSCIENCE
    assert verdict_of("【误区】") == VERDICT_MISLEADING
    assert verdict_of("尚无定论") == VERDICT_UNPROVEN
    assert verdict_of("确有此事") == VERDICT_CREDIBLE
    assert verdict_of("辟谣：伪科学") == VERDICT_PSEUDOSCIENCE  # longest contained label wins
    assert verdict_of("看不懂的标签") is None  # unknown label: no guess


def test_url_helpers() -> None:
    assert article_id("https://piyao.kepuchina.cn/rumor/rumordetail?id=ABC123xyz") == "ABC123xyz"
    assert article_id("https://piyao.kepuchina.cn/rumor/rumordetail?id=../x") is None
    assert article_id("https://piyao.kepuchina.cn/rumor/rumorlist?id=1") is None
    assert with_page(BASE + LIST1, 7) == BASE + LIST1.replace("page=1", "page=7")
    assert with_page(BASE + "/rumor/rumorlist?type=2", 2) == BASE + "/rumor/rumorlist?type=2&page=2"
    assert list_url(15) == "https://piyao.kepuchina.cn/rumor/rumorlist?type=15&title=&keyword=0&page=1"


def test_types_argument_builds_category_lists() -> None:
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(KepuchinaSpider)
    spider = KepuchinaSpider.from_crawler(crawler, start_url=f"{BASE}{LIST1}", types="1,15")
    assert spider.start_urls == [list_url(1, BASE), list_url(15, BASE)]


def test_list_page_requests() -> None:
    spider = KepuchinaSpider(start_url=BASE + LIST1)
    out = list(spider.parse(_response(LIST1)))
    assert [r.url for r in out] == [BASE + D("test0001"), BASE + D("test0002"), BASE + D("blocked0001"), BASE + D("test0003"), BASE + LIST2]
    assert out[0].cb_kwargs == {"list_title": "隔夜白开水会致癌？（合成测试）", "list_date": dt.date(2024, 3, 5)}
    # Page 2: no next link, 共2页 and it is page 2: nothing more; test0002 already scheduled.
    assert [r.url for r in spider.parse(_response(LIST2))] == [BASE + D("test0004"), BASE + D("test0005")]


def test_article_fields() -> None:
    (item,) = list(KepuchinaSpider(start_url=BASE + LIST1).parse_article(_response(D("test0001"))))
    assert isinstance(item, DebunkItem)
    assert item["source"] == "科学辟谣" and item["verdict"] == VERDICT_RUMOR
    assert item["published"] == dt.date(2024, 3, 5)
    assert item["text"].split("\n") == [
        "流言：隔夜的白开水会产生大量亚硝酸盐，喝了会致癌。（合成测试流言）",
        "真相：白开水中几乎没有可以转化为亚硝酸盐的硝酸盐，放置一夜后含量依然极低，远低于国家饮用水标准限值，正常饮用不会致癌。（合成测试真相）",
        "合成测试正文：饮用水是否安全，取决于水源和储存容器是否卫生，而不是放置了多久。盖好盖子、使用干净的杯子即可。",
    ]
    (info,) = list(KepuchinaSpider(start_url=BASE + LIST1).parse_article(_response(D("test0004"))))
    assert info["origin"] == "合成测试科普号" and info["editor"] == "作者：测试作者庚；审核：测试审核辛"
    # No date on the page: the list's date is used.
    (nodate,) = list(KepuchinaSpider(start_url=BASE + LIST1).parse_article(_response(D("test0005")), list_date=dt.date(2023, 11, 30)))
    assert nodate["published"] == dt.date(2023, 11, 30)


def test_split_body_credits() -> None:
    lines, credits = split_body("流言\n吃X会Y\n真相：不会\n作者丨甲 审核丨乙\n审核丨丙本文由科普中国出品\n时间：2024-01-02\n分享到：\n尾巴")
    assert lines == ["流言：吃X会Y", "真相：不会"]
    assert credits == {"author": "甲", "reviewer": "乙", "time": "2024-01-02"}
    assert editor_of({}) is None and editor_of({"reviewer": "丙"}) == "审核：丙"
