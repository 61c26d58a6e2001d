"""果壳: 流言百科 (liuyan.guokr.com) rumor pages, and the www.guokr.com article API.

流言百科 (legacy; captured 2020, may be offline). Category index ``/category/``:
category links ``div.cate-page > div.main > ul:nth-child(1) > li > a``; list
pages (also the verdict filters ``/category/?cond=true|false|discussing``):
items ``.rumor-title > a``, next page ``ul.pages > ul > li:last-child > a`` (the
site shows at most 100 pages of 9). Detail pages: title ``h2.rumor-title``,
claim ``div.rumor-desc`` (label ``span.arrow`` 流言), verdict
``div.rumor-sum > strong`` (真/假/论), truth ``div.rumor-sum > p.rumor-truth``
(label span 真相), argument ``div.rumor-content`` (``h2`` 论证 + ``div.content``).
The item text keeps them as labelled paragraphs: ``流言：…``, ``真相：…``, then
``论证`` and its paragraphs. Selectors: public crawler code (IzabelWang/rumor_breaker
``后端/data/果壳网爬虫/guokr/guokr/spiders/liuyan.py``) and the real HTML fragments
it saved (piyao's research fixtures ``guokr_liuyan/``). Where the page shows its
date is not known; ``DATE_SELECTORS`` are guesses.

Verdict map (``VERDICT_LABELS``): 假 → rumor, 真 → credible, 论 / 论证中 →
unproven. Evidence: the saved items carry LiuyanType 真/假/论 (474 真 / 899 假 /
337 论证中 in the rumor_breaker readme); the texts of 真 items confirm the claim
(e.g. 见手青 does cause hallucinations), those of 假 items refute it, and 论 items
end "还是未知数"; the site's own filter names are cond=true / false / discussing.
An unknown label gives no verdict.

API (``https://www.guokr.com/apis/minisite/article.json?retrieve_type=by_subject&limit=20&offset=N``):
``result[]`` entries (id, title, summary, url, date_published, author.nickname,
resource_url); each article's JSON ``https://apis.guokr.com/minisite/article/{id}.json``
gives ``result.content`` (HTML). Pages follow by ``offset`` while ``offset +
limit < total``. These are general science articles: only those whose title,
summary, subject or channels speak of rumors (``RUMOR_WORDS``) are kept, unless
``-a api_all=true``; they carry no verdict label (verdict None). Source: RSSHub
``lib/routes/guokr/scientific.ts`` (structure notes, medium confidence).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

import scrapy
from w3lib.url import add_or_replace_parameter
from scrapy.exceptions import CloseSpider
from scrapy.http import Response

from classifier.labels import VERDICT_CREDIBLE, VERDICT_RUMOR, VERDICT_UNPROVEN
from crawlers.extract import html_to_text, parse_cn_date
from crawlers.items import DebunkItem
from crawlers.spiders._base import PiyaoSpider

SOURCE = "果壳"

# 流言百科's verdict (div.rumor-sum > strong) → piyao verdict codes.
VERDICT_LABELS: dict[str, str] = {
    "假": VERDICT_RUMOR,
    "真": VERDICT_CREDIBLE,
    "论": VERDICT_UNPROVEN,
    "论证中": VERDICT_UNPROVEN,
}
DATE_SELECTORS = ".rumor-info, .rumor-date, .rumor-time, .post-info, .article-info, time"
RUMOR_WORDS = re.compile(r"谣|流言|伪科学|误区|真相|是真的吗|靠谱吗")
# List pages and API pages are fetched on every crawl; articles seen recently are skipped (crawlers/seen.py).
LIST_META = {"piyao_list": True}
# Labels of the claim/truth blocks, dropped from their text (the item adds its own).
_LABEL_SPAN = "self::span[contains(@class,'arrow') or normalize-space(.)='流言' or normalize-space(.)='真相']"


def verdict_of(label: str | None) -> str | None:
    """Verdict code of a 流言百科 label (真/假/论), None when missing or unknown."""
    if not label:
        return None
    return VERDICT_LABELS.get(re.sub(r"\s+", "", label))


def _text(sel: Any) -> str:
    return re.sub(r"\s+", " ", " ".join(sel.xpath(".//text()").getall())).strip()


def _inner_text(sel: Any) -> str:
    """Plain text of a labelled block without its label spans."""
    if not sel:
        return ""
    html = "".join(sel[0].xpath(f"./node()[not({_LABEL_SPAN})]").getall())
    return html_to_text(f"<div>{html}</div>")


def with_offset(url: str, offset: int) -> str:
    """``url`` with its ``offset`` query parameter set (other parameters kept, in order; no fragment)."""
    return add_or_replace_parameter(url.split("#", 1)[0], "offset", str(offset))


def _is_json(response: Response) -> bool:
    ctype = (response.headers.get("Content-Type") or b"").decode("latin-1").lower()
    return "json" in ctype or urlsplit(response.url).path.endswith(".json") or response.body.lstrip()[:1] == b"{"


class GuokrSpider(PiyaoSpider):
    name = "guokr"
    default_start_urls = [
        "http://liuyan.guokr.com/category/",
        "https://www.guokr.com/apis/minisite/article.json?retrieve_type=by_subject&limit=20&offset=0",
    ]

    def __init__(self, *args: Any, api_all: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_all = str(api_all or "").lower() in ("1", "true", "yes")
        self._scheduled: set[str] = set()

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.netloc.lower()
        return parts.scheme in ("http", "https") and (host in self._hosts() or host == "guokr.com" or host.endswith(".guokr.com"))

    def _once(self, url: str) -> bool:
        """True the first time ``url`` is scheduled (and the item limit is not reached)."""
        if url in self._scheduled or self.limit_reached(self.emitted):
            return False
        self._scheduled.add(url)
        return True

    # Lists ------------------------------------------------------------------
    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if _is_json(response):
            yield from self.parse_api_list(response)
            return
        for a in response.css("div.cate-page > div.main > ul:nth-child(1) > li > a"):
            href = (a.attrib.get("href") or "").strip()
            if href and not href.lower().startswith(("javascript:", "mailto:", "#")):
                url = response.urljoin(href)
                if self._allowed(url):
                    yield scrapy.Request(url, callback=self.parse, meta=LIST_META, cb_kwargs={"category": _text(a) or None})
        category = kwargs.get("category")
        for a in response.css(".rumor-title > a"):
            href = (a.attrib.get("href") or "").strip()
            if not href or href.lower().startswith(("javascript:", "mailto:", "#")):
                continue
            url = response.urljoin(href).split("#", 1)[0]
            if self._allowed(url) and self._once(url):
                yield scrapy.Request(url, callback=self.parse_detail, cb_kwargs={"list_title": _text(a) or None})
        if self.limit_reached(self.emitted):
            return
        nxt = (
            response.css("ul.pages > ul > li:last-child > a::attr(href)").get()
            or response.css("ul.pages a[rel~=next]::attr(href)").get()
            or response.xpath("//ul[contains(@class,'pages')]//a[normalize-space(.)='下一页' or normalize-space(.)='>']/@href").get()
        )
        if nxt and not nxt.strip().lower().startswith("javascript:"):
            url = response.urljoin(nxt.strip())
            if self._allowed(url):
                yield scrapy.Request(url, callback=self.parse, meta=LIST_META, cb_kwargs={"category": category})

    # 流言百科 detail pages ----------------------------------------------------------
    def parse_detail(self, response: Response, list_title: str | None = None) -> Iterator[DebunkItem]:
        if self.limit_reached(self.emitted):
            raise CloseSpider("closespider_max_items")
        title = _text(response.css("h2.rumor-title")) or (list_title or "") or _text(response.css("title"))
        claim = _inner_text(response.css("div.rumor-desc"))
        truth = _inner_text(response.css("p.rumor-truth"))
        label = _text(response.css("div.rumor-sum > strong")) or _text(response.css(".rumor-sum strong")) or None
        verdict = verdict_of(label)
        if label and verdict is None:
            self.logger.warning("unknown 果壳 label %r at %s", label, response.url)
        argument = html_to_text(response.css("div.rumor-content").get() or "")
        lines: list[str] = []
        for name, block in (("流言", claim), ("真相", truth)):
            if block:
                first, *rest = block.split("\n")
                lines += [f"{name}：{first}", *rest]
        if argument:
            lines.append(argument)
        text = "\n".join(lines)
        published = parse_cn_date(_text(response.css(DATE_SELECTORS))) or parse_cn_date(
            response.css("meta[property='article:published_time']::attr(content)").get()
        )
        if not title and not text:
            self.logger.warning("no article content at %s", response.url)
            return
        self.emitted += 1
        yield DebunkItem(url=response.url, title=title, text=text, source=SOURCE, published=published, verdict=verdict, editor=None)

    # www.guokr.com API -------------------------------------------------------------
    def _wanted(self, entry: dict[str, Any]) -> bool:
        if self.api_all:
            return True
        words = [str(entry.get("title") or ""), str(entry.get("summary") or "")]
        for key in ("subject", "channels"):
            value = entry.get(key)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, dict):
                    words.append(str(v.get("name") or ""))
        return bool(RUMOR_WORDS.search(" ".join(words)))

    def parse_api_list(self, response: Response) -> Iterator[scrapy.Request]:
        try:
            doc = json.loads(response.text)
        except ValueError:
            self.logger.warning("article list %s is not JSON", response.url)
            return
        entries = [e for e in (doc.get("result") or []) if isinstance(e, dict)]
        for entry in entries:
            resource = str(entry.get("resource_url") or "")
            if not resource and entry.get("id") is not None:
                resource = f"https://apis.guokr.com/minisite/article/{entry['id']}.json"
            if not resource or not self._wanted(entry):
                continue
            url = response.urljoin(resource)
            if self._allowed(url) and self._once(url):
                yield scrapy.Request(url, callback=self.parse_api_article, cb_kwargs={"entry": entry})
        if self.limit_reached(self.emitted) or not entries:
            return
        offset = int(doc.get("offset") or dict(parse_qsl(urlsplit(response.url).query)).get("offset") or 0)
        limit = int(doc.get("limit") or len(entries))
        total = doc.get("total")
        if total is None or offset + limit < int(total):
            yield scrapy.Request(with_offset(response.url, offset + limit), callback=self.parse_api_list, meta=LIST_META)

    def parse_api_article(self, response: Response, entry: dict[str, Any] | None = None) -> Iterator[DebunkItem]:
        if self.limit_reached(self.emitted):
            raise CloseSpider("closespider_max_items")
        entry = entry or {}
        try:
            doc = json.loads(response.text)
        except ValueError:
            self.logger.warning("article %s is not JSON", response.url)
            return
        result = doc.get("result") if isinstance(doc.get("result"), dict) else {}
        title = str(result.get("title") or entry.get("title") or "").strip()
        body = html_to_text(str(result.get("content") or ""))
        summary = html_to_text(str(result.get("summary") or entry.get("summary") or ""))
        text = body if (not summary or summary in body) else f"{summary}\n{body}"
        author = result.get("author") or entry.get("author") or {}
        url = str(result.get("url") or entry.get("url") or "") or response.url
        if not title and not text:
            self.logger.warning("no article content at %s", response.url)
            return
        self.emitted += 1
        yield DebunkItem(
            url=response.urljoin(url),
            title=title,
            text=text,
            source=SOURCE,
            published=parse_cn_date(result.get("date_published") or entry.get("date_published")),
            verdict=None,
            editor=(str(author.get("nickname") or "").strip() or None) if isinstance(author, dict) else None,
        )
