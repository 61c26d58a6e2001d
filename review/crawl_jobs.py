"""Crawls started from the web app ("run now" on the schedules page), and the spiders' run history.

A crawl runs exactly as ``piyao crawl NAME`` does (crawlers.run.crawl, then the index outbox
drained), in a child process watched by a background thread of the server: Twisted's reactor
starts only once per process, so a long-lived server cannot run Scrapy in-process more than
once. The child gets the server's own settings, written to a private (0600) YAML file that is
deleted when it ends, so it crawls into the same store and index. The crawl records itself in
``crawl_runs`` as every crawl does.

At most one crawl per spider runs at a time from one server process (``CrawlJobs.start`` says
so when one is already running). The schedule machinery (APScheduler) comes later and will
start its crawls through the same ``CrawlJobs``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from settings import Settings
from store.db import Store
from store.models import CrawlRun, utcnow

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPIDERS_DIR = PROJECT_ROOT / "crawlers" / "spiders"
# A crawl that runs longer than this is stopped (a hung site must not hold the spider forever).
DEFAULT_TIMEOUT_S = 6 * 3600
OUTPUT_TAIL_CHARS = 4000

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


@dataclass
class CrawlJob:
    """One crawl started from the server; ``state``: running, finished or failed."""

    spider: str
    started_at: dt.datetime = field(default_factory=utcnow)
    started_by: str = ""
    state: str = "running"
    finished_at: dt.datetime | None = None
    returncode: int | None = None
    summary: dict[str, Any] | None = None  # the crawl's summary line (crawlers.run.crawl's dict)
    output: str = ""  # the end of the child's error output, for a failed crawl

    @property
    def running(self) -> bool:
        return self.state == "running"


def settings_file(settings: Settings, directory: Path) -> Path:
    """The settings as a YAML config file only the server's user can read (it may hold index credentials)."""
    doc = settings.model_dump(mode="json", by_alias=True)
    doc["data_dir"] = str(settings.data_path)
    directory.mkdir(parents=True, exist_ok=True)
    fd_path = directory / f"settings-{os.getpid()}-{threading.get_ident()}-{utcnow().strftime('%Y%m%d%H%M%S%f')}.yaml"
    fd = os.open(fd_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False)
    return fd_path


def _summary_of(stdout: str, spider: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("spider") == spider:
                return doc
    return None


class CrawlJobs:
    """The crawls this server process started, at most one running per spider."""

    def __init__(self, settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._jobs: dict[str, CrawlJob] = {}
        self._threads: dict[str, threading.Thread] = {}

    def get(self, spider: str) -> CrawlJob | None:
        with self._lock:
            return self._jobs.get(spider)

    def running(self) -> set[str]:
        with self._lock:
            return {name for name, job in self._jobs.items() if job.running}

    def start(self, spider: str, *, actor: str = "") -> tuple[CrawlJob, bool]:
        """Start crawling ``spider`` in the background: (its job, True), or (the running job, False)."""
        with self._lock:
            job = self._jobs.get(spider)
            if job is not None and job.running:
                return job, False
            job = self._jobs[spider] = CrawlJob(spider=spider, started_by=actor)
            thread = threading.Thread(target=self._run, args=(job,), name=f"crawl-{spider}", daemon=True)
            self._threads[spider] = thread
        log.info("crawl of %s started from the web app by %s", spider, actor or "?")
        thread.start()
        return job, True

    def wait(self, spider: str, timeout: float | None = None) -> CrawlJob | None:
        """Block until the spider's current job ends (or ``timeout`` seconds pass); the job."""
        with self._lock:
            thread = self._threads.get(spider)
        if thread is not None:
            thread.join(timeout)
        return self.get(spider)

    def _command(self, config: Path, spider: str) -> list[str]:
        return [sys.executable, "-c", "import pipeline; pipeline.main()", "--config", str(config), "crawl", spider]

    def _run(self, job: CrawlJob) -> None:
        config: Path | None = None
        rc: int | None = None
        stdout = stderr = ""
        try:
            config = settings_file(self.settings, self.settings.data_path / "crawl" / "web")
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
            env["PYTHONUNBUFFERED"] = "1"
            proc = subprocess.run(self._command(config, job.spider), cwd=PROJECT_ROOT, env=env, capture_output=True,
                                  text=True, timeout=self.timeout_s)
            rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            stderr = f"stopped after {self.timeout_s:.0f} s\n" + (exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or "")
        except Exception as exc:  # noqa: BLE001 - the job reports any failure to start
            log.exception("crawl of %s could not run", job.spider)
            stderr = f"{exc.__class__.__name__}: {exc}"
        finally:
            if config is not None:
                config.unlink(missing_ok=True)
        summary = _summary_of(stdout, job.spider)
        ok = rc == 0 and (summary is None or summary.get("status") == "finished")
        with self._lock:
            job.returncode, job.summary = rc, summary
            job.output = stderr[-OUTPUT_TAIL_CHARS:] if not ok else ""
            job.finished_at = utcnow()
            job.state = "finished" if ok else "failed"
        log.info("crawl of %s %s (exit status %s)", job.spider, job.state, rc)


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
