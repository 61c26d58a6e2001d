"""The guokr (果壳) spider: real Scrapy crawls of the mirror (synthetic pages around real 流言百科 fragments,
synthetic API JSON), plus parser unit tests.

List pages and the API differ only in their query strings (``?page=2``,
``?…&offset=2``), which a plain static server ignores, so the mirror is served
by a handler that maps ``/path?query`` to the file ``path/query.html`` (or
``.json`` when the path ends so); see the mirror's README.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from scrapy.http import HtmlResponse, Request, TextResponse

from classifier.labels import VERDICT_CREDIBLE, VERDICT_RUMOR, VERDICT_UNPROVEN, VERDICTS
from crawlers.items import DebunkItem
from crawlers.spiders.guokr import VERDICT_LABELS, GuokrSpider, verdict_of, with_offset

API = "/apis/minisite/article.json?retrieve_type=by_subject&limit=2&offset=0"
API2 = "/apis/minisite/article.json?retrieve_type=by_subject&limit=2&offset=2"
API3 = "/apis/minisite/article.json?retrieve_type=by_subject&limit=2&offset=4"

# path → (title, published, verdict, words of the claim, words of the truth) -- real saved items (see README).
EXPECTED = {
    "/post/1001/": ("食用“见手青”——小美牛肝菌会让人出现幻觉", dt.date(2015, 7, 9), VERDICT_CREDIBLE, "学名小美牛肝菌", "麦角酸乙二胺"),
    "/post/1002/": ("屠宰动物而产生的恐惧会化为毒素被我们吃下", dt.date(2015, 8, 7), VERDICT_RUMOR, "动物屠宰过程中", "人性化屠宰"),
    "/post/1003/": ("炸猪排肉色发红就是不新鲜", dt.date(2015, 7, 8), VERDICT_UNPROVEN, "切开后发现颜色发红", "肌红蛋白具有紫红色"),
    "/post/1004/": ("癌症患者克隆自己的肿瘤切片可以有效治疗", dt.date(2015, 7, 8), VERDICT_UNPROVEN, "胰腺癌", "还是未知数"),
    "/post/1005/": ("巧克力放冰箱会变质", dt.date(2014, 9, 17), VERDICT_RUMOR, "巧克力放进冰箱冷藏会变质坏掉", "并不会坏掉变质"),
    "/post/1006/": ("眼镜布不是用来擦眼镜的", dt.date(2014, 3, 18), VERDICT_CREDIBLE, "眼镜布不是用来擦眼镜的", "眼镜布会沾灰尘"),
}
API_EXPECTED = {
    "https://www.guokr.com/article/900001/": ("谣言粉碎机：吃香蕉能治便秘？（合成测试）", dt.date(2019, 11, 1), "测试作者A"),
    "https://www.guokr.com/article/900003/": ("“酸性体质”致病说靠谱吗？（合成测试）", dt.date(2019, 10, 28), "测试作者C"),
}
HOSTILE_MARKERS = ["HOSTILE", "<script", "document.", "alert(", "微信扫一扫", "分享到", "红包"]


@pytest.fixture
def mirror(tmp_path, serve_dir, crawl_tools):
    root = crawl_tools.site_copy("guokr", tmp_path)
    served = serve_dir(root, query_files=True)
    # The API names its article JSON on apis.guokr.com: point that host at the mirror.
    for path in (p for p in (root / "apis").rglob("*.json") if p.is_file()):
        path.write_text(path.read_text(encoding="utf-8").replace("https://apis.guokr.com", served.url), encoding="utf-8")
    return served


def _start(mirror) -> str:  # mirror: conftest.Served
    return f"start_url={mirror.url}/category/,{mirror.url}{API}"


# End to end -------------------------------------------------------------------------


def test_crawl_stores_liuyan_and_api_articles(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("guokr", data, "-a", _start(mirror))
    debunks, runs = crawl_tools.rows(data / "piyao.db")

    liuyan = {d.url.removeprefix(mirror.url): d for d in debunks if d.url.startswith(mirror.url)}
    api = {d.url: d for d in debunks if not d.url.startswith(mirror.url)}
    assert set(liuyan) == set(EXPECTED)
    assert set(api) == set(API_EXPECTED)  # the unrelated article (900002) is not kept
    for path, (title, published, verdict, claim, truth) in EXPECTED.items():
        row = liuyan[path]
        assert row.title == title
        assert row.published == published, path
        assert row.verdict == verdict, path
        assert row.source == "果壳" and row.editor is None
        lines = row.text.split("\n")
        assert lines[0].startswith("流言：") and claim in lines[0], path
        t = next(i for i, ln in enumerate(lines) if ln.startswith("真相："))
        assert truth in lines[t] and "论证" in lines[t + 1:], path
        assert "流言流言" not in row.text and "真相：真相" not in row.text
        for marker in HOSTILE_MARKERS:
            assert marker not in row.text, (path, marker)
    assert "合成测试：这一段带有 onclick 属性，文字应当保留。" in liuyan["/post/1005/"].text
    for url, (title, published, editor) in API_EXPECTED.items():
        row = api[url]
        assert (row.title, row.published, row.editor, row.verdict, row.source) == (title, published, editor, None, "果壳")
        for marker in HOSTILE_MARKERS:
            assert marker not in row.text, (url, marker)
    assert "没熟透的香蕉含较多鞣酸" in api["https://www.guokr.com/article/900001/"].text

    paths = set(mirror.requests)
    assert "/robots.txt" in paths
    assert "/post/blocked/" not in paths
    assert {"/category/food/", "/category/food/?page=2", "/category/health/", "/category/life/"} <= paths
    assert API2 in paths and API3 not in paths  # offset + limit reached total
    assert "/minisite/article/900002.json" not in paths
    assert sum(1 for p in mirror.requests if p == "/post/1001/") == 1  # listed twice, fetched once

    (run,) = runs
    assert run.spider == "guokr" and run.status == "finished"
    assert run.items == 8 and run.new_debunks == 8 and run.errors == 0
    assert run.stats.get("robotstxt/forbidden") == 1


def test_recrawl_adds_no_rows(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("guokr", data, "-a", _start(mirror))
    first = len(mirror.requests)
    # Again: list pages are fetched anew (articles fetched recently may be skipped: crawlers/seen.py) ...
    crawl_tools.run_scrapy("guokr", data, "-a", _start(mirror))
    assert len(mirror.requests) > first
    # ... and once more with every article fetched again: the store recognises them all.
    crawl_tools.run_scrapy("guokr", data, "-a", _start(mirror), "-s", "PIYAO_SEEN_ENABLED=false")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 8 and len({d.url for d in debunks}) == 8
    assert [r.status for r in runs] == ["finished"] * 3
    assert runs[1].new_debunks == 0 and runs[2].new_debunks == 0
    assert runs[2].items == 8


def test_api_all_keeps_every_article(tmp_path, mirror, crawl_tools) -> None:
    data = tmp_path / "data"
    crawl_tools.run_scrapy("guokr", data, "-a", f"start_url={mirror.url}{API}", "-a", "api_all=true")
    debunks, _runs = crawl_tools.rows(data / "piyao.db")
    assert sorted(d.url for d in debunks) == [f"https://www.guokr.com/article/90000{i}/" for i in (1, 2, 3)]


# Unit tests (no network) -----------------------------------------------------------------

BASE = "http://mirror.test"


def _response(path: str, cls=HtmlResponse):
    parts = urlsplit(path)
    rel = parts.path.lstrip("/")
    if parts.query:
        rel = rel.rstrip("/") + "/" + parts.query + (posixpath.splitext(parts.path)[1] or ".html")
    elif rel.endswith("/") or not rel:
        rel += "index.html"
    body = (Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "guokr" / rel).read_bytes()
    return cls(url=BASE + path, body=body, encoding="utf-8", request=Request(BASE + path))


def test_verdict_map() -> None:
    assert VERDICT_LABELS == {"假": VERDICT_RUMOR, "真": VERDICT_CREDIBLE, "论": VERDICT_UNPROVEN, "论证中": VERDICT_UNPROVEN}
    assert set(VERDICT_LABELS.values()) <= set(VERDICTS)
    assert verdict_of(" 假 ") == VERDICT_RUMOR
    assert verdict_of("真") == VERDICT_CREDIBLE
    assert verdict_of("论") == VERDICT_UNPROVEN
    assert verdict_of(None) is None and verdict_of("") is None and verdict_of("其他") is None


def test_real_fragment_labels_map() -> None:
    """Every LiuyanType in the real saved items (真, 假, 论: IzabelWang/rumor_breaker gk00.json @ e723f82c) maps."""
    labels = {"真", "假", "论"}
    assert {verdict_of(x) for x in labels} == {"credible", "rumor", "unproven"}


def test_list_pages() -> None:
    spider = GuokrSpider(start_url=BASE + "/category/")
    cats = list(spider.parse(_response("/category/")))
    assert [r.url for r in cats] == [BASE + "/category/food/", BASE + "/category/health/", BASE + "/category/life/"]
    out = list(spider.parse(_response("/category/food/")))
    assert [r.url for r in out] == [BASE + "/post/1001/", BASE + "/post/1002/", BASE + "/post/blocked/", BASE + "/category/food/?page=2"]
    assert out[0].cb_kwargs == {"list_title": "食用“见手青”——小美牛肝菌会让人出现幻觉"}
    assert [r.url for r in spider.parse(_response("/category/food/?page=2"))] == [BASE + "/post/1003/"]  # last page


def test_detail_fields() -> None:
    (item,) = list(GuokrSpider(start_url=BASE + "/category/").parse_detail(_response("/post/1001/")))
    assert isinstance(item, DebunkItem)
    assert item["verdict"] == VERDICT_CREDIBLE and item["published"] == dt.date(2015, 7, 9) and item["source"] == "果壳"
    lines = item["text"].split("\n")
    assert lines[0] == "流言：见手青蘑菇，学名小美牛肝菌，食用会导致严重的致幻作用，过量易导致精神分裂、甚至自杀。"
    assert lines[1].startswith("真相：见手青蘑菇中所含的毒素类似于麦角酸乙二胺（LSD）")
    assert lines[2] == "论证"


def test_api_list_paging_and_filter() -> None:
    spider = GuokrSpider(start_url=BASE + API)
    out = list(spider.parse(_response(API, TextResponse)))
    assert [r.url for r in out] == ["https://apis.guokr.com/minisite/article/900001.json", BASE + API2]
    assert list(spider.parse(_response(API2, TextResponse)))[-1].url == "https://apis.guokr.com/minisite/article/900003.json"
    assert with_offset(BASE + API, 40) == BASE + API.replace("offset=0", "offset=40")
