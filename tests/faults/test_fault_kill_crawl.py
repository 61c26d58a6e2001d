"""kill -9 of a crawl, and of the scheduler running one: after recovery the store and the index agree.

tests/crawlers/test_resume.py proves a crawl killed with SIGKILL resumes without refetching or duplicating
items, and tests/scheduler/test_scheduler_never_skip.py that a run whose scheduler was killed is marked
interrupted, not lost. These tests add what neither checks: the index. Right after the kill, `piyao check`
finds every stored item either indexed or pending in the outbox (never a difference), and after the crawl
resumes or `piyao index` runs, the two agree with nothing pending.

The crawl reads a synthetic piyao.org.cn mirror on loopback (30 articles, each answered after a delay, so
that the kill lands mid-crawl).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import time_machine
from sqlalchemy import func, select

from store.db import Store
from store.models import Debunk, ScheduleRun
from tests.faults.tools import PIYAO, ROOT, assert_agree, check, env_for, integrity_ok, piyao

N_ARTICLES = 30
KILL_AFTER = 6  # debunks stored
DELAY_S = 0.15
PAGE = ("<html><head><title>{title}</title></head><body><div class='con_tit'><h2>{title}</h2>"
        "<p><span>来源：测试来源 时间：2025-08-{day:02d} 10:00:00</span></p></div>"
        "<div class='con_txt'>{body}</div></body></html>")
TOPICS = ["隔夜菜", "味精", "微波炉", "转基因", "手机辐射", "碘盐", "隔夜茶", "保温杯", "酸碱体质", "量子水"]


class _Slow(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.endswith("/c.html"):
            time.sleep(DELAY_S)
        super().do_GET()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A crawl killed mid-download breaks its connections: expected here, not worth a traceback."""


@pytest.fixture
def slow_site(tmp_path: Path) -> Iterator[str]:
    """The mirror's list page URL: two list pages over N_ARTICLES article pages of piyao.org.cn's shape."""
    root = tmp_path / "site"
    paths = [f"/202508{1 + i % 28:02d}/{i:032x}/c.html" for i in range(N_ARTICLES)]
    for i, path in enumerate(paths):
        topic = TOPICS[i % len(TOPICS)]
        body = "".join(f"<p>关于{topic}的第{i}篇辟谣，第{k}段：网传说法缺乏科学依据，专家提醒不要轻信，理性看待{topic}。</p>" for k in range(4))
        page = root / path.lstrip("/")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(PAGE.format(title=f"第{i + 1}号辟谣：{topic}的真相", body=body, day=1 + i % 28), "utf-8")
    half = N_ARTICLES // 2
    for name, chunk, nxt in (("ld.htm", paths[:half], "ld_2.htm"), ("ld_2.htm", paths[half:], None)):
        items = "".join(f"<li><h2><a href='{p}'>文章</a></h2></li>" for p in chunk)
        more = f"<a href='{nxt}'>下一页</a>" if nxt else ""
        (root / name).write_text(f"<html><body><ul id='list'>{items}</ul>{more}</body></html>", "utf-8")
    (root / "robots.txt").write_text("User-agent: *\nDisallow:\n", "utf-8")
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(_Slow, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ld.htm"
    httpd.shutdown()
    httpd.server_close()


def _crawl_env(data: Path, db_url: str) -> dict[str, str]:
    return env_for(data, PIYAO_STORE__URL=db_url, PIYAO_CRAWL__DOWNLOAD_DELAY="0.01", PIYAO_CRAWL__AUTOTHROTTLE="false",
                   PIYAO_CRAWL__RETRY_TIMES="0", PIYAO_CRAWL__PERSIST_JOBS="true", PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN="2")


def _debunks(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Debunk)) or 0)


def _wait(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert proc is None or proc.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _after_kill(env: dict[str, str], db_url: str, data: Path) -> dict[str, Any]:
    """Right after a kill: the store is sound and `piyao check` sees no difference, only pending writes."""
    if db_url.startswith("sqlite"):
        integrity_ok(data / "piyao.db")
    rc, report = check(env)
    assert rc == 0 and report["agree"], report
    return report


def test_kill_9_of_a_crawl_then_check_agrees(tmp_path: Path, db_url: str, store: Store, slow_site: str) -> None:
    data = tmp_path / "data"
    env = _crawl_env(data, db_url)
    cmd = [*PIYAO, "crawl", "piyao_org_cn", "--start-url", slow_site]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait(lambda: _debunks(store) >= KILL_AFTER, 120, f"{KILL_AFTER} stored debunks", proc)
        os.kill(proc.pid, signal.SIGKILL)  # kill -9: the crawl command indexes only after crawling, never here
        proc.wait(10)
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    stored = _debunks(store)
    assert KILL_AFTER <= stored < N_ARTICLES
    report = _after_kill(env, db_url, data)
    assert report["pending"] >= stored and report["store"]["debunk"]["count"] == stored

    # The crawl again: it resumes, stores the rest once, indexes everything; the check agrees.
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _debunks(store) == N_ARTICLES
    rc, report = check(env)
    assert rc == 0 and report["agree"] and report["pending"] == 0 and report["store"] == report["index"], report


def test_kill_9_of_the_scheduler_mid_run_then_check_agrees(tmp_path: Path, db_url: str, store: Store, slow_site: str) -> None:
    from scheduler import ScheduleBook
    from settings import load_settings

    data = tmp_path / "data"
    env = _crawl_env(data, db_url)
    settings = load_settings(data_dir=data, environ=env)
    book = ScheduleBook(settings, store)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10), tick=True):
        book.add("every_minute", spider="piyao_org_cn", cron="* * * * *", start_urls=[slow_site])  # due at start: a catch-up run
    proc = subprocess.Popen([*PIYAO, "scheduler"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _wait(lambda: _debunks(store) >= KILL_AFTER, 120, f"{KILL_AFTER} debunks stored by the scheduled crawl", proc)
        os.kill(proc.pid, signal.SIGKILL)  # its crawl child dies with it (PR_SET_PDEATHSIG)
        proc.wait(10)
    finally:
        _kill_group(proc)
    with store.session() as s:
        running = s.scalars(select(ScheduleRun).where(ScheduleRun.status == "running")).all()
        assert len(running) == 1  # nobody could close it (a later minute's start was refused: recorded skipped)
        run = running[0]
    time.sleep(0.5)
    stored = _debunks(store)
    assert KILL_AFTER <= stored < N_ARTICLES
    report = _after_kill(env, db_url, data)
    assert report["store"]["debunk"]["count"] == stored

    # Recovery: the next scheduler start marks the run interrupted (paused first: it must not crawl again);
    # `piyao index` writes the pending items, and the check agrees.
    book.pause("every_minute")
    again = subprocess.Popen([*PIYAO, "scheduler"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        def interrupted() -> bool:
            with store.session() as s:
                return s.get(ScheduleRun, run.id).status == "interrupted"  # type: ignore[union-attr]

        _wait(interrupted, 60, "the killed run to be marked interrupted", again)
    finally:
        again.send_signal(signal.SIGTERM)
        try:
            again.wait(30)
        finally:
            _kill_group(again)
    assert _debunks(store) == stored
    report = assert_agree(env)
    assert report["index"]["debunk"]["count"] == stored
