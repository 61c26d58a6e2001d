"""Running piyao's spiders from Python (what ``piyao crawl`` / ``piyao run`` call).

``crawl`` runs the named spiders one after another in ONE Scrapy
CrawlerProcess in the current process. Twisted's reactor can be started only
once per process, so call ``crawl`` at most once per process (a CLI command is
fine); code that needs several crawls, such as tests, should run each in a
subprocess (``python -m scrapy crawl NAME`` from the repository root, or a
fresh ``python -c`` that calls ``crawl``). Spiders run sequentially, not in
parallel, so that only one of them writes to the store at a time.

Crawl state (crawlers/seen.py, through the add-on in crawlers/settings.py):
with crawl.persist_jobs each spider runs with JOBDIR=<data_dir>/crawl/jobs/<spider>
and a killed or interrupted crawl resumes there; pages fetched within
crawl.seen_expiry_hours are skipped. With crawl.engine: redis the spiders use the
shared scrapy-redis frontier at crawl.redis_url; ``reset_frontier`` starts a new
round (see docs/crawling.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from settings import Settings

logger = logging.getLogger(__name__)

GENERIC = "generic"
SUMMARY_FILE = "last_crawl.json"  # under <data_dir>/crawl/


def _summary(name: str, stats: dict[str, Any], *, status: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "spider": name,
        "status": status,  # finished | failed | skipped
        "reason": reason,
        "crawl_run_id": stats.get("piyao/crawl_run_id"),
        "pages": int(stats.get("response_received_count", 0) or 0),
        "items": int(stats.get("item_scraped_count", 0) or 0),
        "new_claims": int(stats.get("piyao/new_claims", 0) or 0),
        "new_debunks": int(stats.get("piyao/new_debunks", 0) or 0),
        "errors": int(stats.get("log_count/ERROR", 0) or 0),
    }


# Scrapy loggers that log failed downloads and callbacks with a traceback.
SCRAPY_ERROR_LOGGERS = (
    "scrapy.core.scraper",
    "scrapy.core.engine",
    "scrapy.downloadermiddlewares.robotstxt",
    "scrapy.utils.signal",
    "scrapy.utils.defer",
    "scrapy.core.downloader.handlers",
)


class OneLineErrors(logging.Filter):
    """Scrapy logs a failed download with its whole traceback; the CLI shows the one-line cause.

    The failure is still counted by kind in the run's stats (`piyao runs`); set
    crawl.log_level: DEBUG to see tracebacks again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.startswith("scrapy."):
            exc = record.exc_info[1]
            message, cause = record.getMessage(), (str(exc).splitlines() or [""])[0]
            record.msg = message if cause and cause in message else f"{message}: {exc.__class__.__name__}: {cause}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def plan(settings: Settings, spider_names: list[str], overrides: dict[str, list[str]] | None = None) -> tuple[list[tuple[str, list[str]]], list[dict[str, Any]]]:
    """(spiders to run with their start URLs, summaries of the skipped ones)."""
    from scrapy.spiderloader import SpiderLoader
    from scrapy.settings import Settings as ScrapySettings

    from crawlers.settings import scrapy_settings

    known = set(SpiderLoader.from_settings(ScrapySettings(scrapy_settings(settings))).list())
    overrides = overrides or {}
    to_run: list[tuple[str, list[str]]] = []
    skipped: list[dict[str, Any]] = []
    for name in spider_names:
        conf = settings.spider(name)
        urls = list(overrides.get(name) or [])
        reason = None
        if name not in known:
            reason = f"unknown spider (known: {', '.join(sorted(known))})"
        elif not urls and not conf.enabled:
            reason = "disabled in the configuration (crawl.spiders.%s.enabled: false)" % name
        elif name == GENERIC:
            # The generic spider's URLs are its sources' (crawl.sources), not start_urls.
            if not urls and not any(s.enabled for s in settings.crawl.sources.values()):
                reason = "no enabled source in crawl.sources"
        elif not urls and not conf.start_urls:
            reason = "no start_urls configured (crawl.spiders.%s.start_urls)" % name
        if reason:
            skipped.append(_summary(name, {}, status="skipped", reason=reason))
            logger.warning("skipping spider %s: %s", name, reason)
        else:
            to_run.append((name, urls or list(conf.start_urls)))
    return to_run, skipped


def crawl(settings: Settings, spider_names: list[str], *, overrides: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Run ``spider_names`` in order and return one summary dict per spider.

    ``overrides`` maps a spider name to start URLs used instead of the
    configured ones (a spider given start URLs here runs even if disabled).
    Each summary holds spider, status (finished | failed | skipped), reason,
    crawl_run_id, pages, items, new_claims, new_debunks, errors; the list is
    also written as JSON to <data_dir>/crawl/last_crawl.json.

    Starts Twisted's reactor: call at most once per process (see the module doc).
    """
    from scrapy.crawler import CrawlerProcess
    from twisted.internet import defer

    from crawlers.settings import scrapy_settings

    to_run, skipped = plan(settings, spider_names, overrides)
    order = {name: i for i, name in enumerate(spider_names)}
    results: list[dict[str, Any]] = list(skipped)
    if to_run:
        process = CrawlerProcess(scrapy_settings(settings))
        if settings.crawl.log_level != "DEBUG":
            # Logger filters (Scrapy replaces the root handler per crawler, so a handler filter would be lost).
            one_line = OneLineErrors()
            for name in SCRAPY_ERROR_LOGGERS:
                logging.getLogger(name).addFilter(one_line)
        crawlers = [(name, urls, process.create_crawler(name)) for name, urls in to_run]  # the first installs the reactor

        @defer.inlineCallbacks
        def run_all() -> Any:
            try:
                for name, urls, crawler in crawlers:
                    try:
                        yield process.crawl(crawler, start_urls=urls)
                    except Exception as exc:  # noqa: BLE001 - one broken spider must not stop the others
                        logger.exception("spider %s failed", name)
                        stats = dict(crawler.stats.get_stats()) if crawler.stats else {}
                        results.append(_summary(name, stats, status="failed", reason=f"{exc.__class__.__name__}: {exc}"))
                        continue
                    stats = dict(crawler.stats.get_stats())
                    reason = stats.get("finish_reason")
                    ok = reason == "finished" or str(reason or "").startswith("closespider_")
                    results.append(_summary(name, stats, status="finished" if ok else "failed", reason=reason))
            finally:
                from twisted.internet import reactor

                if reactor.running:
                    reactor.stop()  # type: ignore[misc]

        run_all()
        process.start(stop_after_crawl=False)
    results.sort(key=lambda r: order.get(r["spider"], len(order)))
    _write_summary(settings, results)
    for r in results:
        logger.info(
            "%s: %s%s — run %s, %d pages, %d items, %d new debunks, %d new claims, %d errors",
            r["spider"], r["status"], f" ({r['reason']})" if r["reason"] else "", r["crawl_run_id"],
            r["pages"], r["items"], r["new_debunks"], r["new_claims"], r["errors"],
        )  # fmt: skip
    return results


def reset_frontier(settings: Settings, spider_names: list[str]) -> dict[str, int]:
    """Start a new crawl round on the shared scrapy-redis frontier (crawl.engine: redis).

    Deletes each spider's request queue, dupefilter and worker heartbeats in Redis
    (``<spider>:requests``, ``<spider>:dupefilter``, ``<spider>:workers``), so that the workers
    started next fetch the start pages again. Run it from ONE process (the seeding process)
    before starting the workers of a round; running it while workers crawl makes them fetch
    pages twice. Returns the number of keys deleted per spider.
    """
    import redis

    from crawlers.seen import frontier_keys

    client = redis.Redis.from_url(settings.crawl.redis_url)
    try:
        return {name: int(client.delete(*frontier_keys(name))) for name in spider_names}
    finally:
        client.close()


def _write_summary(settings: Settings, results: list[dict[str, Any]]) -> Path | None:
    path = settings.data_path / "crawl" / SUMMARY_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        logger.warning("could not write the crawl summary %s: %s", path, exc)
        return None
    return path


def read_last_summary(settings: Settings) -> list[dict[str, Any]]:
    """The summaries the last ``crawl`` wrote ([] when there are none)."""
    path = settings.data_path / "crawl" / SUMMARY_FILE
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return []
