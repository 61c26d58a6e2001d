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

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from settings import load_settings
from store.db import open_store

N_ARTICLES = 40
DELAY_S = 0.2
SPIDER = "piyao_org_cn"
PAGE = (
    "<html><body><div class='con_tit'><h2>{title}</h2><p><span>来源：测试 时间：2025-09-01</span></p></div>"
    "<div class='con_txt'>{body}</div></body></html>"
)


@pytest.fixture
def mirror(tmp_path, serve_dir, crawl_tools) -> tuple[str, list[str], list[str]]:
    root = tmp_path / "site"
    root.mkdir()
    rng = random.Random(23)
    paths = crawl_tools.build_article_site(root, crawl_tools.article_paths(rng, N_ARTICLES, "202509"), rng, PAGE)
    served = serve_dir(root, delay=DELAY_S, delay_suffix="/c.html")
    return served.url, paths, served.requests


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

    debunks, runs, seen = crawl_tools.rows_and_seen(db_url)
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
