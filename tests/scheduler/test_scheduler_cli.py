"""`piyao scheduler` and `piyao schedules ...`: the real CLI over a real store and job store."""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import time_machine
from click.testing import CliRunner, Result
from sqlalchemy import select

from pipeline import cli
from scheduler import RunArgs, Runner, ScheduleBook
from store.db import Store
from store.models import AuditEvent
from tests.scheduler.helpers import BEIJING, env_for, kill_group, piyao_process, rows, wait_for


def piyao(tmp_path: Path, db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], env=env_for(db_url), catch_exceptions=False)


def test_add_list_pause_resume_remove(tmp_path: Path, db_url: str, store: Store, settings: Any) -> None:
    with time_machine.travel(dt.datetime(2026, 6, 12, 12, 0, tzinfo=BEIJING), tick=True):  # a Friday
        r = piyao(tmp_path, db_url, "schedules", "add", "weekday_dxy", "--spider", "dxy", "--cron", "0 3 * * 1-5",
                  "--start-url", "https://example.org/list", "--max-items", "40", "--time-limit", "90")
        assert r.exit_code == 0, r.output
        assert "added schedule weekday_dxy: spider dxy, cron '0 3 * * 1-5', next run 2026-06-15 03:00 Beijing time" in r.output
        listed = [json.loads(line) for line in piyao(tmp_path, db_url, "schedules", "list", "--json").output.splitlines()]
        assert listed == [{"id": "weekday_dxy", "spider": "dxy", "cron": "0 3 * * 1-5", "paused": False,
                           "next_run": "2026-06-15T03:00:00+08:00", "next_run_beijing": "2026-06-15 03:00",
                           "start_urls": ["https://example.org/list"], "max_items": 40, "time_limit_minutes": 90.0,
                           "misfire_grace_hours": 12.0, "last_run": None}]
        assert "paused schedule weekday_dxy" in piyao(tmp_path, db_url, "schedules", "pause", "weekday_dxy").output
        table = piyao(tmp_path, db_url, "schedules", "list").output
        assert "weekday_dxy" in table and "paused" in table
        assert json.loads(piyao(tmp_path, db_url, "schedules", "list", "--json").output)["next_run"] is None
        r = piyao(tmp_path, db_url, "schedules", "resume", "weekday_dxy")
        assert "resumed schedule weekday_dxy: next run 2026-06-15 03:00 Beijing time" in r.output
        r = piyao(tmp_path, db_url, "schedules", "add", "weekday_dxy", "--spider", "dxy", "--cron", "30 4 * * *", "--replace")
        assert r.exit_code == 0 and "changed schedule weekday_dxy" in r.output and "2026-06-13 04:30" in r.output
    assert ScheduleBook(settings, store).require("weekday_dxy").start_urls == []  # --replace sets every argument
    assert "removed schedule weekday_dxy" in piyao(tmp_path, db_url, "schedules", "remove", "weekday_dxy").output
    assert "no schedules" in piyao(tmp_path, db_url, "schedules", "list").output
    with store.session() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "schedule").order_by(AuditEvent.id)))
    assert actions == ["schedule.added", "schedule.paused", "schedule.resumed", "schedule.changed", "schedule.removed"]


def test_bad_input_is_one_clear_line(tmp_path: Path, db_url: str, store: Store) -> None:
    cases = {
        ("add", "x", "--spider", "nope", "--cron", "0 2 * * *"): "unknown spider 'nope' (known: claim_feed, dxy,",
        ("add", "x", "--spider", "dxy", "--cron", "0 2 * *"): "5 fields are needed (minute hour day month weekday), got 4",
        ("add", "x", "--spider", "dxy", "--cron", "0 25 * * *"): "invalid cron expression '0 25 * * *'",
        ("add", "x", "--spider", "dxy", "--cron", "0 2 * * 9"): "invalid weekday '9'",
        ("add", "bad id!", "--spider", "dxy", "--cron", "0 2 * * *"): "invalid schedule id 'bad id!'",
        ("add", "guokr", "--spider", "dxy", "--cron", "0 2 * * *"): "schedule id 'guokr' is the name of another spider",
        ("add", "x", "--spider", "dxy", "--cron", "0 2 * * *", "--start-url", "ftp://a/b"): "invalid start URL 'ftp://a/b'",
        ("pause", "missing"): "no schedule 'missing'",
        ("resume", "missing"): "no schedule 'missing'",
        ("remove", "missing"): "no schedule 'missing'",
        ("run-now", "missing"): "no schedule 'missing'",
    }
    for args, message in cases.items():
        r = piyao(tmp_path, db_url, "schedules", *args)
        assert r.exit_code == 2, (args, r.output)
        lines = [ln for ln in r.output.splitlines() if ln.startswith("piyao: error:")]
        assert len(lines) == 1 and message in lines[0], (args, r.output)
    assert piyao(tmp_path, db_url, "schedules", "add", "x", "--spider", "dxy", "--cron", "0 2 * * *").exit_code == 0
    r = piyao(tmp_path, db_url, "schedules", "add", "x", "--spider", "dxy", "--cron", "0 2 * * *")
    assert r.exit_code == 2 and "schedule 'x' exists already (change it with --replace)" in r.output
    assert rows(store) == []


def test_config_schedules_are_seeded_and_a_declared_one_cannot_be_removed(tmp_path: Path, db_url: str) -> None:
    declared = '{"nightly": {"spider": "piyao_org_cn", "cron": "0 2 * * *"}}'
    r = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "schedules", "remove", "nightly"],
                           env=env_for(db_url, PIYAO_SCHEDULER__SCHEDULES=declared))
    assert r.exit_code == 2 and "is declared in the configuration (scheduler.schedules.nightly)" in r.output


def test_run_now_uses_the_same_lock_and_history(tmp_path: Path, db_url: str, store: Store, settings: Any) -> None:
    ScheduleBook(settings, store).add("feed", spider="claim_feed", cron="0 2 * * *")
    # claim_feed has no start URL (neither configured nor in the job's arguments): recorded as failed, exit 1.
    r = piyao(tmp_path, db_url, "schedules", "run-now", "feed")
    assert r.exit_code == 1 and "manual  failed" in r.output and "no start URL" in r.output
    # While another run of the schedule holds the lock, run-now is refused and recorded as skipped.
    held = Runner(settings, store).begin(RunArgs("feed", "claim_feed"), trigger="schedule")
    assert isinstance(held, int)
    r = piyao(tmp_path, db_url, "schedules", "run-now", "feed", "--json")
    assert r.exit_code == 1
    skipped = json.loads(r.output.strip().splitlines()[-1])
    assert skipped["status"] == "skipped" and f"run #{held} of feed" in skipped["message"]
    history = [json.loads(line) for line in piyao(tmp_path, db_url, "schedules", "history", "feed", "--json").output.splitlines()]
    assert [(h["trigger"], h["status"]) for h in history] == [("manual", "skipped"), ("schedule", "running"), ("manual", "failed")]
    text = piyao(tmp_path, db_url, "schedules", "history", "--limit", "1").output
    assert text.startswith(f"#{skipped['id']} feed (claim_feed)  manual  skipped") and "still running" in text
    assert "no schedule runs of other" in piyao(tmp_path, db_url, "schedules", "history", "other").output


def test_the_foreground_scheduler_prints_each_run_and_stops_on_sigterm(tmp_path: Path, db_url: str, store: Store,
                                                                       settings: Any) -> None:
    """A daily run 13 hours late is recorded (and printed) as missed; SIGTERM stops the scheduler cleanly."""
    now = dt.datetime.now(BEIJING)
    due = now - dt.timedelta(hours=13)
    with time_machine.travel(now - dt.timedelta(hours=14), tick=True):
        ScheduleBook(settings, store).add("daily", spider="dxy", cron=f"{due.minute} {due.hour} * * *",
                                          start_urls=["http://127.0.0.1:9/"])
    proc = piyao_process(tmp_path / "data", env_for(db_url), "scheduler")
    try:
        missed = wait_for(lambda: [r for r in rows(store) if r.status == "missed"], 60, "the missed row")[0]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "piyao: scheduler running: 1 schedule(s), 1 active, time zone Asia/Shanghai" in err
    assert "piyao: scheduler stopped" in err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"#{missed.id} daily (dxy)  catchup  due ") and "  missed  " in lines[0]
