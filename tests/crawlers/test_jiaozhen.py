"""The jiaozhen (腾讯较真) spider: real Scrapy crawls of the loopback mirror, plus parser and verdict unit tests.

The mirror (tests/fixtures/sites/jiaozhen, see its README.md) answers the site's
query URLs from files: ``/loadmore?...page=N`` → ``loadmore/N.json``,
``/searchresult?...num=N`` → ``searchresult/N.json``, ``/article?id=X`` →
``article/X.html``; the ``jz_mirror`` fixture below serves it so (conftest ``serve_dir``, ``query_files``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy.http import HtmlResponse, Request, TextResponse

from classifier.labels import VERDICTS
from crawlers.items import DebunkItem
from crawlers.spiders.jiaozhen import EXPLAIN_VERDICTS, RESULT_VERDICTS, JiaozhenSpider, split_result, strip_jsonp, verdict_of

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "jiaozhen"
FRAGMENTS = SITE / "fragments"

# article id → (title, verdict, published, editor)
EXPECTED = {
    # loadmore page 0 (JSONP)
    "375829077a0512f798b803be7eb304d3": ("成都青白江区10月底开展全员核酸检测", "rumor", dt.date(2020, 11, 1), None),
    "7fd7962a426d5630771006f7f9ec9b6b": ("特朗普夫妇确诊新冠肺炎", "credible", dt.date(2020, 10, 2), "海外网"),
    "5369f4d6f4924b27ef84f32315b364b0": ("尼帕病毒是下一个全球大流行病毒，比新冠危险75倍", "unproven", dt.date(2021, 3, 10), None),
    "e03335dc2d798cdce4ec913a9bce9a66": ("艾叶和艾灸可以杀毒除菌，预防新型冠状病毒肺炎", "unproven", dt.date(2020, 2, 16), "腾讯医典"),
    "cc44001e4872fc446001e881af63e6e3": ("印度南部新冠肺炎大爆发，几十人确诊数千人隔离", "rumor", dt.date(2020, 2, 15), "反海外谣言中心"),
    "9a6247f65785bcf659495e6ecc48e9e1": ("香囊可以预防新型冠状病毒", "pseudoscience", dt.date(2020, 2, 14), "腾讯医典"),
    # loadmore page 1 (plain JSON)
    "817a1c7e4f2616b7db1fe3d0e8101205": ("研究发现两成新冠患者会在3个月内患上精神病", "misleading", dt.date(2020, 11, 17), None),
    "3c5e4a8220dbb533504383246299d2b8": ("咽拭子阳性的受检者就是新冠肺炎确诊病例", "misleading", dt.date(2020, 6, 13), None),
    "cf95a3e7c9df3b284654992733a5ad40": ("德约科维奇新冠病毒检测呈阳性", "credible", dt.date(2020, 6, 23), None),
    "9af9a254ce6cbdf7baebe99d055ebee1": ("喝柠檬苏打水可以预防新冠肺炎", "pseudoscience", dt.date(2020, 3, 31), "丁阳"),
    "21a7601b99073c33f5fafff9e9b531e7": ("辉瑞新冠疫苗会致人面瘫", "unproven", dt.date(2020, 12, 16), None),  # no page: list entry
    # searchresult (JSONP; 9af9a254… is listed there too)
    "478aabc3a6b7d4ac9dd36090a3d14b54": ("义利北冰洋两员工新冠肺炎检测阳性", "rumor", dt.date(2020, 6, 21), "北京日报"),
    "16676620c8b888f5d866823d3ede7229": ("地塞米松是治疗新冠肺炎的特效药", "unproven", dt.date(2020, 6, 18), "谢望时"),
    "09a5f2e9c925b27e272407f72f74731e": ("英国首相鲍里斯确诊新冠肺炎", "credible", dt.date(2020, 3, 28), "较真团队"),
    "025ee19f852876b33131d1bfd42c4aa5": ("印度完了！印度新冠病人在街头突然倒地", "rumor", dt.date(2020, 5, 14), "世界卫生组织"),
}
BLOCKED = "73902ebff84c39b3bf5b9dd97d1d0a35"  # listed on loadmore page 1, disallowed by robots.txt
HOSTILE = "375829077a0512f798b803be7eb304d3"
HOSTILE_MARKERS = ["HOSTILE", "<script", "alert(", "document.", "javascript:", "onclick", "红包", "分享到", "QQ空间", "<"]

# The site's query URLs → mirror files.
_QUERY_FILES = {"/loadmore": ("page", "json"), "/searchresult": ("num", "json"), "/article": ("id", "html")}


@pytest.fixture
def jz_mirror(tmp_path, serve_dir, crawl_tools):
    served = serve_dir(crawl_tools.site_copy("jiaozhen", tmp_path), query_files=_QUERY_FILES)
    return served.url, served.requests


def _start(url: str) -> str:
    return f"start_url={url}/loadmore?artnum=0&page=0&callback=jsonp3,{url}/searchresult?title=新冠&num=0&callback=jsonp12"


def test_crawl_stores_every_listed_article(tmp_path, jz_mirror, crawl_tools) -> None:
    url, requests = jz_mirror
    data = tmp_path / "data"
    crawl_tools.run_scrapy("jiaozhen", data, "-a", _start(url))
    debunks, runs = crawl_tools.rows(data / "piyao.db")

    by_id = {d.url.removeprefix(f"{url}/article?id="): d for d in debunks}
    assert len(debunks) == len(EXPECTED) == 15
    assert set(by_id) == set(EXPECTED)
    for aid, (title, verdict, published, editor) in EXPECTED.items():
        row = by_id[aid]
        assert row.title == title, aid
        assert row.verdict == verdict, (aid, row.verdict)
        assert row.published == published, aid
        assert row.editor == editor, aid
        assert row.source == "腾讯较真"
        assert row.text.strip(), aid
        for marker in HOSTILE_MARKERS:
            assert marker not in row.text, (aid, marker)
            assert marker not in row.title, (aid, marker)

    # Real fragment (IzabelWang/rumor_breaker): claim, points without their numbers, body paragraphs.
    ai = by_id["e03335dc2d798cdce4ec913a9bce9a66"].text.split("\n")
    assert ai[0] == "流行说法：网传“艾叶和艾灸可以杀毒除菌”。"
    assert ai[1] == "查证要点："
    assert ai[2].startswith("目前没有充分证据！") and ai[3].startswith("此外，艾灸燃烧时")
    assert "艾灸是用艾叶和艾条熏烟" in by_id["e03335dc2d798cdce4ec913a9bce9a66"].text
    assert "查证者" not in by_id["e03335dc2d798cdce4ec913a9bce9a66"].text and "时间 :" not in ai
    # The hostile page keeps its real text, loses every script, handler, javascript: link and share bar.
    hostile = by_id[HOSTILE].text
    assert "青白江区正在制定大规模人群核酸检测应急预案。" in hostile
    assert "未计划开展全员核酸检测" in hostile
    # No article page (404): the item comes from the list entry's abstract.
    assert by_id["21a7601b99073c33f5fafff9e9b531e7"].text.startswith("辉瑞的新冠疫苗在三期实验中")

    # Pagination and robots.txt: pages 0..2 of loadmore, one searchresult page, the blocked page never fetched.
    paths = [urlsplit(p) for p in requests]
    assert "/robots.txt" in {p.path for p in paths}
    assert sorted(parse_qs(p.query)["page"][0] for p in paths if p.path == "/loadmore") == ["0", "1", "2"]
    assert [parse_qs(p.query)["num"][0] for p in paths if p.path == "/searchresult"] == ["0"]
    article_ids = [parse_qs(p.query)["id"][0] for p in paths if p.path == "/article"]
    assert BLOCKED not in article_ids
    assert sorted(article_ids) == sorted(EXPECTED)  # each once: the id listed twice was fetched once

    assert len(runs) == 1
    run = runs[0]
    assert run.spider == "jiaozhen" and run.status == "finished"
    assert run.items == 15 and run.new_debunks == 15 and run.errors == 0
    assert run.stats.get("robotstxt/forbidden") == 1
    assert run.stats.get("piyao/jiaozhen/list_only_items") == 1
    assert not run.stats.get("piyao/jiaozhen/verdict_unknown")


def test_recrawl_creates_no_duplicates(tmp_path, jz_mirror, crawl_tools) -> None:
    url, _requests = jz_mirror
    data = tmp_path / "data"
    crawl_tools.run_scrapy("jiaozhen", data, "-a", _start(url))
    crawl_tools.run_scrapy("jiaozhen", data, "-a", _start(url))
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 15 and len({d.url for d in debunks}) == 15
    assert [r.status for r in runs] == ["finished", "finished"]
    # Articles fetched again are "unchanged" (or not fetched at all: crawlers/seen.py); none is new.
    assert runs[1].new_debunks == 0 and runs[1].items <= 15


def test_max_items(tmp_path, jz_mirror, crawl_tools) -> None:
    url, _requests = jz_mirror
    data = tmp_path / "data"
    crawl_tools.run_scrapy("jiaozhen", data, "-a", f"start_url={url}/loadmore?artnum=0&page=0", "-a", "max_items=3")
    debunks, runs = crawl_tools.rows(data / "piyao.db")
    assert len(debunks) == 3 and runs[0].status == "finished"


# Verdict mapping ------------------------------------------------------------------


def _real_labels() -> set[tuple[str, str]]:
    """(result, explain) pairs of the real captures copied into the mirror."""
    pairs: set[tuple[str, str]] = set()
    for e in json.loads((SITE / "loadmore" / "1.json").read_text("utf-8"))["content"]:
        pairs.add((e["result"], e["explain"]))
    for e in strip_jsonp((SITE / "loadmore" / "0.json").read_text("utf-8"))["content"]:
        pairs.add((e["result"], e["explain"]))
    for h in strip_jsonp((SITE / "searchresult" / "0.json").read_text("utf-8"))["content"]:
        pairs.add(split_result(h["_source"]["result"]))
    return pairs


# Every (result, explain) label found in the three real 较真 captures (the loadmore subset, the
# searchresult response and the 397-row loadmore-derived CSV; see tests/fixtures/sites/jiaozhen/README.md),
# with the code it must get.
REAL_LABELS = {
    ("假", "谣言"): "rumor",
    ("假", "假新闻"): "rumor",
    ("假", "伪科学"): "pseudoscience",
    ("假", "伪常识"): "pseudoscience",
    ("疑", "有失实"): "misleading",
    ("疑", "分情况"): "misleading",
    ("疑", "尚无定论"): "unproven",
    ("疑", "存在争议"): "unproven",
    ("真", "确有此事"): "credible",
    ("真", "确实如此"): "credible",
}


@pytest.mark.parametrize(("label", "code"), sorted(REAL_LABELS.items()))
def test_every_real_label_is_mapped(label, code) -> None:
    result, explain = label
    assert verdict_of(explain, result) == code
    assert verdict_of(None, f"{result}-{explain}") == code  # searchresult's combined form
    assert EXPLAIN_VERDICTS[explain] == code
    assert code in VERDICTS


def test_mapping_covers_the_real_data() -> None:
    found = _real_labels()
    assert found <= set(REAL_LABELS), found - set(REAL_LABELS)
    assert {e for _r, e in REAL_LABELS} == set(EXPLAIN_VERDICTS)
    assert found == set(REAL_LABELS)  # the mirror's real entries cover all ten labels


def test_unknown_label_gives_none_and_a_stat(crawl_tools) -> None:
    stats = crawl_tools.Stats()
    assert verdict_of("半真半假", "疑", stats) is None
    assert verdict_of(None, "假-不知道", stats) is None
    assert stats.values["piyao/jiaozhen/verdict_unknown"] == 2
    assert stats.values["piyao/jiaozhen/verdict_unknown/半真半假"] == 1
    # No finer label: only the unambiguous coarse results decide.
    assert verdict_of(None, "假") == "rumor" and verdict_of("", "true") == "credible"
    assert verdict_of(None, "疑") is None and RESULT_VERDICTS["doubt"] is None
    assert verdict_of(None, None) is None


# Parsers ---------------------------------------------------------------------------

BASE = "http://mirror.test"


def test_strip_jsonp() -> None:
    assert strip_jsonp('jsonp3({"content": []})') == {"content": []}
    assert strip_jsonp('/**/ jQuery1_2({"a": 1});') == {"a": 1}
    assert strip_jsonp('callback("{\\"b\\": 2}")') == {"b": 2}
    assert strip_jsonp('{"c": 3}') == {"c": 3}
    with pytest.raises(ValueError):
        strip_jsonp("<html>not json</html>")


def _resp(path: str, query_file: str, cls=TextResponse):
    body = (SITE / query_file).read_bytes()
    return cls(url=BASE + path, body=body, encoding="utf-8", request=Request(BASE + path))


def test_list_pages_schedule_articles_and_the_next_page() -> None:
    spider = JiaozhenSpider(start_url=f"{BASE}/loadmore?artnum=0&page=0")
    out = list(spider.parse(_resp("/loadmore?artnum=0&page=0&callback=jsonp3", "loadmore/0.json")))
    arts = [r for r in out if "/article?" in r.url]
    assert len(arts) == 6
    assert arts[0].url == f"{BASE}/article?id=375829077a0512f798b803be7eb304d3"
    assert arts[0].cb_kwargs["entry"]["explain"] == "谣言"
    assert out[-1].url == f"{BASE}/loadmore?artnum=0&page=1&callback=jsonp3"
    assert out[-1].headers.get("Referer") == f"{BASE}/home".encode()
    # The empty page ends the list.
    assert list(spider.parse(_resp("/loadmore?artnum=0&page=2", "loadmore/2.json"))) == []
    # searchresult: total reached, no next page; an id already scheduled is not requested again.
    page1 = list(spider.parse(_resp("/loadmore?page=1", "loadmore/1.json")))
    assert [r.url for r in page1][-1] == f"{BASE}/loadmore?page=2"
    res = list(spider.parse(_resp("/searchresult?title=x&num=0", "searchresult/0.json")))
    assert all("/article?" in r.url for r in res)
    assert len(res) == 4  # 9af9a254… came with loadmore page 1
    entry = res[0].cb_kwargs["entry"]
    assert (entry["result"], entry["explain"], entry["author"]) == ("假", "谣言", "北京日报")


def test_searchresult_pages_advance_num_until_total() -> None:
    spider = JiaozhenSpider(start_url=f"{BASE}/searchresult?title=x&num=0")
    doc = {"code": 0, "total": 3, "content": [{"_id": "a" * 32, "_source": {"id": "a" * 32, "title": "T", "result": "真-确有此事"}}]}
    resp = TextResponse(url=f"{BASE}/searchresult?title=x&num=0", body=json.dumps(doc).encode(), encoding="utf-8")
    out = list(spider.parse(resp))
    assert out[-1].url == f"{BASE}/searchresult?title=x&num=1"
    bad = TextResponse(url=f"{BASE}/api/article/list?page=1", body=b'{"code": -1, "msg": "token"}', encoding="utf-8")
    assert list(spider.parse(bad)) == []


def test_article_page_fields() -> None:
    spider = JiaozhenSpider(start_url=f"{BASE}/loadmore?page=0")
    resp = _resp("/article?id=cc44001e4872fc446001e881af63e6e3", "article/cc44001e4872fc446001e881af63e6e3.html", HtmlResponse)
    (item,) = list(spider.parse_article(resp, entry={"id": "cc44001e4872fc446001e881af63e6e3"}))
    assert isinstance(item, DebunkItem)
    assert item["title"] == "印度南部新冠肺炎大爆发，几十人确诊数千人隔离"
    assert item["verdict"] == "rumor"  # 假 / 假新闻, read from the page
    assert item["published"] == dt.date(2020, 2, 15)
    assert item["editor"] == "反海外谣言中心"
    assert item["origin"] == "反海外谣言中心"
    assert item["source"] == "腾讯较真"


def test_real_fragment_verbatim() -> None:
    """The verbatim 'detail' fragment of the 伪科学 page (IzabelWang/rumor_breaker), wrapped in a page body."""
    detail = (FRAGMENTS / "article_detail_fragment_fake_2020.html").read_text("utf-8")
    head, rest = detail.split('<div class="check_content_mark">', 1)
    check, body = rest.split("</div><p>", 1)
    html = (
        f'<html><body><div class="title"><h1>鱼腥草可以预防和治疗新型冠状病毒肺炎</h1><p>{head}</p></div>'
        f'<div class="check_content text"><div class="check_content_mark">{check}</div></div>'
        f'<div class="question text"><p>{body}</div></body></html>'
    )
    resp = HtmlResponse(url=f"{BASE}/article?id=d3dcf7a7aa26a7c74d0124b2fbd10b45", body=html.encode(), encoding="utf-8")
    (item,) = list(JiaozhenSpider().parse_article(resp, entry={}))
    assert item["verdict"] == "pseudoscience"
    assert item["editor"] == "谢望时"
    assert item["published"] == dt.date(2020, 2, 17)
    lines = item["text"].split("\n")
    assert lines[0].startswith("流行说法：鱼腥草（折耳十根）对冠状病毒有治疗效果吗？")
    assert lines[2].startswith("部分研究表明") and lines[3].startswith("总体上来看")  # point numbers dropped


def test_nextjs_article_page() -> None:
    state = {
        "title": "测试：某说法",
        "rumor": "网传某说法",
        "abstract": [{"content": "要点一"}, {"content": "要点二"}],
        "content": "<p>正文<script>alert('HOSTILE')</script></p>",
        "author": "较真团队",
        "date": "2023-05-06",
        "markstyle": "doubt",
    }
    data = json.dumps({"props": {"pageProps": {"initialState": state}}}, ensure_ascii=False).replace("<", "\\u003c")
    page = f'<html><body><script id="__NEXT_DATA__" type="application/json">{data}</script></body></html>'
    resp = HtmlResponse(url=f"{BASE}/article?id=abcdef123456", body=page.encode(), encoding="utf-8")
    (item,) = list(JiaozhenSpider().parse_article(resp, entry={"explain": "有失实"}))
    assert item["title"] == "测试：某说法"
    assert item["text"] == "流传说法：网传某说法\n查证要点：\n要点一\n要点二\n正文"
    assert item["verdict"] == "misleading"
    assert item["published"] == dt.date(2023, 5, 6)
    assert item["editor"] == "较真团队"
