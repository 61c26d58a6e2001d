"""Extraction helpers: page boilerplate removal, HTML to text, encodings, dates.

Crawled and imported texts carry the furniture of the page they came from:
WeChat account blocks, share widgets, inline scripts, navigation. ``clean_text``
removes it from plain text so that the store, the index and the classifier see
only the article.
"""

from __future__ import annotations

import re

# Whole lines that are page furniture (matched after whitespace is collapsed).
_BOILERPLATE_LINES = re.compile(
    r"^(?:"
    r"微信扫一扫.*|扫一扫.{0,20}|.*关注该公众号.*|.*扫描二维码.*|长按.{0,10}(识别|关注).*|"
    r"分享到.{0,30}|分享让更多人看到|分享|收藏|点赞|在看|赞|留言|写留言|写下你的留言|"
    r"轻点两下取消(赞|在看)|继续滑动看下一个|向上滑动看下一个|知道了|取消|允许|使用小程序|"
    r"视频|小程序|阅读原文|阅读|预览时标签不可点|喜欢此内容的人还喜欢|微信号|功能介绍|原创|"
    r"当前无WIFI.*|\d{1,2}:\d{2}|/|,|，|。|\.|举报/反馈|举报|反馈|"
    r"Scan to Follow|Got It|Cancel|Allow|"
    r"首页|返回顶部|返回首页|上一篇.*|下一篇.*|打印(本页)?|关闭(窗口|本页)?|【?字体[:：].{0,10}】?|"
    r"扫一扫在手机(上)?打开(当前|本)页.*|手机看|.*网站地图.*|.*版权所有.*|.*Copyright.*|"
    r"↓+|▼+|▽+|\|+"
    r")$",
    re.I,
)
# Lines that are inline JavaScript or CSS left behind by a text extractor.
_SCRIPT_LINE = re.compile(
    r"^(?:var\s|let\s|const\s|if\s*\(|else\b|for\s*\(|function\b|document\.|window\.|\$\(|//|/\*|\*/|"
    r"[{}();]+$|.*\bfunction\s*\(.*|.*addEventListener\(.*|.*getElementById\(.*|.*=\s*\(\+new Date\(\)\).*|"
    r"[.#]?[\w-]+\s*\{.*\}$)",
)
# Inline fragments of WeChat footers that end a line's useful content.
_TAIL_MARKERS = re.compile(
    r"(往期回顾|往期推荐|推荐阅读|精彩推荐|热文推荐|猜你喜欢|更多精彩|点击下方|点击上方|"
    r"微信扫一扫|关注.{0,12}(公众号|微信)|预览时标签不可点|喜欢此内容的人还喜欢)"
)
_DATETIME_LINE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$")
_SPACES = re.compile(r"[ \t\u00a0\u2002\u2003\u3000\u200b\ufeff]+")


def _strip_wechat_header(lines: list[str]) -> list[str]:
    """Drop the account block WeChat pages open with (title, account, 微信号, 功能介绍, date, place)."""
    head = lines[:40]
    if "功能介绍" not in head or "微信号" not in head:
        return lines
    i = head.index("功能介绍") + 2  # the line after is the account description
    while i < len(lines) and (_DATETIME_LINE.match(lines[i]) or len(lines[i]) <= 4):
        i += 1  # publication time and the short location line
    return lines[i:]


def clean_text(text: str) -> str:
    """Plain article text without page boilerplate: one paragraph per line."""
    if not text:
        return ""
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    lines = _strip_wechat_header(lines)
    out: list[str] = []
    total = sum(len(ln) for ln in lines) or 1
    seen = 0
    for ln in lines:
        seen += len(ln)
        if _BOILERPLATE_LINES.match(ln) or _SCRIPT_LINE.match(ln):
            continue
        m = _TAIL_MARKERS.search(ln)
        if m:
            # A footer marker: keep what precedes it on the line; stop if we are in the last part.
            before = ln[: m.start()].rstrip()
            if before:
                out.append(before)
            if seen > total * 0.3:
                break
            continue
        out.append(ln)
    # Repeated furniture such as doubled titles: drop consecutive duplicates.
    deduped = [ln for i, ln in enumerate(out) if i == 0 or ln != out[i - 1]]
    return "\n".join(deduped).strip()


# ---------------------------------------------------------------------------
# HTML to text and dates (crawler side). ``clean_text`` above stays the single
# place for plain-text boilerplate rules; ``html_to_text`` handles the markup.
# ---------------------------------------------------------------------------

import datetime as _dt  # noqa: E402
from email.utils import parsedate_to_datetime as _parsedate  # noqa: E402

import lxml.html  # noqa: E402
from lxml import etree  # noqa: E402
from lxml_html_clean import Cleaner  # noqa: E402

# Elements after which a line ends.
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br caption center dd div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)
# Page widgets identified by class or id: share bars, QR codes, print/close links.
_WIDGET = re.compile(r"(^|[\s_-])(share|bdshare|bdsharebuttonbox|fenxiang|qrcode|erweima|wx-?qr|print|toolbar)($|[\s_-])", re.I)
_CLEANER = Cleaner(
    scripts=True,
    javascript=True,  # on* event attributes and javascript: URLs
    comments=True,
    style=True,
    inline_style=True,
    links=True,
    meta=True,
    page_structure=False,
    processing_instructions=True,
    embedded=True,
    frames=True,
    forms=True,
    annoying_tags=True,
    safe_attrs_only=True,
    kill_tags={"noscript", "template", "svg", "canvas", "audio", "video", "button", "iframe", "object", "embed", "applet"},
)
_WS = re.compile(r"[ \t\r\n\f\v\u00a0\u2002\u2003\u3000\u200b\ufeff]+")


def _drop_widgets(root: etree._Element) -> None:
    """Remove UI widgets with their text: javascript: links and share/QR blocks."""
    doomed = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        href = (el.get("href") or "").strip().lower()
        marker = f"{el.get('class') or ''} {el.get('id') or ''}"
        if href.startswith(("javascript:", "vbscript:")) or (marker.strip() and _WIDGET.search(marker)):
            doomed.append(el)
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()


def _collect(el: etree._Element, out: list[str]) -> None:
    if not isinstance(el.tag, str):  # comments and processing instructions
        if el.tail:
            out.append(el.tail)
        return
    block = el.tag.lower() in _BLOCK_TAGS
    if block:
        out.append("\n")
    if el.text:
        out.append(el.text)
    for child in el:
        _collect(child, out)
    if block:
        out.append("\n")
    if el.tail:
        out.append(el.tail)


def html_to_text(html: str) -> str:
    """Sanitized plain text of an HTML page or fragment, one paragraph per line.

    Scripts, styles, comments, forms, embedded objects, event attributes and
    javascript: links (with their text) are removed before the text is read;
    the result then goes through ``clean_text`` for plain-text boilerplate.
    """
    if not html or not html.strip():
        return ""
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return ""
    _drop_widgets(doc)
    doc = _CLEANER.clean_html(doc)
    body = doc.find("body")
    root = body if body is not None else doc
    parts: list[str] = []
    _collect(root, parts)
    lines = [_WS.sub(" ", ln).strip() for ln in "".join(parts).split("\n")]
    text = "\n".join(ln for ln in lines if ln)
    clean = globals().get("clean_text")  # looked up at call time: owned by another part of this module
    return clean(text) if callable(clean) else text


_DATE = re.compile(
    r"(?P<y>(?:19|20)\d{2})\s*[-/.·年]\s*(?P<m>\d{1,2})\s*[-/.·月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:[\sT]*(?P<H>\d{1,2})[:：时](?P<M>\d{2})(?:[:：分](?P<S>\d{2}))?)?"
)
_COMPACT_DATE = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)(?!\d)")


def _match_datetime(s: str) -> _dt.datetime | None:
    for rx in (_DATE, _COMPACT_DATE):
        for m in rx.finditer(s):
            g = m.groupdict()
            try:
                return _dt.datetime(
                    int(g["y"]), int(g["m"]), int(g["d"]),
                    int(g.get("H") or 0), int(g.get("M") or 0), int(g.get("S") or 0),
                )  # fmt: skip
            except ValueError:
                continue
    return None


def parse_cn_date(s: object) -> _dt.date | None:
    """The date in a Chinese page's date string, or None.

    Accepts "2025-07-17 10:31:05", "2021-04-10", "2025年7月17日", "2025/7/17",
    "2025·07·17", "时间：2025-07-17", "20250717" (as in article URLs) and
    date/datetime objects.
    """
    if s is None:
        return None
    if isinstance(s, _dt.datetime):
        return s.date()
    if isinstance(s, _dt.date):
        return s
    found = _match_datetime(str(s))
    return found.date() if found else None


def parse_feed_datetime(s: object) -> _dt.datetime | None:
    """A feed timestamp (RFC 822 pubDate, ISO 8601, or a Chinese date) as a naive datetime.

    Timestamps with a zone are converted to UTC (the store keeps naive UTC);
    those without one are kept as written.
    """
    if s is None:
        return None
    if isinstance(s, _dt.datetime):
        value = s
    else:
        raw = str(s).strip()
        if not raw:
            return None
        value = None
        try:
            value = _parsedate(raw)
        except (TypeError, ValueError, IndexError):
            value = None
        if value is None:
            try:
                value = _dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                value = _match_datetime(raw)
        if value is None:
            return None
    assert value is not None
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value
