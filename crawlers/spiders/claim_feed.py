"""Claims from RSS 2.0 / RSS 1.0 / Atom feeds.

Each ``<item>``/``<entry>`` becomes a ClaimItem: source = the feed's title
(or its host), text = title + description as sanitized plain text, url =
link, external_id = guid/id (else the link), published = pubDate /
published / updated / dc:date. Feeds are parsed with lxml without network
access or entity expansion; HTML in descriptions goes through html_to_text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

from lxml import etree
from scrapy.http import Response

from crawlers.extract import html_to_text, parse_feed_datetime
from crawlers.items import ClaimItem
from crawlers.spiders._base import PiyaoSpider

_PARSER_OPTS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True)


def _local(el: Any) -> str:
    return etree.QName(el).localname.lower() if isinstance(el.tag, str) else ""


def _child(el: Any, *names: str) -> Any:
    for name in names:
        for c in el:
            if _local(c) == name:
                return c
    return None


def _child_text(el: Any, *names: str) -> str:
    c = _child(el, *names)
    return "".join(c.itertext()).strip() if c is not None else ""


def _entry_link(entry: Any) -> str:
    alternate = None
    for c in entry:
        if _local(c) != "link":
            continue
        href = (c.get("href") or "").strip()
        if href:  # Atom
            if c.get("rel") in (None, "", "alternate"):
                return href
            alternate = alternate or href
        elif c.text and c.text.strip():  # RSS
            return c.text.strip()
    return alternate or ""


def _plain(value: str) -> str:
    if not value:
        return ""
    if "<" in value or "&" in value:
        return html_to_text(value)
    return html_to_text(f"<p>{value}</p>") if value.strip() else ""


class FeedError(ValueError):
    """The document is not an RSS/Atom feed."""


@dataclass
class FeedEntry:
    """One ``<item>``/``<entry>`` of a feed, as sanitized plain text."""

    title: str
    body: str  # description/summary/content without a leading copy of the title
    link: str  # as written (relative links are not resolved)
    guid: str
    published: dt.datetime | None

    @property
    def text(self) -> str:
        """Title and body, one per line (what a claim stores)."""
        return "\n".join(p for p in (self.title, self.body) if p)


def read_feed(body: bytes) -> tuple[str, list[FeedEntry]]:
    """(feed title, entries) of an RSS 2.0 / RSS 1.0 / Atom document; raises FeedError otherwise.

    Parsed with lxml without network access or entity expansion; HTML in
    titles and descriptions goes through html_to_text.
    """
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(**_PARSER_OPTS))
    except etree.XMLSyntaxError as exc:
        raise FeedError(str(exc)) from None
    if root is None:
        raise FeedError("empty document")
    channel = _child(root, "channel") if _local(root) in ("rss", "rdf") else root
    feed_title = _plain(_child_text(channel, "title")) if channel is not None else ""
    entries = []
    for entry in (el for el in root.iter() if _local(el) in ("item", "entry")):
        title = _plain(_child_text(entry, "title"))
        text = _plain(_child_text(entry, "description", "summary", "content", "encoded"))
        if text and title and text.startswith(title):
            text = text[len(title) :].strip()
        published = parse_feed_datetime(
            _child_text(entry, "pubdate") or _child_text(entry, "published")
            or _child_text(entry, "updated") or _child_text(entry, "date")
        )  # fmt: skip
        entries.append(FeedEntry(title, text, _entry_link(entry), _child_text(entry, "guid", "id"), published))
    return (feed_title.split("\n", 1)[0] if feed_title else ""), entries


class ClaimFeedSpider(PiyaoSpider):
    name = "claim_feed"
    default_start_urls: list[str] = []

    def parse(self, response: Response, **kwargs: Any) -> Iterator[ClaimItem]:
        try:
            feed_title, entries = read_feed(response.body)
        except FeedError as exc:
            self.logger.error("%s is not a feed: %s", response.url, exc)
            return
        source = feed_title or urlsplit(response.url).netloc
        if not entries:
            self.logger.warning("%s: no <item> or <entry> elements", response.url)
        for entry in entries:
            if self.limit_reached(self.emitted):
                return
            text = entry.text
            if not text:
                continue
            url = response.urljoin(entry.link) if entry.link else None
            self.emitted += 1
            yield ClaimItem(source=source, text=text, external_id=entry.guid or url or None, url=url, published=entry.published)
