"""Scrapy settings, built from piyao's typed settings (config.yaml + environment).

``scrapy crawl`` reads this module (see scrapy.cfg). The configuration file is
the one named by PIYAO_CONFIG, else the project's config.yaml; PIYAO_DATA_DIR
and PIYAO_<SECTION>__<KEY> variables override it as everywhere in piyao.
``crawlers.run.crawl`` calls ``scrapy_settings`` with an already loaded
``Settings`` instead, so ``piyao --data-dir`` and friends reach the spiders.

Keys are kept in alphabetical order, as in Scrapy's own default_settings.py.
Left at Scrapy 2.19's defaults on purpose: REQUEST_FINGERPRINTER_CLASS (the
old REQUEST_FINGERPRINTER_IMPLEMENTATION setting no longer exists) and
TWISTED_REACTOR, which is set explicitly below to the value Scrapy recommends
and defaults to (the asyncio reactor). JOBDIR is set per spider by the
``crawlers.seen.PiyaoCrawlAddon`` add-on (``<data_dir>/crawl/jobs/<spider>``
when crawl.persist_jobs is true and the engine is local); ``-s JOBDIR=...``
given explicitly wins. See docs/crawling.md.
"""

from __future__ import annotations

import os
from typing import Any

from settings import Settings, load_settings


def scrapy_settings(piyao: Settings) -> dict[str, Any]:
    """Scrapy settings for piyao's settings ``piyao``."""
    crawl = piyao.crawl
    return {
        # crawlers/seen.py: the seen-URL middleware, JOBDIR=<data_dir>/crawl/jobs/<spider> (crawl.persist_jobs)
        # and, for crawl.engine: redis, the scrapy-redis scheduler and dupefilter; it knows the spider's name.
        "ADDONS": {"crawlers.seen.PiyaoCrawlAddon": 0},
        "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
        "AUTOTHROTTLE_MAX_DELAY": max(60.0, crawl.download_delay),
        "AUTOTHROTTLE_START_DELAY": crawl.download_delay,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "BOT_NAME": "piyao",
        "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_requests_per_domain,
        "COOKIES_ENABLED": False,
        "DEFAULT_REQUEST_HEADERS": {
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "zh-CN,zh;q=0.9",
        },
        # crawlers/middlewares.py. Downloader side first in process_response: loop check before
        # RedirectMiddleware (600), charset check after decompression (590) and before MetaRefresh
        # (580), error counts on the engine side of RetryMiddleware (550), so after the retries.
        "DOWNLOADER_MIDDLEWARES": {
            "crawlers.middlewares.RedirectLoopMiddleware": 610,
            "crawlers.middlewares.EncodingMiddleware": 585,
            "crawlers.middlewares.RetryBackoffMiddleware": 560,
            "crawlers.middlewares.ErrorStatsMiddleware": 540,
        },
        "DOWNLOAD_DELAY": crawl.download_delay,
        "DOWNLOAD_MAXSIZE": crawl.max_page_bytes,
        "DOWNLOAD_TIMEOUT": crawl.download_timeout,
        "DOWNLOAD_WARNSIZE": max(crawl.max_page_bytes // 2, 1),
        "FEED_EXPORT_ENCODING": "utf-8",
        "ITEM_PIPELINES": {"crawlers.pipelines.StorePipeline": 300},
        "LOG_LEVEL": crawl.log_level,
        "NEWSPIDER_MODULE": "crawlers.spiders",
        # piyao's own settings object, for the pipeline and the spiders.
        "PIYAO_SETTINGS": piyao,
        # False: items are not written to the store (StorePipeline is NotConfigured).
        "PIYAO_STORE_ENABLED": True,
        # Scrapy 2.19 extension that listens on a local port: not wanted for unattended crawls.
        "REMOTE_CONTROL_ENABLED": False,
        "RETRY_ENABLED": crawl.retry_times > 0,
        "RETRY_TIMES": crawl.retry_times,
        "ROBOTSTXT_OBEY": crawl.obey_robots,
        "SPIDER_MODULES": ["crawlers.spiders"],
        "TELNETCONSOLE_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "USER_AGENT": crawl.user_agent,
    }


def piyao_settings_of(scrapy_settings_obj: Any) -> Settings:
    """piyao's settings carried by a Scrapy settings object (loaded afresh when absent)."""
    found = scrapy_settings_obj.get("PIYAO_SETTINGS") if scrapy_settings_obj is not None else None
    if isinstance(found, Settings):
        return found
    return load_settings(os.environ.get("PIYAO_CONFIG") or None)


# Module-level names Scrapy reads (all upper case).
globals().update(scrapy_settings(load_settings(os.environ.get("PIYAO_CONFIG") or None)))
