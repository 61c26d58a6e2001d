"""The config-driven generic spider against a synthetic loopback mirror, and crawlers.sources checks.

The end-to-end tests write a config file with crawl.sources, pass it with
PIYAO_CONFIG, run ``python -m scrapy crawl generic`` in a subprocess and
check the SQLite store. The site is tests/fixtures/sites/generic (SYNTHETIC,
see its README.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from crawlers.sources import selector_error, source_errors, validate_sources
from crawlers.spiders.generic import extract_main_text
from settings import ConfigError, Settings, load_settings
from store.db import open_store
from store.models import Claim, CrawlRun, Debunk

PLACEHOLDER = "http://generic.example.invalid"
HOSTILE = ["HOSTILE", "<script", "alert(", "onclick", "onerror", "微信扫一扫", "分享到", "<p>", "&lt;"]
# Navigation, sidebar and footer text of the sitemap site's pages: never part of an extracted body.
KEPU_FURNITURE = ["首页", "健康谣言", "关于本站", "当前位置", "热门文章", "酸碱体质", "推荐阅读", "京ICP备", "版权所有", "搜索"]
FORUM_FURNITURE = ["论坛首页", "登录", "注册", "版块导航", "生活杂谈", "联系站长", "返回列表", "楼"]


def _rows(db: Path) -> tuple[list[Claim], list[Debunk], list[CrawlRun]]:
    store = open_store(f"sqlite:///{db}")
    try:
        with store.session() as s:
            return (
                list(s.scalars(select(Claim).order_by(Claim.id))),
                list(s.scalars(select(Debunk).order_by(Debunk.id))),
                list(s.scalars(select(CrawlRun).order_by(CrawlRun.id))),
            )
    finally:
        store.close()


@pytest.fixture
def site(tmp_path, serve_dir, crawl_tools):
    root = crawl_tools.site_copy("generic", tmp_path)
    served = serve_dir(root)
    for xml in [*root.rglob("*.xml"), root / "robots.txt"]:
        xml.write_text(xml.read_text("utf-8").replace(PLACEHOLDER, served.url), "utf-8")
    return served


def _sources(base: str) -> dict[str, Any]:
    return {
        "forum": {
            "type": "list",
            "urls": [f"{base}/forum/index.html"],
            "kind": "claim",
            "source": "示例生活论坛",
            "item": "ul.threads > li",
            "link": "a.title::attr(href)",
            "next_page": "a.next::attr(href)",
            "title": "h1.subject",
            "text": "div.post-body",
            "date": "span.time",
            "allow": [r"/forum/thread/\d+\.html$"],
            "max_pages": 3,
        },
        "kepu": {
            "type": "sitemap",
            "urls": [f"{base}/sitemap_index.xml"],
            "kind": "debunk",
            "source": "科普辟谣站",
            "allow": [r"/kepu/\d{4}/\d+\.html$"],
        },
        "rumor_feed": {"type": "feed", "urls": [f"{base}/feed/atom.xml"], "kind": "claim"},
        "official": {
            "type": "article",
            "urls": [f"{base}/official/a1.html", f"{base}/official/a2.html"],
            "kind": "debunk",
            "source": "合成官方发布",
            "title": "xpath://div[@class='headline']/h2",
            "text": "div.article-text > p",
            "date": "xpath://span[@class='pubdate']/@data-time",
        },
    }


def _config(tmp_path: Path, sources: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"crawl": {"sources": sources}}, allow_unicode=True), "utf-8")
    return path


def _crawl(crawl_tools: Any, data: Path, config: Path, *args: str) -> Any:
    return crawl_tools.run_scrapy("generic", data, *args, PIYAO_CONFIG=str(config))


def _error_lines(stderr: str, needle: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if needle in ln]


def test_generic_crawls_every_source_type(tmp_path, site, crawl_tools) -> None:
    sources = _sources(site.url)
    sources["broken"] = {"type": "list", "urls": [f"{site.url}/forum/list-4.html"], "item": "ul >> li", "allow": ["(unclosed"]}
    sources["switched_off"] = {"type": "article", "urls": [f"{site.url}/forum/thread/108.html"], "enabled": False}
    data = tmp_path / "data"
    proc = _crawl(crawl_tools, data, _config(tmp_path, sources))
    claims, debunks, runs = _rows(data / "piyao.db")

    # The broken source: one clear line naming the key, no traceback; nothing of it was fetched.
    lines = _error_lines(proc.stderr, "crawl.sources.broken")
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "ERROR" in lines[0] and "crawl.sources.broken.item: not a valid CSS selector" in lines[0]
    assert "crawl.sources.broken.allow[0]: bad regular expression" in lines[0] and "not crawled" in lines[0]
    assert "Traceback" not in proc.stderr
    paths = site.paths()
    assert "/forum/list-4.html" not in paths  # neither by the broken source nor beyond forum's max_pages
    assert "/forum/thread/108.html" not in paths  # the disabled source

    # Forum (list → claims): pages 1–3 only, each thread once, allow filters the notice and the ad.
    forum = {c.url.rsplit("/", 1)[-1]: c for c in claims if c.source == "示例生活论坛"}
    assert sorted(forum) == ["101.html", "102.html", "103.html", "104.html", "105.html", "106.html"]
    assert {"/forum/index.html", "/forum/list-2.html", "/forum/list-3.html"} <= paths
    assert not {"/forum/thread/107.html", "/forum/notice/1.html"} & paths
    assert sum(1 for p in site.requests if p.startswith("/forum/thread/101.html")) == 1
    overnight = forum["101.html"]
    assert overnight.text.startswith("隔夜菜会致癌，千万别吃\n家里长辈天天在群里转发")
    assert "冷藏保存" not in overnight.text  # replies are outside the text selector
    assert overnight.published == dt.datetime(2025, 7, 10, 8, 30)
    assert overnight.external_id == overnight.url == f"{site.url}/forum/thread/101.html"
    assert forum["103.html"].published == dt.datetime(2025, 7, 8, 10, 12)
    assert forum["106.html"].url == f"{site.url}/forum/thread/106.html"  # fragment dropped
    # Thread 105's layout has no div.post-body: the extractor found the post, not the page around it.
    microwave = forum["105.html"].text
    assert microwave.startswith("微波炉加热的食物有辐射\n同事说微波炉加热过的饭菜会残留辐射")
    assert "需要把微波炉扔掉吗" in microwave
    for word in FORUM_FURNITURE:
        assert word not in microwave, word
    # The hostile thread.
    hostile = forum["104.html"].text
    assert "一定要告诉家里人" in hostile and "视频里说得有鼻子有眼" in hostile
    for c in claims:
        for marker in HOSTILE:
            assert marker not in c.text, (c.url, marker)

    # Feed (Atom → claims), source = the key.
    feed = [c for c in claims if c.source == "rumor_feed"]
    assert sorted(c.external_id for c in feed) == ["urn:synthetic:generic-1", "urn:synthetic:generic-2", "urn:synthetic:generic-3"]
    persimmon = next(c for c in feed if c.external_id == "urn:synthetic:generic-2")
    assert persimmon.url == f"{site.url}/feed/e/2"  # relative link resolved
    assert persimmon.text == "空腹吃柿子会得胃结石\n有说法称空腹吃柿子一定会得胃结石，必须开刀取出。"
    assert next(c for c in feed if c.external_id == "urn:synthetic:generic-1").published == dt.datetime(2025, 7, 17, 2, 0)
    assert len(claims) == 9

    # Sitemap (index → urlsets → debunks without selectors), allow keeps the about and tag pages out.
    kepu = {d.url.rsplit("/", 1)[-1]: d for d in debunks if d.source == "科普辟谣站"}
    assert sorted(kepu) == ["0001.html", "0002.html", "0003.html", "0004.html"]
    assert not {"/about.html", "/kepu/tag/health.html"} & paths
    assert kepu["0001.html"].title == "隔夜茶会致癌？没有科学依据"
    assert kepu["0001.html"].published == dt.date(2025, 7, 15)
    assert kepu["0002.html"].title == "手机充电时接打电话不会爆炸" and kepu["0002.html"].published == dt.date(2025, 7, 12)
    assert kepu["0003.html"].published is None
    assert kepu["0004.html"].title == "喝醋不能软化血管"  # og:title: the page has no h1
    bodies = {
        "0001.html": ["朋友圈广泛传播", "远低于国家标准", "建议茶水现泡现喝"],
        "0002.html": ["电池安全领域的工程师", "劣质充电器", "发现电池鼓包应及时更换"],
        "0003.html": ["一些家庭群里流传", "摆放洋葱起不到任何预防作用", "按照要求接种疫苗"],
        "0004.html": ["流传多年的养生说法", "喝醋并不能逆转", "定期体检"],
    }
    for name, parts in bodies.items():
        text = kepu[name].text
        for part in parts:
            assert part in text, (name, part)
        for word in KEPU_FURNITURE:
            assert word not in text, (name, word)
        assert not text.startswith(kepu[name].title)  # the title is not repeated as the first line
        assert text.count(parts[0]) == 1, name  # layout tables do not double the article
    # Article pages read with XPath/CSS selectors.
    official = {d.url.rsplit("/", 1)[-1]: d for d in debunks if d.source == "合成官方发布"}
    assert official["a1.html"].title == "关于“自来水加氯致癌”的说明"
    assert official["a1.html"].published == dt.date(2025, 7, 2) and official["a2.html"].published == dt.date(2025, 6, 28)
    assert official["a2.html"].text.startswith("有自媒体称“新一批疫苗里含有追踪芯片”") and "相关链接" not in official["a2.html"].text
    assert len(debunks) == 6 and len({d.url for d in debunks}) == 6

    assert len(runs) == 1 and runs[0].spider == "generic" and runs[0].status == "finished"
    assert runs[0].new_claims == 9 and runs[0].new_debunks == 6


def test_named_source_only_and_recrawl(tmp_path, site, crawl_tools) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path, _sources(site.url))
    _crawl(crawl_tools, data, config, "-a", "source=official")
    assert site.paths() <= {"/robots.txt", "/official/a1.html", "/official/a2.html"}
    _crawl(crawl_tools, data, config, "-a", "source=official,rumor_feed")
    claims, debunks, runs = _rows(data / "piyao.db")
    assert len(debunks) == 2 and len(claims) == 3
    assert [(r.new_debunks, r.new_claims) for r in runs] == [(2, 0), (0, 3)]


def test_unknown_source_is_one_error_line(tmp_path, site, crawl_tools) -> None:
    data = tmp_path / "data"
    proc = _crawl(crawl_tools, data, _config(tmp_path, _sources(site.url)), "-a", "source=nope")
    (line,) = _error_lines(proc.stderr, "crawl.sources.nope")
    assert "no such source" in line and "forum" in line
    assert "Traceback" not in proc.stderr
    assert site.paths() <= {"/robots.txt"}


def test_max_pages_caps_article_pages_of_a_sitemap(tmp_path, site, crawl_tools) -> None:
    sources = _sources(site.url)
    sources["kepu"]["max_pages"] = 2
    data = tmp_path / "data"
    _crawl(crawl_tools, data, _config(tmp_path, {"kepu": sources["kepu"]}))
    _claims, debunks, _runs = _rows(data / "piyao.db")
    assert len(debunks) == 2
    assert len([p for p in site.paths() if p.startswith("/kepu/2025/")]) == 2


def test_sitemap_found_through_robots_txt(tmp_path, site, crawl_tools) -> None:
    kepu = _sources(site.url)["kepu"] | {"urls": [f"{site.url}/robots.txt"]}
    data = tmp_path / "data"
    _crawl(crawl_tools, data, _config(tmp_path, {"kepu": kepu}))
    _claims, debunks, _runs = _rows(data / "piyao.db")
    assert sorted(d.url.rsplit("/", 1)[-1] for d in debunks) == ["0001.html", "0002.html", "0003.html", "0004.html"]
    assert {"/sitemap_index.xml", "/sitemaps/articles.xml"} <= site.paths()


# crawlers.sources (no network) -------------------------------------------------------


def _settings(sources: dict[str, Any]) -> Settings:
    return Settings.model_validate({"crawl": {"sources": sources}})


def test_validate_sources_accepts_good_sources() -> None:
    assert validate_sources(_settings(_sources("http://h.test"))) == []
    assert validate_sources(Settings()) == []


def test_validate_sources_names_each_key() -> None:
    errors = validate_sources(
        _settings(
            {
                "forum": {"type": "list", "urls": ["http://h.test/"], "item": "ul >> li", "next_page": "a::bogus"},
                "bare_list": {"type": "list", "urls": ["http://h.test/"]},
                "x": {"type": "sitemap", "urls": ["ftp://h.test/sitemap.xml"], "allow": [r"/ok/\d+", "(unclosed"]},
                "xp": {"type": "article", "urls": ["http://h.test/a"], "title": "xpath://h1[", "text": "xpath:", "date": "xpath:foo:bar()"},
            }
        )
    )
    assert errors[0].startswith("crawl.sources.forum.item: not a valid CSS selector: ")
    assert errors[1].startswith("crawl.sources.forum.next_page: not a valid CSS selector: ") and "bogus" in errors[1]
    assert "crawl.sources.bare_list: type list needs `item` or `link`" in errors[2]
    assert errors[3] == "crawl.sources.x.urls[0]: not an http(s) URL: 'ftp://h.test/sitemap.xml'"
    assert errors[4].startswith("crawl.sources.x.allow[1]: bad regular expression '(unclosed': ")
    assert errors[5].startswith("crawl.sources.xp.title: not a valid XPath expression")
    assert errors[6] == "crawl.sources.xp.text: empty XPath expression after 'xpath:'"
    assert errors[7].startswith("crawl.sources.xp.date: not a valid XPath expression") and "prefix" in errors[7]
    assert len(errors) == 8
    assert all("\n" not in e for e in errors)


@pytest.mark.parametrize(
    "expr",
    ["ul.threads > li", "a.title::attr(href)", "h1::text", "div:not(.ad) p", "li:nth-child(2n+1)", "xpath://a/@href", "xpath:string(//h1)"],
)
def test_selector_error_accepts_valid_selectors(expr: str) -> None:
    assert selector_error(expr) is None


def test_source_errors_flags_long_names_and_keys() -> None:
    conf = _settings({"ok": {"type": "article", "urls": ["http://h.test/a"], "source": "名" * 201}}).crawl.sources["ok"]
    assert source_errors("ok", conf) == ["crawl.sources.ok.source: longer than 200 characters"]
    assert source_errors("has space", conf.model_copy(update={"source": "x"})) == [
        "crawl.sources.has space: a source key must be a non-empty name without spaces"
    ]


def test_pydantic_still_rejects_unknown_types_and_keys(tmp_path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"crawl": {"sources": {"f": {"type": "forum", "urls": ["http://h.test/"]}}}}), "utf-8")
    with pytest.raises(ConfigError, match=r"crawl\.sources\.f\.type"):
        load_settings(bad, environ={})


def test_extract_main_text_keeps_the_body_and_drops_the_page() -> None:
    html = (Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "generic" / "kepu" / "2025" / "0003.html").read_text("utf-8")
    text = extract_main_text(html)
    assert "摆放洋葱起不到任何预防作用" in text and "热门文章" not in text and "京ICP备" not in text
    assert extract_main_text("") == "" and extract_main_text("<html>") == ""
