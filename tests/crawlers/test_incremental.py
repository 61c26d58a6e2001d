"""Incremental crawls (crawlers/seen.py): a re-run fetches only new or changed pages.

Real ``python -m scrapy crawl`` runs against a loopback copy of the piyao_org_cn
mirror, served by Python's SimpleHTTPRequestHandler, which sends Last-Modified
and answers If-Modified-Since with 304. The server log records each request's
path, status and conditional headers.
"""

from __future__ import annotations

import os
import threading
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import select

from crawlers.spiders.piyao_org_cn import is_article_url
from store.db import open_store
from store.models import SeenUrl

A2 = "/20250711/bd023518677844abb2d477f29e0a2eaf/c.html"
ARTICLES = 5  # article pages of the mirror that robots.txt allows


class _Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, int, str | None]] = []  # (path, status, If-Modified-Since)

    def mark(self) -> int:
        with self.lock:
            return len(self.entries)

    def since(self, start: int) -> list[tuple[str, int, str | None]]:
        with self.lock:
            return list(self.entries[start:])


class _StatusLog:
    """Handler mixin (conftest ``serve_dir``): logs each answered request's path, status and If-Modified-Since."""

    log: _Log
    path: str
    headers: Message

    def log_request(self, code: object = "-", size: object = "-") -> None:
        with self.log.lock:
            self.log.entries.append((self.path.split("?", 1)[0], int(getattr(code, "value", code)), self.headers.get("If-Modified-Since")))


@pytest.fixture
def site(tmp_path, serve_dir, crawl_tools) -> tuple[Path, str, _Log]:
    root = crawl_tools.site_copy("piyao_org_cn", tmp_path)
    log = _Log()
    served = serve_dir(root, handler_mixin=type("StatusLog", (_StatusLog,), {"log": log}))
    return root, served.url, log


def _articles(entries: list[tuple[str, int, str | None]]) -> list[tuple[str, int, str | None]]:
    return [e for e in entries if is_article_url("http://x" + e[0])]


def test_second_run_fetches_no_article_and_a_changed_page_is_refetched(tmp_path, site, crawl_tools) -> None:
    root, url, log = site
    data = tmp_path / "data"
    start = ("-a", f"start_url={url}/ld.htm")

    # Run 1: everything is new.
    crawl_tools.run_scrapy("piyao_org_cn", data, *start)
    first = _articles(log.since(0))
    assert len(first) == ARTICLES and {s for _p, s, _i in first} == {200}
    debunks, runs, seen = crawl_tools.rows_and_seen(f"sqlite:///{data / 'piyao.db'}")
    assert len(debunks) == ARTICLES and runs[0].items == ARTICLES
    assert len(seen) == ARTICLES and all(r.last_modified and r.content_hash for r in seen)
    assert {r.url.removeprefix(url) for r in seen} == {p for p, _s, _i in first}
    assert (data / "crawl" / "jobs" / "piyao_org_cn" / "piyao.finished").exists()

    # Run 2, within crawl.seen_expiry_hours: list pages only; no article requested, nothing added.
    mark = log.mark()
    crawl_tools.run_scrapy("piyao_org_cn", data, *start)
    second = log.since(mark)
    assert _articles(second) == []
    assert {"/ld.htm", "/ld_2.htm", "/ds_5f2b8c0d9e1a4b3c8d7e6f5a4b3c2d1e.json"} <= {p for p, _s, _i in second}
    debunks2, runs, _seen = crawl_tools.rows_and_seen(f"sqlite:///{data / 'piyao.db'}")
    assert len(debunks2) == ARTICLES
    run2 = runs[1]
    assert run2.status == "finished" and run2.items == 0 and run2.new_debunks == 0
    assert run2.stats["piyao/seen/skipped"] == ARTICLES
    assert "piyao/resumed" not in run2.stats  # the first run finished: a fresh start, not a resume

    # One article changes on the server (newer mtime → newer Last-Modified).
    page = root / A2.lstrip("/")
    html = page.read_text("utf-8")
    assert "国家统计局数据显示" in html
    page.write_text(html.replace("国家统计局数据显示", "国家统计局最新数据显示"), "utf-8")
    t = os.stat(page).st_mtime + 3600
    os.utime(page, (t, t))

    # Run 3 with expiry 0: every article is revalidated; only the changed one comes back with a 200.
    mark = log.mark()
    crawl_tools.run_scrapy("piyao_org_cn", data, *start, PIYAO_CRAWL__SEEN_EXPIRY_HOURS="0")
    third = _articles(log.since(mark))
    assert len(third) == ARTICLES and all(ims for _p, _s, ims in third)  # all conditional
    assert sorted((p, s) for p, s, _i in third if s == 200) == [(A2, 200)]
    assert sum(1 for _p, s, _i in third if s == 304) == ARTICLES - 1
    debunks3, runs, seen3 = crawl_tools.rows_and_seen(f"sqlite:///{data / 'piyao.db'}")
    assert len(debunks3) == ARTICLES
    changed = next(d for d in debunks3 if d.url == url + A2)
    assert "国家统计局最新数据显示" in changed.text
    run3 = runs[2]
    assert run3.items == 1 and run3.new_debunks == 0
    assert run3.stats["piyao/seen/not_modified"] == ARTICLES - 1
    assert run3.stats["piyao/seen/revalidated"] == ARTICLES
    a2_seen = next(r for r in seen3 if r.url == url + A2)
    before = next(r for r in seen if r.url == url + A2)
    assert a2_seen.last_modified != before.last_modified and a2_seen.content_hash != before.content_hash


def test_unchanged_body_without_validators_adds_nothing(tmp_path, site, crawl_tools) -> None:
    """A server that ignores If-Modified-Since: the same body (content hash) yields no item."""
    _root, url, log = site
    data = tmp_path / "data"
    start = ("-a", f"start_url={url}/ld.htm")
    crawl_tools.run_scrapy("piyao_org_cn", data, *start)
    store = open_store(f"sqlite:///{data / 'piyao.db'}")
    with store.session() as s:  # forget the validators: requests go out unconditional
        for row in s.scalars(select(SeenUrl)):
            row.last_modified = None
            row.etag = None
    store.close()
    mark = log.mark()
    crawl_tools.run_scrapy("piyao_org_cn", data, *start, PIYAO_CRAWL__SEEN_EXPIRY_HOURS="0")
    again = _articles(log.since(mark))
    assert len(again) == ARTICLES and {s for _p, s, ims in again} == {200} and not any(ims for *_x, ims in again)
    _debunks, runs, _seen = crawl_tools.rows_and_seen(f"sqlite:///{data / 'piyao.db'}")
    assert runs[1].items == 0 and runs[1].stats["piyao/seen/unchanged"] == ARTICLES
