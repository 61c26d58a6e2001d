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
    # Not "embed": libxml2 does not know it is a void element and would drop the text after an unclosed
    # <embed> with it (embedded=True removes the tag itself).
    kill_tags={"noscript", "template", "svg", "canvas", "audio", "video", "button", "iframe", "object", "applet"},
)
_WS = re.compile(r"[ \t\r\n\f\v\u00a0\u2002\u2003\u3000\u200b\ufeff]+")
_URL_JUNK = re.compile(r"[\x00-\x20]+")
# lxml refuses a str that declares its encoding (ValueError): the declaration means nothing once decoded.
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>")
# Characters lxml refuses in a tree (ValueError when the cleaner joins the text around a dropped element).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _drop_widgets(root: etree._Element) -> None:
    """Remove UI widgets with their text: javascript: links and share/QR blocks.

    Also drops attributes whose name starts with "{" (``<div {{attr}}>`` in a template): lxml reads such a
    name as a namespace and the cleaner's ``del attrib[name]`` raises ValueError on it.
    """
    doomed = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if any(name.startswith("{") for name in el.attrib):
            kept = [(k, v) for k, v in el.attrib.items() if not k.startswith("{")]
            el.attrib.clear()  # (deleting the one name fails the same way)
            for k, v in kept:
                el.set(k, v)
        # Browsers drop tabs and newlines inside a URL and controls around it: "java\tscript:" runs too.
        href = _URL_JUNK.sub("", el.get("href") or "").lower()
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
    html = _NOT_XML.sub(" ", _XML_DECL.sub("", html.lstrip("\ufeff"), count=1))
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
    date/datetime objects; strings without a written year-month-day go through
    ``parse_cn_datetime`` (relative dates, "昨天", "03-01", "3月1日" relative
    to the current time in Asia/Shanghai).
    """
    if s is None:
        return None
    if isinstance(s, _dt.datetime):
        return s.date()
    if isinstance(s, _dt.date):
        return s
    found = _match_datetime(str(s))
    if found:
        return found.date()  # a written year-month-day is taken as written
    # Relative and year-less forms ("3天前", "昨天 10:32", "03-01", "3月1日"): see parse_cn_datetime.
    full = parse_cn_datetime(s)
    return full.date() if full else None


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
        except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a zone of "+066…6"
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
        try:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # "9999-12-31T23:00:00-12:00" leaves datetime's range
            return None
    return value if _MIN_YEAR <= value.year <= _MAX_YEAR else None


# ---------------------------------------------------------------------------
# Dates with times, relative dates ("3天前", "昨天 10:32") and year-less dates.
# ---------------------------------------------------------------------------

import functools as _functools  # noqa: E402

DEFAULT_TZ = "Asia/Shanghai"
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"\d+|[零〇一二两三四五六七八九十百]+|半"
_RELATIVE = re.compile(
    rf"(?<![\d月年])(?P<n>{_NUM})\s*(?:个)?\s*(?P<unit>秒钟|秒|分钟|分|小时|钟头|天|日|周|星期|礼拜|月|年)\s*(?:之)?前"
)
_JUST_NOW = re.compile(r"^(?:刚刚|刚才|just now)$", re.I)
_DAY_WORD = re.compile(r"(?P<word>大前天|前天|昨天|昨日|今天|今日)\s*(?P<time>\d{1,2}[:：]\d{2}(?:[:：]\d{2})?)?")
_TIME = re.compile(r"^(?P<H>\d{1,2})[:：](?P<M>\d{2})(?:[:：](?P<S>\d{2}))?$")
_MONTH_DAY = re.compile(
    r"(?<![\d\-/.:])(?P<m>\d{1,2})(?:\s*月\s*(?P<d1>\d{1,2})\s*[日号]?|[-/](?P<d2>\d{1,2})(?![\d\-/.]))"
    r"(?:[\sT]*(?P<H>\d{1,2})[:：](?P<M>\d{2})(?:[:：](?P<S>\d{2}))?)?"
)
_ISO_WITH_ZONE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$", re.I)
_DAY_OFFSETS = {"今天": 0, "今日": 0, "昨天": 1, "昨日": 1, "前天": 2, "大前天": 3}
# Timestamps outside these years are placeholders ("0001-01-01T00:00:00Z" is Go's zero time) or garbage.
_MIN_YEAR, _MAX_YEAR = 1900, 2100
# "99999年前" is no date either: relative forms reach back a century at most.
_MAX_MONTHS_AGO = 1200


@_functools.lru_cache(maxsize=16)
def _zone(name: str) -> _dt.tzinfo:
    """The time zone ``name``; Asia/Shanghai (UTC+8, no DST since 1991) without a zone database."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, or no tzdata on this system
        if name in ("Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC", "Asia/Taipei", "Asia/Hong_Kong", "Asia/Macau"):
            return _dt.timezone(_dt.timedelta(hours=8), name)
        if name.upper() in ("UTC", "Z", "GMT"):
            return _dt.timezone.utc
        raise ValueError(f"unknown time zone {name!r}") from None


def _cn_number(raw: str) -> float | None:
    """10, "三", "十五", "二十", "两", "半" (0.5) as a number."""
    if raw.isdigit():
        return int(raw)
    if raw == "半":
        return 0.5
    if "百" in raw:
        return None
    if "十" in raw:
        tens, _, ones = raw.partition("十")
        t = _CN_DIGITS.get(tens, None) if tens else 1
        o = _CN_DIGITS.get(ones, None) if ones else 0
        return None if t is None or o is None else t * 10 + o
    if len(raw) == 1 and raw in _CN_DIGITS:
        return _CN_DIGITS[raw]
    return None


def _minus_months(value: _dt.datetime, months: int) -> _dt.datetime:
    y, m = divmod(value.year * 12 + value.month - 1 - months, 12)
    month = m + 1
    for day in range(value.day, 27, -1):  # 31 → 30 → 29 → 28 when the month is shorter
        try:
            return value.replace(year=y, month=month, day=day)
        except ValueError:
            continue
    return value.replace(year=y, month=month, day=min(value.day, 28))


def _time_of(g: dict[str, str | None]) -> _dt.time | None:
    try:
        return _dt.time(int(g.get("H") or 0), int(g.get("M") or 0), int(g.get("S") or 0))
    except ValueError:
        return None


def parse_cn_datetime(s: object, now: _dt.datetime | None = None, tz: str = DEFAULT_TZ) -> _dt.datetime | None:
    """The moment a Chinese page's date string means, as an aware datetime in ``tz``; None when there is none.

    Handles full dates with or without a time ("2024年3月1日", "2024-03-01 10:31:05",
    "2024/3/1", "20240301"), ISO 8601 and RFC 822 timestamps with a zone
    (converted to ``tz``), relative times ("刚刚", "5分钟前", "2小时前", "3天前",
    "三天前", "半小时前", "2周前", "1个月前"), day words ("今天 09:15", "昨天 10:32",
    "前天 08:00"), year-less dates ("03-01 10:32", "3月1日": this year, or last
    year when that would be in the future) and a bare time ("10:32": today).
    Times without a zone are in ``tz`` (crawl.timezone, Asia/Shanghai).
    ``now`` (default: the current time) anchors the relative forms; a naive
    ``now`` is taken to be in ``tz``.
    """
    zone = _zone(tz)
    if now is None:
        now = _dt.datetime.now(zone)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=zone)
    else:
        now = now.astimezone(zone)
    if s is None:
        return None
    if isinstance(s, _dt.datetime):
        return s.replace(tzinfo=zone) if s.tzinfo is None else s.astimezone(zone)
    if isinstance(s, _dt.date):
        return _dt.datetime(s.year, s.month, s.day, tzinfo=zone)
    raw = _SPACES.sub(" ", str(s)).strip()
    if not raw:
        return None
    if _JUST_NOW.match(raw):
        return now
    if _ISO_WITH_ZONE.search(raw) or re.search(r"[A-Za-z]{3},?\s+\d{1,2}\s+[A-Za-z]{3}\s+\d{4}", raw):
        value: _dt.datetime | None = None
        try:
            value = _dt.datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            try:
                value = _parsedate(raw)
            except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a zone of "+066…6"
                value = None
        if value is not None and _MIN_YEAR <= value.year <= _MAX_YEAR:  # (outside, astimezone may overflow)
            return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
    found = _match_datetime(raw)
    if found is not None:
        return found.replace(tzinfo=zone)
    m = _RELATIVE.search(raw)
    if m:
        n = _cn_number(m.group("n"))
        unit = m.group("unit")
        if n is not None:
            if unit in ("月", "年"):
                months = int(n * (12 if unit == "年" else 1))
                if months <= _MAX_MONTHS_AGO:
                    return _minus_months(now, months)
            else:
                seconds = {"秒钟": 1, "秒": 1, "分钟": 60, "分": 60, "小时": 3600, "钟头": 3600, "天": 86400, "日": 86400}.get(unit, 7 * 86400)
                if n * seconds <= _MAX_MONTHS_AGO * 31 * 86400:
                    return now - _dt.timedelta(seconds=n * seconds)
    m = _DAY_WORD.search(raw)
    if m:
        day = now.date() - _dt.timedelta(days=_DAY_OFFSETS[m.group("word")])
        t = _TIME.match(m.group("time").replace("：", ":")) if m.group("time") else None
        clock = _time_of(t.groupdict()) if t else _dt.time(0, 0)
        if clock is not None:
            return _dt.datetime.combine(day, clock, tzinfo=zone)
    m = _MONTH_DAY.search(raw)
    if m:
        g = m.groupdict()
        month, dom = int(g["m"]), int(g["d1"] or g["d2"])
        clock = _time_of(g)
        if g["d2"] and not g["H"] and not (len(g["m"]) == len(g["d2"]) == 2 and m.end() == len(raw)):
            clock = None  # a bare "3-12" inside text is too often not a date: require "03-12" at the end
        if clock is not None and 1 <= month <= 12 and 1 <= dom <= 31:
            for year in range(now.year, now.year - 8, -1):  # 02-29 waits for a leap year
                try:
                    candidate = _dt.datetime.combine(_dt.date(year, month, dom), clock, tzinfo=zone)
                except ValueError:
                    continue
                if candidate <= now:
                    return candidate
            return None
    t = _TIME.match(raw.replace("：", ":"))
    if t:
        clock = _time_of(t.groupdict())
        if clock is not None:
            return _dt.datetime.combine(now.date(), clock, tzinfo=zone)
    return None


# ---------------------------------------------------------------------------
# Encodings: Chinese pages whose Content-Type header or <meta charset> lies.
# ---------------------------------------------------------------------------

import bisect as _bisect  # noqa: E402
import codecs as _codecs  # noqa: E402
from dataclasses import dataclass as _dataclass  # noqa: E402

# Tried, in this order, when the declared encoding does not fit the bytes. big5hkscs is w3lib's
# (and so Scrapy's) reading of "big5": a superset. gb18030 is its reading of gb2312 and gbk.
CANDIDATE_ENCODINGS = ("utf-8", "gb18030", "big5hkscs")
_SCORE_SAMPLE = 20_000  # non-ASCII characters scored per candidate
_GOOD_ENOUGH = 0.9  # a declared encoding scoring this (decoding cleanly) is kept
_ACCEPT = 0.8  # the least score a replacement encoding needs
_LATIN_OK = frozenset("\u00a0©®·°×÷§±«»¥£¢€")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@_dataclass(frozen=True)
class EncodingChoice:
    """What to decode a body with: ``encoding`` (a Python codec name), whether it differs from the
    declared one, why, and whether the bytes decode without errors in it (``clean``)."""

    encoding: str
    changed: bool
    reason: str
    clean: bool
    score: float


@_functools.lru_cache(maxsize=65536)
def _common_han(ch: str) -> bool:
    """A common Chinese character: in GB2312 (simplified) or in Big5 level 1 (traditional)."""
    try:
        ch.encode("gb2312")
        return True
    except UnicodeEncodeError:
        pass
    try:
        return 0xA4 <= ch.encode("big5")[0] <= 0xC6
    except UnicodeEncodeError:
        return False


# Non-ASCII code points above U+024F that a Chinese page is made of, besides hanzi (scored by
# _common_han): bopomofo tone marks (spacing modifiers), general punctuation, letterlike and number
# forms, arrows, mathematical and technical symbols, enclosed alphanumerics, shapes, symbols,
# dingbats; CJK radicals, punctuation, kana, bopomofo, enclosed and compatibility forms; variation
# selectors, vertical and small forms; the BOM, full- and half-width forms; emoji. Every other
# script (Cyrillic, Greek, Hebrew, Arabic, Yi, Hangul, historic scripts, ...) and box drawing is
# what a Chinese page read in the wrong charset looks like (KOI8-R, windows-1251 and cp866 give
# Cyrillic and box drawing, UTF-16 gives Yi, Hangul and rare hanzi), as Latin-1 letters are what it
# looks like in ISO-8859-1.
_PLAUSIBLE_RANGES = (
    (0x02B0, 0x02FF),
    (0x2000, 0x24FF),
    (0x25A0, 0x2BFF),
    (0x2E80, 0x33FF),
    (0xFE00, 0xFE6F),
    (0xFEFF, 0xFFEF),
    (0x1F000, 0x1FAFF),
)
_PLAUSIBLE_STARTS = tuple(lo for lo, _ in _PLAUSIBLE_RANGES)


def _plausible_symbol(o: int) -> bool:
    i = _bisect.bisect_right(_PLAUSIBLE_STARTS, o) - 1
    return i >= 0 and o <= _PLAUSIBLE_RANGES[i][1]


def text_plausibility(text: str, *, other_scripts: bool = False) -> tuple[float, int]:
    """(share of plausible characters among the non-ASCII ones, how many non-ASCII were scored).

    Plausible for a Chinese page: common hanzi (GB2312 or Big5 level 1), CJK and full-width
    punctuation, kana, bopomofo, symbols, emoji. Implausible: U+FFFD, C1 controls, private use,
    Latin-1 letters (a CJK page read as Latin-1/cp1252), rare hanzi (GBK bytes read as Big5 and vice
    versa), every other script and box drawing (read as KOI8-R, windows-1251 or cp866: Cyrillic and
    box drawing; as UTF-16: Yi syllables, Hangul). With ``other_scripts`` those scripts and box
    drawing count as plausible: text, if not Chinese (a Russian page in KOI8-R); the rest does not.
    An ASCII-only text scores 1.0.
    """
    chars = _NON_ASCII.findall(text, 0, 4 * _SCORE_SAMPLE + 200_000)[:_SCORE_SAMPLE]
    if not chars:
        return 1.0, 0
    good = 0
    for ch in chars:
        o = ord(ch)
        if o < 0x250:
            good += ch in _LATIN_OK
        elif 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3134F:
            good += _common_han(ch)
        elif _plausible_symbol(o):
            good += 1
        elif other_scripts:
            good += o != 0xFFFD and not 0xE000 <= o < 0xF900
    return good / len(chars), len(chars)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    from w3lib.encoding import resolve_encoding

    resolved = resolve_encoding(name)
    if not resolved:
        return None
    return _codecs.lookup(resolved).name


@_functools.lru_cache(maxsize=256)
def _is_permissive(codec: str) -> bool:
    """Nearly any bytes decode in ``codec``, so that a body decodes cleanly in it says little: a
    single-byte charset (ISO-8859-x, windows-125x, KOI8-R, ...; charset-normalizer's list) or
    UTF-16/32. A Chinese page read in one comes out as Latin letters, Cyrillic or Yi syllables."""
    from charset_normalizer.utils import is_multi_byte_encoding

    name = codec.lower().replace("-", "_")
    return name.startswith(("utf_16", "utf_32")) or not is_multi_byte_encoding(name)


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def detect_encoding(body: bytes, declared: str | None, *, also_declared: tuple[str | None, ...] = ()) -> EncodingChoice:
    """The encoding to decode ``body`` with, given the one the response declares (or was inferred).

    Keeps ``declared`` when the bytes decode cleanly in it to plausible text. Otherwise, in order:
    the other declared encodings (``also_declared``: header charset, <meta charset>) and
    utf-8, gb18030, big5 decoding cleanly, best plausibility first; then the same allowing a few
    undecodable bytes; then charset-normalizer's guess (the detector of last resort). A
    replacement must score at least 0.8 and better than ``declared``.

    Plausible means plausible for a Chinese page (``text_plausibility``), except that a declared
    multi-byte charset (UTF-8, GBK, Shift_JIS...: decoding cleanly in one is evidence) is kept for
    text in any script. A declared single-byte charset or UTF-16, in which nearly any bytes decode,
    is not: a Chinese page declaring KOI8-R, windows-1251 or UTF-16 is read in the Chinese encoding
    that decodes it cleanly, not as Cyrillic or Yi syllables. Only when no encoding reads the bytes
    as Chinese does text in another script count: the declared reading (a Russian page in KOI8-R),
    a candidate's, charset-normalizer's.
    """
    decl = _codec(declared) or "utf-8"
    if body.isascii():
        if _strict(body, decl) == body.decode("ascii"):
            return EncodingChoice(decl, False, "ascii", True, 1.0)
        if b"\x00" not in body:  # not UTF-16/32 (nor UTF-7, which no browser honours): ASCII bytes are ASCII text
            return EncodingChoice("utf-8", True, "ascii", True, 1.0)
    text = _strict(body, decl)
    clean = text is not None
    if text is None:
        text = body.decode(decl, "replace")
    permissive = _is_permissive(decl)
    score, scored = text_plausibility(text, other_scripts=not permissive)
    if clean and (score >= _GOOD_ENOUGH or (scored < 8 and not permissive)):
        return EncodingChoice(decl, False, "declared", True, score)

    names: list[str] = []
    for name in (*also_declared, *CANDIDATE_ENCODINGS):
        codec = _codec(name)
        if codec and codec != decl and codec not in names:
            names.append(codec)
    # 1. Encodings that decode every byte.
    best: tuple[float, str] | None = None
    readings: list[tuple[str, str]] = []
    for codec in names:
        cand = _strict(body, codec)
        if cand is None:
            continue
        readings.append((codec, cand))
        s, _ = text_plausibility(cand)
        if best is None or s > best[0]:
            best = (s, codec)
    if best and best[0] >= _ACCEPT and best[0] > score:
        return EncodingChoice(best[1], True, "decodes cleanly", True, best[0])
    # 2. Nothing decodes every byte (a damaged page): the one with few errors and plausible text.
    if not clean:
        best = None
        for codec in names:
            cand = body.decode(codec, "replace")
            s, n = text_plausibility(cand)
            if n and cand.count("\ufffd") <= max(2, 0.02 * n) and (best is None or s > best[0]):
                best = (s, codec)
        if best and best[0] >= _ACCEPT and best[0] > score:
            return EncodingChoice(best[1], True, "fewest errors", False, best[0])
    # Nothing reads as Chinese. Text in another script (a Russian page in KOI8-R): the declared
    # reading, else the best of the clean ones, scored with other scripts counting.
    other, _ = text_plausibility(text, other_scripts=True)
    if clean and other >= _GOOD_ENOUGH:
        return EncodingChoice(decl, False, "declared (another script)", True, other)
    best = None
    for codec, cand in readings:
        s, _ = text_plausibility(cand, other_scripts=True)
        if best is None or s > best[0]:
            best = (s, codec)
    if best and best[0] >= _ACCEPT and best[0] > other:
        return EncodingChoice(best[1], True, "decodes cleanly (another script)", True, best[0])
    # 3. Last resort: charset-normalizer's guess.
    try:
        from charset_normalizer import from_bytes

        guess = from_bytes(body[:500_000]).best()
    except Exception:  # noqa: BLE001 - a detector failure leaves the declared encoding in place
        guess = None
    codec = _codec(guess.encoding) if guess is not None else None
    if codec and codec != decl:
        cand = body.decode(codec, "replace")
        cand_clean = _strict(body, codec) is not None
        s, _ = text_plausibility(cand)
        if s >= _ACCEPT and s > score:
            return EncodingChoice(codec, True, "charset-normalizer", cand_clean, s)
        s, _ = text_plausibility(cand, other_scripts=True)
        if s >= _ACCEPT and s > other:
            return EncodingChoice(codec, True, "charset-normalizer (another script)", cand_clean, s)
    return EncodingChoice(decl, False, "declared (no better candidate)", clean, score)
