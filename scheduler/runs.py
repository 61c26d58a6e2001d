"""One run of a schedule: the database lock, the child crawl process, the time limit, the history row.

Every start of a schedule, scheduled, caught up or "run now" from the CLI or the web app, goes through
``Runner.begin`` (the lock) and ``Runner.execute`` (the crawl), so they all obey the same rules:

* **one at a time, across processes**: ``begin`` looks for a ``running`` ScheduleRun row of the same
  schedule or the same spider (two crawls of one spider would share its job directory) while holding a
  database-wide lock (PostgreSQL: an advisory transaction lock; SQLite: the write lock), so two
  processes cannot both start. A refused start is recorded as a ``skipped`` row naming the run it met.
* **no stuck run**: the crawl runs in a child process in its own process group; past its time limit the
  whole group is stopped (SIGTERM, then SIGKILL) and the run is recorded as ``timeout``.
* **no orphaned lock**: a ``running`` row whose recording process is gone (kill -9, crash, power loss)
  is marked ``interrupted`` by ``reap``, which every start, the scheduler's start and its periodic
  check call. On this host that is decided by the process (its pid gone, or reused by a non-Python
  process), never by the clock; a row from another host is reaped once it is past its time limit plus
  a margin. The
  child asks the kernel to kill it when the thread that started it dies, so a killed scheduler
  leaves no crawl behind.

The child (``python -m scheduler.child``) runs ``pipeline.run_once`` for the one spider: crawl, then
classify, index, match and queue the new claims. It gets the settings through a private (0600) YAML
file, deleted when it ends, and ``PIYAO_RUN_ID=<run_key>`` so its log lines carry the run id; its
error output goes to ``<data_dir>/crawl/runs/<run_key>.log``. Afterwards the history row gets the
crawl's figures from the ``crawl_runs`` rows it wrote (linked through ``CrawlRun.schedule_run_id``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from settings import Settings
from store.db import Store
from store.models import Claim, CrawlRun, ScheduleRun, utcnow

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()[:200]
TRIGGERS = ("schedule", "catchup", "manual")
STATUSES = ("running", "finished", "failed", "timeout", "interrupted", "missed", "skipped")
# A running row from another host is taken as abandoned this long after its time limit ran out.
REAP_MARGIN = dt.timedelta(minutes=15)
# After SIGTERM a crawl gets this long to close its spider and record itself, then it is killed.
KILL_GRACE_S = 15.0
OUTPUT_TAIL_CHARS = 2000
MESSAGE_CHARS = 4000
# The advisory lock every start takes on PostgreSQL (a fixed 64-bit key derived from a name).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"piyao:schedule_runs").digest()[:8], "big", signed=True)
BEIJING = dt.timezone(dt.timedelta(hours=8))


def bj(value: dt.datetime | None) -> str:
    """A naive-UTC (or aware) datetime as Beijing time, to the minute."""
    if value is None:
        return "—"
    aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return aware.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def naive_utc(value: dt.datetime) -> dt.datetime:
    """The store keeps naive UTC datetimes."""
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def join_message(*parts: str | None) -> str | None:
    text_ = "; ".join(p.strip() for p in parts if p and p.strip())
    return text_[:MESSAGE_CHARS] or None


@dataclass(frozen=True)
class RunArgs:
    """The job's arguments (its kwargs in the job store, and ``ScheduleRun.args``)."""

    schedule_id: str
    spider: str
    start_urls: tuple[str, ...] = ()
    max_items: int = 0
    # 0: scheduler.time_limit_minutes
    time_limit_minutes: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"spider": self.spider, "start_urls": list(self.start_urls), "max_items": self.max_items,
                "time_limit_minutes": self.time_limit_minutes}

    @classmethod
    def of(cls, schedule_id: str, doc: dict[str, Any] | None, spider: str = "") -> RunArgs:
        doc = doc or {}
        return cls(schedule_id=schedule_id, spider=str(doc.get("spider") or spider or schedule_id),
                   start_urls=tuple(str(u) for u in doc.get("start_urls") or ()), max_items=int(doc.get("max_items") or 0),
                   time_limit_minutes=float(doc.get("time_limit_minutes") or 0))

    def limit_minutes(self, settings: Settings) -> float:
        return self.time_limit_minutes or settings.scheduler.time_limit_minutes


@dataclass(frozen=True)
class Refused:
    """A start refused because another run holds the schedule (or its spider); ``run_id`` is the skipped row."""

    run_id: int
    blocking_id: int
    message: str


@contextmanager
def log_context(run_key: str) -> Iterator[None]:
    """Log records of this thread carry the run id (ops.logs; the child gets it as PIYAO_RUN_ID)."""
    try:
        from ops.logs import run_context
    except ImportError:
        yield
        return
    with run_context(run_key):
        yield


# --------------------------------------------------------------------------- processes
def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def recorder_alive(pid: int | None) -> bool:
    """Whether the process that recorded a run on this host still runs: alive, and a Python process (a pid
    reused by something else after a crash does not hold the schedule)."""
    if not pid_alive(pid):
        return False
    if pid == os.getpid():
        return True
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes().lower()
    except OSError:  # no /proc (not Linux), or not ours to read: trust the pid
        return True


def settings_file(settings: Settings, directory: Path, *, spider: str | None = None, max_items: int = 0) -> Path:
    """The settings as a YAML config file only this user can read (it may hold index credentials);
    ``max_items`` > 0 becomes crawl.spiders.<spider>.max_items."""
    doc = settings.model_dump(mode="json", by_alias=True)
    doc["data_dir"] = str(settings.data_path)
    if spider and max_items > 0:
        doc.setdefault("crawl", {}).setdefault("spiders", {}).setdefault(spider, {})["max_items"] = max_items
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"settings-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:12]}.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False)
    return path


def child_summary(stdout: str) -> dict[str, Any] | None:
    """The child's result line (``{"piyao_run": 1, ...}``), the last one printed."""
    found = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("piyao_run") == 1:
                found = doc
    return found


def errors_by_kind(stats: Any) -> dict[str, int]:
    """The ``piyao/errors/<kind>`` counters of a crawl's stats (crawlers/middlewares.py)."""
    out: dict[str, int] = {}
    if isinstance(stats, dict):
        for key, value in stats.items():
            kind = str(key).removeprefix("piyao/errors/")
            if str(key).startswith("piyao/errors/") and "/" not in kind and isinstance(value, (int, float)):
                out[kind] = int(value)
    return out


def _serialize(session: Session) -> None:
    """Take the database-wide lock for the check-then-insert of a start (held until commit)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    else:  # SQLite: a write statement takes the database's write lock for the rest of the transaction
        session.execute(text("UPDATE schedule_runs SET status = status WHERE 1 = 0"))


def reap_stale(session: Session, settings: Settings, now: dt.datetime | None = None) -> list[int]:
    """Mark ``running`` rows whose process is gone as ``interrupted``; their ids."""
    now = now or utcnow()
    reaped = []
    for row in session.scalars(select(ScheduleRun).where(ScheduleRun.status == "running")):
        limit = RunArgs.of(row.schedule_id, row.args, row.spider).limit_minutes(settings)
        deadline = row.started_at + dt.timedelta(minutes=limit) + REAP_MARGIN
        if row.host == HOST:  # decided by the process itself: a clock jump must not free a live run's lock
            if recorder_alive(row.pid):
                continue
            why = f"interrupted: the process that ran it (pid {row.pid} on {row.host}) is gone (killed or crashed)"
        elif now > deadline:
            why = (f"interrupted: no end was recorded within its time limit ({limit:g} min) and {REAP_MARGIN.seconds // 60} min "
                   f"more; the process that ran it (pid {row.pid} on {row.host}) is gone")
        else:
            continue
        row.status, row.finished_at = "interrupted", now
        row.message = join_message(row.message, why)
        reaped.append(row.id)
        log.warning("schedule run #%s of %s %s", row.id, row.schedule_id, why)
    return reaped


# --------------------------------------------------------------------------- the runner
@dataclass
class _Active:
    proc: subprocess.Popen[str]
    stop_reason: str | None = None


@dataclass
class Runner:
    """Starts and records schedule runs for one process (the scheduler, the web app or a CLI command)."""

    settings: Settings
    store: Store
    kill_grace_s: float = KILL_GRACE_S
    # Called with each finished history row (finished, failed, timeout, interrupted, missed, skipped).
    listeners: list[Callable[[ScheduleRun], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._active: dict[int, _Active] = {}
        self._busy = 0  # execute() calls in progress
        self._stopping: str | None = None

    # -- paths
    @property
    def run_dir(self) -> Path:
        """Where the private settings files and each run's error output live."""
        return self.settings.data_path / "crawl" / "runs"

    def log_path(self, run_key: str) -> Path:
        return self.run_dir / f"{run_key}.log"

    # -- starting
    def unready(self, args: RunArgs) -> str | None:
        """Why ``args`` cannot run (in English), or None."""
        from review.crawl_jobs import readiness, spider_classes

        if args.spider not in spider_classes(self.settings):
            return f"unknown spider {args.spider!r}"
        if args.start_urls:
            return None
        why = readiness(self.settings, args.spider)
        if why is None:
            return None
        conf = self.settings.spider(args.spider)
        if not conf.enabled:
            return f"spider {args.spider} is disabled (crawl.spiders.{args.spider}.enabled: false) and the schedule gives no start URL"
        if args.spider == "generic":
            return "no enabled source in crawl.sources"
        return f"no start URL: neither the schedule nor crawl.spiders.{args.spider}.start_urls gives one"

    def begin(self, args: RunArgs, *, trigger: str, scheduled_for: dt.datetime | None = None, note: str = "") -> int | Refused:
        """Take the schedule: a new ``running`` row's id, or ``Refused`` (recorded as skipped) when a run of the
        same schedule or spider is still going in any process."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {trigger!r}")
        now = utcnow()
        stopping = self._stopping
        refused: Refused | None = None
        with self.store.session() as s:
            _serialize(s)
            reaped = reap_stale(s, self.settings, now)
            blocking = s.scalars(select(ScheduleRun).where(
                ScheduleRun.status == "running",
                or_(ScheduleRun.schedule_id == args.schedule_id, ScheduleRun.spider == args.spider)).order_by(ScheduleRun.id)).first()
            row = ScheduleRun(run_key=str(uuid.uuid4()), schedule_id=args.schedule_id, spider=args.spider, trigger=trigger,
                              scheduled_for=naive_utc(scheduled_for) if scheduled_for else None, started_at=now,
                              pid=os.getpid(), host=HOST, args=args.to_json())
            if stopping:
                row.status, row.finished_at = "skipped", now
                row.message = join_message(note, f"not started: {stopping}")
            elif blocking is not None:
                why = (f"not started: run #{blocking.id} of {blocking.schedule_id} (spider {blocking.spider}, {blocking.trigger}) "
                       f"is still running since {bj(blocking.started_at)} Beijing time (pid {blocking.pid} on {blocking.host})")
                row.status, row.finished_at, row.message = "skipped", now, join_message(note, why)
            else:
                row.status, row.message = "running", join_message(note)
            s.add(row)
            s.flush()
            run_id = row.id
            if row.status == "skipped":
                refused = Refused(run_id, blocking.id if blocking is not None else 0, row.message or "")
        for rid in reaped:
            self._finished(rid)
        if refused is not None:
            log.warning("schedule %s: %s", args.schedule_id, refused.message)
            self._finished(run_id)
            return refused
        log.info("schedule %s: run #%s started (%s, spider %s)", args.schedule_id, run_id, trigger, args.spider)
        return run_id

    def record(self, args: RunArgs, *, status: str, trigger: str, scheduled_for: dt.datetime | None, message: str) -> ScheduleRun:
        """A history row for a run that did not start (``missed``, ``skipped``): never a silent skip."""
        now = utcnow()
        with self.store.session() as s:
            row = ScheduleRun(run_key=str(uuid.uuid4()), schedule_id=args.schedule_id, spider=args.spider, trigger=trigger,
                              scheduled_for=naive_utc(scheduled_for) if scheduled_for else None, started_at=now, finished_at=now,
                              status=status, pid=os.getpid(), host=HOST, args=args.to_json(), message=join_message(message))
            s.add(row)
            s.flush()
            run_id = row.id
        log.warning("schedule %s: %s — %s", args.schedule_id, status, message)
        return self._finished(run_id)

    def busy_message(self, args: RunArgs) -> str:
        """Why a start is refused right now (for the in-process max_instances skip)."""
        with self.store.session() as s:
            blocking = s.scalars(select(ScheduleRun).where(ScheduleRun.status == "running", ScheduleRun.schedule_id == args.schedule_id)
                                 .order_by(ScheduleRun.id)).first()
        if blocking is None:
            return "not started: the previous run of this schedule in this scheduler is still going"
        return (f"not started: run #{blocking.id} of {blocking.schedule_id} is still running since {bj(blocking.started_at)} "
                f"Beijing time (pid {blocking.pid} on {blocking.host})")

    def reap(self) -> list[int]:
        """Mark the running rows of processes that are gone as interrupted (see the module doc)."""
        with self.store.session() as s:
            _serialize(s)
            reaped = reap_stale(s, self.settings)
        for rid in reaped:
            self._finished(rid)
        return reaped

    def run(self, args: RunArgs, *, trigger: str, scheduled_for: dt.datetime | None = None, note: str = "") -> ScheduleRun:
        """``begin`` then ``execute``: the finished history row (the skipped one when refused)."""
        got = self.begin(args, trigger=trigger, scheduled_for=scheduled_for, note=note)
        if isinstance(got, Refused):
            return self.get(got.run_id)
        return self.execute(got)

    # -- running
    def execute(self, run_id: int) -> ScheduleRun:
        """Run the crawl of a begun run in a child process, within its time limit; the finished row."""
        with self._lock:
            self._busy += 1
        try:
            with log_context(self.get(run_id).run_key):
                return self._execute(run_id)
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def _execute(self, run_id: int) -> ScheduleRun:
        row = self.get(run_id)
        args = RunArgs.of(row.schedule_id, row.args, row.spider)
        note = row.message
        why = self.unready(args)
        if why is not None:
            return self._finish(run_id, "failed", join_message(note, f"not run: {why}"), crawl_ids=[])
        limit_min = args.limit_minutes(self.settings)
        with self.store.session() as s:
            before = int(s.scalar(select(func.max(CrawlRun.id))) or 0)
        config: Path | None = None
        proc: subprocess.Popen[str] | None = None
        status: str | None = None
        stdout = ""
        failure: str | None = None
        try:
            config = settings_file(self.settings, self.run_dir, spider=args.spider, max_items=args.max_items)
            command = [sys.executable, "-m", "scheduler.child", "--config", str(config), "--parent-pid", str(os.getpid()), args.spider]
            for url in args.start_urls:
                command += ["--start-url", url]
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
            env |= {"PYTHONUNBUFFERED": "1", "PIYAO_RUN_ID": row.run_key}
            with open(self.log_path(row.run_key), "w", encoding="utf-8") as err:
                proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=err, text=True, start_new_session=True)
            with self._lock:
                self._active[run_id] = _Active(proc, self._stopping)
            if self._stopping:
                self._stop_group(proc)
            self._set_message(run_id, join_message(note, f"crawl process {proc.pid}"))
            try:
                stdout, _ = proc.communicate(timeout=limit_min * 60)
            except subprocess.TimeoutExpired:
                status = "timeout"
                log.warning("schedule %s: run #%s passed its time limit (%g min): stopping crawl process %s",
                            args.schedule_id, run_id, limit_min, proc.pid)
                self._stop_group(proc)
                stdout, _ = proc.communicate()
        except Exception as exc:  # noqa: BLE001 - a run that cannot start is recorded, never lost
            log.exception("schedule %s: run #%s could not run", args.schedule_id, run_id)
            failure = f"could not run the crawl: {exc.__class__.__name__}: {exc}"
            if proc is not None and proc.poll() is None:
                self._stop_group(proc)
        except BaseException:  # Ctrl-C or SystemExit in a foreground run: stop the crawl, record, re-raise
            if proc is not None and proc.poll() is None:
                self._stop_group(proc)
            self._finish(run_id, "interrupted", join_message(note, "interrupted: the command running it was stopped"),
                         crawl_ids=self._crawl_ids(args.spider, before, None))
            raise
        finally:
            with self._lock:
                active = self._active.pop(run_id, None)
            if config is not None:
                config.unlink(missing_ok=True)
        summary = child_summary(stdout or "")
        crawl_ids = self._crawl_ids(args.spider, before, summary)
        tail = self._log_tail(row.run_key)
        if failure is not None:
            return self._finish(run_id, "failed", join_message(note, failure), crawl_ids=crawl_ids)
        if active is not None and active.stop_reason:
            return self._finish(run_id, "interrupted", join_message(note, f"interrupted: {active.stop_reason}"), crawl_ids=crawl_ids)
        if status == "timeout":
            return self._finish(run_id, "timeout", join_message(note, f"timeout: stopped after its time limit of {limit_min:g} min "
                                                                      f"(crawl process group {proc.pid if proc else '?'} killed)"),
                                crawl_ids=crawl_ids)
        rc = proc.returncode if proc is not None else None
        crawl = ((summary or {}).get("crawl") or [None])[0] if summary else None
        error = (summary or {}).get("error")
        if rc == 0 and summary and not error and isinstance(crawl, dict) and crawl.get("status") == "finished":
            figures = ", ".join(f"{k} {summary.get(k, 0)}" for k in ("indexed", "classified", "flagged", "matched", "queued"))
            return self._finish(run_id, "finished", join_message(note, figures), crawl_ids=crawl_ids)
        if error:
            why = f"failed: {error}"
        elif isinstance(crawl, dict) and crawl.get("status") == "skipped":
            why = f"failed: the spider did not run ({crawl.get('reason')})"
        elif isinstance(crawl, dict) and crawl.get("status") == "failed":
            why = f"failed: the crawl ended with {crawl.get('reason')}"
        else:
            why = f"failed: the crawl process exited with status {rc}" + (f": {tail}" if tail else "")
        return self._finish(run_id, "failed", join_message(note, why), crawl_ids=crawl_ids)

    def _stop_group(self, proc: subprocess.Popen[str]) -> None:
        """SIGTERM the child's process group, then SIGKILL it after the grace period."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace_s), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # a grandchild that ignored SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _crawl_ids(self, spider: str, before: int, summary: dict[str, Any] | None) -> list[int]:
        ids = [int(c["crawl_run_id"]) for c in (summary or {}).get("crawl") or [] if isinstance(c, dict) and c.get("crawl_run_id")]
        if ids:
            return ids
        with self.store.session() as s:  # the child died before it could say: the rows its crawl opened
            return list(s.scalars(select(CrawlRun.id).where(CrawlRun.spider == spider, CrawlRun.id > before,
                                                            CrawlRun.schedule_run_id.is_(None)).order_by(CrawlRun.id)))

    def _log_tail(self, run_key: str) -> str:
        try:
            data = self.log_path(run_key).read_bytes()[-OUTPUT_TAIL_CHARS * 4:]
        except OSError:
            return ""
        lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        return " | ".join(lines[-5:])[-OUTPUT_TAIL_CHARS:]

    def _set_message(self, run_id: int, message: str | None) -> None:
        with self.store.session() as s:
            row = s.get(ScheduleRun, run_id)
            if row is not None and row.status == "running":
                row.message = message

    def _finish(self, run_id: int, status: str, message: str | None, *, crawl_ids: list[int]) -> ScheduleRun:
        """Close the history row with the figures of the crawl runs it made."""
        now = utcnow()
        with self.store.session() as s:
            row = s.get(ScheduleRun, run_id)
            assert row is not None
            pages = items = errors = new_claims = new_debunks = flagged = 0
            kinds: dict[str, int] = {}
            crawls = list(s.scalars(select(CrawlRun).where(CrawlRun.id.in_(crawl_ids)))) if crawl_ids else []
            for c in crawls:
                c.schedule_run_id = run_id
                if c.status == "running":  # its process was stopped before it could record its end
                    c.status, c.finished_at = "interrupted", now
                c.flagged = int(s.scalar(select(func.count()).select_from(Claim).where(
                    Claim.crawl_run_id == c.id, Claim.flagged.is_(True))) or 0)
                pages += c.pages or 0
                items += c.items or 0
                errors += c.errors or 0
                new_claims += c.new_claims or 0
                new_debunks += c.new_debunks or 0
                flagged += c.flagged
                for k, v in errors_by_kind(c.stats).items():
                    kinds[k] = kinds.get(k, 0) + v
            row.status, row.finished_at, row.message = status, now, message
            row.pages, row.items, row.errors, row.errors_by_kind = pages, items, errors, dict(sorted(kinds.items()))
            row.new_claims, row.new_debunks, row.flagged = new_claims, new_debunks, flagged
        log.info("schedule %s: run #%s %s (pages %s, items %s, errors %s, new claims %s, flagged %s)",
                 row.schedule_id, run_id, status, pages, items, errors, new_claims, flagged)
        return self._finished(run_id)

    def _finished(self, run_id: int) -> ScheduleRun:
        """After a row is final: the alert checks, then the listeners."""
        check_run_alerts(self.store, self.settings, run_id)
        row = self.get(run_id)
        for listener in list(self.listeners):
            try:
                listener(row)
            except Exception:  # noqa: BLE001 - a broken listener must not lose the run
                log.exception("schedule run listener failed")
        return row

    # -- stopping
    def stop_all(self, reason: str, *, wait: float | None = 60.0) -> None:
        """Refuse new starts, stop the running crawls (recorded ``interrupted`` with ``reason``), wait for them."""
        with self._lock:
            self._stopping = reason
            active = list(self._active.values())
            for a in active:
                a.stop_reason = reason
        for a in active:
            if a.proc.poll() is None:
                threading.Thread(target=self._stop_group, args=(a.proc,), daemon=True).start()
        self.wait_idle(wait)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no ``execute`` is in progress in this runner; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._busy == 0, timeout)

    def active_runs(self) -> list[int]:
        with self._lock:
            return list(self._active)

    # -- reading
    def get(self, run_id: int) -> ScheduleRun:
        with self.store.session() as s:
            row = s.get(ScheduleRun, run_id)
            assert row is not None, run_id
            s.expunge(row)
            return row


def check_run_alerts(store: Store, settings: Settings, run_id: int) -> None:
    """ops.alerts.check_run for a finished row, when that module is installed (it is optional)."""
    try:
        from ops.alerts import check_run
    except ImportError as exc:
        log.info("no alert check after schedule run #%s: ops.alerts is not available (%s)", run_id, exc)
        return
    try:
        check_run(store, settings, run_id)
    except Exception:  # noqa: BLE001 - an alert failure must not lose the run's record
        log.exception("alert check after schedule run #%s failed", run_id)


def check_surge_alerts(store: Store, settings: Settings) -> None:
    """ops.alerts.check_surges, when that module is installed."""
    try:
        from ops.alerts import check_surges
    except ImportError as exc:
        log.debug("no surge check: ops.alerts is not available (%s)", exc)
        return
    try:
        check_surges(store, settings)
    except Exception:  # noqa: BLE001 - the scheduler keeps running
        log.exception("surge check failed")


# --------------------------------------------------------------------------- history
def history(store: Store, schedule_id: str | None = None, *, limit: int = 20, offset: int = 0) -> list[ScheduleRun]:
    """Schedule runs, newest first (one schedule's when ``schedule_id`` is given)."""
    q = select(ScheduleRun).order_by(ScheduleRun.started_at.desc(), ScheduleRun.id.desc()).limit(limit).offset(offset)
    if schedule_id:
        q = q.where(ScheduleRun.schedule_id == schedule_id)
    with store.session() as s:
        rows = list(s.scalars(q))
        s.expunge_all()
        return rows


def count_history(store: Store, schedule_id: str | None = None) -> int:
    q = select(func.count()).select_from(ScheduleRun)
    if schedule_id:
        q = q.where(ScheduleRun.schedule_id == schedule_id)
    with store.session() as s:
        return int(s.scalar(q) or 0)


def last_runs(store: Store) -> dict[str, ScheduleRun]:
    """Each schedule's latest run."""
    newest = select(ScheduleRun.schedule_id, func.max(ScheduleRun.id).label("id")).group_by(ScheduleRun.schedule_id).subquery()
    with store.session() as s:
        rows = {r.schedule_id: r for r in s.scalars(select(ScheduleRun).join(newest, newest.c.id == ScheduleRun.id))}
        s.expunge_all()
        return rows


def running_runs(store: Store) -> list[ScheduleRun]:
    with store.session() as s:
        rows = list(s.scalars(select(ScheduleRun).where(ScheduleRun.status == "running").order_by(ScheduleRun.id)))
        s.expunge_all()
        return rows


def run_json(r: ScheduleRun) -> dict[str, Any]:
    """A history row as JSON (times in UTC ISO 8601 and in Beijing time)."""
    def iso(v: dt.datetime | None) -> str | None:
        return v.replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds") if v else None

    duration = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
    return {"id": r.id, "run_key": r.run_key, "schedule_id": r.schedule_id, "spider": r.spider, "trigger": r.trigger,
            "status": r.status, "scheduled_for": iso(r.scheduled_for), "started": iso(r.started_at), "finished": iso(r.finished_at),
            "started_beijing": bj(r.started_at), "duration_s": round(duration, 1) if duration is not None else None,
            "pages": r.pages, "items": r.items, "errors": r.errors, "errors_by_kind": r.errors_by_kind or {},
            "new_claims": r.new_claims, "new_debunks": r.new_debunks, "flagged": r.flagged, "pid": r.pid, "host": r.host,
            "args": r.args, "message": r.message}


def run_line(r: ScheduleRun) -> str:
    """One line per run, for the CLI."""
    duration = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
    kinds = ", ".join(f"{k} {v}" for k, v in (r.errors_by_kind or {}).items())
    parts = [f"#{r.id} {r.schedule_id} ({r.spider})", r.trigger, r.status,
             f"started {bj(r.started_at)}", "—" if duration is None else f"{duration:.1f}s"]
    if r.scheduled_for:
        parts.insert(2, f"due {bj(r.scheduled_for)}")
    if r.status not in ("missed", "skipped"):
        parts.append(f"pages {r.pages} items {r.items} errors {r.errors}" + (f" ({kinds})" if kinds else "")
                     + f" new claims {r.new_claims} new debunks {r.new_debunks} flagged {r.flagged}")
    if r.message:
        parts.append(r.message.replace("\n", " "))
    return "  ".join(parts)
