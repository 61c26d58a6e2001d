"""The generic spider: claim and debunk sources declared in config (crawl.sources), without code.

``scrapy crawl generic -a source=NAME[,NAME]`` crawls the named sources (a
named source is crawled even when disabled); without ``-a source`` every
enabled source is crawled. Per source ``type``:

* ``feed``: RSS/Atom documents (parsed by claim_feed's ``read_feed``); each
  entry is one item. ``max_pages`` caps the entries taken.
* ``sitemap``: sitemap.xml (plain or gzipped), sitemap indexes (followed on
  the same site) or robots.txt ``Sitemap:`` lines; each listed URL that passes
  ``allow`` is an article page. ``max_pages`` caps the article pages fetched.
* ``list``: list pages; ``item`` selects the entries and ``link`` the detail
  link inside one (or, without ``item``, all detail links on the page);
  ``next_page`` the pagination link. ``max_pages`` caps the list pages.
* ``article``: the URLs are article pages. ``max_pages`` caps them.

Article pages: ``title``, ``text`` and ``date`` selectors when given (CSS, or
XPath prefixed ``xpath:``); an empty ``text`` uses trafilatura's main-content
extraction (precision mode), and every text goes through ``html_to_text``
(script/widget removal and ``clean_text``). Detail links are followed when
they match one of ``allow`` (searched in the whole URL) or, without
``allow``, when they are on the same site as the source's URLs; pagination
and sub-sitemaps must be on the same site.

Items: ``kind: claim`` → ClaimItem (text = title + body, external_id = URL or
the feed entry's id); ``kind: debunk`` → DebunkItem. Their ``source`` is the
source's ``source`` or its key. A source whose config is broken (see
crawlers.sources) is skipped with one error line naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, XmlResponse
from scrapy.utils.gz import gunzip, gzip_magic_number
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

from crawlers.extract import html_to_text, parse_cn_date, parse_feed_datetime
from crawlers.items import ClaimItem, DebunkItem
from crawlers.settings import piyao_settings_of
from crawlers.sources import XPATH_PREFIX, source_errors
from crawlers.spiders._base import PiyaoSpider, _as_list
from crawlers.spiders.claim_feed import FeedError, read_feed

STAT = "piyao/generic/"
_WS = re.compile(r"\s+")
_TITLE_SUFFIX = re.compile(r"\s*(?:[_|｜]|\s[-–—]\s).*$")
_SKIP_HREF = ("javascript:", "vbscript:", "mailto:", "tel:", "data:", "#")
_DATE_META = (
    "meta[property='article:published_time']::attr(content)",
    "meta[name='publishdate']::attr(content)",
    "meta[name='PubDate']::attr(content)",
    "meta[name='pubdate']::attr(content)",
    "meta[itemprop='datePublished']::attr(content)",
    "time[datetime]::attr(datetime)",
)


def select(sel: Any, expr: str) -> Any:
    """Run a CSS selector, or an XPath one when prefixed ``xpath:``."""
    expr = expr.strip()
    if expr.startswith(XPATH_PREFIX):
        return sel.xpath(expr[len(XPATH_PREFIX) :].strip())
    return sel.css(expr)


def _is_node(sel: Any) -> bool:
    return not isinstance(sel.root, (str, bytes, int, float, bool))


def _node_text(sel: Any) -> str:
    if not _is_node(sel):
        return _WS.sub(" ", str(sel.root)).strip()
    return _WS.sub(" ", " ".join(sel.xpath(".//text()").getall())).strip()


def _first_text(sels: Any) -> str:
    for s in sels:
        text = _node_text(s)
        if text:
            return text
    return ""


def _href(sel: Any) -> str:
    """The link a selector result stands for: an attribute/text value, an element's href, or its first <a>'s."""
    if not _is_node(sel):
        return str(sel.root).strip()
    href = sel.attrib.get("href") or sel.css("a::attr(href)").get() or ""
    return href.strip()


def _usable_href(href: str) -> bool:
    return bool(href) and not href.lower().startswith(_SKIP_HREF)


@dataclass
class _Source:
    key: str
    conf: Any
    name: str
    allow: list[re.Pattern[str]]
    hosts: set[str]
    urls: list[str]
    pages: int = 0  # pages counted against max_pages
    scheduled: set[str] = field(default_factory=set)

    def budget_left(self) -> bool:
        return not self.conf.max_pages or self.pages < self.conf.max_pages

    def same_site(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and parts.netloc.lower() in self.hosts

    def allowed(self, url: str) -> bool:
        if urlsplit(url).scheme not in ("http", "https"):
            return False
        if self.allow:
            return any(rx.search(url) for rx in self.allow)
        return self.same_site(url)


class GenericSpider(PiyaoSpider):
    name = "generic"

    def __init__(self, *args: Any, source: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_names = _as_list(source)
        self.sources: dict[str, _Source] = {}
        self._seen_articles: set[str] = set()

    # Start -------------------------------------------------------------------
    def _selected(self) -> list[tuple[str, Any]]:
        configured = piyao_settings_of(self.crawler.settings).crawl.sources
        if not self.source_names:
            chosen = [(k, c) for k, c in configured.items() if c.enabled]
            if not chosen:
                self.logger.warning("crawl.sources: no enabled sources configured; nothing to crawl")
            return chosen
        chosen = []
        for key in self.source_names:
            if key not in configured:
                known = ", ".join(sorted(configured)) or "none"
                self._config_error(f"crawl.sources.{key}: no such source (configured: {known})")
                continue
            chosen.append((key, configured[key]))
        return chosen

    def _config_error(self, line: str) -> None:
        self.logger.error(line)
        self.crawler.stats.inc_value(STAT + "source_config_errors")

    def _prepare(self, key: str, conf: Any) -> _Source | None:
        errors = source_errors(key, conf)
        if errors:
            more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:])})" if len(errors) > 1 else ""
            self._config_error(f"{errors[0]}{more} — source {key!r} not crawled")
            return None
        urls = [u.strip() for u in conf.urls]
        if self._arg_start_urls:
            if len(self.source_names) == 1:
                urls = list(self._arg_start_urls)  # -a start_url=… replaces the one named source's URLs
            else:
                self.logger.warning("start_url is ignored unless exactly one source is named with -a source=NAME")
        return _Source(
            key=key,
            conf=conf,
            name=conf.source.strip() or key,
            allow=[re.compile(p) for p in conf.allow],
            hosts={urlsplit(u).netloc.lower() for u in urls},
            urls=urls,
        )

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> GenericSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, GenericSpider)
        crawler.signals.connect(spider._open_sources, signal=signals.spider_opened)
        return spider

    def _open_sources(self, spider: Any = None) -> None:
        # At spider_opened, before any callback: a resumed job (JOBDIR) calls back into its sources at once.
        for key, conf in self._selected():
            src = self._prepare(key, conf)
            if src is not None:
                self.sources[key] = src

    def start_requests(self) -> Iterator[scrapy.Request]:
        for src in self.sources.values():
            yield from self._initial_requests(src)

    async def start(self) -> AsyncIterator[Any]:  # Scrapy ≥ 2.13
        for request in self.start_requests():
            yield request

    def _request(self, url: str, callback: Any, src: _Source, *, listing: bool = False, **kwargs: Any) -> scrapy.Request:
        meta: dict[str, Any] = {"piyao_source": src.key}
        if listing:
            meta["piyao_list"] = True  # list, feed and sitemap pages are always fetched (crawlers/seen.py)
        return scrapy.Request(url, callback=callback, errback=self._failed, cb_kwargs={"key": src.key, **kwargs}, meta=meta)

    def _initial_requests(self, src: _Source) -> Iterator[scrapy.Request]:
        kind = src.conf.type
        for url in src.urls:
            if kind == "feed":
                yield self._request(url, self.parse_feed, src, listing=True)
            elif kind == "sitemap":
                yield self._request(url, self.parse_sitemap, src, listing=True)
            elif kind == "list":
                req = self._list_request(src, url)
                if req is not None:
                    yield req
            else:
                req = self._article_request(src, url, None, check_allow=False)
                if req is not None:
                    yield req

    def _failed(self, failure: Any) -> None:
        if failure.check(IgnoreRequest):
            return  # skipped on purpose (robots.txt, a page seen recently): counted by the middleware
        request = failure.request
        self.logger.warning("source %s: %s failed: %s", request.meta.get("piyao_source"), request.url, failure.value)

    # Budgets -------------------------------------------------------------------
    def _list_request(self, src: _Source, url: str) -> scrapy.Request | None:
        url = url.split("#", 1)[0]
        if url in src.scheduled or not src.budget_left():
            return None
        src.scheduled.add(url)
        src.pages += 1
        return self._request(url, self.parse_list, src, listing=True)

    def _article_request(self, src: _Source, url: str, list_title: str | None, *, check_allow: bool = True) -> scrapy.Request | None:
        url = url.split("#", 1)[0]
        if check_allow and not src.allowed(url):
            self.crawler.stats.inc_value(STAT + "not_allowed")
            return None
        if url in self._seen_articles or self.limit_reached(self.emitted):
            return None
        if src.conf.type != "list":  # list sources count list pages, the others article pages
            if not src.budget_left():
                return None
            src.pages += 1
        self._seen_articles.add(url)
        return self._request(url, self.parse_article, src, list_title=list_title)

    # Feeds ---------------------------------------------------------------------
    def parse_feed(self, response: Response, key: str) -> Iterator[Any]:
        src = self.sources.get(key)
        if src is None:  # a resumed job whose source was removed or broken since
            return
        try:
            _feed_title, entries = read_feed(response.body)
        except FeedError as exc:
            self.logger.error("source %s: %s is not a feed: %s", key, response.url, exc)
            return
        if not entries:
            self.logger.warning("source %s: %s has no <item> or <entry> elements", key, response.url)
        for entry in entries:
            if not src.budget_left() or self.limit_reached(self.emitted):
                return
            url = response.urljoin(entry.link) if entry.link else None
            if url and src.allow and not src.allowed(url):
                self.crawler.stats.inc_value(STAT + "not_allowed")
                continue
            if not entry.text:
                continue
            src.pages += 1
            if src.conf.kind == "claim":
                item: Any = ClaimItem(
                    source=src.name, text=entry.text, external_id=entry.guid or url or None, url=url, published=entry.published
                )
            else:
                item = DebunkItem(
                    url=url or entry.guid or response.url,
                    title=entry.title,
                    text=entry.body,
                    source=src.name,
                    published=entry.published.date() if entry.published else None,
                    verdict=None,
                    editor=None,
                    origin=None,
                )
            self.emitted += 1
            yield item

    # Sitemaps ------------------------------------------------------------------
    def _sitemap_body(self, response: Response) -> bytes | None:
        if isinstance(response, XmlResponse):
            return response.body
        if gzip_magic_number(response):
            try:
                return gunzip(response.body, max_size=self.crawler.settings.getint("DOWNLOAD_MAXSIZE"))
            except Exception:  # noqa: BLE001 - corrupt or oversized archive
                return None
        if response.url.endswith((".xml", ".xml.gz")) or response.body.lstrip()[:5] == b"<?xml":
            return response.body
        return None

    def parse_sitemap(self, response: Response, key: str) -> Iterator[Any]:
        src = self.sources.get(key)
        if src is None:  # a resumed job whose source was removed or broken since
            return
        if urlsplit(response.url).path.endswith("/robots.txt"):
            for url in sitemap_urls_from_robots(response.text, base_url=response.url):
                if src.same_site(url):
                    yield self._request(url, self.parse_sitemap, src, listing=True)
            return
        body = self._sitemap_body(response)
        sitemap = None
        if body:
            try:
                sitemap = Sitemap(body)
            except Exception:  # noqa: BLE001 - lxml errors on hostile documents
                sitemap = None
        if sitemap is None or sitemap.type not in ("sitemapindex", "urlset"):
            self.logger.error("source %s: %s is not a sitemap", key, response.url)
            return
        for entry in sitemap:
            loc = (entry.get("loc") or "").strip()
            if not loc:
                continue
            url = response.urljoin(loc)
            if sitemap.type == "sitemapindex":
                if src.same_site(url):
                    yield self._request(url, self.parse_sitemap, src, listing=True)
                continue
            req = self._article_request(src, url, None)
            if req is not None:
                yield req

    # List pages ----------------------------------------------------------------
    def parse_list(self, response: Response, key: str) -> Iterator[Any]:
        src = self.sources.get(key)
        if src is None:  # a resumed job whose source was removed or broken since
            return
        conf = src.conf
        if not hasattr(response, "css"):
            self.logger.warning("source %s: %s is not an HTML page", key, response.url)
            return
        entries = select(response, conf.item) if conf.item.strip() else [response]
        if conf.item.strip() and not entries:
            self.logger.warning("source %s: no entries match item selector at %s", key, response.url)
        for entry in entries:
            if conf.link.strip():
                links = select(entry, conf.link)
                if conf.item.strip():
                    links = links[:1]  # one detail link per entry
            else:
                links = [entry]
            for link in links:
                href = _href(link)
                if not _usable_href(href):
                    continue
                title = _node_text(link) if _is_node(link) else ""
                req = self._article_request(src, response.urljoin(href), title or None)
                if req is not None:
                    yield req
        if conf.next_page.strip():
            for found in select(response, conf.next_page)[:1]:
                href = _href(found)
                if not _usable_href(href):
                    continue
                url = response.urljoin(href)
                if src.same_site(url):
                    req = self._list_request(src, url)
                    if req is not None:
                        yield req

    # Article pages -------------------------------------------------------------
    def parse_article(self, response: Response, key: str, list_title: str | None = None) -> Iterator[Any]:
        src = self.sources.get(key)
        if src is None:  # a resumed job whose source was removed or broken since
            return
        if self.limit_reached(self.emitted):
            return
        if not hasattr(response, "css"):
            self.logger.warning("source %s: %s is not an HTML page", key, response.url)
            return
        conf = src.conf
        title = self._title(response, conf, list_title)
        text = self._text(response, conf, key)
        if text.startswith(title + "\n"):
            text = text[len(title) + 1 :]
        elif text == title:
            text = ""
        if not title and not text:
            self.logger.warning("source %s: no content at %s", key, response.url)
            self.crawler.stats.inc_value(STAT + "empty_page")
            return
        raw_date = self._raw_date(response, conf)
        self.emitted += 1
        if conf.kind == "claim":
            yield ClaimItem(
                source=src.name,
                text="\n".join(p for p in (title, text) if p),
                external_id=response.url,
                url=response.url,
                published=parse_feed_datetime(raw_date) if raw_date else None,
            )
        else:
            yield DebunkItem(
                url=response.url,
                title=title,
                text=text,
                source=src.name,
                published=parse_cn_date(raw_date) if raw_date else None,
                verdict=None,
                editor=None,
                origin=None,
            )

    def _title(self, response: Response, conf: Any, list_title: str | None) -> str:
        if conf.title.strip():
            found = _first_text(select(response, conf.title))
            if found:
                return found
        og = _WS.sub(" ", response.css("meta[property='og:title']::attr(content)").get() or "").strip()
        h1 = _first_text(response.css("h1"))
        head = _TITLE_SUFFIX.sub("", _first_text(response.css("title")))
        return og or h1 or (list_title or "").strip() or head

    def _text(self, response: Response, conf: Any, key: str) -> str:
        if conf.text.strip():
            found = select(response, conf.text)
            if found:
                parts = [s.get() if _is_node(s) else f"<p>{_escape(str(s.root))}</p>" for s in found]
                return html_to_text("<div>" + "\n".join(parts) + "</div>")
            self.logger.info("source %s: text selector matched nothing at %s; extracting the main content", key, response.url)
            self.crawler.stats.inc_value(STAT + "text_selector_missed")
        self.crawler.stats.inc_value(STAT + "extracted")
        return extract_main_text(response.text)

    def _raw_date(self, response: Response, conf: Any) -> str:
        if conf.date.strip():
            for s in select(response, conf.date):
                if _is_node(s):
                    value = s.attrib.get("datetime") or s.attrib.get("content") or _node_text(s)
                else:
                    value = str(s.root).strip()
                if value.strip():
                    return value.strip()
            return ""
        for expr in _DATE_META:
            value = (response.css(expr).get() or "").strip()
            if value:
                return value
        return ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def extract_main_text(html: str) -> str:
    """The main content of an article page as sanitized plain text ("" when none is found).

    The page is first sanitized with html_to_text's rules (scripts, styles,
    templates, forms, embedded objects, javascript: links and share/QR widgets
    removed), then trafilatura picks the main content in precision mode
    (navigation, comments, link lists and footers left out; tables too, since
    layout tables make it repeat the article), and its HTML output goes
    through html_to_text. Known limit: trafilatura drops elements whose class
    contains "message" (it takes them for comment widgets): give such sites a
    ``text`` selector.
    """
    if not html or not html.strip():
        return ""
    import lxml.html
    import trafilatura  # imported on first use: it takes a while to load

    from crawlers.extract import _CLEANER, _drop_widgets  # the same sanitizing rules as html_to_text

    try:
        doc = lxml.html.document_fromstring(html)
        _drop_widgets(doc)
        doc = _CLEANER.clean_html(doc)
        body = trafilatura.extract(
            doc,
            output_format="html",
            favor_precision=True,
            include_comments=False,
            include_tables=False,
            include_images=False,
            include_links=False,
        )
    except Exception:  # noqa: BLE001 - a hostile page must not stop the crawl
        return ""
    return html_to_text(body) if body else ""
