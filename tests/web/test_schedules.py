"""The schedules page and "run now": a real crawl of the loopback piyao.org.cn mirror (the crawler
tests' fixture site), started from the web app, recorded in crawl_runs and searchable afterwards."""

from __future__ import annotations

import datetime as dt
import functools
import re
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from review.crawl_jobs import all_spiders
from store.db import Store
from store.models import CrawlRun, Debunk, utcnow
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
        "PIYAO_CRAWL__DOWNLOAD_DELAY": "0", "PIYAO_CRAWL__AUTOTHROTTLE": "false", "PIYAO_CRAWL__RETRY_TIMES": "0"})


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
    # A second click while it runs starts nothing.
    r2 = client.post("/schedules/piyao_org_cn/run", data={"csrf_token": csrf})
    assert r2.status_code == 303 and r2.headers["location"] == "/schedules/piyao_org_cn?run=already"
    page = client.get("/schedules/piyao_org_cn?run=started").text
    assert "已开始采集" in page and 'data-state="running"' in page and "运行中" in page
    assert "运行中" in re.search(r'<tr id="spider-piyao_org_cn".*?</tr>', client.get("/schedules").text, re.S).group(0)
    deadline = time.monotonic() + 240
    while True:
        page = client.get("/schedules/piyao_org_cn").text
        state = re.search(r'data-state="(\w+)"', page).group(1)
        if state != "running" or time.monotonic() > deadline:
            break
        time.sleep(1)
    job = app.state.crawl_jobs.get("piyao_org_cn")
    assert state == "finished", (state, job.returncode if job else None, job.output if job else None)
    assert job.summary is not None and job.summary["new_debunks"] == ARTICLES and job.started_by == "ed"
    with store.session() as s:
        runs = s.scalars(select(CrawlRun)).all()
        assert [(r.spider, r.status, r.new_debunks) for r in runs] == [("piyao_org_cn", "finished", ARTICLES)]
        assert runs[0].pages >= ARTICLES and runs[0].finished_at is not None
        titles = set(s.scalars(select(Debunk.title)))
    assert "网传太阳能板释放有害电磁辐射？谣言！" in titles
    assert f'id="run-{runs[0].id}"' in page and "已完成" in page
    # The crawl drained the index outbox: the new articles are searchable from the app at once.
    r = client.get("/debunks", params={"q": "太阳能 电磁辐射"})
    assert r.status_code == 200 and "<mark>太阳能</mark>" in r.text
    did = next(d.id for d in store_debunks(store) if d.title == "网传太阳能板释放有害电磁辐射？谣言！")
    assert f'id="hit-{did}"' in r.text
    # No settings file with credentials is left behind.
    assert not list((app.state.settings.data_path / "crawl" / "web").glob("*.yaml"))
