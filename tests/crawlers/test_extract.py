"""html_to_text, parse_cn_date, parse_feed_datetime; detect_encoding against single-byte and UTF-16 lies."""

from __future__ import annotations

import datetime as dt

import pytest

from crawlers.extract import detect_encoding, html_to_text, parse_cn_date, parse_feed_datetime, text_plausibility

HOSTILE = """<html><head><script>var x = "HEAD-SCRIPT";</script><style>p{color:red} STYLE-TEXT</style></head>
<body><div class="con_txt">
<p>第一段：隔夜菜并不会“吃了就致癌”。</p>
<script type="text/javascript">document.write("BODY-SCRIPT")</script>
<p onclick="alert('ONCLICK')" onmouseover="steal()">第二段&nbsp;有<b>加粗</b>和<a href="/x">链接</a>。</p>
<p><a href="javascript:alert('JS-LINK')">JS-LINK-TEXT</a></p>
<p>换行<br>之后</p>
<iframe src="http://evil.example/">IFRAME-TEXT</iframe>
<img src="a.png" onerror="alert('ONERROR')">
<p>微信扫一扫</p>
<p>分享到：<a href="javascript:;">微信</a><a href="javascript:;">微博</a></p>
<div class="share bdsharebuttonbox"><span>分享到</span><a href="#">QQ空间</a></div>
<!-- COMMENT-TEXT -->
</div></body></html>"""


def test_html_to_text_keeps_paragraphs_as_lines() -> None:
    text = html_to_text(HOSTILE)
    lines = text.split("\n")
    assert lines[0] == "第一段：隔夜菜并不会“吃了就致癌”。"
    assert "第二段 有加粗和链接。" in lines
    assert "换行" in lines and "之后" in lines


@pytest.mark.parametrize(
    "marker",
    ["HEAD-SCRIPT", "STYLE-TEXT", "BODY-SCRIPT", "ONCLICK", "steal", "JS-LINK", "IFRAME-TEXT", "ONERROR", "COMMENT-TEXT",
     "微信扫一扫", "分享到", "QQ空间", "<", "document.write"],
)  # fmt: skip
def test_html_to_text_drops_hostile_markup_and_furniture(marker: str) -> None:
    assert marker not in html_to_text(HOSTILE)


def test_html_to_text_fragments_and_empty_input() -> None:
    assert html_to_text("") == ""
    assert html_to_text("   ") == ""
    assert html_to_text("只是一行文字") == "只是一行文字"
    assert html_to_text("<li>一</li><li>二</li>") == "一\n二"
    assert html_to_text("&lt;p&gt;转义&amp;实体") == "<p>转义&实体"


def test_html_to_text_runs_clean_text() -> None:
    from crawlers import extract

    assert callable(getattr(extract, "clean_text", None))
    # A WeChat line that only the plain-text rules know about.
    assert "阅读原文" not in html_to_text("<p>正文内容在这里，足够长。</p><p>阅读原文</p>")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-07-17 10:31:05", dt.date(2025, 7, 17)),
        ("2021-04-10", dt.date(2021, 4, 10)),
        ("2025年7月17日", dt.date(2025, 7, 17)),
        ("2025年07月17日 10:31", dt.date(2025, 7, 17)),
        ("时间：2025-7-1", dt.date(2025, 7, 1)),
        ("来源：新京报 时间：2025/07/16", dt.date(2025, 7, 16)),
        ("（2025·07·17）", dt.date(2025, 7, 17)),
        ("/20250717/ef39a204545b491c8d12d4c1def14519/c.html", dt.date(2025, 7, 17)),
        (dt.datetime(2024, 1, 2, 3, 4), dt.date(2024, 1, 2)),
        (dt.date(2024, 1, 2), dt.date(2024, 1, 2)),
        ("2025-13-45", None),
        ("没有日期", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_cn_date(raw: object, expected: dt.date | None) -> None:
    assert parse_cn_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Thu, 17 Jul 2025 08:30:00 +0800", dt.datetime(2025, 7, 17, 0, 30)),
        ("2025-07-17T02:00:00Z", dt.datetime(2025, 7, 17, 2, 0)),
        ("2025-07-14T09:00:00+08:00", dt.datetime(2025, 7, 14, 1, 0)),
        ("2025-07-17 10:31:05", dt.datetime(2025, 7, 17, 10, 31, 5)),
        ("2025年7月17日", dt.datetime(2025, 7, 17)),
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_feed_datetime(raw: str, expected: dt.datetime | None) -> None:
    assert parse_feed_datetime(raw) == expected


# Charset lies that a Chinese page decodes cleanly in ------------------------------------------------

CHINESE = "网传隔夜菜会致癌，专家表示这种说法没有科学依据。国家卫健委提醒：不信谣、不传谣。"
RUSSIAN = ("Министерство здравоохранения опровергло слухи о том, что вчерашние овощи вызывают рак. "
           "Эксперты считают, что это утверждение не имеет научных оснований.")


def _html(text: str) -> str:
    return f"<html><head><title>{text[:8]}</title></head><body><p>{text}</p></body></html>"


@pytest.mark.parametrize("codec", ["gbk", "utf-8"])
@pytest.mark.parametrize("charset", ["koi8-r", "windows-1251", "iso-8859-5", "utf-16"])
def test_chinese_page_served_with_a_cyrillic_or_utf16_charset_reads_as_chinese(codec: str, charset: str) -> None:
    """GBK or UTF-8 Chinese bytes served with ``charset=koi8-r`` (windows-1251, ...) decode cleanly in that
    charset too, as Cyrillic or Yi syllables; the Chinese reading wins, from the header or the <meta>."""
    from scrapy.http import HtmlResponse, Request

    from crawlers.middlewares import EncodingMiddleware

    html = _html(CHINESE)
    if len(html.encode(codec)) % 2:
        html += "\n"  # an even length, which UTF-16 reads without an error
    body = html.encode(codec)
    assert CHINESE not in body.decode(charset)  # the lie decodes without an error, to something else
    choice = detect_encoding(body, charset)
    assert choice.changed and choice.clean and body.decode(choice.encoding) == html, choice
    assert body.decode(detect_encoding(body, None, also_declared=(charset,)).encoding) == html

    class _Stats:
        def inc_value(self, key: str, n: int = 1) -> None:
            pass

    mw = EncodingMiddleware.__new__(EncodingMiddleware)
    mw.stats = _Stats()
    url = "http://mirror.test/a/c.html"
    resp = HtmlResponse(url, body=body, headers={"Content-Type": f"text/html; charset={charset}"}, request=Request(url))
    assert CHINESE not in resp.text
    assert CHINESE in mw.process_response(resp.request, resp).text


@pytest.mark.parametrize("charset", ["koi8-r", "windows-1251", "iso-8859-5"])
def test_russian_page_keeps_its_cyrillic_charset(charset: str) -> None:
    body = _html(RUSSIAN).encode(charset)
    choice = detect_encoding(body, charset)
    assert not choice.changed and body.decode(choice.encoding) == _html(RUSSIAN), choice
    # Mislabelled UTF-8: charset-normalizer's guess, a Cyrillic charset, is still taken.
    assert body.decode(detect_encoding(body, "utf-8").encoding) == _html(RUSSIAN)


def test_plausibility_ranks_cjk_above_cyrillic_and_yi() -> None:
    assert text_plausibility(CHINESE)[0] == 1.0
    for charset in ("koi8-r", "windows-1251", "cp866"):
        assert text_plausibility(CHINESE.encode("gbk").decode(charset))[0] < 0.5, charset
    yi = "啊阿埃挨八巴吧爸".encode("gbk").decode("utf-16-le")  # GBK trail bytes A1-A4 make Yi syllables
    assert "\ua1b0" in yi and text_plausibility(yi)[0] == 0.0
    assert text_plausibility(RUSSIAN)[0] == 0.0 and text_plausibility(RUSSIAN, other_scripts=True)[0] == 1.0
