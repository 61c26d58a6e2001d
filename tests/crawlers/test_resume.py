"""Pause and resume: a crawl killed with SIGKILL mid-run resumes without refetching or duplicating items.

A synthetic piyao.org.cn mirror with 40 article pages (two list pages) is served
on loopback; every article response is delayed by 0.2 s. The crawl subprocess
(``python -m scrapy crawl``, crawl.persist_jobs on) is killed with SIGKILL once
the server has answered 10 article pages, then started again with the same
command.

Bound: Scrapy's own job state is not flushed on SIGKILL; the seen-URL store
(written in the same transaction as each item, one commit per item) carries
the guarantee. A page is fetched again only if its item was not yet committed
when the process died (asserted exactly: refetched ⊆ requested − stored at the
kill): the downloads in flight, at most CONCURRENT_REQUESTS_PER_DOMAIN (2
here), plus responses already received but not yet stored, which came from
such downloads: at most 2 × 2 = 4 pages (MAX_REFETCHED). Every item is stored
once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from store.db import open_store
from store.models import Debunk, SeenUrl

N_ARTICLES = 40
KILL_AFTER = 10
DELAY_S = 0.2
CONCURRENCY = 2  # CONCURRENT_REQUESTS_PER_DOMAIN: the most downloads in flight when the process dies
# Refetched after the kill: only pages requested whose items were not committed yet, i.e. the downloads in
# flight (≤ CONCURRENCY) plus the responses Scrapy had already received but not yet stored (≤ CONCURRENCY:
# each comes from a download that was in flight a moment before).
MAX_REFETCHED = 2 * CONCURRENCY
PAGE = (
    "<html><head><title>{title}</title></head><body><div class='con_tit'><h2>{title}</h2>"
    "<p><span>来源：测试来源 时间：2025-08-{day:02d} 10:00:00</span></p></div>"
    "<div class='con_txt'>{body}</div></body></html>"
)


class _Server:
    """Article paths: ``received`` when the request arrives (from the log of conftest's ``serve_dir``),
    ``answered`` when the response is sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served: Any = None  # conftest.Served: every request path, on arrival
        self.answered: list[str] = []

    @property
    def received(self) -> list[str]:
        with self.served.lock:
            return [p for p in self.served.requests if p.endswith("/c.html")]

    def count(self, which: str) -> int:
        with self.lock:
            return len(getattr(self, which))


@pytest.fixture
def slow_site(tmp_path, serve_dir, crawl_tools) -> tuple[str, list[str], _Server]:
    root = tmp_path / "site"
    root.mkdir()
    paths = crawl_tools.build_article_site(root, crawl_tools.article_paths(random.Random(7), N_ARTICLES, "202508"), random.Random(11), PAGE)
    server = _Server()

    class Answered:  # handler mixin: logs an article's path once its (delayed) response is sent
        path: str

        def do_GET(self) -> None:  # noqa: N802
            super().do_GET()  # type: ignore[misc]
            if self.path.endswith("/c.html"):
                with server.lock:
                    server.answered.append(self.path)

    server.served = serve_dir(root, delay=DELAY_S, delay_suffix="/c.html", handler_mixin=Answered)
    return server.served.url, paths, server


def test_sigkill_then_resume_fetches_each_page_once(tmp_path, slow_site, crawl_tools) -> None:
    url, paths, server = slow_site
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "scrapy", "crawl", "piyao_org_cn", "-a", f"start_url={url}/ld.htm"]
    jobdir = data / "crawl" / "jobs" / "piyao_org_cn"

    first = subprocess.Popen(cmd, cwd=crawl_tools.REPO, env=_crawl_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while server.count("answered") < KILL_AFTER:
        assert first.poll() is None, "the crawl ended before it could be killed"
        assert time.monotonic() < deadline, "the crawl made no progress"
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    received_at_kill = server.count("received")
    assert KILL_AFTER <= received_at_kill < N_ARTICLES
    assert (jobdir / "piyao.running").exists() and not (jobdir / "piyao.finished").exists()
    killed_store = open_store(f"sqlite:///{data / 'piyao.db'}")
    with killed_store.session() as s:
        stored_at_kill = {u.removeprefix(url) for u in s.scalars(select(SeenUrl.url))}
        assert stored_at_kill == {u.removeprefix(url) for u in s.scalars(select(Debunk.url))}  # item and page: one transaction
    killed_store.close()
    in_flight = set(server.received) - stored_at_kill  # requested, but no item committed when the process died

    second = subprocess.run(cmd, cwd=crawl_tools.REPO, env=_crawl_env(data), capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-4000:]

    debunks, runs, seen = crawl_tools.rows_and_seen(f"sqlite:///{data / 'piyao.db'}")

    # Every article stored exactly once.
    stored = Counter(d.url.removeprefix(url) for d in debunks)
    assert set(stored) == set(paths) and set(stored.values()) == {1}
    assert len(seen) == N_ARTICLES

    # Each article requested once over both runs, except pages in flight when the process died.
    requests = Counter(server.received)
    assert set(requests) == set(paths)
    refetched = {p: n for p, n in requests.items() if n > 1}
    assert set(refetched) <= in_flight and all(n == 2 for n in refetched.values()), (refetched, in_flight)
    assert len(refetched) <= MAX_REFETCHED, refetched
    assert sum(requests.values()) <= N_ARTICLES + MAX_REFETCHED

    # The second run knows it resumed the killed one.
    assert [r.status for r in runs] == ["interrupted", "finished"]
    resumed = runs[1]
    assert resumed.stats["piyao/resumed"] == 1 and resumed.stats["piyao/resumed_from"] == "killed"
    assert resumed.stats["piyao/resumed_run_id"] == runs[0].id
    assert resumed.items == N_ARTICLES - resumed.stats["piyao/seen/skipped"]
    assert resumed.stats["piyao/seen/skipped"] >= KILL_AFTER - CONCURRENCY
    assert (jobdir / "piyao.finished").exists()
    print(
        f"killed after {KILL_AFTER} answered / {received_at_kill} received article requests; "
        f"in flight (requested, not stored): {len(in_flight)}; refetched after resume: {len(refetched)}; total article requests {sum(requests.values())} for {N_ARTICLES} pages; "
        f"second run: {resumed.items} items, {resumed.stats['piyao/seen/skipped']} skipped as seen"
    )


def _crawl_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env.update(
        PIYAO_DATA_DIR=str(data),
        # Not 0: Scrapy 2.19's downloader enforces CONCURRENT_REQUESTS_PER_DOMAIN only when a download
        # delay is set (with 0 it starts every queued request of a slot at once, up to CONCURRENT_REQUESTS).
        PIYAO_CRAWL__DOWNLOAD_DELAY="0.01",
        PIYAO_CRAWL__AUTOTHROTTLE="false",
        PIYAO_CRAWL__RETRY_TIMES="0",
        PIYAO_CRAWL__PERSIST_JOBS="true",
        PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN=str(CONCURRENCY),
    )
    return env
