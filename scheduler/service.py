"""The scheduler: APScheduler 3's BackgroundScheduler over the persistent job store, made never to skip silently.

* Missed run times (the scheduler was down) **coalesce** into one run (``coalesce=True``); that run is
  recorded with trigger ``catchup`` and a message naming how many times it stands for.
* A run found later than ``scheduler.misfire_grace_hours`` is not run: APScheduler's EVENT_JOB_MISSED
  listener records it as a ``missed`` ScheduleRun row.
* At most one instance per schedule in this process (``max_instances=1``; a refused start,
  EVENT_JOB_MAX_INSTANCES, is recorded as ``skipped``) and across processes (``Runner.begin``'s
  database lock: a ``running`` row blocks another start, recorded as ``skipped``).
* A run past its time limit is stopped and recorded as ``timeout`` (``Runner.execute``).
* At start, ``running`` rows whose process is gone are marked ``interrupted``; the periodic check
  (every scheduler.check_seconds) does it again, and calls ``ops.alerts.check_surges``.

Which run time a job stands for is not passed to the job function by APScheduler 3; ``_RunExecutor``
hands it over (with the full list of due times, before coalescing) through a thread-local.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Callable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent, JobSubmissionEvent
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.book import JobStore, ScheduleBook, grace_seconds
from scheduler.runs import RunArgs, Runner, bj, check_surge_alerts
from settings import Settings
from store.db import Store
from store.models import ScheduleRun

log = logging.getLogger(__name__)

CHECK_JOB = "piyao-check"
MAX_PARALLEL_RUNS = 4  # different schedules may crawl at the same time; one schedule never does twice
_context = threading.local()


def _fmt_delta(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours}h {mins:02d}m"


def run_scheduled(schedule_id: str, spider: str, cron: str = "", start_urls: list[str] | tuple[str, ...] = (), max_items: int = 0,
                  time_limit_minutes: float = 0.0) -> None:
    """The job function stored in the job store (its kwargs are the run arguments)."""
    owner: PiyaoScheduler | None = getattr(_context, "owner", None)
    run_time: dt.datetime | None = getattr(_context, "run_time", None)
    if owner is None or run_time is None:
        raise RuntimeError("run_scheduled runs inside piyao's scheduler only (scheduler.service.PiyaoScheduler)")
    owner.run_job(RunArgs(schedule_id, spider, tuple(start_urls), int(max_items), float(time_limit_minutes)), run_time)


class _RunExecutor(ThreadPoolExecutor):
    """A thread pool that tells the job function which run time it stands for (and which it coalesced)."""

    def __init__(self, owner: PiyaoScheduler, max_workers: int) -> None:
        super().__init__(max_workers)
        self.owner = owner

    def _do_submit_job(self, job: Any, run_times: list[dt.datetime]) -> None:
        # Called before the scheduler moves next_run_time on: every due time is still known here.
        due = job._get_run_times(dt.datetime.now(dt.timezone.utc)) or list(run_times)
        self.owner.note_due(job.id, run_times[-1], due)
        owner = self.owner

        def call(job: Any, alias: str, times: list[dt.datetime], logger_name: str) -> list[Any]:
            _context.owner, _context.run_time = owner, times[-1]
            try:
                return run_job(job, alias, times, logger_name)  # type: ignore[no-any-return]
            finally:
                _context.owner = _context.run_time = None

        def callback(f: Any) -> None:
            exc = f.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, f.result())

        future = self._pool.submit(call, job, job._jobstore_alias, run_times, self._logger.name)
        future.add_done_callback(callback)


class PiyaoScheduler:
    """The nightly crawls' scheduler, for ``piyao scheduler`` or inside ``piyao serve`` (scheduler.in_server)."""

    def __init__(self, settings: Settings, store: Store, *, runner: Runner | None = None,
                 on_run: Callable[[ScheduleRun], None] | None = None, max_workers: int = MAX_PARALLEL_RUNS) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner or Runner(settings, store)
        if on_run is not None:
            self.runner.listeners.append(on_run)
        self.book = ScheduleBook(settings, store)
        self.max_workers = max_workers
        self.started_at: dt.datetime | None = None
        self.aps: BackgroundScheduler | None = None
        self._due: dict[tuple[str, float], list[dt.datetime]] = {}
        self._due_lock = threading.Lock()

    # -- life cycle
    def start(self) -> None:
        """Seed config.yaml's new schedules, mark runs of dead processes interrupted, start scheduling."""
        self.book.seed()
        self.runner.reap()
        self.started_at = dt.datetime.now(dt.timezone.utc)
        aps = BackgroundScheduler(
            jobstores={"default": JobStore(engine=self.store.engine), "internal": MemoryJobStore()},
            executors={"default": _RunExecutor(self, self.max_workers), "internal": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace_seconds(self.settings)},
            timezone=self.book.tz)
        aps.add_listener(self._on_missed, EVENT_JOB_MISSED)
        aps.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        aps.add_listener(self._on_error, EVENT_JOB_ERROR)
        aps.add_job(self.check, IntervalTrigger(seconds=self.settings.scheduler.check_seconds, timezone=self.book.tz), id=CHECK_JOB,
                    name="stuck runs and rumor surges", jobstore="internal", executor="internal", misfire_grace_time=None)
        self.aps = aps
        aps.start()
        log.info("scheduler started: %d schedule(s), time zone %s", len(self.book.schedules()), self.book.tz.key)

    def shutdown(self, *, reason: str = "the scheduler stopped", wait: float | None = 60.0) -> None:
        """Stop scheduling; running crawls are stopped and recorded ``interrupted`` (the next start does not rerun them)."""
        if self.aps is not None and self.aps.running:
            self.aps.shutdown(wait=False)
        self.runner.stop_all(reason, wait=wait)
        log.info("scheduler stopped")

    @property
    def running(self) -> bool:
        return self.aps is not None and self.aps.running

    def wakeup(self) -> None:
        """Look at the job store now (after an edit made in this process)."""
        if self.aps is not None and self.aps.running:
            self.aps.wakeup()

    # -- the jobs
    def note_due(self, job_id: str, run_time: dt.datetime, due: list[dt.datetime]) -> None:
        with self._due_lock:
            self._due[(job_id, run_time.timestamp())] = due

    def _pop_due(self, job_id: str, run_time: dt.datetime) -> list[dt.datetime]:
        with self._due_lock:
            return self._due.pop((job_id, run_time.timestamp()), None) or [run_time]

    def _trigger_of(self, run_time: dt.datetime, due: list[dt.datetime]) -> str:
        """``catchup``: due before this scheduler started (it was down), or standing for several missed times."""
        return "catchup" if (self.started_at is not None and run_time < self.started_at) or len(due) > 1 else "schedule"

    @staticmethod
    def _coalesced(due: list[dt.datetime]) -> str:
        if len(due) < 2:
            return ""
        return f"{len(due)} missed run times coalesced into one ({bj(due[0])} … {bj(due[-1])} Beijing time)"

    def run_job(self, args: RunArgs, run_time: dt.datetime) -> ScheduleRun:
        """One due run: recorded, locked, crawled (called by ``run_scheduled`` in an executor thread)."""
        due = self._pop_due(args.schedule_id, run_time)
        trigger = self._trigger_of(run_time, due)
        note = ""
        if trigger == "catchup":
            late = dt.datetime.now(dt.timezone.utc) - run_time
            note = "; ".join(p for p in (f"catch-up run, {_fmt_delta(late)} after its time {bj(run_time)}", self._coalesced(due)) if p)
        return self.runner.run(args, trigger=trigger, scheduled_for=run_time, note=note)

    def _job_args(self, job_id: str) -> RunArgs:
        info = self.book.get(job_id)
        return info.args if info is not None else RunArgs(job_id, job_id)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        if event.jobstore != "default":
            return
        run_time = event.scheduled_run_time
        due = self._pop_due(event.job_id, run_time)
        late = dt.datetime.now(dt.timezone.utc) - run_time
        job = self.book.jobstore.lookup_job(event.job_id)
        following = job.trigger.get_next_fire_time(run_time, dt.datetime.now(self.book.tz)) if job is not None else None
        nxt = f"; next run {bj(following)} Beijing time" if following else ""
        message = "; ".join(p for p in (
            f"missed: found {_fmt_delta(late)} after its time {bj(run_time)}, beyond the misfire grace of "
            f"{self.settings.scheduler.misfire_grace_hours:g} h, so not run", self._coalesced(due)) if p) + nxt
        self.runner.record(self._job_args(event.job_id), status="missed", trigger=self._trigger_of(run_time, due),
                           scheduled_for=run_time, message=message)

    def _on_max_instances(self, event: JobSubmissionEvent) -> None:
        if event.jobstore != "default":
            return
        run_time = event.scheduled_run_times[-1]
        due = self._pop_due(event.job_id, run_time)
        args = self._job_args(event.job_id)
        self.runner.record(args, status="skipped", trigger=self._trigger_of(run_time, due), scheduled_for=run_time,
                           message=self.runner.busy_message(args))

    def _on_error(self, event: JobExecutionEvent) -> None:
        log.error("schedule job %s raised %r (its run is recorded by the runner)\n%s", event.job_id, event.exception,
                  event.traceback or "")

    def check(self) -> None:
        """Every scheduler.check_seconds: abandoned runs, rumor surges, and a look at edits made elsewhere."""
        try:
            self.runner.reap()
        except Exception:  # noqa: BLE001 - the scheduler keeps running
            log.exception("stuck-run check failed")
        check_surge_alerts(self.store, self.settings)
