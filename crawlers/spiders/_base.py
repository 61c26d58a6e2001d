"""What piyao's spiders share: start URLs and item limits from piyao's settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import scrapy

from crawlers.settings import piyao_settings_of


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [u.strip() for u in value.split(",") if u.strip()]
    return [str(u).strip() for u in value if str(u).strip()]


class PiyaoSpider(scrapy.Spider):
    """Start URLs: ``-a start_url=URL[,URL]`` or ``start_urls=[...]`` (crawl()), else the config's.

    ``-a max_items=N`` overrides the configured max_items (0 = no limit).
    """

    default_start_urls: list[str] = []

    def __init__(self, *args: Any, start_url: str | None = None, start_urls: Any = None, max_items: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arg_start_urls = _as_list(start_url) + _as_list(start_urls)
        self._arg_max_items = None if max_items in (None, "") else int(max_items)
        self.start_urls = list(self._arg_start_urls)
        self.max_items = self._arg_max_items or 0
        self.spider_conf: Any = None
        self.emitted = 0  # items yielded, for max_items

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> PiyaoSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        conf = piyao_settings_of(crawler.settings).spider(spider.name)
        if not spider.start_urls:
            spider.start_urls = list(conf.start_urls) or list(cls.default_start_urls)
        if spider._arg_max_items is None:
            spider.max_items = conf.max_items
        spider.spider_conf = conf
        return spider

    def _stats(self) -> Any:
        """The crawler's stats collector (None for a spider built outside a crawler, as in unit tests)."""
        crawler = getattr(self, "crawler", None)
        return crawler.stats if crawler is not None else None

    def _inc(self, key: str) -> None:
        """Count ``piyao/<spider>/<key>`` in the run's stats."""
        stats = self._stats()
        if stats is not None:
            stats.inc_value(f"piyao/{self.name}/{key}")

    def _hosts(self) -> set[str]:
        """Hosts of the start URLs (else of the defaults): links to other hosts are not followed."""
        if not hasattr(self, "_host_cache"):
            self._host_cache = {urlsplit(u).netloc.lower() for u in (self.start_urls or self.default_start_urls)}
        return self._host_cache

    def _same_site(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and parts.netloc.lower() in self._hosts()

    def limit_reached(self, count: int) -> bool:
        return bool(self.max_items) and count >= self.max_items
