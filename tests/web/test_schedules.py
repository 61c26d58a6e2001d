"""The schedules page: schedules with next and last run, pause/resume, the run history, every spider with its
crawl runs, and "run now": a real crawl of the loopback piyao.org.cn mirror (the crawler tests' fixture site),
started from the web app through the scheduler's lock, recorded in schedule_runs and crawl_runs, searchable afterwards."""

from __future__ import annotations

import datetime as dt
import functools
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from review.crawl_jobs import all_spiders
from scheduler import ScheduleBook
from scheduler.runs import HOST
from store.db import Store
from store.models import AuditEvent, CrawlRun, Debunk, ScheduleRun, utcnow
from settings import load_settings

Login = Callable[[str], tuple[TestClient, str]]
SITE = Path(__file__).resolve().parents[1] / "fixtures" / "sites" / "piyao_org_cn"
ARTICLES = 5  # the mirror's article pages that robots.txt allows (tests/crawlers/test_piyao_org_cn.py)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """A private copy of the piyao.org.cn fixture site served on a free loopback port."""
    root = tmp_path / "site"
    shutil.copytree(SITE, root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, mirror: str) -> Any:
    """The web settings with piyao_org_cn pointed at the mirror, crawling without delays or retries."""
    return load_settings(data_dir=tmp_path / "data", environ={
        "PIYAO_STORE__URL": db_url, "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789",
        "PIYAO_CRAWL__SPIDERS__PIYAO_ORG_CN__START_URLS": f"['{mirror}/ld.htm']",
        "PIYAO_CRAWL__DOWNLOAD_DELAY": "0", "PIYAO_CRAWL__AUTOTHROTTLE": "false", "PIYAO_CRAWL__RETRY_TIMES": "0",
        "PIYAO_MATCHING__DENSE": "false"})


def store_debunks(store: Store) -> list[Debunk]:
    with store.session() as s:
        return list(s.scalars(select(Debunk)))


def add_run(store: Store, spider: str, status: str, pages: int, **stats: int) -> int:
    with store.session() as s:
        now = utcnow()
        r = CrawlRun(spider=spider, status=status, started_at=now - dt.timedelta(minutes=5), finished_at=now, pages=pages,
                     items=pages - 1, errors=sum(stats.values()), new_claims=2, new_debunks=pages - 1,
                     stats={f"piyao/errors/{k}": v for k, v in stats.items()})
        s.add(r)
        s.flush()
        return r.id


def test_schedules_page_lists_every_spider_with_its_last_run(login_as: Login, store: Store, settings: Any) -> None:
    add_run(store, "dxy", "finished", 3)
    rid = add_run(store, "dxy", "failed", 7, http_404=2, timeout=1)
    client, _ = login_as("viewer")
    r = client.get("/schedules")
    assert r.status_code == 200
    names = all_spiders(settings)
    assert names[:2] == ["piyao_org_cn", "claim_feed"]  # crawl.run first
    assert {"dxy", "guokr", "jiaozhen", "kepuchina", "generic"} <= set(names)  # and every spider in crawlers/spiders/
    for name in names:
        assert f'id="spider-{name}"' in r.text
    row = re.search(r'<tr id="spider-dxy".*?</tr>', r.text, re.S).group(0)
    assert "failed" in row and ">7<" in row and ">3<" in row  # the latest run: 7 pages, 3 errors
    assert "没有配置起始网址" in re.search(r'<tr id="spider-claim_feed".*?</tr>', r.text, re.S).group(0)
    assert "run-now" not in r.text and "/run\"" not in r.text  # viewers cannot run crawls
    assert "/pause\"" not in r.text and "/resume\"" not in r.text  # nor pause schedules
    page = client.get("/schedules/dxy")
    assert page.status_code == 200 and "共 2 次" in page.text and f'id="run-{rid}"' in page.text
    assert "http_404 2" in page.text and "timeout 1" in page.text
    assert client.get("/schedules/no_such_spider").status_code == 404


def test_run_now_needs_an_editor_and_a_runnable_spider(login_as: Login, store: Store) -> None:
    viewer, vcsrf = login_as("viewer")
    assert viewer.post("/schedules/piyao_org_cn/run", data={"csrf_token": vcsrf}).status_code == 403
    editor, csrf = login_as("editor")
    r = editor.post("/schedules/claim_feed/run", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/schedules/claim_feed?run=unready"
    page = editor.get(r.headers["location"]).text
    assert "现在不能运行" in page and "没有配置起始网址" in page and "job-state" not in page
    assert editor.post("/schedules/nope/run", data={"csrf_token": csrf}).status_code == 404
    assert editor.post("/schedules/piyao_org_cn/run", data={}).status_code == 403  # no CSRF token
    with store.session() as s:
        assert s.scalars(select(CrawlRun)).first() is None


def test_run_now_crawls_the_mirror_in_the_background(login_as: Login, store: Store, app: Any) -> None:
    client, csrf = login_as("editor")
    assert 'action="/schedules/piyao_org_cn/run"' in client.get("/schedules").text
    r = client.post("/schedules/piyao_org_cn/run", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/schedules/piyao_org_cn?run=started"
    # A second click while it runs starts nothing, and is recorded as skipped.
    r2 = client.post("/schedules/piyao_org_cn/run", data={"csrf_token": csrf})
    assert r2.status_code == 303 and r2.headers["location"] == "/schedules/piyao_org_cn?run=already"
    page = client.get("/schedules/piyao_org_cn?run=started").text
    assert "已开始采集" in page and "运行中" in page
    assert "运行中" in re.search(r'<tr id="spider-piyao_org_cn".*?</tr>', client.get("/schedules").text, re.S).group(0)
    assert "运行中" in re.search(r'<tr id="schedule-piyao_org_cn".*?</tr>', client.get("/schedules").text, re.S).group(0)
    assert "正在运行" in client.get(r2.headers["location"]).text
    deadline = time.monotonic() + 240
    while True:
        with store.session() as s:
            running = s.scalars(select(ScheduleRun).where(ScheduleRun.status == "running")).all()
        if not running or time.monotonic() > deadline:
            break
        time.sleep(1)
    page = client.get("/schedules/piyao_org_cn").text
    assert re.search(r'data-state="(\w+)"', page).group(1) == "skipped"  # the latest row: the second click
    with store.session() as s:
        first, second = s.scalars(select(ScheduleRun).order_by(ScheduleRun.id)).all()
        runs = s.scalars(select(CrawlRun)).all()
        titles = set(s.scalars(select(Debunk.title)))
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "schedule.run_now")).all()
    assert (first.schedule_id, first.trigger, first.status) == ("piyao_org_cn", "manual", "finished"), first.message
    assert first.message.startswith("run now by ed (web)") and first.new_debunks == ARTICLES and first.items == ARTICLES
    assert (second.status, second.trigger) == ("skipped", "manual") and f"run #{first.id} of piyao_org_cn" in second.message
    assert [(r.spider, r.status, r.new_debunks, r.schedule_run_id) for r in runs] == [("piyao_org_cn", "finished", ARTICLES, first.id)]
    assert runs[0].pages >= ARTICLES and runs[0].finished_at is not None
    assert [a.actor for a in audit] == ["ed", "ed"]
    assert "网传太阳能板释放有害电磁辐射？谣言！" in titles
    assert f'id="run-{runs[0].id}"' in page and f'id="srun-{first.id}"' in page and "已完成" in page and "跳过" in page
    # The crawl drained the index outbox: the new articles are searchable from the app at once.
    r = client.get("/debunks", params={"q": "太阳能 电磁辐射"})
    assert r.status_code == 200 and "<mark>太阳能</mark>" in r.text
    did = next(d.id for d in store_debunks(store) if d.title == "网传太阳能板释放有害电磁辐射？谣言！")
    assert f'id="hit-{did}"' in r.text
    # No settings file with credentials is left behind.
    assert not list((app.state.settings.data_path / "crawl" / "runs").glob("*.yaml"))


def test_each_schedule_shows_its_next_and_last_run_and_can_be_paused(login_as: Login, store: Store, settings: Any) -> None:
    book = ScheduleBook(settings, store)
    book.add("nightly_dxy", spider="dxy", cron="15 3 * * *", start_urls=["https://example.org/list"], max_items=50)
    with store.session() as s:
        now = utcnow()
        s.add(ScheduleRun(run_key="k1", schedule_id="nightly_dxy", spider="dxy", trigger="catchup", status="finished",
                          scheduled_for=now - dt.timedelta(hours=3), started_at=now - dt.timedelta(hours=2),
                          finished_at=now - dt.timedelta(hours=1), pages=12, items=9, errors=3, new_claims=4, new_debunks=5,
                          flagged=2, errors_by_kind={"http_5xx": 2, "timeout": 1}, message="catch-up run"))
        s.add(ScheduleRun(run_key="k2", schedule_id="nightly_dxy", spider="dxy", trigger="schedule", status="missed",
                          scheduled_for=now, started_at=now, finished_at=now, message="<b>found 13h late</b>"))
    viewer, vcsrf = login_as("viewer")
    page = viewer.get("/schedules").text
    row = re.search(r'<tr id="schedule-nightly_dxy".*?</tr>', page, re.S).group(0)
    nxt = book.require("nightly_dxy").next_run
    assert nxt is not None and nxt.strftime("%Y-%m-%d %H:%M") in row and "15 3 * * *" in row and "启用" in row
    assert "错过" in row  # the last run's status
    assert 'id="schedule-piyao_org_cn"' in page and 'id="schedule-claim_feed"' in page  # config.yaml's, seeded
    hist = re.search(r'<table class="grid compact" id="history">.*?</table>', page, re.S).group(0)
    assert "补跑" in hist and "http_5xx 2，timeout 1" in hist and "&lt;b&gt;found 13h late&lt;/b&gt;" in hist
    detail = viewer.get("/schedules/nightly_dxy").text
    assert re.search(r'<dd id="next-run">([^<]*)</dd>', detail).group(1) == nxt.strftime("%Y-%m-%d %H:%M")
    assert 'id="pause"' not in detail and 'id="run-now"' not in detail  # viewers only look
    assert "https://example.org/list" in detail and "共 2 次" in detail and 'data-state="missed"' in detail
    assert viewer.post("/schedules/nightly_dxy/pause", data={"csrf_token": vcsrf}).status_code == 403
    editor, csrf = login_as("editor")
    detail = editor.get("/schedules/nightly_dxy").text
    assert 'id="pause"' in detail and 'id="resume"' not in detail and 'action="/schedules/nightly_dxy/run"' in detail
    assert editor.post("/schedules/nightly_dxy/pause", data={}).status_code == 403  # no CSRF token
    r = editor.post("/schedules/nightly_dxy/pause", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/schedules/nightly_dxy?run=paused"
    assert book.require("nightly_dxy").paused
    detail = editor.get(r.headers["location"]).text
    assert "已暂停" in detail and 'id="resume"' in detail and 'id="pause"' not in detail
    assert "已暂停" in re.search(r'<dd id="next-run">.*?</dd>', detail, re.S).group(0)
    r = editor.post("/schedules/nightly_dxy/resume", data={"csrf_token": csrf})
    assert r.status_code == 303 and book.require("nightly_dxy").next_run == nxt
    assert editor.post("/schedules/no_such/pause", data={"csrf_token": csrf}).status_code == 404
    # A spider's page without a schedule of that name says so, and keeps its crawl-run history.
    plain = editor.get("/schedules/guokr").text
    assert "没有同名的定时计划" in plain and 'id="pause"' not in plain and 'id="runs"' in plain
    with store.session() as s:
        actions = [a for a, in s.execute(select(AuditEvent.action).where(AuditEvent.actor == "ed").order_by(AuditEvent.id))]
    assert actions == ["schedule.paused", "schedule.resumed"]


def test_run_now_is_refused_while_another_process_runs_the_schedule(login_as: Login, store: Store, settings: Any) -> None:
    """A running row of a live process (the scheduler, a CLI run-now) holds the schedule: the click says so, is
    recorded as skipped, and starts no crawl."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with store.session() as s:
            s.add(ScheduleRun(run_key="held", schedule_id="piyao_org_cn", spider="piyao_org_cn", trigger="schedule", status="running",
                              pid=holder.pid, host=HOST, args={"spider": "piyao_org_cn"}))
        editor, csrf = login_as("editor")
        page = editor.get("/schedules/piyao_org_cn").text
        assert "运行中" in page and re.search(r'<button type="submit" class="primary" disabled', page)
        r = editor.post("/schedules/piyao_org_cn/run", data={"csrf_token": csrf})
        assert r.headers["location"] == "/schedules/piyao_org_cn?run=already"
        assert "正在运行" in editor.get(r.headers["location"]).text
    finally:
        holder.kill()
        holder.wait()
    with store.session() as s:
        skipped = s.scalars(select(ScheduleRun).where(ScheduleRun.status == "skipped")).one()
        assert s.scalars(select(CrawlRun)).first() is None
    assert skipped.message.startswith("run now by ed (web); not started: run #") and "still running" in skipped.message
