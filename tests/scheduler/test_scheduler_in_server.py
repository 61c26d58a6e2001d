"""scheduler.in_server: `piyao serve` hosts the scheduler (start_in_app / stop_in_app in the app's lifespan)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import time_machine
from fastapi.testclient import TestClient

from review.accounts import create_user
from scheduler import ScheduleBook
from settings import load_settings
from store.db import Store
from tests.scheduler.helpers import BEIJING, env_for, rows, wait_for


def csrf_of_page(client: TestClient, path: str = "/schedules") -> str:
    return client.get(path).text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_the_web_server_hosts_the_scheduler_when_asked(tmp_path: Path, db_url: str, store: Store) -> None:
    from review.web import create_app

    settings = load_settings(data_dir=tmp_path / "data", environ=env_for(
        db_url, PIYAO_SCHEDULER__IN_SERVER="true", PIYAO_WEB__WEBHOOK_INTERVAL="0"))
    now = dt.datetime.now(BEIJING)
    due = now - dt.timedelta(hours=13)
    with time_machine.travel(now - dt.timedelta(hours=14), tick=True):
        ScheduleBook(settings, store).add("daily", spider="dxy", cron=f"{due.minute} {due.hour} * * *",
                                          start_urls=["http://127.0.0.1:9/"])
    create_user(store, "ed", "correct horse battery", "editor")
    app = create_app(settings, store=store)
    try:
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
            sched = app.state.scheduler
            assert sched is not None and sched.running
            # The hosted scheduler handles the job store: the run 13 hours late is recorded as missed.
            missed = wait_for(lambda: [r for r in rows(store) if r.status == "missed"], 30, "the missed row")[0]
            assert missed.schedule_id == "daily"
            csrf = csrf_of_page(client, "/login")
            r = client.post("/login", data={"username": "ed", "password": "correct horse battery", "csrf_token": csrf, "next": "/schedules"})
            assert r.status_code == 303
            page = client.get("/schedules").text
            assert "调度器运行在本服务中" in page and 'id="srun-%d"' % missed.id in page
            # "Run now" from the page goes through the hosted scheduler's runner (stopped with it).
            r = client.post("/schedules/daily/run", data={"csrf_token": csrf_of_page(client)})
            assert r.headers["location"] == "/schedules/daily?run=started"
            assert app.state.crawl_jobs.runner is sched.runner
            done = wait_for(lambda: [x for x in rows(store) if x.trigger == "manual" and x.status != "running"], 120, "the manual run")[0]
            assert done.message.startswith("run now by ed (web)")
            # Nothing listens on port 9: the crawl ends normally, with its failed requests counted by kind.
            assert (done.status, done.items, done.errors_by_kind) == ("finished", 0, {"connection_refused": 2}), done.message
        assert not sched.running  # stopped with the server
    finally:
        app.state.heavy.close()
