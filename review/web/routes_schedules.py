"""采集计划: every spider piyao can run, its last run and history, and "run now"."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from review.accounts import Identity
from review.crawl_jobs import CrawlJob, CrawlJobs, RunRow, all_spiders, count_runs, last_runs, readiness, recent_runs
from review.web.app import render
from review.web.security import check_csrf, require
from settings import Settings

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

SPIDER_NAME = r"^[A-Za-z0-9_\-]{1,100}$"
RUN_NOTICES = {"started": ("notice", "已开始采集，完成后会记录在下方的运行历史中。"),
               "already": ("error", "这个爬虫正在运行，请等它结束后再启动。"),
               "unready": ("error", "这个爬虫现在不能运行，原因见下方“状态”。")}
_jobs_lock = threading.Lock()


def crawl_jobs(request: Request) -> CrawlJobs:
    """The app's crawl jobs (one registry per app, made on first use)."""
    state = request.app.state
    with _jobs_lock:
        jobs = getattr(state, "crawl_jobs", None)
        if jobs is None:
            jobs = state.crawl_jobs = CrawlJobs(state.settings)
        return jobs


@dataclass
class SpiderView:
    name: str
    in_run: bool
    start_urls: list[str]
    unready: str | None
    last: RunRow | None
    job: CrawlJob | None

    @property
    def running(self) -> bool:
        return (self.job is not None and self.job.running) or (self.last is not None and self.last.status == "running")


def _view(settings: Settings, name: str, last: RunRow | None, job: CrawlJob | None) -> SpiderView:
    return SpiderView(name=name, in_run=name in settings.crawl.run, start_urls=list(settings.spider(name).start_urls),
                      unready=readiness(settings, name), last=last, job=job)


def _spider(request: Request, spider: str) -> str:
    if spider not in all_spiders(request.app.state.settings):
        raise HTTPException(status_code=404, detail=f"没有名为 {spider} 的爬虫")
    return spider


@router.get("/schedules")
def schedules_page(request: Request, me: Identity = Depends(require("viewer"))) -> Response:
    settings, store = request.app.state.settings, request.app.state.store
    jobs = crawl_jobs(request)
    last = last_runs(store)
    spiders = [_view(settings, n, last.get(n), jobs.get(n)) for n in all_spiders(settings)]
    return render(request, "schedules.html", {
        "spiders": spiders, "runs": recent_runs(store, limit=settings.web.page_size),
        "any_running": any(s.job is not None and s.job.running for s in spiders),
    })


@router.get("/schedules/{spider}")
def schedule_page(request: Request, spider: str = Path(..., pattern=SPIDER_NAME), me: Identity = Depends(require("viewer")),
                  page: int = Query(1, ge=1, le=100_000), run: str = Query("", max_length=10)) -> Response:
    settings, store = request.app.state.settings, request.app.state.store
    name = _spider(request, spider)
    size = settings.web.page_size
    runs = recent_runs(store, spider=name, limit=size, offset=(page - 1) * size)
    total = count_runs(store, name)
    view = _view(settings, name, last_runs(store).get(name), crawl_jobs(request).get(name))
    pages: dict[str, Any] = {}
    if page > 1:
        pages["prev"] = f"/schedules/{name}?page={page - 1}"
    if page * size < total:
        pages["next"] = f"/schedules/{name}?page={page + 1}"
    return render(request, "schedule.html", {"s": view, "runs": runs, "total": total, "page": page, "pages": pages,
                                             "run_notice": RUN_NOTICES.get(run)})


@router.post("/schedules/{spider}/run")
def run_now(request: Request, spider: str = Path(..., pattern=SPIDER_NAME), me: Identity = Depends(require("editor"))) -> Response:
    """Start the spider's crawl in the background (at most one at a time per spider)."""
    settings = request.app.state.settings
    name = _spider(request, spider)
    if readiness(settings, name) is not None:
        return RedirectResponse(f"/schedules/{name}?run=unready", status_code=303)
    _, started = crawl_jobs(request).start(name, actor=me.name)
    return RedirectResponse(f"/schedules/{name}?run={'started' if started else 'already'}", status_code=303)
