"""采集计划: the schedules (next and last run, pause/resume, run now), every spider with its crawl runs, and the run history.

A page key is a schedule id (a job in the job store) or, for a spider without a schedule of that id, the
spider's name. "Run now" goes through the scheduler's code path and database lock (review.crawl_jobs):
a second click, or a click while the scheduler or a CLI command runs the same schedule or spider, says
so and is recorded as a skipped run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from review.accounts import Identity
from review.crawl_jobs import CrawlJobs, RunRow, all_spiders, count_runs, last_runs, readiness, recent_runs
from review.web.app import render
from review.web.security import check_csrf, require
from scheduler.book import ScheduleBook, ScheduleError, ScheduleInfo
from scheduler.runs import RunArgs, Runner, count_history, history, running_runs
from scheduler.runs import last_runs as last_schedule_runs
from settings import Settings
from store.models import ScheduleRun

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

KEY = r"^[A-Za-z0-9_\-]{1,100}$"
RUN_NOTICES = {"started": ("notice", "已开始采集，完成后会记录在下方的运行历史中。"),
               "already": ("error", "这个计划（或同一爬虫）正在运行，本次没有启动（已记为“跳过”）。请等它结束后再试。"),
               "unready": ("error", "这个爬虫现在不能运行，原因见下方“状态”。"),
               "paused": ("notice", "已暂停：在恢复之前不会按计划运行。"),
               "resumed": ("notice", "已恢复：将按 cron 在下次时间运行。")}
STATUS_LABELS = {"running": "运行中", "finished": "已完成", "failed": "失败", "timeout": "超时停止", "interrupted": "中断",
                 "missed": "错过（未运行）", "skipped": "跳过（已有运行）"}
TRIGGER_LABELS = {"schedule": "定时", "catchup": "补跑", "manual": "手动"}
_state_lock = threading.Lock()


def crawl_jobs(request: Request) -> CrawlJobs:
    """The app's run-now starter: the hosted scheduler's runner when there is one (one registry per app)."""
    state = request.app.state
    with _state_lock:
        jobs = getattr(state, "crawl_jobs", None)
        if jobs is None:
            sched = getattr(state, "scheduler", None)
            runner = sched.runner if sched is not None else Runner(state.settings, state.store)
            jobs = state.crawl_jobs = CrawlJobs(runner)
        return jobs


def schedule_book(request: Request) -> ScheduleBook:
    """The job store's schedules (config.yaml's new ones added on first use); one per app."""
    state = request.app.state
    with _state_lock:
        book = getattr(state, "schedule_book", None)
        if book is None:
            book = state.schedule_book = ScheduleBook(state.settings, state.store)
            try:
                book.seed()
            except ScheduleError as exc:  # the page still shows what is there; the scheduler refuses to start
                log.error("schedules in the configuration: %s", exc)
        return book


def _wake_scheduler(request: Request) -> None:
    sched = getattr(request.app.state, "scheduler", None)
    if sched is not None:
        sched.wakeup()


@dataclass
class SpiderView:
    name: str
    in_run: bool
    start_urls: list[str]
    unready: str | None
    last: RunRow | None
    running_run: ScheduleRun | None

    @property
    def running(self) -> bool:
        return self.running_run is not None or (self.last is not None and self.last.status == "running")


@dataclass
class ScheduleView:
    info: ScheduleInfo
    last: ScheduleRun | None
    running_run: ScheduleRun | None
    unready: str | None

    @property
    def running(self) -> bool:
        return self.running_run is not None


def _unready(settings: Settings, spider: str, start_urls: list[str] | tuple[str, ...] = ()) -> str | None:
    """Why a run of ``spider`` cannot start (in Chinese), or None (start URLs of the schedule count)."""
    if start_urls and spider in all_spiders(settings):
        return None
    return readiness(settings, spider)


def _running_by(runs: list[ScheduleRun]) -> tuple[dict[str, ScheduleRun], dict[str, ScheduleRun]]:
    by_schedule: dict[str, ScheduleRun] = {}
    by_spider: dict[str, ScheduleRun] = {}
    for r in runs:
        by_schedule.setdefault(r.schedule_id, r)
        by_spider.setdefault(r.spider, r)
    return by_schedule, by_spider


def _target(request: Request, key: str) -> tuple[str, ScheduleInfo | None]:
    """(spider, schedule or None) of a page key; 404 when it names neither."""
    info = schedule_book(request).get(key)
    if info is not None:
        return info.spider, info
    if key in all_spiders(request.app.state.settings):
        return key, None
    raise HTTPException(status_code=404, detail=f"没有名为 {key} 的采集计划或爬虫")


@router.get("/schedules")
def schedules_page(request: Request, me: Identity = Depends(require("viewer"))) -> Response:
    settings, store = request.app.state.settings, request.app.state.store
    book = schedule_book(request)
    running = running_runs(store)
    run_by_schedule, run_by_spider = _running_by(running)
    last_by_schedule = last_schedule_runs(store)
    schedules = [ScheduleView(info, last_by_schedule.get(info.id), run_by_schedule.get(info.id) or run_by_spider.get(info.spider),
                              _unready(settings, info.spider, info.start_urls)) for info in book.schedules()]
    last = last_runs(store)
    spiders = [SpiderView(name=n, in_run=n in settings.crawl.run, start_urls=list(settings.spider(n).start_urls),
                          unready=readiness(settings, n), last=last.get(n), running_run=run_by_spider.get(n))
               for n in all_spiders(settings)]
    return render(request, "schedules.html", {
        "schedules": schedules, "spiders": spiders, "runs": recent_runs(store, limit=settings.web.page_size),
        "history": history(store, limit=settings.web.page_size), "any_running": bool(running),
        "hosted": getattr(request.app.state, "scheduler", None) is not None,
        "status_labels": STATUS_LABELS, "trigger_labels": TRIGGER_LABELS,
    })


@router.get("/schedules/{key}")
def schedule_page(request: Request, key: str = Path(..., pattern=KEY), me: Identity = Depends(require("viewer")),
                  page: int = Query(1, ge=1, le=100_000), hpage: int = Query(1, ge=1, le=100_000),
                  run: str = Query("", max_length=10)) -> Response:
    settings, store = request.app.state.settings, request.app.state.store
    spider, info = _target(request, key)
    size = settings.web.page_size
    run_by_schedule, run_by_spider = _running_by(running_runs(store))
    running_run = run_by_schedule.get(key) or run_by_spider.get(spider)
    view = SpiderView(name=spider, in_run=spider in settings.crawl.run, start_urls=list(settings.spider(spider).start_urls),
                      unready=_unready(settings, spider, info.start_urls if info else ()), last=last_runs(store).get(spider),
                      running_run=running_run)
    runs = recent_runs(store, spider=spider, limit=size, offset=(page - 1) * size)
    total = count_runs(store, spider)
    runs_hist = history(store, key, limit=size, offset=(hpage - 1) * size)
    total_hist = count_history(store, key)
    latest = history(store, key, limit=1)
    pages: dict[str, Any] = {}
    if page > 1:
        pages["prev"] = f"/schedules/{key}?page={page - 1}&hpage={hpage}"
    if page * size < total:
        pages["next"] = f"/schedules/{key}?page={page + 1}&hpage={hpage}"
    hpages: dict[str, Any] = {}
    if hpage > 1:
        hpages["prev"] = f"/schedules/{key}?hpage={hpage - 1}&page={page}"
    if hpage * size < total_hist:
        hpages["next"] = f"/schedules/{key}?hpage={hpage + 1}&page={page}"
    return render(request, "schedule.html", {
        "key": key, "s": view, "schedule": info, "latest": latest[0] if latest else None, "runs": runs, "total": total,
        "page": page, "pages": pages, "history": runs_hist, "total_history": total_hist, "hpage": hpage, "hpages": hpages,
        "run_notice": RUN_NOTICES.get(run), "status_labels": STATUS_LABELS, "trigger_labels": TRIGGER_LABELS,
        "hosted": getattr(request.app.state, "scheduler", None) is not None,
    })


@router.post("/schedules/{key}/run")
def run_now(request: Request, key: str = Path(..., pattern=KEY), me: Identity = Depends(require("editor"))) -> Response:
    """Run the schedule (or the unscheduled spider) now, in the background, through the scheduler's lock."""
    settings = request.app.state.settings
    spider, info = _target(request, key)
    if _unready(settings, spider, info.start_urls if info else ()) is not None:
        return RedirectResponse(f"/schedules/{key}?run=unready", status_code=303)
    args = info.args if info is not None else RunArgs(key, spider)
    run_id, started = crawl_jobs(request).start(args, actor=me.name)
    if info is not None:
        schedule_book(request).note_run_now(key, actor=me.name, run_id=run_id)
    return RedirectResponse(f"/schedules/{key}?run={'started' if started else 'already'}", status_code=303)


@router.post("/schedules/{key}/pause")
def pause(request: Request, key: str = Path(..., pattern=KEY), me: Identity = Depends(require("editor"))) -> Response:
    """No scheduled run until resumed (a run going on is not stopped)."""
    try:
        schedule_book(request).pause(key, actor=me.name)
    except ScheduleError:
        raise HTTPException(status_code=404, detail=f"没有名为 {key} 的采集计划") from None
    _wake_scheduler(request)
    return RedirectResponse(f"/schedules/{key}?run=paused", status_code=303)


@router.post("/schedules/{key}/resume")
def resume(request: Request, key: str = Path(..., pattern=KEY), me: Identity = Depends(require("editor"))) -> Response:
    """Scheduled runs again from the next cron time on."""
    try:
        schedule_book(request).resume(key, actor=me.name)
    except ScheduleError:
        raise HTTPException(status_code=404, detail=f"没有名为 {key} 的采集计划") from None
    _wake_scheduler(request)
    return RedirectResponse(f"/schedules/{key}?run=resumed", status_code=303)
