"""StorePipeline: crawled items → the piyao store, one CrawlRun row per spider run.

Debunks go through ``store.writes.DebunkWriter`` and claims through
``store.writes.add_claim``, so crawled rows are de-duplicated exactly like
imported ones. Work is committed every ``PIYAO_COMMIT_EVERY`` items (default
1: every item) and at the end, so a killed crawl loses at most one batch. The
page an item came from is recorded in ``seen_urls`` (crawlers/seen.py) in the
same transaction as the item: after a kill, exactly the pages whose items were
lost are fetched again. A run that resumes a killed or paused one (JOBDIR, see
crawlers/seen.py) has the stats ``piyao/resumed`` = 1, ``piyao/resumed_from``
and ``piyao/resumed_run_id`` (the interrupted run, marked "interrupted").
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import AbstractContextManager
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from sqlalchemy import select

from crawlers.items import CLAIM_FIELDS, DEBUNK_FIELDS, ClaimItem, DebunkItem
from crawlers.settings import piyao_settings_of
from store.db import Store, open_store
from store.clusters import forget_clusterers
from store.models import CrawlRun, utcnow
from store.records import ClaimIn, DebunkIn
from store.writes import DebunkWriter, add_claim

logger = logging.getLogger(__name__)

STAT_PREFIX = "piyao/"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class StorePipeline:
    """Writes DebunkItem and ClaimItem to the store and records the run."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.piyao = piyao_settings_of(crawler.settings)
        self.commit_every = max(1, crawler.settings.getint("PIYAO_COMMIT_EVERY", 1))
        self.store: Store | None = None
        self._session_cm: AbstractContextManager[Any] | None = None
        self.session: Any = None
        self.writer: DebunkWriter | None = None
        self.run_id: int | None = None
        # (item, created kind, seen records) written since the last commit, replayed after a rollback
        self._pending: list[Any] = []
        self.items = 0
        self.new_claims = 0
        self.new_debunks = 0
        self.write_errors = 0
        self._finished = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> StorePipeline:
        if not crawler.settings.getbool("PIYAO_STORE_ENABLED", True):
            raise NotConfigured("PIYAO_STORE_ENABLED is false")
        pipe = cls(crawler)
        crawler.signals.connect(pipe.spider_closed, signal=signals.spider_closed)
        return pipe

    # Scrapy hooks ---------------------------------------------------------
    def open_spider(self, spider: Any = None) -> None:
        spider = spider or self.crawler.spider
        self.store = open_store(self.piyao.store_url, echo=self.piyao.store.echo)
        self._session_cm = self.store.session()
        self.session = self._session_cm.__enter__()
        resumed = str(self.crawler.settings.get("PIYAO_RESUMED") or "")
        interrupted = None
        if resumed:  # the run this one resumes (one process per spider and data dir: the local engine)
            for old in self.session.scalars(
                select(CrawlRun).where(CrawlRun.spider == spider.name, CrawlRun.status == "running").order_by(CrawlRun.id)
            ):
                old.status, old.finished_at, interrupted = "interrupted", old.finished_at or utcnow(), old.id
        run = CrawlRun(spider=spider.name, status="running", started_at=utcnow(), stats={})
        self.session.add(run)
        self.session.commit()
        self.run_id = run.id
        self.crawler.stats.set_value(STAT_PREFIX + "crawl_run_id", self.run_id)
        if resumed:
            self.crawler.stats.set_value(STAT_PREFIX + "resumed", 1)
            self.crawler.stats.set_value(STAT_PREFIX + "resumed_from", resumed)
            if interrupted is not None:
                self.crawler.stats.set_value(STAT_PREFIX + "resumed_run_id", interrupted)
        logger.info("piyao crawl run %s started (%s → %s)", self.run_id, spider.name, self.piyao.store_url)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        seen = self._claim_seen(item)
        try:
            new = self._write(item)
            self._record_seen(seen)
            self._pending.append((item, new, seen))
            self._count(new, +1)
        except Exception:  # noqa: BLE001 - one bad item must not lose the batch
            logger.exception("piyao: could not store item %s", dict(item).get("url"))
            self.write_errors += 1
            self.crawler.stats.inc_value(STAT_PREFIX + "write_errors")
            self._rollback_and_replay()
            return item
        self.items += 1
        if len(self._pending) >= self.commit_every:
            self._commit()
        return item

    def close_spider(self, spider: Any = None) -> None:
        if self.session is not None:
            self._commit()

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self._finished or self.session is None:
            return
        self._finished = True
        stats = self.crawler.stats
        try:
            self._commit()
            run = self.session.get(CrawlRun, self.run_id)
            # Finished: the spider ended normally (or hit a configured limit) and the store took its items.
            ok = (reason == "finished" or reason.startswith("closespider_")) and not (self.write_errors and not self.items)
            run.finished_at = utcnow()
            run.status = "finished" if ok else "failed"
            run.pages = int(stats.get_value("response_received_count", 0) or 0)
            run.items = self.items
            run.errors = int(stats.get_value("log_count/ERROR", 0) or 0)
            run.new_claims = self.new_claims
            run.new_debunks = self.new_debunks
            stats.set_value(STAT_PREFIX + "new_claims", self.new_claims)
            stats.set_value(STAT_PREFIX + "new_debunks", self.new_debunks)
            stats.set_value(STAT_PREFIX + "items", self.items)
            snapshot = _jsonable(dict(stats.get_stats()))
            snapshot["finish_reason"] = reason
            run.stats = snapshot
            self.session.commit()
            logger.info(
                "piyao crawl run %s %s: %d pages, %d items, %d new debunks, %d new claims, %d errors",
                run.id, run.status, run.pages, run.items, run.new_debunks, run.new_claims, run.errors,
            )  # fmt: skip
        finally:
            self._close_store()

    # Internals -------------------------------------------------------------
    def _new_writer(self) -> None:
        imp = self.piyao.imports
        self.writer = DebunkWriter(
            self.session,
            threshold=imp.near_duplicate_threshold,
            num_perm=imp.minhash_permutations,
            actor=f"crawl:{self.crawler.spider.name}",
        )

    def _claim_seen(self, item: Any) -> list[dict[str, Any]]:
        """The seen-URL records of the page ``item`` came from (crawlers/seen.py), if any."""
        mw = getattr(self.crawler, "piyao_seen", None)
        return mw.claim(dict(item).get("url")) if mw is not None else []

    def _record_seen(self, seen: list[dict[str, Any]]) -> None:
        from crawlers.seen import record_seen

        for info in seen:
            record_seen(self.session, info)

    def _count(self, new: str | None, sign: int) -> None:
        if new == "debunk":
            self.new_debunks += sign
        elif new == "claim":
            self.new_claims += sign

    def _write(self, item: Any) -> str | None:
        """Write one item; returns "debunk"/"claim" when it created a row."""
        stats = self.crawler.stats
        if isinstance(item, DebunkItem):
            rec = DebunkIn(**{k: item.get(k) for k in DEBUNK_FIELDS})  # type: ignore[arg-type]
            rec.title = (rec.title or "").strip()
            rec.text = (rec.text or "").strip()
            rec.source = (rec.source or "").strip() or "unknown"
            imp = self.piyao.imports
            if len(rec.text) < imp.min_text_chars:
                rec.text = ""  # too short to be an article: the title stands for it
            rec.text = rec.text[: imp.max_text_chars]
            if self.writer is None:  # built on first use: it loads every stored debunk's signature
                self._new_writer()
            assert self.writer is not None
            res = self.writer.add(rec)
            stats.inc_value(STAT_PREFIX + "debunk/" + (res.outcome if res.outcome != "rejected" else f"rejected/{res.reason}"))
            if res.outcome == "rejected":
                logger.info("piyao: debunk %s rejected (%s)", rec.url, res.reason)
            return "debunk" if res.outcome == "imported" else None
        elif isinstance(item, ClaimItem):
            claim = ClaimIn(**{k: item.get(k) for k in CLAIM_FIELDS})  # type: ignore[arg-type]
            if not (claim.text or "").strip() or not (claim.source or "").strip():
                stats.inc_value(STAT_PREFIX + "claim/rejected/empty")
                return None
            _row, created = add_claim(
                self.session, claim, crawl_run_id=self.run_id, cluster_threshold=self.piyao.claims.cluster_threshold
            )
            stats.inc_value(STAT_PREFIX + ("claim/new" if created else "claim/seen"))
            return "claim" if created else None
        stats.inc_value(STAT_PREFIX + "unknown_item")
        return None

    def _commit(self) -> None:
        if self.session is None:
            return
        self.session.commit()
        self._pending.clear()

    def _rollback_and_replay(self) -> None:
        """Undo the failed item: roll back, then write again what the batch held before it."""
        replay = [(item, seen) for item, _new, seen in self._pending]
        while True:
            self.session.rollback()
            for _item, new, _seen in self._pending:
                self._count(new, -1)
            self._pending = []
            self.writer = None  # its in-memory URL/MinHash index saw rolled-back rows; rebuilt on next use
            forget_clusterers(self.session)  # likewise the claim-cluster LSH
            for idx, (item, seen) in enumerate(replay):
                try:
                    new = self._write(item)
                    self._record_seen(seen)
                except Exception:  # noqa: BLE001
                    logger.exception("piyao: could not store item %s on replay", dict(item).get("url"))
                    self.write_errors += 1
                    self.items -= 1
                    del replay[idx]
                    break
                self._pending.append((item, new, seen))
                self._count(new, +1)
            else:
                break
        self._commit()

    def _close_store(self) -> None:
        if self._session_cm is not None:
            try:
                self._session_cm.__exit__(None, None, None)
            finally:
                self._session_cm = None
                self.session = None
        if self.store is not None:
            self.store.close()
            self.store = None
