"""Helpers of the scheduler tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select

from store.db import Store
from store.models import ScheduleRun

REPO = Path(__file__).resolve().parents[2]
ARTICLES = 5  # the mirror's article pages that robots.txt allows (tests/crawlers/test_piyao_org_cn.py)
BEIJING = dt.timezone(dt.timedelta(hours=8))


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    """The settings overrides of these tests: this store, no config.yaml schedules, fast polite-free crawls."""
    env = {"PIYAO_STORE__URL": db_url, "PIYAO_SCHEDULER__SCHEDULES": "{}", "PIYAO_CRAWL__DOWNLOAD_DELAY": "0",
           "PIYAO_CRAWL__AUTOTHROTTLE": "false", "PIYAO_CRAWL__RETRY_TIMES": "0", "PIYAO_CRAWL__DOWNLOAD_TIMEOUT": "600",
           "PIYAO_MATCHING__DENSE": "false", "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789"}
    env.update(extra)
    return env


def rows(store: Store, schedule_id: str | None = None) -> list[ScheduleRun]:
    with store.session() as s:
        q = select(ScheduleRun).order_by(ScheduleRun.id)
        if schedule_id:
            q = q.where(ScheduleRun.schedule_id == schedule_id)
        found = list(s.scalars(q))
        s.expunge_all()
        return found


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` (real time) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def piyao_process(data_dir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``piyao ARGS`` as a separate process (its own process group), output captured."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")} | env | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", "import pipeline; pipeline.main()", "--data-dir", str(data_dir), *args],
                            cwd=REPO, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
