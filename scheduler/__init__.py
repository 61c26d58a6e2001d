"""Scheduled crawls that never skip silently (APScheduler 3, job store in piyao's database); see docs/scheduling.md.

* ``scheduler.book``: the schedules (jobs in the persistent job store) and their editing;
* ``scheduler.runs``: one run: the database lock, the child crawl, the time limit, the history rows;
* ``scheduler.service``: the running scheduler (``piyao scheduler``, or inside ``piyao serve``);
* ``scheduler.child``: the child process of a run (crawl, classify, index, match, queue).
"""

from __future__ import annotations

import logging
from typing import Any

from scheduler.book import ScheduleBook, ScheduleError, ScheduleInfo
from scheduler.runs import Refused, RunArgs, Runner
from scheduler.service import PiyaoScheduler

__all__ = ["PiyaoScheduler", "Refused", "RunArgs", "Runner", "ScheduleBook", "ScheduleError", "ScheduleInfo", "start_in_app",
           "stop_in_app"]

log = logging.getLogger(__name__)


def start_in_app(app: Any) -> PiyaoScheduler | None:
    """Host the scheduler in the web app's process when scheduler.in_server is true (``piyao serve``)."""
    settings = app.state.settings
    app.state.scheduler = None
    if not settings.scheduler.in_server:
        return None
    sched = PiyaoScheduler(settings, app.state.store)
    sched.start()
    app.state.scheduler = sched
    log.info("the scheduler runs inside the web server (scheduler.in_server)")
    return sched


def stop_in_app(app: Any) -> None:
    """Stop the hosted scheduler and the crawls the web app started (recorded as interrupted)."""
    sched = getattr(app.state, "scheduler", None)
    if sched is not None:
        sched.shutdown(reason="the web server stopped")
        app.state.scheduler = None
    jobs = getattr(app.state, "crawl_jobs", None)
    if jobs is not None:
        jobs.stop("the web server stopped")
