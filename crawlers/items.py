"""Scrapy items. Their fields mirror store.records.DebunkIn / ClaimIn, which the pipeline builds from them."""

from __future__ import annotations

import scrapy


class DebunkItem(scrapy.Item):
    """A refutation article (→ store.records.DebunkIn)."""

    url = scrapy.Field()
    title = scrapy.Field()
    text = scrapy.Field()
    source = scrapy.Field()  # the platform that carries the article, e.g. 中国互联网联合辟谣平台
    published = scrapy.Field()  # datetime.date | None
    verdict = scrapy.Field()
    editor = scrapy.Field()
    # The original publisher named on the page's "来源：" line (e.g. 新京报),
    # which differs from the carrying platform.
    origin = scrapy.Field()


class ClaimItem(scrapy.Item):
    """A statement seen in a monitored feed (→ store.records.ClaimIn)."""

    source = scrapy.Field()
    text = scrapy.Field()
    external_id = scrapy.Field()
    url = scrapy.Field()
    published = scrapy.Field()  # datetime.datetime | None


DEBUNK_FIELDS = ("url", "title", "text", "source", "published", "verdict", "editor", "origin")
CLAIM_FIELDS = ("source", "text", "external_id", "url", "published")
