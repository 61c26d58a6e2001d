"""中国互联网联合辟谣平台 (www.piyao.org.cn): the 联动 list (ld.htm) and its articles.

List pages: anchors ``#list > li > h2 > a`` (fallbacks ``#list li a``,
``.list li a``); a ``<ul id="list" data="datasource:<32 hex>">`` list is also
read from its JSON data source ``ds_<hex>.json``; "下一页" / rel=next links are
followed. Only article URLs of the site's two generations are followed:
``/YYYYMMDD/<32 hex>/c.html`` (2023+) and ``/YYYY-MM/DD/c_NNNNNNNNNN.htm``
(≤2022). Selectors come from the structure notes (crawler code), not from a
verified live page: see tests/fixtures/sites/piyao_org_cn/README.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response

from crawlers.extract import html_to_text, parse_cn_date
from crawlers.items import DebunkItem
from crawlers.spiders._base import PiyaoSpider

SOURCE = "中国互联网联合辟谣平台"
ARTICLE_PATH = re.compile(r"/(20\d{6})/([a-f0-9]{32})/c\.html$|/(\d{4}-\d{2})/(\d{2})/c_(\d+)\.htm$")
DATASOURCE = re.compile(r"datasource:([0-9a-f]{32})", re.I)
EDITOR = re.compile(r"责任编辑\s*[:：]\s*([^\s】\]）)]+(?:\s[^\s】\]）)]+)?)")
EDITOR_LINE = re.compile(r"^[【\[（(]?\s*责任编辑\s*[:：].*$")
SOURCE_IN_META = re.compile(r"来源\s*[:：]\s*(.*?)\s*(?:(?:发布)?时间\s*[:：]|$)", re.S)
TIME_IN_META = re.compile(r"时间\s*[:：]\s*(.+)$", re.S)


def is_article_url(url: str) -> bool:
    return bool(ARTICLE_PATH.search(urlsplit(url).path))


def date_from_url(url: str) -> Any:
    m = ARTICLE_PATH.search(urlsplit(url).path)
    if not m:
        return None
    if m.group(1):
        return parse_cn_date(m.group(1))
    return parse_cn_date(f"{m.group(3)}-{m.group(4)}")


def _text(sel: Any) -> str:
    return re.sub(r"\s+", " ", " ".join(sel.xpath(".//text()").getall())).strip()


class PiyaoOrgCnSpider(PiyaoSpider):
    name = "piyao_org_cn"
    default_start_urls = ["https://www.piyao.org.cn/ld.htm"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scheduled: set[str] = set()

    def _article_request(self, url: str, list_title: str | None) -> scrapy.Request | None:
        if not self._same_site(url) or not is_article_url(url):
            return None
        url = url.split("#", 1)[0]
        if url in self._scheduled or self.limit_reached(self.emitted):
            return None
        self._scheduled.add(url)
        return scrapy.Request(url, callback=self.parse_article, cb_kwargs={"list_title": list_title})

    # List pages ------------------------------------------------------------
    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        anchors = response.css("#list > li > h2 > a") or response.css("#list li a") or response.css(".list li a")
        for a in anchors:
            href = (a.attrib.get("href") or "").strip()
            if not href or href.lower().startswith(("javascript:", "mailto:", "#")):
                continue
            title = (a.attrib.get("aria-arttitle") or "").strip() or _text(a)
            req = self._article_request(response.urljoin(href), title or None)
            if req is not None:
                yield req
        for data in response.css("#list::attr(data)").getall():
            m = DATASOURCE.search(data)
            if m:
                yield response.follow(f"ds_{m.group(1)}.json", callback=self.parse_datasource, meta={"piyao_list": True})
        if self.limit_reached(self.emitted):
            return
        nxt = (
            response.css("a[rel~=next]::attr(href)").get()
            or response.xpath("//a[normalize-space(.)='下一页' or normalize-space(.)='下一页>' or normalize-space(.)='>']/@href").get()
        )
        if nxt and not nxt.strip().lower().startswith("javascript:"):
            url = response.urljoin(nxt.strip())
            if self._same_site(url) and not is_article_url(url):
                yield scrapy.Request(url, callback=self.parse, meta={"piyao_list": True})  # always fetched (crawlers/seen.py)

    def parse_datasource(self, response: Response) -> Iterator[Any]:
        try:
            doc = json.loads(response.text)
        except ValueError:
            self.logger.warning("data source %s is not JSON", response.url)
            return
        for entry in doc.get("datasource") or []:
            if not isinstance(entry, dict) or not entry.get("publishUrl"):
                continue
            title = (entry.get("showTitle") or entry.get("title") or "").strip()
            req = self._article_request(response.urljoin(str(entry["publishUrl"])), title or None)
            if req is not None:
                yield req

    # Articles ----------------------------------------------------------------
    def parse_article(self, response: Response, list_title: str | None = None) -> Iterator[DebunkItem]:
        if self.limit_reached(self.emitted):
            raise CloseSpider("closespider_max_items")
        title = (
            _text(response.css("div.con_tit > h2"))
            or _text(response.css("div.con_tit h1, div.con_tit h2"))
            or (response.css("meta[property='og:title']::attr(content)").get() or "").strip()
            or (list_title or "")
            or _text(response.css("title"))
        )
        meta = response.css("div.con_tit > p")
        meta_text = _text(meta)
        origin = None
        m = SOURCE_IN_META.search(meta_text)
        if m and m.group(1).strip():
            origin = m.group(1).strip()
        published = None
        time_text = _text(meta.css("span")) or meta_text
        t = TIME_IN_META.search(time_text)
        published = parse_cn_date(t.group(1) if t else time_text) or date_from_url(response.url)
        body_html = (
            response.css("div.con_txt").get()
            or response.css("#detailContent").get()
            or response.css("div.con_nr").get()
            or ""
        )
        text = html_to_text(body_html)
        editor = None
        editor_text = _text(response.css("div.zrbj")) or " ".join(l for l in text.split("\n") if "责任编辑" in l)
        e = EDITOR.search(editor_text)
        if e:
            editor = e.group(1).strip()
        text = "\n".join(ln for ln in text.split("\n") if not EDITOR_LINE.match(ln.strip()))
        if not title and not text:
            self.logger.warning("no article content at %s", response.url)
            return
        self.emitted += 1
        yield DebunkItem(
            url=response.url,
            title=title,
            text=text,
            source=SOURCE,
            published=published,
            verdict=None,
            editor=editor,
            origin=origin,
        )
