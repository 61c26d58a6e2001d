"""The scheduler never skips silently: each case on a real job store (SQLite file, PostgreSQL) with a controlled clock.

Real crawls (child processes) run only where the case needs one: the catch-up run crawls the
piyao.org.cn mirror; the timeout, lock and kill -9 cases crawl a loopback port that never answers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import time_machine
from sqlalchemy import select

from scheduler import Refused, RunArgs, Runner, ScheduleBook
from scheduler.runs import HOST, pid_alive
from settings import load_settings
from store.db import Store
from store.models import CrawlRun, Debunk, ScheduleRun
from tests.scheduler.helpers import ARTICLES, BEIJING, env_for, kill_group, piyao_process, rows, wait_for

UTC = dt.timezone.utc


def naive_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


def test_job_arguments_survive_a_restart_and_config_seeds_only_absent_jobs(tmp_path: Path, db_url: str, store: Store,
                                                                          make_scheduler: Callable[..., Any]) -> None:
    declared = ('{"nightly": {"spider": "piyao_org_cn", "cron": "30 3 * * *", "enabled": false, '
                '"start_urls": ["http://127.0.0.1:9/ld.htm"], "max_items": 7, "time_limit_minutes": 45}}')
    first_settings = load_settings(data_dir=tmp_path / "data", environ=env_for(db_url, PIYAO_SCHEDULER__SCHEDULES=declared))
    with time_machine.travel(dt.datetime(2026, 6, 10, 12, 0, tzinfo=BEIJING), tick=True):
        first = make_scheduler(settings=first_settings)
        first.start()
        nightly = first.aps.get_job("nightly")
        assert nightly.next_run_time is None  # enabled: false → added paused
        assert nightly.kwargs == {"schedule_id": "nightly", "spider": "piyao_org_cn", "cron": "30 3 * * *",
                                  "start_urls": ["http://127.0.0.1:9/ld.htm"], "max_items": 7, "time_limit_minutes": 45.0}
        assert (nightly.coalesce, nightly.max_instances, nightly.misfire_grace_time) == (True, 1, 12 * 3600)
        # Weekday numbers are crontab's (1-5: Monday to Friday), not APScheduler 3's (0 = Monday).
        first.book.add("weekdays", spider="kepuchina", cron="15 4 * * 1-5", start_urls=["https://example.org/a"], max_items=3,
                       time_limit_minutes=20)
        first.book.resume("nightly")  # an edit after the first start: the job store holds it from now on
        before = {j.id: (j.kwargs, j.next_run_time, str(j.trigger)) for j in first.aps.get_jobs(jobstore="default")}
        first.shutdown()

    assert before["nightly"][1] == dt.datetime(2026, 6, 11, 3, 30, tzinfo=BEIJING)
    assert before["weekdays"][1] == dt.datetime(2026, 6, 11, 4, 15, tzinfo=BEIJING)  # a Thursday
    # config.yaml now says something else about "nightly": the job store wins, the declaration is not read again.
    changed = declared.replace('"30 3 * * *"', '"0 5 * * *"').replace('"max_items": 7', '"max_items": 1')
    second_settings = load_settings(data_dir=tmp_path / "data", environ=env_for(db_url, PIYAO_SCHEDULER__SCHEDULES=changed))
    with time_machine.travel(dt.datetime(2026, 6, 10, 12, 5, tzinfo=BEIJING), tick=True):
        second = make_scheduler(settings=second_settings)
        second.start()
        after = {j.id: (j.kwargs, j.next_run_time, str(j.trigger)) for j in second.aps.get_jobs(jobstore="default")}
        second.shutdown()
    assert after == before
    with time_machine.travel(dt.datetime(2026, 6, 12, 12, 0, tzinfo=BEIJING), tick=True):  # a Friday
        book = ScheduleBook(second_settings, store)
        book.pause("weekdays")
        assert book.resume("weekdays").next_run == dt.datetime(2026, 6, 15, 4, 15, tzinfo=BEIJING)  # Monday, not Saturday
    assert rows(store) == []  # nothing was due: no run, no history


def test_missed_runs_coalesce_into_one_catch_up_run(store: Store, settings: Any, mirror: str, make_scheduler: Callable[..., Any]) -> None:
    """Down from Jan 10 01:00 to Jan 12 09:00: three 02:00 runs were missed; they run once, as a catch-up."""
    with time_machine.travel(dt.datetime(2026, 1, 10, 1, 0, tzinfo=BEIJING), tick=True):
        ScheduleBook(settings, store).add("nightly", spider="piyao_org_cn", cron="0 2 * * *", start_urls=[mirror])
    with time_machine.travel(dt.datetime(2026, 1, 12, 9, 0, tzinfo=BEIJING), tick=True):
        sched = make_scheduler()
        sched.start()
        done = wait_for(lambda: [r for r in rows(store) if r.status != "running"], 240, "the catch-up run")
        job = sched.aps.get_job("nightly")
        sched.shutdown()
    assert len(rows(store)) == 1
    run = done[0]
    assert (run.trigger, run.status) == ("catchup", "finished"), run.message
    assert run.scheduled_for == naive_utc(dt.datetime(2026, 1, 12, 2, 0, tzinfo=BEIJING))  # the latest missed time
    assert "3 missed run times coalesced into one (2026-01-10 02:00 … 2026-01-12 02:00" in run.message
    assert job.next_run_time == dt.datetime(2026, 1, 13, 2, 0, tzinfo=BEIJING)
    # The run's figures come from the crawl it made, which points back at it.
    assert (run.new_debunks, run.items) == (ARTICLES, ARTICLES) and run.pages >= ARTICLES
    assert run.errors_by_kind == {"robots_disallowed": 1}  # the mirror's robots.txt forbids one article
    assert run.args == {"spider": "piyao_org_cn", "start_urls": [mirror], "max_items": 0, "time_limit_minutes": 0.0}
    with store.session() as s:
        crawls = list(s.scalars(select(CrawlRun)))
        assert [(c.spider, c.status, c.schedule_run_id, c.flagged) for c in crawls] == [("piyao_org_cn", "finished", run.id, 0)]
        assert s.scalar(select(Debunk.title).where(Debunk.title.like("%太阳能板%"))) is not None
    assert "indexed 5" in run.message  # the child also indexed (and classified, matched, queued) what it found
    log_text = Runner(settings, store).log_path(run.run_key).read_text("utf-8")
    assert run.run_key in log_text  # the crawl's log lines carry the run id
    assert not list((settings.data_path / "crawl" / "runs").glob("*.yaml"))  # no settings file left behind


def test_a_run_found_later_than_the_grace_is_recorded_as_missed(store: Store, settings: Any,
                                                               make_scheduler: Callable[..., Any]) -> None:
    with time_machine.travel(dt.datetime(2026, 1, 10, 1, 0, tzinfo=BEIJING), tick=True):
        ScheduleBook(settings, store).add("nightly", spider="dxy", cron="0 2 * * *", start_urls=["http://127.0.0.1:9/x"])
    # 13 hours after the last missed 02:00: beyond the 12-hour grace.
    with time_machine.travel(dt.datetime(2026, 1, 12, 15, 0, tzinfo=BEIJING), tick=True):
        sched = make_scheduler()
        sched.start()
        missed = wait_for(lambda: rows(store), 30, "the missed row")
        job = sched.aps.get_job("nightly")
        sched.shutdown()
    assert len(missed) == 1
    row = missed[0]
    assert (row.status, row.trigger, row.spider) == ("missed", "catchup", "dxy")
    assert row.scheduled_for == naive_utc(dt.datetime(2026, 1, 12, 2, 0, tzinfo=BEIJING))
    assert "found 13h 00m after its time 2026-01-12 02:00, beyond the misfire grace of 12 h" in row.message
    assert "3 missed run times coalesced" in row.message and "next run 2026-01-13 02:00" in row.message
    assert job.next_run_time == dt.datetime(2026, 1, 13, 2, 0, tzinfo=BEIJING)
    with store.session() as s:
        assert s.scalars(select(CrawlRun)).first() is None  # nothing ran


def test_a_stuck_run_times_out_and_holds_off_every_other_start_meanwhile(tmp_path: Path, db_url: str, store: Store, settings: Any,
                                                                         silent_site: str, make_scheduler: Callable[..., Any]) -> None:
    """`piyao schedules run-now` in another process hangs on a silent site: the scheduler's due run and a second
    run-now are refused (recorded skipped); at its time limit the crawl's process group is killed (timeout)."""
    book = ScheduleBook(settings, store)
    with time_machine.travel(dt.datetime.now(UTC) - dt.timedelta(hours=1), tick=True):
        book.add("stuck", spider="piyao_org_cn", cron="0 * * * *", start_urls=[silent_site], time_limit_minutes=0.25)
    cli = piyao_process(tmp_path / "data", env_for(db_url), "schedules", "run-now", "stuck", "--json")
    try:
        running = wait_for(lambda: [r for r in rows(store) if r.status == "running" and "crawl process" in (r.message or "")],
                           60, "the CLI's running row")[0]
        assert running.pid == cli.pid and running.host == HOST and running.trigger == "manual"
        crawl_pid = int(running.message.rsplit("crawl process ", 1)[1])
        assert pid_alive(crawl_pid)
        # Another start from this process (as the web app's run now would): refused, and said so.
        got = Runner(settings, store).begin(RunArgs("stuck", "piyao_org_cn", (silent_site,)), trigger="manual", note="second try")
        assert isinstance(got, Refused) and got.blocking_id == running.id
        # The scheduler finds the hourly run due (the job was last seen an hour ago): refused too.
        sched = make_scheduler()
        sched.start()
        wait_for(lambda: len(rows(store)) >= 3, 30, "the scheduler's skipped row")
        sched.shutdown()
        out, err = cli.communicate(timeout=90)
    finally:
        if cli.poll() is None:
            kill_group(cli)
    assert cli.returncode == 1, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "timeout" and result["id"] == running.id
    timed_out, manual_skip, scheduled_skip = rows(store)
    assert timed_out.status == "timeout" and "time limit of 0.25 min" in timed_out.message
    assert 14 <= (timed_out.finished_at - timed_out.started_at).total_seconds() < 60
    assert not pid_alive(crawl_pid)  # the crawl's process group was killed
    for skipped in (manual_skip, scheduled_skip):
        assert skipped.status == "skipped" and f"run #{running.id} of stuck" in skipped.message and "still running" in skipped.message
    assert manual_skip.trigger == "manual" and manual_skip.message.startswith("second try; not started")
    assert scheduled_skip.trigger == "catchup" and scheduled_skip.scheduled_for is not None
    with store.session() as s:  # the crawl opened its run before it hung; it is linked and closed
        crawls = list(s.scalars(select(CrawlRun)))
    assert [(c.schedule_run_id, c.status) for c in crawls] in ([], [(running.id, "interrupted")], [(running.id, "failed")])


def test_a_second_instance_in_the_same_scheduler_is_recorded_skipped(store: Store, settings: Any, silent_site: str,
                                                                     make_scheduler: Callable[..., Any]) -> None:
    """max_instances=1: a run still going when the next time comes (clock moved a day on) is not doubled."""
    with time_machine.travel(dt.datetime(2026, 3, 1, 1, 59, 58, tzinfo=BEIJING), tick=True) as clock:
        ScheduleBook(settings, store).add("nightly", spider="piyao_org_cn", cron="0 2 * * *", start_urls=[silent_site])
        sched = make_scheduler(runner=Runner(settings, store, kill_grace_s=3))
        sched.start()
        first = wait_for(lambda: [r for r in rows(store) if r.status == "running"], 60, "the 02:00 run")[0]
        assert first.trigger == "schedule" and first.scheduled_for == naive_utc(dt.datetime(2026, 3, 1, 2, 0, tzinfo=BEIJING))
        clock.move_to(dt.datetime(2026, 3, 2, 2, 0, 5, tzinfo=BEIJING))
        sched.wakeup()
        skipped = wait_for(lambda: [r for r in rows(store) if r.status == "skipped"], 30, "the skipped second instance")[0]
        assert skipped.scheduled_for == naive_utc(dt.datetime(2026, 3, 2, 2, 0, tzinfo=BEIJING))
        assert f"run #{first.id} of nightly is still running" in skipped.message
        sched.shutdown()  # stops the hanging crawl: recorded as interrupted, not lost
    final = {r.id: r for r in rows(store)}[first.id]
    assert final.status == "interrupted" and "the scheduler stopped" in final.message


def test_a_run_whose_scheduler_was_killed_is_marked_interrupted_at_the_next_start(tmp_path: Path, db_url: str, store: Store,
                                                                                  settings: Any, silent_site: str,
                                                                                  make_scheduler: Callable[..., Any]) -> None:
    book = ScheduleBook(settings, store)
    with time_machine.travel(dt.datetime.now(UTC) - dt.timedelta(minutes=10), tick=True):
        book.add("every_minute", spider="piyao_org_cn", cron="* * * * *", start_urls=[silent_site])
    proc = piyao_process(tmp_path / "data", env_for(db_url), "scheduler")
    try:
        running = wait_for(lambda: [r for r in rows(store) if r.status == "running" and "crawl process" in (r.message or "")],
                           60, "the scheduler's catch-up run")[0]
        assert running.pid == proc.pid and running.trigger == "catchup" and "missed run times coalesced" in running.message
        crawl_pid = int(running.message.rsplit("crawl process ", 1)[1])
        os.kill(proc.pid, signal.SIGKILL)  # kill -9: nothing gets to record anything
        proc.wait(10)
        wait_for(lambda: not pid_alive(crawl_pid), 15, "the crawl to die with its scheduler")
    finally:
        kill_group(proc)
    assert {r.id: r.status for r in rows(store)}[running.id] == "running"  # nobody could close it
    book.pause("every_minute")  # edited while no scheduler runs; the next one must not rerun it
    sched = make_scheduler()
    sched.start()
    sched.shutdown()
    after = rows(store)
    assert [(r.id, r.status) for r in after] == [(running.id, "interrupted")]
    assert f"the process that ran it (pid {proc.pid} on {HOST}) is gone" in after[0].message
    # Nothing holds the schedule any more: a new start is accepted.
    got = Runner(settings, store).begin(RunArgs("every_minute", "piyao_org_cn", ("http://127.0.0.1:9/",)), trigger="manual")
    assert isinstance(got, int)


def test_the_lock_is_one_at_a_time_per_schedule_and_per_spider(store: Store, settings: Any) -> None:
    """The database guard, without a crawl: a running row blocks its schedule and its spider, from any process;
    a row of a live process stays, one of a dead process or past its time limit plus the margin is reaped."""
    runner = Runner(settings, store)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with store.session() as s:
            s.add(ScheduleRun(run_key="k-live", schedule_id="a", spider="dxy", trigger="schedule", status="running",
                              pid=other.pid, host=HOST, args={"spider": "dxy"}))
        assert isinstance(runner.begin(RunArgs("a", "dxy"), trigger="manual"), Refused)  # same schedule
        assert isinstance(runner.begin(RunArgs("b", "dxy"), trigger="manual"), Refused)  # same spider, other schedule
        started = runner.begin(RunArgs("c", "guokr"), trigger="manual")
        assert isinstance(started, int)
        assert isinstance(runner.begin(RunArgs("c", "guokr"), trigger="schedule"), Refused)
    finally:
        other.kill()
        other.wait()
    # The holder died: the next start reaps its row and goes ahead.
    second = runner.begin(RunArgs("a", "dxy"), trigger="manual")
    assert isinstance(second, int)
    by_key = {r.run_key: r for r in rows(store)}
    assert by_key["k-live"].status == "interrupted" and f"pid {other.pid}" in by_key["k-live"].message
    # A row from another host is left alone until its time limit and the margin have passed.
    with store.session() as s:
        s.add(ScheduleRun(run_key="k-remote", schedule_id="r", spider="jiaozhen", trigger="schedule", status="running",
                          pid=1, host="elsewhere", args={"spider": "jiaozhen", "time_limit_minutes": 30}))
    assert runner.reap() == []
    with time_machine.travel(dt.datetime.now(UTC) + dt.timedelta(minutes=46), tick=True):
        reaped = runner.reap()
    assert len(reaped) == 1 and {r.run_key: r for r in rows(store)}["k-remote"].status == "interrupted"
    statuses = sorted(r.status for r in rows(store))
    assert statuses == ["interrupted", "interrupted", "running", "running", "skipped", "skipped", "skipped"]
