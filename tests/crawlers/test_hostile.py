"""The piyao_org_cn spider against a hostile server: every failure counted by kind, nothing crashes.

One real ``python -m scrapy crawl`` against tests/crawlers/hostile_server.py;
the assertions read the SQLite store and the server's request log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from crawlers.middlewares import classify_exception
from crawlers.settings import scrapy_settings
from settings import load_settings
from store.db import open_store
from store.models import CrawlRun, Debunk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_server import TRAD_TITLE, HostileServer, hostile_site  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BACKOFF = 0.5
RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \[(?P<logger>[^\]]+)\] (?P<level>[A-Z]+): ", re.M)


def _log_records(stderr: str) -> list[tuple[str, str, str]]:
    """(logger, level, text) of each log record; text before the first record has logger ''."""
    marks = list(RECORD.finditer(stderr))
    out = [("", "", stderr[: marks[0].start()] if marks else stderr)]
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(stderr)
        out.append((m.group("logger"), m.group("level"), stderr[m.start() : end]))
    return out


@pytest.fixture(scope="module")
def hostile_crawl(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile") / "data"
    with HostileServer() as server:
        site = hostile_site(server)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
        env.update(
            PIYAO_DATA_DIR=str(data),
            PIYAO_CRAWL__DOWNLOAD_DELAY="0",
            PIYAO_CRAWL__AUTOTHROTTLE="false",
            PIYAO_CRAWL__RETRY_TIMES="1",
            PIYAO_CRAWL__DOWNLOAD_TIMEOUT="2",
            PIYAO_CRAWL__MAX_PAGE_BYTES="200000",
            PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN="16",
            PIYAO_CRAWL__LOG_LEVEL="INFO",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "piyao_org_cn", "-a", f"start_url={server.url}/ld.htm", "-s", f"PIYAO_RETRY_BACKOFF={BACKOFF}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        store = open_store(f"sqlite:///{data / 'piyao.db'}")
        try:
            with store.session() as s:
                debunks = list(s.scalars(select(Debunk)))
                runs = list(s.scalars(select(CrawlRun)))
                s.expunge_all()
        finally:
            store.close()
        yield {"proc": proc, "server": server, "site": site, "debunks": debunks, "runs": runs}


def test_crawl_finishes_and_stores_every_good_page(hostile_crawl) -> None:
    proc, site, server = hostile_crawl["proc"], hostile_crawl["site"], hostile_crawl["server"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = hostile_crawl["runs"]
    assert run.status == "finished" and run.stats.get("finish_reason") == "finished"
    by_path = {d.url.removeprefix(server.url): d for d in hostile_crawl["debunks"]}
    assert set(by_path) == set(site.good)  # every good page, and nothing from a failed one
    for path, title in site.good.items():
        assert by_path[path].title == title, path
        assert by_path[path].text.strip(), path
    big5 = next(d for d in hostile_crawl["debunks"] if d.title == TRAD_TITLE)
    assert "國家統計局數據顯示" in big5.text  # Traditional kept
    assert "\ufffd" not in "".join(d.title + d.text for d in hostile_crawl["debunks"] if "损坏" not in d.title)
    assert run.items == len(site.good) and run.new_debunks == len(site.good)


def test_each_failure_is_counted_by_kind_in_the_run_stats(hostile_crawl) -> None:
    (run,) = hostile_crawl["runs"]
    errors = {k.removeprefix("piyao/errors/"): v for k, v in run.stats.items() if k.startswith("piyao/errors/")}
    assert errors == {
        "http_5xx": 1,
        "http_4xx": 1,
        "timeout": 1,
        "connection_reset": 1,
        "truncated": 1,
        "redirect_loop": 1,
        "too_large": 2,  # Content-Length over the limit, and a chunked stream passing it
        "robots_disallowed": 1,
        "parse_error": 1,  # a PNG at an article URL: the spider cannot read it as HTML
        "decode_error": 1,  # a GBK page with bytes no encoding decodes (still stored)
    }
    assert run.stats.get("piyao/encoding/corrected") == 3  # GBK as utf-8, GBK as latin-1, Big5 as utf-8


def test_no_crash_only_scrapy_logged_errors(hostile_crawl) -> None:
    stderr = hostile_crawl["proc"].stderr
    assert "Unhandled error in Deferred" not in stderr
    for logger, level, text in _log_records(stderr):
        if "Traceback" in text:
            assert level == "ERROR" and logger.startswith("scrapy."), text[:2000]
        assert level != "CRITICAL", text[:2000]
    assert not [r for r in _log_records(stderr) if r[0].startswith(("crawlers.", "piyao")) and r[1] == "ERROR"]


def test_hostile_paths_behaved_as_designed(hostile_crawl) -> None:
    server, site = hostile_crawl["server"], hostile_crawl["site"]
    assert site.disallowed not in server.paths()  # robots.txt obeyed
    assert server.hits("/robots.txt")
    assert server.streamed[site.hostile["too_large"]] < 5 * 1024 * 1024  # dropped long before 50 MB
    loop = site.hostile["redirect_loop"]
    assert len(server.hits(loop)) == 1  # the loop was cut at its first return to a seen URL


def test_politeness(hostile_crawl) -> None:
    server, site = hostile_crawl["server"], hostile_crawl["site"]
    ua = load_settings(None, environ={}).crawl.user_agent
    assert server.log and {h.headers.get("user-agent") for h in server.log} == {ua}
    # Retries with backoff: the flaky path failed once and was fetched again no sooner than the backoff.
    flaky = server.hits(site.flaky)
    assert len(flaky) == 2
    assert flaky[1].t - flaky[0].t >= BACKOFF * 0.9
    always = server.hits(site.hostile["http_5xx"])
    assert len(always) == 2 and always[1].t - always[0].t >= BACKOFF * 0.9
    assert hostile_crawl["runs"][0].stats.get("retry/count", 0) >= 2


def test_per_domain_concurrency_reaches_scrapy() -> None:
    piyao = load_settings(None, environ={"PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN": "3"})
    assert scrapy_settings(piyao)["CONCURRENT_REQUESTS_PER_DOMAIN"] == 3
    assert scrapy_settings(load_settings(None, environ={}))["CONCURRENT_REQUESTS_PER_DOMAIN"] == load_settings(None, environ={}).crawl.concurrent_requests_per_domain
    proc = subprocess.run(
        [sys.executable, "-m", "scrapy", "settings", "--get", "CONCURRENT_REQUESTS_PER_DOMAIN"],
        cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}, "PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "3"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        ("DownloadTimeoutError", "timeout"),
        ("ResponseDataLossError", "truncated"),
        ("DownloadCancelledError", "too_large"),
        ("DownloadConnectionRefusedError", "connection_refused"),
        ("CannotResolveHostError", "dns"),
        ("DownloadFailedError", "connection_reset"),
    ],
)
def test_classify_exception(exc: str, kind: str) -> None:
    from scrapy import exceptions

    assert classify_exception(getattr(exceptions, exc)("x")) == kind
    assert classify_exception(exceptions.IgnoreRequest("Forbidden by robots.txt")) == "robots_disallowed"
    assert classify_exception(exceptions.IgnoreRequest("offsite")) is None
    assert classify_exception(ValueError("?")) == "other"
