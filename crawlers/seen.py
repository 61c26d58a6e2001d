"""Crawl state: incremental crawls, resumable job directories, the scrapy-redis engine.

``SeenMiddleware`` (downloader middleware) consults the ``seen_urls`` table:

* a detail page fetched less than ``crawl.seen_expiry_hours`` ago is not
  requested at all (IgnoreRequest; stats ``piyao/seen/skipped``);
* an older one is revalidated: If-None-Match / If-Modified-Since from the
  stored ETag / Last-Modified. A 304 yields no item (``piyao/seen/not_modified``),
  nor does a 200 whose body hash equals the stored one (``piyao/seen/unchanged``);
* list and feed pages are always fetched: requests with
  ``meta["piyao_list"] = True``, start requests and robots.txt.

A fetched page is recorded by ``crawlers.pipelines.StorePipeline`` in the same
transaction as the item it produced (``SeenMiddleware.claim`` hands the
pipeline the page's validators), so a page is marked seen exactly when its item
is stored; a page whose item was lost (crash, kill) is fetched again.

``PiyaoCrawlAddon`` (ADDONS in crawlers/settings.py) wires this up for every
spider, whether started by ``scrapy crawl`` or ``crawlers.run.crawl``:

* registers ``SeenMiddleware`` (and, for ``crawl.engine: redis``, the
  scrapy-redis scheduler, dupefilter and ``RedisWorkerIdle``);
* with ``crawl.persist_jobs`` (local engine) sets JOBDIR to
  ``<data_dir>/crawl/jobs/<spider>`` and decides whether this run resumes:
  ``piyao.finished`` in the directory (the last run ended normally): start
  afresh; ``piyao.paused`` (stopped cleanly, e.g. Ctrl-C): resume Scrapy's
  saved queue; ``piyao.running`` alone (the process was killed): Scrapy's
  files are not trustworthy after SIGKILL (its queue state is written only on
  a clean close, its fingerprints are buffered), so they are discarded and
  the seen-URL store alone prevents refetches. Either resume sets the stats
  ``piyao/resumed`` = 1 and ``piyao/resumed_from`` = paused | killed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, IgnoreRequest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crawlers.settings import piyao_settings_of
from store.db import Store, open_store
from store.models import SeenUrl, utcnow

logger = logging.getLogger(__name__)

STAT = "piyao/seen/"
# process_response: after redirects (600), decompression (590) and the charset check (585), before
# MetaRefresh (580) and the retry/error-count middlewares (560, 550, 540), which never see a 304 or a skip.
MIDDLEWARE_PRIORITY = 575
MARK_RUNNING, MARK_PAUSED, MARK_FINISHED = "piyao.running", "piyao.paused", "piyao.finished"


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def is_list_request(request: Any) -> bool:
    """List/feed pages (always fetched): marked by the spider, start requests, robots.txt."""
    meta = request.meta
    if meta.get("piyao_list") or meta.get("is_start_request") or meta.get("dont_obey_robotstxt"):
        return True
    return request.url.split("?", 1)[0].endswith("/robots.txt")


def record_seen(session: Session, info: dict[str, Any]) -> None:
    """Insert or update the seen_urls row ``info`` (spider, url, etag, last_modified, content_hash, last_fetched)."""
    values = {
        "spider": info["spider"],
        "url_hash": url_hash(info["url"]),
        "url": info["url"],
        "last_fetched": info.get("last_fetched") or utcnow(),
        "etag": (info.get("etag") or None) and info["etag"][:300],
        "last_modified": (info.get("last_modified") or None) and info["last_modified"][:100],
        "content_hash": info.get("content_hash"),
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(SeenUrl).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["spider", "url_hash"],
            set_={k: stmt.excluded[k] for k in ("url", "last_fetched", "etag", "last_modified", "content_hash")},
        )
        session.execute(stmt)
    else:  # other databases: read, then write
        row = session.get(SeenUrl, (values["spider"], values["url_hash"]))
        if row is None:
            session.add(SeenUrl(**values))
        else:
            for k, v in values.items():
                setattr(row, k, v)


class SeenMiddleware:
    """Skips recently fetched detail pages and revalidates older ones (see the module doc)."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.piyao = piyao_settings_of(crawler.settings)
        self.expiry = dt.timedelta(hours=self.piyao.crawl.seen_expiry_hours)
        self.enabled = crawler.settings.getbool("PIYAO_SEEN_ENABLED", True)
        self.store: Store | None = None
        # url -> what the pipeline records once the page's item is stored.
        self._pending: dict[str, dict[str, Any]] = {}
        crawler.piyao_seen = self  # the pipeline finds us here
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Any) -> SeenMiddleware:
        return cls(crawler)

    # Store access -------------------------------------------------------------
    def _session(self) -> Any:
        if self.store is None:
            self.store = open_store(self.piyao.store_url, echo=self.piyao.store.echo)
        return self.store.session()

    def _lookup(self, url: str) -> SeenUrl | None:
        with self._session() as s:
            return s.scalar(select(SeenUrl).where(SeenUrl.spider == self._spider_name(), SeenUrl.url_hash == url_hash(url)))

    def _touch(self, info: dict[str, Any]) -> None:
        with self._session() as s:
            record_seen(s, info)

    def _spider_name(self) -> str:
        return self.crawler.spider.name

    def claim(self, url: str | None) -> list[dict[str, Any]]:
        """The seen records waiting for the item of page ``url`` (removed from the pending list)."""
        if not url:
            return []
        info = self._pending.pop(url, None)
        if info is None:
            return []
        out = [info]
        for other in info.get("aliases", ()):  # the URLs that redirected here
            self._pending.pop(other, None)
            out.append({**info, "url": other, "aliases": ()})
        return out

    # Downloader middleware hooks ----------------------------------------------
    def process_request(self, request: Any, spider: Any = None) -> None:
        if not self.enabled or is_list_request(request) or request.meta.get("piyao_seen_checked"):
            return None
        request.meta["piyao_seen_checked"] = True
        stats = self.crawler.stats
        row = self._lookup(request.url)
        if row is None:
            stats.inc_value(STAT + "new")
            return None
        request.meta["piyao_seen_hash"] = row.content_hash
        if utcnow() - row.last_fetched < self.expiry:
            stats.inc_value(STAT + "skipped")
            raise IgnoreRequest(f"seen {row.last_fetched:%Y-%m-%d %H:%M} (within crawl.seen_expiry_hours)")
        if row.etag and b"If-None-Match" not in request.headers:
            request.headers[b"If-None-Match"] = row.etag
        if row.last_modified and b"If-Modified-Since" not in request.headers:
            request.headers[b"If-Modified-Since"] = row.last_modified
        request.meta["piyao_conditional"] = bool(row.etag or row.last_modified)
        stats.inc_value(STAT + "revalidated")
        return None

    def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        if not self.enabled or is_list_request(request):
            return response
        stats = self.crawler.stats
        info = {
            "spider": self._spider_name(),
            "url": response.url,
            "etag": _header(response, b"ETag"),
            "last_modified": _header(response, b"Last-Modified"),
            "last_fetched": utcnow(),
        }
        if response.status == 304 and request.meta.get("piyao_conditional"):
            stats.inc_value(STAT + "not_modified")
            info["content_hash"] = request.meta.get("piyao_seen_hash")
            info["url"] = request.url
            old = self._lookup(request.url)
            info["etag"] = info["etag"] or (old.etag if old else None)
            info["last_modified"] = info["last_modified"] or (old.last_modified if old else None)
            self._touch(info)
            raise IgnoreRequest("not modified (304)")
        if response.status != 200:
            return response
        info["content_hash"] = hashlib.sha256(response.body).hexdigest()
        if request.meta.get("piyao_seen_hash") and request.meta["piyao_seen_hash"] == info["content_hash"]:
            stats.inc_value(STAT + "unchanged")
            self._touch(info)
            raise IgnoreRequest("unchanged since the last fetch (same content hash)")
        aliases = [u for u in request.meta.get("redirect_urls", []) if u != response.url]
        if request.url != response.url and request.url not in aliases:
            aliases.append(request.url)
        info["aliases"] = aliases
        self._pending[response.url] = info
        return response

    def spider_closed(self, spider: Any, reason: str) -> None:
        # Pages that produced no item stay unrecorded: they are fetched again next time.
        self._pending.clear()
        mark_job_closed(self.crawler.settings.get("JOBDIR"), reason)
        if self.store is not None:
            self.store.close()
            self.store = None


def _header(response: Any, name: bytes) -> str | None:
    value: Any = response.headers.get(name)
    if not value:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


# Job directories ---------------------------------------------------------------


def job_dir_for(piyao: Any, spider_name: str) -> Path:
    return piyao.data_path / "crawl" / "jobs" / spider_name


def prepare_job_dir(jobdir: Path) -> str | None:
    """Make ``jobdir`` ready for a run; returns None (fresh start), "paused" or "killed" (a resume)."""
    resumed: str | None = None
    if jobdir.exists():
        if (jobdir / MARK_FINISHED).exists():
            shutil.rmtree(jobdir)
        elif (jobdir / MARK_PAUSED).exists():
            resumed = "paused"
        elif (jobdir / MARK_RUNNING).exists():
            resumed = "killed"
            # After SIGKILL Scrapy's queue state (written on close only) and its buffered fingerprints
            # do not describe the lost run; a fingerprint of a request whose queue entry was lost would
            # keep that page from ever being fetched. The seen-URL store carries the resume instead.
            shutil.rmtree(jobdir)
        else:
            shutil.rmtree(jobdir)  # not ours, or a run that never started: start afresh
    jobdir.mkdir(parents=True, exist_ok=True)
    for mark in (MARK_PAUSED, MARK_FINISHED):
        (jobdir / mark).unlink(missing_ok=True)
    (jobdir / MARK_RUNNING).write_text(f"{os.getpid()} {time.time():.0f}\n", encoding="utf-8")
    return resumed


def mark_job_closed(jobdir: str | None, reason: str) -> None:
    """Called when the spider closes: finished runs start afresh next time, others resume."""
    if not jobdir or not (Path(jobdir) / MARK_RUNNING).exists():  # not a directory prepare_job_dir made
        return
    ok = reason == "finished" or reason.startswith("closespider_")
    (Path(jobdir) / (MARK_FINISHED if ok else MARK_PAUSED)).write_text(reason + "\n", encoding="utf-8")
    (Path(jobdir) / MARK_RUNNING).unlink(missing_ok=True)


class PiyaoCrawlAddon:
    """Scrapy add-on (ADDONS): seen-URL middleware, JOBDIR per spider, scrapy-redis engine."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> PiyaoCrawlAddon:
        return cls(crawler)

    def update_settings(self, settings: Any) -> None:
        piyao = piyao_settings_of(settings)
        crawl = piyao.crawl
        spider = getattr(self.crawler, "_spider", None)
        name = spider.name if spider is not None else self.crawler.spidercls.name
        settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", SeenMiddleware, MIDDLEWARE_PRIORITY)
        if crawl.engine == "redis":
            settings.set("SCHEDULER", "crawlers.seen.RedisScheduler", priority="addon")
            settings.set("DUPEFILTER_CLASS", "scrapy_redis.dupefilter.RFPDupeFilter", priority="addon")
            settings.set("SCHEDULER_PERSIST", True, priority="addon")  # workers leave the frontier to the others
            settings.set("SCHEDULER_FLUSH_ON_START", False, priority="addon")
            settings.set("REDIS_URL", crawl.redis_url, priority="addon")
            # Scrapy pulls requests from the scheduler until CONCURRENT_REQUESTS are active, queueing the
            # surplus in its own download slots: a worker would take pages away from the shared frontier
            # that idle workers could fetch. Hold no more than one site's worth of requests per worker.
            settings.set("CONCURRENT_REQUESTS", crawl.concurrent_requests_per_domain, priority="addon")
            settings.set_in_component_priority_dict("EXTENSIONS", RedisWorkerIdle, 500)
            return  # the frontier lives in Redis: no JOBDIR
        if crawl.persist_jobs and not settings.get("JOBDIR"):
            jobdir = job_dir_for(piyao, name)
            resumed = prepare_job_dir(jobdir)
            settings.set("JOBDIR", str(jobdir), priority="addon")
            settings.set("PIYAO_RESUMED", resumed or "", priority="addon")
            if resumed:
                logger.info("%s: resuming from %s (%s)", name, jobdir, resumed)


# scrapy-redis ------------------------------------------------------------------

try:
    from scrapy_redis.scheduler import Scheduler as _RedisScheduler
except ImportError:  # pragma: no cover - only needed for crawl.engine: redis
    _RedisScheduler = object  # type: ignore[assignment,misc]


class RedisScheduler(_RedisScheduler):  # type: ignore[misc,valid-type]
    """scrapy-redis scheduler whose start requests go through the shared dupefilter too.

    Every worker yields the spider's start requests; the first to reach Redis enqueues them and
    the others' are dropped as duplicates, so N workers started together fetch each start page
    once. A new crawl round therefore needs a reset of the spider's keys
    (``crawlers.run.reset_frontier``), done by one seeding process before the workers start.
    """

    def enqueue_request(self, request: Any) -> bool:
        if request.dont_filter and request.meta.get("is_start_request"):
            request = request.replace(dont_filter=False)
        return super().enqueue_request(request)


def frontier_keys(spider_name: str) -> list[str]:
    return [f"{spider_name}:requests", f"{spider_name}:dupefilter", f"{spider_name}:workers"]


class RedisWorkerIdle:
    """Keeps a worker open while the shared frontier may still grow, so that N workers share one crawl.

    Each busy worker (requests in flight) keeps a heartbeat in the hash ``<spider>:workers``; an
    idle worker closes only when the shared queue has been empty and no other worker busy for
    PIYAO_REDIS_IDLE_SECONDS (default 3). Meanwhile it polls the queue every 0.5 s instead of
    Scrapy's 5 s heartbeat.
    """

    def __init__(self, crawler: Any) -> None:
        import redis

        self.crawler = crawler
        self.grace = crawler.settings.getfloat("PIYAO_REDIS_IDLE_SECONDS", 3.0)
        self.redis = redis.Redis.from_url(piyao_settings_of(crawler.settings).crawl.redis_url)
        self.worker = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._loop: Any = None
        self._idle_since: float | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RedisWorkerIdle:
        return cls(crawler)

    @property
    def _key(self) -> str:
        return f"{self.crawler.spider.name}:workers"

    def spider_opened(self, spider: Any) -> None:
        from twisted.internet import task

        self._beat(busy=True)
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(0.5, now=False)

    def _beat(self, *, busy: bool) -> None:
        if busy:
            self.redis.hset(self._key, self.worker, f"{time.time():.3f}")
        self.redis.expire(self._key, 3600)

    def _others_busy(self) -> bool:
        now = time.time()
        beats: dict[Any, Any] = self.redis.hgetall(self._key)  # type: ignore[assignment]
        for worker, stamp in beats.items():
            name = worker.decode() if isinstance(worker, bytes) else str(worker)
            if name != self.worker and now - float(stamp) < self.grace:
                return True
        return False

    def _tick(self) -> None:
        engine = self.crawler.engine
        try:
            idle = engine.spider_is_idle()
        except RuntimeError:
            return
        if not idle:
            self._beat(busy=True)
        slot = getattr(engine, "_slot", None)
        # Look at the shared queue now, not at Scrapy's next 5 s heartbeat: Scrapy pulls from the scheduler
        # only when its own requests finish, and other workers may have added requests meanwhile. While
        # idle this also asks spider_idle again (see below).
        if slot is not None and not engine.needs_backout():
            slot.nextcall.schedule()

    def spider_idle(self, spider: Any) -> None:
        scheduler = self.crawler.engine._slot.scheduler
        now = time.monotonic()
        if len(scheduler) or self._others_busy():
            self._idle_since = None
            raise DontCloseSpider
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.grace:  # quiet for a while first: a worker that just started may
            raise DontCloseSpider  # not have pushed its start requests or its heartbeat yet

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        try:
            self.redis.hdel(self._key, self.worker)
        except Exception:  # noqa: BLE001 - the heartbeat expires anyway
            pass
