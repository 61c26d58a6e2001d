"""Scale-out on scrapy-redis (crawl.engine: redis): two crawler processes share one frontier and dupefilter.

A real Redis (fixture ``redis_url``: scripts/redis.sh, PIYAO_TEST_REDIS_URL) and a
loopback mirror with 40 article pages (0.2 s per article response). One seeding
step resets the spider's frontier (``crawlers.run.reset_frontier``); then TWO
``python -m scrapy crawl`` processes start together on the same start URL and
store. Every page is fetched exactly once (server log) and every item is
stored once, on SQLite and on PostgreSQL. robots.txt is not a frontier page:
each process reads it for itself.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from settings import load_settings
from store.db import open_store
from store.models import CrawlRun, Debunk, SeenUrl

N_ARTICLES = 40
DELAY_S = 0.2
SPIDER = "piyao_org_cn"
CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处府"


def _build_site(root: Path) -> list[str]:
    rng = random.Random(23)
    paths = [f"/202509{1 + i % 28:02d}/{rng.getrandbits(128):032x}/c.html" for i in range(N_ARTICLES)]
    for i, path in enumerate(paths):
        title = f"第{i + 1}号辟谣：" + "".join(rng.choice(CHARS) for _ in range(12))
        body = "".join(f"<p>{''.join(rng.choice(CHARS) for _ in range(60))}。</p>" for _ in range(4))
        page = root / path.lstrip("/")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            f"<html><body><div class='con_tit'><h2>{title}</h2><p><span>来源：测试 时间：2025-09-01</span></p></div>"
            f"<div class='con_txt'>{body}</div></body></html>",
            "utf-8",
        )
    half = N_ARTICLES // 2
    for name, chunk, nxt in (("ld.htm", paths[:half], "ld_2.htm"), ("ld_2.htm", paths[half:], None)):
        items = "".join(f"<li><h2><a href='{p}'>文章</a></h2></li>" for p in chunk)
        more = f"<a href='{nxt}'>下一页</a>" if nxt else ""
        (root / name).write_text(f"<html><body><ul id='list'>{items}</ul>{more}</body></html>", "utf-8")
    (root / "robots.txt").write_text("User-agent: *\nDisallow:\n", "utf-8")
    return paths


@pytest.fixture
def mirror(tmp_path) -> Iterator[tuple[str, list[str], list[str]]]:
    root = tmp_path / "site"
    root.mkdir()
    paths = _build_site(root)
    log: list[str] = []
    lock = threading.Lock()

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                log.append(self.path)
            if self.path.endswith("/c.html"):
                time.sleep(DELAY_S)
            super().do_GET()

        def guess_type(self, path):  # type: ignore[no-untyped-def]
            return "text/html; charset=utf-8" if str(path).endswith((".htm", ".html")) else super().guess_type(path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", paths, log
    httpd.shutdown()
    httpd.server_close()


def _env(data: Path, db_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env.update(
        PIYAO_DATA_DIR=str(data),
        PIYAO_STORE__URL=db_url,
        PIYAO_CRAWL__ENGINE="redis",
        PIYAO_CRAWL__REDIS_URL=redis_url,
        PIYAO_CRAWL__DOWNLOAD_DELAY="0.01",  # > 0: Scrapy 2.19 enforces per-domain concurrency only then
        PIYAO_CRAWL__AUTOTHROTTLE="false",
        PIYAO_CRAWL__RETRY_TIMES="0",
        PIYAO_CRAWL__CONCURRENT_REQUESTS_PER_DOMAIN="2",
    )
    return env


def test_two_workers_share_one_frontier(tmp_path, mirror, db_url, redis_url, crawl_tools) -> None:
    import redis

    url, paths, log = mirror
    data = tmp_path / "data"
    env = _env(data, db_url, redis_url)
    open_store(db_url).close()  # migrate once, before the workers (they would race to create the tables)

    # The seeding step: a new round on the shared frontier.
    from crawlers.run import reset_frontier

    reset_frontier(load_settings(environ=env), [SPIDER])
    client = redis.Redis.from_url(redis_url)
    assert not client.exists(f"{SPIDER}:requests", f"{SPIDER}:dupefilter")

    cmd = [sys.executable, "-m", "scrapy", "crawl", SPIDER, "-a", f"start_url={url}/ld.htm"]
    workers = [
        subprocess.Popen(cmd, cwd=crawl_tools.REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for w in workers:
        _out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err[-4000:]

    # Every page of the frontier fetched exactly once across both processes.
    fetched = Counter(p.split("?", 1)[0] for p in log)
    assert 1 <= fetched.pop("/robots.txt") <= 2  # per process (outside the frontier), before its first page
    assert set(fetched) == {"/ld.htm", "/ld_2.htm", *paths}
    assert set(fetched.values()) == {1}, {p: n for p, n in fetched.items() if n > 1}

    store = open_store(db_url)
    try:
        with store.session() as s:
            debunks = list(s.scalars(select(Debunk)))
            runs = list(s.scalars(select(CrawlRun).order_by(CrawlRun.id)))
            seen = list(s.scalars(select(SeenUrl)))
    finally:
        store.close()
    stored = Counter(d.url.removeprefix(url) for d in debunks)
    assert set(stored) == set(paths) and set(stored.values()) == {1}
    assert len(seen) == N_ARTICLES
    assert len(runs) == 2 and all(r.status == "finished" for r in runs)
    per_worker = [r.items for r in runs]
    assert sum(per_worker) == N_ARTICLES
    assert all(n > 0 for n in per_worker), (per_worker, [(r.started_at, r.finished_at, r.stats) for r in runs])  # both did part of the crawl
    assert all(r.stats.get("scheduler/enqueued/redis") is not None or r.stats.get("scheduler/dequeued/redis") for r in runs)
    # The frontier persists between workers; the dupefilter remembers the round until the next reset.
    assert client.scard(f"{SPIDER}:dupefilter") == N_ARTICLES + 2
    assert reset_frontier(load_settings(environ=env), [SPIDER])[SPIDER] >= 1
    print(f"items per worker: {per_worker}; pages fetched: {sum(fetched.values())} for {len(fetched)} distinct")
