"""Pages in GBK, GB18030 and Big5 decoded right when the Content-Type header or <meta charset> lies.

Unit tests of ``detect_encoding`` and ``EncodingMiddleware``, then a real
``scrapy crawl`` against loopback pages served with lying headers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request, Response
from sqlalchemy import select

from crawlers.extract import detect_encoding, text_plausibility
from crawlers.middlewares import EncodingMiddleware
from store.db import open_store
from store.models import Debunk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_server import GB18030_TEXT, PARAS, TRAD_PARAS, TRAD_TITLE, HostileServer, article_html, article_path, list_html, reply, traditional  # noqa: E402

SIMP = "网传太阳能板释放有害电磁辐射？谣言！国家统计局数据显示，太阳能板不具备储电功能。这种说法有科学依据吗？"
TRAD = "網傳太陽能板釋放有害電磁輻射？謠言！國家統計局數據顯示，太陽能板不具備儲電功能。這種說法有科學依據嗎？"


def _page(text: str, head: str = "") -> str:
    return f"<html><head>{head}<title>标题</title></head><body><p>{text}</p></body></html>".replace("标题", text[:6])


@pytest.mark.parametrize(
    ("body", "declared", "expected"),
    [
        (_page(SIMP).encode("gbk"), "utf-8", "gb18030"),  # header says utf-8, body is GBK
        (_page(SIMP).encode("gbk"), "iso-8859-1", "gb18030"),  # header says Latin-1: mojibake without U+FFFD
        (_page(SIMP).encode("gbk"), "cp1252", "gb18030"),
        (_page(TRAD).encode("big5"), "utf-8", "big5hkscs"),
        (_page(TRAD).encode("big5"), "gb2312", "big5hkscs"),  # decodes as GBK too, but to rare characters
        (_page(SIMP).encode("utf-8"), "gbk", "utf-8"),
        (_page(SIMP).encode("utf-8"), "iso-8859-1", "utf-8"),
    ],
)
def test_detect_encoding_corrects_a_lie(body: bytes, declared: str, expected: str) -> None:
    choice = detect_encoding(body, declared)
    assert choice.encoding == expected and choice.changed and choice.clean


@pytest.mark.parametrize(
    ("body", "declared", "expected"),
    [
        (_page(SIMP).encode("gbk"), "gbk", "gb18030"),
        # A page declaring gb2312 with characters only GB18030 has: w3lib (and so Scrapy) reads gb2312 as gb18030.
        (_page(SIMP + GB18030_TEXT).encode("gb18030"), "gb2312", "gb18030"),
        (_page(TRAD).encode("big5"), "big5", "big5hkscs"),
        (_page(SIMP).encode("utf-8"), "utf-8", "utf-8"),
        (_page(TRAD).encode("utf-8"), "utf-8", "utf-8"),
        (b"<p>plain ascii</p>", "utf-8", "utf-8"),
        ("<p>Café crème brûlée, garçon</p>".encode("cp1252"), "cp1252", "cp1252"),  # nothing better: kept
    ],
)
def test_detect_encoding_keeps_a_true_declaration(body: bytes, declared: str, expected: str) -> None:
    choice = detect_encoding(body, declared)
    assert choice.encoding == expected and not choice.changed


def test_damaged_bytes_are_a_decode_error_with_the_closest_encoding() -> None:
    raw = _page(SIMP * 3).encode("gbk")
    cut = raw.index("这种".encode("gbk"))
    choice = detect_encoding(raw[:cut] + b"\xff" + raw[cut:], "utf-8")
    assert choice.encoding == "gb18030" and not choice.clean


def test_plausibility_separates_text_from_mojibake() -> None:
    assert text_plausibility(SIMP)[0] > 0.95 and text_plausibility(TRAD)[0] > 0.95
    assert text_plausibility(SIMP.encode("gbk").decode("cp1252", "replace"))[0] < 0.2
    assert text_plausibility(TRAD.encode("big5").decode("gb18030", "replace"))[0] < 0.8
    assert text_plausibility("hello") == (1.0, 0)


class _Stats:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def inc_value(self, key: str, n: float = 1) -> None:
        self.values[key] = self.values.get(key, 0) + n


def _mw() -> EncodingMiddleware:
    mw = EncodingMiddleware.__new__(EncodingMiddleware)
    mw.stats = _Stats()
    return mw


def test_middleware_rebuilds_the_response_with_the_right_encoding() -> None:
    mw = _mw()
    url = "http://mirror.test/a/c.html"
    resp = HtmlResponse(url, body=_page(SIMP).encode("gbk"), headers={"Content-Type": "text/html; charset=utf-8"}, request=Request(url))
    assert "\ufffd" in resp.text
    fixed = mw.process_response(resp.request, resp)
    assert isinstance(fixed, HtmlResponse) and fixed.encoding == "gb18030" and SIMP in fixed.text
    assert fixed.body == resp.body  # same bytes, explicit encoding
    assert mw.stats.values == {"piyao/encoding/corrected": 1, "piyao/encoding/corrected/utf-8_to_gb18030": 1}
    # A true declaration passes through untouched; a binary body at an .html URL is not text.
    ok = HtmlResponse(url, body=_page(SIMP).encode("utf-8"), headers={"Content-Type": "text/html; charset=utf-8"})
    assert mw.process_response(Request(url), ok) is ok
    png = HtmlResponse(url, body=b"\x89PNG\r\n\x1a\n\x00\x01", headers={"Content-Type": "image/png"})
    assert type(mw.process_response(Request(url), png)) is Response


# End to end ---------------------------------------------------------------------------------------

CASES = {
    # name: (title, paragraphs, encode, Content-Type, head)
    "gbk-header-utf8": ("GBK正文却声明UTF-8：网传吃味精致癌？", PARAS, "gbk", "text/html; charset=utf-8", ""),
    "gbk-header-latin1": ("GBK正文却声明ISO-8859-1：网传微波炉致癌？", PARAS, "gbk", "text/html; charset=iso-8859-1", ""),
    "gbk-meta-only": ("无头部编码只有meta：网传喝凉水长胖？", PARAS, "gbk", "text/html", '<meta charset="gb2312">'),
    "gbk-meta-utf8-lies": ("meta也谎称UTF-8：网传香蕉和酸奶同食中毒？", PARAS, "gbk", "text/html", '<meta charset="utf-8">'),
    "gb18030-needed": ("声明gb2312但需要GB18030：罕用字页面", [GB18030_TEXT, *PARAS], "gb18030", "text/html", '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'),
    "big5-header-utf8": (TRAD_TITLE, TRAD_PARAS, "big5", "text/html; charset=utf-8", ""),
    "big5-undeclared": ("繁體頁面沒有任何編碼聲明：網傳吃隔夜菜致癌？", TRAD_PARAS, "big5", "text/html", ""),
    "utf8-header-gbk": ("UTF-8正文却声明GBK：网传手机辐射致癌？", PARAS, "utf-8", "text/html; charset=gbk", ""),
}


def test_crawl_decodes_lying_pages(tmp_path, crawl_tools) -> None:
    with HostileServer() as server:
        paths = {}
        for name, (title, paras, enc, ctype, head) in CASES.items():
            html = article_html(title, paras, head=head)
            if enc == "big5":
                html = traditional(html)
            paths[name] = article_path(name)
            server.routes[paths[name]] = reply(html.encode(enc), content_type=ctype)
        server.routes["/robots.txt"] = reply("User-agent: *\nAllow: /\n", content_type="text/plain")
        server.routes["/ld.htm"] = reply(list_html(list(paths.values())))
        data = tmp_path / "data"
        crawl_tools.run_scrapy("piyao_org_cn", data, "-a", f"start_url={server.url}/ld.htm")
    store = open_store(f"sqlite:///{data / 'piyao.db'}")
    try:
        with store.session() as s:
            rows = {d.url.removeprefix(server.url): (d.title, d.text) for d in s.scalars(select(Debunk))}
    finally:
        store.close()
    assert set(rows) == set(paths.values())
    for name, (title, paras, _enc, _ctype, _head) in CASES.items():
        got_title, got_text = rows[paths[name]]
        assert got_title == title, name
        for para in paras:
            assert para in got_text, (name, para)
        assert "\ufffd" not in got_title + got_text, name
    assert "國家統計局數據顯示" in rows[paths["big5-header-utf8"]][1]  # Traditional kept
