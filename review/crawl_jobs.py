"""The spiders piyao can run, their crawl-run history, and "run now" from the web app.

"Run now" goes through the scheduler's own code path (``scheduler.runs.Runner``): the request takes the
schedule's database lock and records a ``running`` ScheduleRun row (or a ``skipped`` one when a run of the
same schedule or spider is going on in any process: the scheduler, a CLI ``piyao schedules run-now``,
another click), then a background thread of the server runs the crawl as a child process, within the
schedule's time limit, and records the result. A spider without a schedule runs under a schedule id equal
to its name. The crawl records itself in ``crawl_runs`` as every crawl does.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from settings import Settings
from store.db import Store
from store.models import CrawlRun

if TYPE_CHECKING:
    from scheduler.runs import RunArgs, Runner

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPIDERS_DIR = PROJECT_ROOT / "crawlers" / "spiders"

_spider_names: list[str] | None = None
_names_lock = threading.Lock()


def spider_classes(settings: Settings | None = None) -> list[str]:
    """The spiders in crawlers/spiders/ (Scrapy's own loader: what ``piyao crawl --list`` prints); listed once per process."""
    global _spider_names
    with _names_lock:
        if _spider_names is None:
            from scrapy.settings import Settings as ScrapySettings
            from scrapy.spiderloader import SpiderLoader

            from crawlers.settings import scrapy_settings

            try:
                _spider_names = sorted(SpiderLoader.from_settings(ScrapySettings(scrapy_settings(settings or Settings()))).list())
            except Exception as exc:  # noqa: BLE001 - a broken spider module must not take the page down
                log.warning("cannot list the spiders: %s: %s", exc.__class__.__name__, exc)
                return []
        return list(_spider_names)


def all_spiders(settings: Settings) -> list[str]:
    """Every spider piyao can run: crawl.run first (in order), then crawl.spiders, then the rest of crawlers/spiders/."""
    return list(dict.fromkeys([*settings.crawl.run, *settings.crawl.spiders, *spider_classes(settings)]))


def readiness(settings: Settings, name: str) -> str | None:
    """Why ``name`` would be skipped by a crawl (in Chinese), or None when it can run (crawlers.run.plan's rules)."""
    if name not in spider_classes(settings):
        return "crawlers/spiders/ 中没有这个爬虫"
    conf = settings.spider(name)
    if not conf.enabled:
        return f"配置中已停用（crawl.spiders.{name}.enabled: false）"
    if name == "generic":
        if not any(s.enabled for s in settings.crawl.sources.values()):
            return "crawl.sources 中没有启用的来源"
    elif not conf.start_urls:
        return f"没有配置起始网址（crawl.spiders.{name}.start_urls）"
    return None


class CrawlJobs:
    """Runs started from the web app: begun (locked and recorded) in the request, crawled in a background thread."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    def start(self, args: RunArgs, *, actor: str) -> tuple[int, bool]:
        """(the new run's id, True), or (the skipped row's id, False) when a run of the schedule or spider is going on."""
        from scheduler.runs import Refused

        got = self.runner.begin(args, trigger="manual", note=f"run now by {actor} (web)")
        if isinstance(got, Refused):
            return got.run_id, False
        thread = threading.Thread(target=self._execute, args=(got,), name=f"run-{args.schedule_id}-{got}", daemon=True)
        with self._lock:
            self._threads[got] = thread
        thread.start()
        log.info("run #%s of %s started from the web app by %s", got, args.schedule_id, actor or "?")
        return got, True

    def _execute(self, run_id: int) -> None:
        try:
            self.runner.execute(run_id)
        except Exception:  # noqa: BLE001 - the runner records failures; this only keeps the thread quiet
            log.exception("run #%s failed", run_id)
        finally:
            with self._lock:
                self._threads.pop(run_id, None)

    def wait(self, run_id: int, timeout: float | None = None) -> None:
        """Block until run ``run_id`` started here ends (or ``timeout`` seconds pass)."""
        with self._lock:
            thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)

    def stop(self, reason: str) -> None:
        """Stop the crawls started here (server shutdown): recorded as interrupted."""
        self.runner.stop_all(reason)


# --------------------------------------------------------------------------- run history
@dataclass
class RunRow:
    id: int
    spider: str
    status: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    pages: int
    items: int
    errors: int
    new_claims: int
    new_debunks: int
    errors_by_kind: dict[str, int]

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 1)
        return None


def _row(r: CrawlRun) -> RunRow:
    stats = r.stats if isinstance(r.stats, dict) else {}
    by_kind = {}
    for key, value in stats.items():
        kind = str(key).removeprefix("piyao/errors/")
        if str(key).startswith("piyao/errors/") and "/" not in kind and isinstance(value, (int, float)):
            by_kind[kind] = int(value)
    return RunRow(r.id, r.spider, r.status, r.started_at, r.finished_at, r.pages or 0, r.items or 0, r.errors or 0,
                  r.new_claims or 0, r.new_debunks or 0, dict(sorted(by_kind.items())))


def recent_runs(store: Store, *, spider: str | None = None, limit: int = 20, offset: int = 0) -> list[RunRow]:
    """Crawl runs, newest first (one spider's when ``spider`` is given)."""
    q = select(CrawlRun).order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc()).limit(limit).offset(offset)
    if spider:
        q = q.where(CrawlRun.spider == spider)
    with store.session() as s:
        return [_row(r) for r in s.scalars(q)]


def count_runs(store: Store, spider: str | None = None) -> int:
    q = select(func.count()).select_from(CrawlRun)
    if spider:
        q = q.where(CrawlRun.spider == spider)
    with store.session() as s:
        return int(s.scalar(q) or 0)


def last_runs(store: Store) -> dict[str, RunRow]:
    """Each spider's latest run."""
    newest = select(CrawlRun.spider, func.max(CrawlRun.id).label("id")).group_by(CrawlRun.spider).subquery()
    with store.session() as s:
        return {r.spider: _row(r) for r in s.scalars(select(CrawlRun).join(newest, newest.c.id == CrawlRun.id))}
