"""科学辟谣 (科普中国 / 中国科协, piyao.kepuchina.cn): rumor lists by category and their articles.

List pages (HTML ``/rumor/rumorlist?type={typeId|0=all}&title=&keyword=0&page={n}``
and the AJAX fragment ``/rumor/rumorajaxlist?pageType=1&type={t}&year=0&page={n}``,
15 items a page): items ``div.rumor-list_item > a[href*="rumordetail?id="]``
with ``div.rumor-list_item-date`` and ``div.rumor-list_item-title``; the 2020
layout ``div.rumor-data-list ul > li`` (date in ``div.expert-msg > span``) and the
home widget ``._rumorList li`` (``h4`` title) are read too. Pagination: a
"下一页" / rel=next link, else ``<div class="total-page">共N页</div>``, else the
next ``page=`` while a page is full (15 items) and brought new articles.

Articles ``/rumor/rumordetail?id={alnum}``: title ``div.rumor-title``, info
``div.rumor-info``, body ``div.rumor-content`` cut at "分享到：". The body's
``流言：…`` (claim) and ``真相：…`` (truth) paragraphs are kept as labelled
paragraphs; the credit lines ``作者丨…`` / ``审核丨…`` (→ editor),
``时间：YYYY-MM-DD`` (→ published), ``所属分类：…`` and ``本文由…`` are taken out
of the text.

Verdict: the site has no rating field that any known crawler reads (see
SITES.md §3: articles are 流言→真相 refutations). A page that carries a label
(``VERDICT_LABEL_SELECTORS``, a guess: no captured page shows one) is mapped
with ``VERDICT_LABELS``; an unknown label gives no verdict. Without a label
the verdict is ``DEFAULT_VERDICT`` ("rumor"): the platform publishes
refutations. All selectors come from structure notes compiled from public
crawler code, not from a verified live page: see
tests/fixtures/sites/kepuchina/README.md.

``-a types=1,2,15`` crawls the lists of those category type ids instead of the
start URLs' (known ids in ``TYPE_NAMES``).
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

import lxml.html
import scrapy
from w3lib.url import add_or_replace_parameter
from lxml import etree
from scrapy.exceptions import CloseSpider
from scrapy.http import Response

from classifier.labels import (
    VERDICT_CREDIBLE,
    VERDICT_MISLEADING,
    VERDICT_PSEUDOSCIENCE,
    VERDICT_RUMOR,
    VERDICT_UNPROVEN,
)
from crawlers.extract import html_to_text, parse_cn_date
from crawlers.items import DebunkItem
from crawlers.spiders._base import PiyaoSpider, _as_list

SOURCE = "科学辟谣"
BASE = "https://piyao.kepuchina.cn"
PAGE_SIZE = 15  # items per AJAX list page (DA external/fetch_piyao.py)

# Category type ids seen in crawler code (DA); 8 is used elsewhere, name unknown.
TYPE_NAMES: dict[int, str] = {1: "疾病防治", 2: "食品安全", 6: "生活解惑", 7: "生物", 15: "营养健康", 16: "美容健身", 20: "心理学"}

# The site's own verdict words → piyao verdict codes. No captured 科学辟谣 page
# shows a rating label; the words are those the other Chinese platforms use
# (SITES.md §9), so that a label, if the site shows one, is read the same way.
VERDICT_LABELS: dict[str, str] = {
    "谣言": VERDICT_RUMOR,
    "流言": VERDICT_RUMOR,
    "假": VERDICT_RUMOR,
    "假新闻": VERDICT_RUMOR,
    "不实": VERDICT_RUMOR,
    "伪科学": VERDICT_PSEUDOSCIENCE,
    "伪常识": VERDICT_PSEUDOSCIENCE,
    "误区": VERDICT_MISLEADING,
    "有失实": VERDICT_MISLEADING,
    "片面": VERDICT_MISLEADING,
    "分情况": VERDICT_MISLEADING,
    "尚无定论": VERDICT_UNPROVEN,
    "存在争议": VERDICT_UNPROVEN,
    "存疑": VERDICT_UNPROVEN,
    "确有此事": VERDICT_CREDIBLE,
    "确实如此": VERDICT_CREDIBLE,
    "真": VERDICT_CREDIBLE,
}
# Without a label: 科学辟谣 articles refute a 流言 (SITES.md §3, §9: "implicit false").
DEFAULT_VERDICT = VERDICT_RUMOR
# Where a label would be (guessed; absent from every crawler seen).
VERDICT_LABEL_SELECTORS = ".rumor-label, .rumor-tag, .rumor-result, .rumor-verdict"

DETAIL_PATH = re.compile(r"/rumor/rumordetail$")
LIST_PATH = re.compile(r"/rumor/rumor(?:ajax)?list$")
DETAIL_ID = re.compile(r"^[A-Za-z0-9]+$")
TOTAL_PAGES = re.compile(r"共\s*(\d+)\s*页")
CREDIT = re.compile(r"^(作者|审核)\s*[丨|｜:：]\s*(.+)$")
CREDIT_MARK = re.compile(r"(作者|审核)\s*[丨|｜:：]\s*")
TIME_LINE = re.compile(r"^(?:发布)?时间\s*[:：]\s*(.+)$")
META_LINE = re.compile(r"^(?:所属分类\s*[:：].*|本文由.{0,60}|.*图库版权图片，转载使用可能引发版权纠纷.*)$")
SECTION = re.compile(r"^(流言|真相)\s*[:：]?\s*(.*)$")
SHARE_CUT = "分享到："
# List pages are fetched on every crawl; articles seen recently are skipped (crawlers/seen.py).
LIST_META = {"piyao_list": True}


def verdict_of(label: str | None) -> str | None:
    """Verdict code of a 科学辟谣 label; ``DEFAULT_VERDICT`` without one, None for an unknown one."""
    if label is None or not label.strip():
        return DEFAULT_VERDICT
    word = re.sub(r"[\s:：【】\[\]（）()]+", "", label)
    if word in VERDICT_LABELS:
        return VERDICT_LABELS[word]
    # Longest label contained in the text ("辟谣：伪科学" → 伪科学, not 假).
    for key in sorted(VERDICT_LABELS, key=len, reverse=True):
        if len(key) > 1 and key in word:
            return VERDICT_LABELS[key]
    return None


def article_id(url: str) -> str | None:
    """The ``id`` of a ``/rumor/rumordetail?id=…`` URL, else None."""
    parts = urlsplit(url)
    if not DETAIL_PATH.search(parts.path):
        return None
    rid = dict(parse_qsl(parts.query)).get("id", "")
    return rid if DETAIL_ID.match(rid) else None


def is_list_url(url: str) -> bool:
    return bool(LIST_PATH.search(urlsplit(url).path))


def with_page(url: str, page: int) -> str:
    """``url`` with its ``page`` query parameter set to ``page`` (other parameters kept, in order)."""
    return add_or_replace_parameter(url.split("#", 1)[0], "page", str(page))


def page_of(url: str) -> int:
    value = dict(parse_qsl(urlsplit(url).query)).get("page", "1")
    return int(value) if value.isdigit() else 1


def list_url(type_id: int, base: str = BASE, page: int = 1) -> str:
    return f"{base}/rumor/rumorlist?type={type_id}&title=&keyword=0&page={page}"


def _text(sel: Any) -> str:
    return re.sub(r"\s+", " ", " ".join(sel.xpath(".//text()").getall())).strip()


def split_body(text: str) -> tuple[list[str], dict[str, str]]:
    """Body lines without credits, and the credits found (author, reviewer, time).

    A 流言/真相 label on a line of its own is joined to the paragraph after it,
    so both sections stay labelled paragraphs (``流言：…`` / ``真相：…``).
    """
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    out: list[str] = []
    credits: dict[str, str] = {}
    pending: str | None = None
    for ln in lines:
        if ln.startswith(SHARE_CUT):
            break
        if CREDIT.match(ln):
            # "作者丨甲 审核丨乙 本文由… 时间：…" may share one line.
            marks = list(CREDIT_MARK.finditer(ln))
            for i, m in enumerate(marks):
                end = marks[i + 1].start() if i + 1 < len(marks) else len(ln)
                value = re.split(r"本文由|(?:发布)?时间\s*[:：]", ln[m.end() : end])[0].strip()
                if value:
                    credits.setdefault("author" if m.group(1) == "作者" else "reviewer", value)
            t = re.search(r"时间\s*[:：]\s*(\S+)", ln)
            if t:
                credits.setdefault("time", t.group(1))
            continue
        t = TIME_LINE.match(ln)
        if t:
            credits.setdefault("time", t.group(1))
            continue
        if META_LINE.match(ln):
            continue
        s = SECTION.match(ln)
        if s and not s.group(2):
            pending = s.group(1)  # "流言" alone: label the next paragraph
            continue
        if s:
            ln = f"{s.group(1)}：{s.group(2)}"
        elif pending:
            ln = f"{pending}：{ln}"
        pending = None
        out.append(ln)
    return out, credits


def cut_at_share(html: str) -> str:
    """The HTML of an article body up to its "分享到：" share line (that element and all after it removed)."""
    if not html or SHARE_CUT not in html:
        return html
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return html
    for el in root.iter():
        if isinstance(el.tag, str) and (el.text or "").strip().startswith(SHARE_CUT):
            node = el
            while node is not None and node is not root:
                parent = node.getparent()
                for sib in list(node.itersiblings()):
                    parent.remove(sib)
                node = parent
            el.getparent().remove(el)  # its tail (text after it) goes with it
            break
    return etree.tostring(root, encoding="unicode", method="html")


def editor_of(credits: dict[str, str]) -> str | None:
    parts = [f"{label}：{credits[key]}" for key, label in (("author", "作者"), ("reviewer", "审核")) if credits.get(key)]
    return "；".join(parts) or None


class KepuchinaSpider(PiyaoSpider):
    name = "kepuchina"
    default_start_urls = [list_url(0)]

    def __init__(self, *args: Any, types: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.type_ids = [int(t) for t in _as_list(types)]
        self._scheduled: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> KepuchinaSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, KepuchinaSpider)
        if spider.type_ids:  # category lists on the start URLs' site
            base = "{0.scheme}://{0.netloc}".format(urlsplit(spider.start_urls[0])) if spider.start_urls else BASE
            spider.start_urls = [list_url(t, base) for t in spider.type_ids]
        return spider

    def _article_request(self, url: str, list_title: str | None, list_date: Any) -> scrapy.Request | None:
        url = url.split("#", 1)[0]
        if not self._same_site(url) or article_id(url) is None:
            return None
        if url in self._scheduled or self.limit_reached(self.emitted):
            return None
        self._scheduled.add(url)
        return scrapy.Request(url, callback=self.parse_article, cb_kwargs={"list_title": list_title, "list_date": list_date})

    # List pages ------------------------------------------------------------
    def _list_entries(self, response: Response) -> Iterator[tuple[str, str | None, Any]]:
        """(href, title, date) of each list item, in page order."""
        for item in response.css("div.rumor-list_item"):
            href = item.css("a::attr(href)").get() or item.attrib.get("href")
            yield href or "", _text(item.css("div.rumor-list_item-title")) or None, parse_cn_date(_text(item.css("div.rumor-list_item-date")))
        for li in response.css("div.rumor-data-list ul > li"):  # 2020 layout
            yield li.css("a::attr(href)").get() or "", _text(li.css("a")) or None, parse_cn_date(_text(li.css("div.expert-msg > span")))
        for li in response.css("._rumorList li"):  # home page widget
            href = li.xpath(".//h4/ancestor::a[1]/@href").get() or li.css("a::attr(href)").get()
            yield href or "", _text(li.css("h4")) or None, None
        for a in response.css("a[href*='rumordetail']"):  # anything else that links an article
            yield a.attrib.get("href", ""), None, None

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        count = new = 0
        seen_here: set[str] = set()
        for href, title, date in self._list_entries(response):
            href = (href or "").strip()
            if not href or href.lower().startswith(("javascript:", "mailto:", "#")):
                continue
            url = response.urljoin(href).split("#", 1)[0]
            if article_id(url) is None or url in seen_here:
                continue
            seen_here.add(url)
            count += 1
            req = self._article_request(url, title, date)
            if req is not None:
                new += 1
                yield req
        if self.limit_reached(self.emitted):
            return
        yield from self._next_pages(response, count, new)

    def _next_pages(self, response: Response, count: int, new: int) -> Iterator[scrapy.Request]:
        nxt = (
            response.css("a[rel~=next]::attr(href)").get()
            or response.xpath("//a[normalize-space(.)='下一页' or normalize-space(.)='下一页>' or normalize-space(.)='>']/@href").get()
        )
        if nxt and not nxt.strip().lower().startswith("javascript:"):
            url = response.urljoin(nxt.strip())
            if self._same_site(url) and is_list_url(url):
                yield scrapy.Request(url, callback=self.parse, meta=LIST_META)
            return
        if not is_list_url(response.url):
            return
        total = TOTAL_PAGES.search(_text(response.css("div.total-page")))
        if total:
            for page in range(page_of(response.url) + 1, int(total.group(1)) + 1):
                yield scrapy.Request(with_page(response.url, page), callback=self.parse, meta=LIST_META)
        elif count >= PAGE_SIZE and new:
            # No pagination links (the AJAX fragment): a full page that brought new articles may have a successor.
            yield scrapy.Request(with_page(response.url, page_of(response.url) + 1), callback=self.parse, meta=LIST_META)

    # Articles ----------------------------------------------------------------
    def parse_article(self, response: Response, list_title: str | None = None, list_date: Any = None) -> Iterator[DebunkItem]:
        if self.limit_reached(self.emitted):
            raise CloseSpider("closespider_max_items")
        title = (
            _text(response.css("div.rumor-title"))
            or (response.css("meta[property='og:title']::attr(content)").get() or "").strip()
            or (list_title or "")
            or _text(response.css("title"))
        )
        info_lines, info_credits = split_body(html_to_text(response.css("div.rumor-info").get() or ""))
        body_lines, credits = split_body(html_to_text(cut_at_share(response.css("div.rumor-content").get() or "")))
        for key, value in info_credits.items():
            credits.setdefault(key, value)
        origin = None
        for ln in info_lines:
            m = re.search(r"来源\s*[:：]\s*(\S+)", ln)
            if m:
                origin = m.group(1)
        label = _text(response.css(VERDICT_LABEL_SELECTORS)) or None
        verdict = verdict_of(label)
        if verdict is None:
            self.logger.warning("unknown 科学辟谣 label %r at %s", label, response.url)
        text = "\n".join(body_lines)
        if not title and not text:
            self.logger.warning("no article content at %s", response.url)
            return
        self.emitted += 1
        yield DebunkItem(
            url=response.url,
            title=title,
            text=text,
            source=SOURCE,
            published=parse_cn_date(credits.get("time")) or parse_cn_date(" ".join(info_lines)) or list_date,
            verdict=verdict,
            editor=editor_of(credits),
            origin=origin,
        )
