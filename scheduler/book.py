"""The schedules: APScheduler jobs in a persistent job store in the project's own database.

**One place holds schedule state: the job store** (table ``apscheduler_jobs``, made by APScheduler's
SQLAlchemyJobStore beside piyao's tables; the same engine serves SQLite and PostgreSQL). A job is a
cron trigger (``CronTrigger.from_crontab(cron, timezone=scheduler.timezone)``), the job options that
keep runs from being skipped silently (``coalesce=True``, ``max_instances=1``,
``misfire_grace_time=scheduler.misfire_grace_hours``) and the job's kwargs, the run arguments
(``schedule_id, spider, cron, start_urls, max_items, time_limit_minutes``), so they survive restarts.

Schedules declared in config.yaml (scheduler.schedules) are added to the job store only when no job
with that id is there, that is on first start; after that ``piyao schedules ...`` and the web app edit
the job store, and config.yaml is not read again for that id (its values were the initial ones: change
them with ``piyao schedules add ID ... --replace``; a declared schedule cannot be removed while it is
still declared, since it would come back). ``ScheduleBook`` edits the job store directly, without a running scheduler: a
running one picks the change up at its next wake-up (at most scheduler.check_seconds later).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from scheduler.runs import RunArgs
from settings import Settings
from store.audit import Event
from store.db import Store

log = logging.getLogger(__name__)

JOB_FUNC = "scheduler.service:run_scheduled"
SCHEDULE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
MAX_START_URLS = 20


class ScheduleError(Exception):
    """A schedule that cannot be added or changed; the message is one line for the user."""


class JobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the Store's engine (its SQLite pragmas included); the Store
    owns the engine, so shutting the job store down leaves it open."""

    def shutdown(self) -> None:  # noqa: D102 - the engine belongs to the Store
        pass


@dataclass(frozen=True)
class ScheduleEvent(Event):
    """A schedule added, changed or removed (the audit log; object_id is None: schedule ids are names)."""

    object_type: str = field(init=False, default="schedule")


@dataclass(frozen=True)
class ScheduleAdded(ScheduleEvent):
    action: str = field(init=False, default="schedule.added")


@dataclass(frozen=True)
class ScheduleChanged(ScheduleEvent):
    action: str = field(init=False, default="schedule.changed")


@dataclass(frozen=True)
class SchedulePaused(ScheduleEvent):
    action: str = field(init=False, default="schedule.paused")


@dataclass(frozen=True)
class ScheduleResumed(ScheduleEvent):
    action: str = field(init=False, default="schedule.resumed")


@dataclass(frozen=True)
class ScheduleRemoved(ScheduleEvent):
    action: str = field(init=False, default="schedule.removed")


@dataclass(frozen=True)
class ScheduleRunRequested(ScheduleEvent):
    action: str = field(init=False, default="schedule.run_now")


@dataclass
class ScheduleInfo:
    """One job of the job store, as the CLI and the web app show it."""

    id: str
    spider: str
    cron: str
    next_run: dt.datetime | None  # aware, in scheduler.timezone; None: paused
    start_urls: list[str]
    max_items: int
    time_limit_minutes: float
    misfire_grace_s: int | None
    coalesce: bool
    max_instances: int

    @property
    def paused(self) -> bool:
        return self.next_run is None

    @property
    def next_run_utc(self) -> dt.datetime | None:
        """Naive UTC (the web app's ``bjtime`` filter shows it in Beijing time)."""
        return self.next_run.astimezone(dt.timezone.utc).replace(tzinfo=None) if self.next_run else None

    @property
    def args(self) -> RunArgs:
        return RunArgs(self.id, self.spider, tuple(self.start_urls), self.max_items, self.time_limit_minutes)

    def to_json(self) -> dict[str, Any]:
        from scheduler.runs import bj

        return {"id": self.id, "spider": self.spider, "cron": self.cron, "paused": self.paused,
                "next_run": self.next_run.isoformat() if self.next_run else None,
                "next_run_beijing": bj(self.next_run) if self.next_run else None, "start_urls": self.start_urls,
                "max_items": self.max_items, "time_limit_minutes": self.time_limit_minutes,
                "misfire_grace_hours": round(self.misfire_grace_s / 3600, 3) if self.misfire_grace_s else None}


def timezone_of(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.scheduler.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"scheduler.timezone: unknown time zone {settings.scheduler.timezone!r}") from exc


CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab numbers: 0 and 7 are Sunday


def crontab_weekdays(field_: str) -> str:
    """A crontab weekday field with its numbers as day names.

    APScheduler 3 reads weekday numbers as 0 = Monday (its ``from_crontab`` passes them through), so
    ``0 2 * * 1-5`` would run Tuesday to Saturday; crontab (and every editor) means 0/7 = Sunday,
    1 = Monday. Names are the same in both, so numbers become names: ``1-5`` → ``mon,tue,wed,thu,fri``.
    """
    out: list[str] = []
    for part in field_.split(","):
        m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if m is None:  # names (mon-fri), or a syntax APScheduler will judge
            out.append(part)
            continue
        span, step = m.group(1), int(m.group(2) or 1)
        if span == "*" and step == 1:
            out.append("*")
            continue
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            lo, hi = (int(x) for x in span.split("-"))
        else:
            lo = hi = int(span)
            if m.group(2):
                hi = 6
        if not (0 <= lo <= 7 and 0 <= hi <= 7) or lo > hi or step < 1:
            raise ScheduleError(f"invalid weekday {part!r}: use 0-7 (0 and 7: Sunday) or names such as mon-fri")
        out.extend(CRONTAB_DAYS[d] for d in range(lo, hi + 1, step))
    return ",".join(dict.fromkeys(out))


def cron_trigger(cron: str, tz: ZoneInfo) -> CronTrigger:
    """A five-field crontab expression (crontab's weekday numbers) as a trigger; a bad one is a ScheduleError."""
    expr = " ".join(str(cron).split())
    if len(expr) > 200:
        raise ScheduleError("cron expression too long")
    fields = expr.split(" ")
    if len(fields) != 5:
        raise ScheduleError(f"invalid cron expression {expr!r}: 5 fields are needed (minute hour day month weekday), got {len(fields)}")
    try:
        weekdays = crontab_weekdays(fields[4])
        return CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3], day_of_week=weekdays, timezone=tz)
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"invalid cron expression {expr!r} (minute hour day month weekday): {exc}") from None


def grace_seconds(settings: Settings) -> int:
    return max(1, int(settings.scheduler.misfire_grace_hours * 3600))


class ScheduleBook:
    """Reads and edits the schedules in the job store (the CLI, the web app, and the scheduler's first start)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.tz = timezone_of(settings)
        # Never started: the jobs' reference for the time zone and for rebuilding them from the store.
        self._scheduler = BackgroundScheduler(timezone=self.tz)
        self.jobstore = JobStore(engine=store.engine)
        self.jobstore.start(self._scheduler, "default")

    # -- reading
    def info(self, job: Job) -> ScheduleInfo:
        kw = dict(job.kwargs)
        return ScheduleInfo(id=job.id, spider=str(kw.get("spider") or job.id), cron=str(kw.get("cron") or ""),
                            next_run=job.next_run_time, start_urls=[str(u) for u in kw.get("start_urls") or []],
                            max_items=int(kw.get("max_items") or 0), time_limit_minutes=float(kw.get("time_limit_minutes") or 0),
                            misfire_grace_s=job.misfire_grace_time, coalesce=bool(job.coalesce), max_instances=int(job.max_instances))

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule, by id."""
        return sorted((self.info(j) for j in self.jobstore.get_all_jobs()), key=lambda i: i.id)

    def get(self, schedule_id: str) -> ScheduleInfo | None:
        if not SCHEDULE_ID.match(schedule_id or ""):
            return None
        job = self.jobstore.lookup_job(schedule_id)
        return self.info(job) if job is not None else None

    def require(self, schedule_id: str) -> ScheduleInfo:
        found = self.get(schedule_id)
        if found is None:
            raise ScheduleError(f"no schedule {schedule_id!r} (see `piyao schedules list`)")
        return found

    # -- validating
    def validate(self, schedule_id: str, spider: str, cron: str, start_urls: list[str], max_items: int,
                 time_limit_minutes: float) -> CronTrigger:
        """Check every argument of a schedule; the trigger, or a ScheduleError naming the first problem."""
        from review.crawl_jobs import spider_classes

        if not SCHEDULE_ID.match(schedule_id or ""):
            raise ScheduleError(f"invalid schedule id {schedule_id!r}: use 1-100 letters, digits, '_' or '-'")
        known = spider_classes(self.settings)
        if spider not in known:
            raise ScheduleError(f"unknown spider {spider!r} (known: {', '.join(known)})")
        if schedule_id != spider and schedule_id in known:
            raise ScheduleError(f"schedule id {schedule_id!r} is the name of another spider: choose another id")
        if len(start_urls) > MAX_START_URLS:
            raise ScheduleError(f"at most {MAX_START_URLS} start URLs")
        for url in start_urls:
            if not re.match(r"^https?://[^\s/]+", url) or len(url) > 2048:
                raise ScheduleError(f"invalid start URL {url!r}: an http:// or https:// URL is needed")
        if max_items < 0:
            raise ScheduleError("max items must be 0 (no limit) or more")
        if time_limit_minutes < 0 or time_limit_minutes > 7 * 24 * 60:
            raise ScheduleError("time limit must be 0 (scheduler.time_limit_minutes) to 10080 minutes")
        return cron_trigger(cron, self.tz)

    # -- editing
    def add(self, schedule_id: str, *, spider: str, cron: str, start_urls: list[str] | None = None, max_items: int = 0,
            time_limit_minutes: float = 0.0, paused: bool = False, replace: bool = False, actor: str = "") -> ScheduleInfo:
        """Add a schedule; an existing id is an error unless ``replace`` (then its trigger and arguments change)."""
        start_urls = list(start_urls or [])
        trigger = self.validate(schedule_id, spider, cron, start_urls, max_items, time_limit_minutes)
        expr = " ".join(cron.split())
        now = dt.datetime.now(self.tz)
        job = Job(self._scheduler, id=schedule_id, func=JOB_FUNC, args=(), name=schedule_id, trigger=trigger, executor="default",
                  kwargs={"schedule_id": schedule_id, "spider": spider, "cron": expr, "start_urls": start_urls,
                          "max_items": int(max_items), "time_limit_minutes": float(time_limit_minutes)},
                  misfire_grace_time=grace_seconds(self.settings), coalesce=True, max_instances=1,
                  next_run_time=None if paused else trigger.get_next_fire_time(None, now))
        previous = self.get(schedule_id) if replace else None
        try:
            if previous is not None:
                self.jobstore.update_job(job)
            else:
                self.jobstore.add_job(job)
        except ConflictingIdError:
            raise ScheduleError(f"schedule {schedule_id!r} exists already (change it with --replace)") from None
        info = self.info(job)
        if previous is not None:
            self._audit(ScheduleChanged(actor or "system", old={"schedule": schedule_id, **previous.to_json()},
                                        new={"schedule": schedule_id, **info.to_json()}))
        else:
            self._audit(ScheduleAdded(actor or "system", new={"schedule": schedule_id, **info.to_json()}))
        return info

    def pause(self, schedule_id: str, *, actor: str = "") -> ScheduleInfo:
        """No run until resumed (a running one goes on)."""
        job = self._job(schedule_id)
        if job.next_run_time is not None:
            old = job.next_run_time
            job._modify(next_run_time=None)
            self.jobstore.update_job(job)
            self._audit(SchedulePaused(actor or "system", old={"schedule": schedule_id, "next_run": old.isoformat()},
                                       new={"schedule": schedule_id, "paused": True}))
        return self.info(job)

    def resume(self, schedule_id: str, *, actor: str = "") -> ScheduleInfo:
        """Runs again from the next cron time on (times passed while paused are not caught up)."""
        job = self._job(schedule_id)
        if job.next_run_time is None:
            nxt = job.trigger.get_next_fire_time(None, dt.datetime.now(self.tz))
            job._modify(next_run_time=nxt)
            self.jobstore.update_job(job)
            self._audit(ScheduleResumed(actor or "system", old={"schedule": schedule_id, "paused": True},
                                        new={"schedule": schedule_id, "next_run": nxt.isoformat() if nxt else None}))
        return self.info(job)

    def remove(self, schedule_id: str, *, actor: str = "") -> ScheduleInfo:
        """Delete a schedule (its history stays). One still declared in config.yaml is refused: it would come back
        at the next start; delete the declaration first, or pause it."""
        info = self.require(schedule_id)
        if schedule_id in self.settings.scheduler.schedules:
            raise ScheduleError(f"schedule {schedule_id!r} is declared in the configuration (scheduler.schedules.{schedule_id}) and "
                                "would be added again at the next start: delete it there first, or pause it")
        self.jobstore.remove_job(schedule_id)
        self._audit(ScheduleRemoved(actor or "system", old={"schedule": schedule_id, **info.to_json()}))
        return info

    def note_run_now(self, schedule_id: str, *, actor: str, run_id: int | None) -> None:
        self._audit(ScheduleRunRequested(actor or "system", new={"schedule": schedule_id, "schedule_run_id": run_id}))

    def seed(self) -> list[str]:
        """Add the schedules of config.yaml whose id is not in the job store; the ids added.

        A bad declaration (unknown spider, invalid cron) is a ScheduleError naming its key.
        """
        added = []
        for sid, conf in self.settings.scheduler.schedules.items():
            if self.jobstore.lookup_job(sid) is not None:
                continue
            try:
                self.add(sid, spider=conf.spider or sid, cron=conf.cron, start_urls=list(conf.start_urls), max_items=conf.max_items,
                         time_limit_minutes=conf.time_limit_minutes, paused=not conf.enabled, actor="config")
            except ScheduleError as exc:
                if "exists already" in str(exc):  # another process seeded it meanwhile
                    continue
                raise ScheduleError(f"scheduler.schedules.{sid}: {exc}") from None
            added.append(sid)
            log.info("schedule %s added to the job store from config.yaml", sid)
        return added

    # -- internals
    def _job(self, schedule_id: str) -> Job:
        job = self.jobstore.lookup_job(schedule_id) if SCHEDULE_ID.match(schedule_id or "") else None
        if job is None:
            raise ScheduleError(f"no schedule {schedule_id!r} (see `piyao schedules list`)")
        return job

    def _audit(self, event: ScheduleEvent) -> None:
        with self.store.session() as s:
            event.record(s)
