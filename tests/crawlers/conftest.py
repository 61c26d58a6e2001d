"""Fixtures for the crawler tests: a local HTTP server over a fixture folder (plain, query-mapped, slow),
a crawl runner, and helpers shared by the test modules (``crawl_tools``)."""

from __future__ import annotations

import functools
import os
import posixpath
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select

from store.db import open_store
from store.models import CrawlRun, Debunk, SeenUrl

REPO = Path(__file__).resolve().parents[2]
SITES = REPO / "tests" / "fixtures" / "sites"


@dataclass
class Served:
    root: Path
    url: str
    requests: list[str] = field(default_factory=list)  # request paths, in order of arrival
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def paths(self) -> set[str]:
        return {p.split("?", 1)[0] for p in self.requests}


# Query mapping by key: request path → (query key, file suffix); ``/p?key=v`` → file ``p/v.suffix``.
QueryKeys = Mapping[str, tuple[str, str]]


class _Handler(SimpleHTTPRequestHandler):
    """Static files under ``directory``; logs each request path on ``served``.

    Class attributes (set per server by ``serve_dir``): ``query_files`` tells query strings apart --
    ``True``: ``/a/b?q`` → file ``a/b/q.html`` (``.json`` etc. kept when ``b`` has that suffix);
    a ``QueryKeys`` mapping: ``/p?…&key=v…`` → file ``p/v.suffix`` for the paths it names (``missing``
    when ``v`` is not alphanumeric). ``delay`` seconds are slept before answering a path ending in
    ``delay_suffix`` (every path when empty).
    """

    served: Served
    query_files: bool | QueryKeys = False
    delay: float = 0.0
    delay_suffix: str = ""
    content_types: dict[str, str] = {
        ".htm": "text/html; charset=utf-8",
        ".html": "text/html; charset=utf-8",
        ".xml": "application/xml; charset=utf-8",
    }

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        with self.served.lock:
            self.served.requests.append(self.path)
        if self.delay and self.path.endswith(self.delay_suffix):
            time.sleep(self.delay)
        super().do_GET()

    def translate_path(self, path: str) -> str:
        if not self.query_files:
            return super().translate_path(path)
        parts = urlsplit(path)
        if isinstance(self.query_files, Mapping):
            mapped = self.query_files.get(parts.path)
            if mapped:
                key, ext = mapped
                value = (parse_qs(parts.query).get(key) or [""])[0]
                if not value.replace("-", "").isalnum():
                    value = "missing"
                path = f"{parts.path}/{value}.{ext}"
            return super().translate_path(path)
        if not parts.query:
            return super().translate_path(parts.path)
        query = unquote(parts.query)
        if "/" in query or "\\" in query or query.startswith("."):
            return str(self.served.root / "__no_such_file__")
        ext = posixpath.splitext(parts.path)[1] or ".html"
        return super().translate_path(parts.path.rstrip("/") + "/" + parts.query) + ext

    def guess_type(self, path):  # type: ignore[no-untyped-def]
        return self.content_types.get(posixpath.splitext(str(path))[1]) or super().guess_type(path)


@pytest.fixture
def serve_dir() -> Iterator:
    """``serve_dir(path, *, query_files=False, delay=0.0, delay_suffix="", handler_mixin=None) -> Served``:
    serve ``path`` on 127.0.0.1 (free port) until the test ends (options: ``_Handler``).

    ``handler_mixin``: a class put before the shared handler, for behaviour of its own (it may call ``super()``).
    Query-mapped mirrors (APIs) also label ``.json`` files as UTF-8 JSON.
    """
    servers: list[ThreadingHTTPServer] = []

    def start(
        path: Path,
        *,
        query_files: bool | QueryKeys = False,
        delay: float = 0.0,
        delay_suffix: str = "",
        handler_mixin: type | None = None,
    ) -> Served:
        served = Served(root=Path(path), url="")
        attrs: dict[str, object] = {"served": served, "query_files": query_files, "delay": delay, "delay_suffix": delay_suffix}
        if query_files:
            attrs["content_types"] = {**_Handler.content_types, ".json": "application/json; charset=utf-8"}
        bases = (handler_mixin, _Handler) if handler_mixin else (_Handler,)
        handler = type("Handler", bases, attrs)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(path)))
        httpd.daemon_threads = True
        served.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return served

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def site_copy(name: str, tmp: Path) -> Path:
    """A private copy of the fixture site ``name`` (tests never serve the repository folder itself)."""
    dest = tmp / "site" / name
    shutil.copytree(SITES / name, dest)
    return dest


def crawl_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env.update(
        PIYAO_DATA_DIR=str(data_dir),
        PIYAO_CRAWL__DOWNLOAD_DELAY="0",
        PIYAO_CRAWL__AUTOTHROTTLE="false",
        PIYAO_CRAWL__RETRY_TIMES="0",
    )
    env.update(extra)
    return env


def run_scrapy(spider: str, data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m scrapy crawl SPIDER ARGS`` from the repository root, as a user would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", spider, *args],
        cwd=REPO,
        env=crawl_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def run_python(code: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=crawl_env(data_dir, **env), capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def rows(db: Path) -> tuple[list[Debunk], list[CrawlRun]]:
    """The debunks and crawl runs of the SQLite store ``db``, in id order."""
    store = open_store(f"sqlite:///{db}")
    try:
        with store.session() as s:
            return list(s.scalars(select(Debunk).order_by(Debunk.id))), list(s.scalars(select(CrawlRun).order_by(CrawlRun.id)))
    finally:
        store.close()


def rows_and_seen(url: str) -> tuple[list[Debunk], list[CrawlRun], list[SeenUrl]]:
    """The debunks and crawl runs (id order) and the seen-URL records of the store at ``url``."""
    store = open_store(url)
    try:
        with store.session() as s:
            return (
                list(s.scalars(select(Debunk).order_by(Debunk.id))),
                list(s.scalars(select(CrawlRun).order_by(CrawlRun.id))),
                list(s.scalars(select(SeenUrl))),
            )
    finally:
        store.close()


class Stats:
    """A stand-in for a crawler's stats collector: counts ``inc_value`` calls."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def inc_value(self, key: str, count: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + count


# A synthetic piyao.org.cn mirror (tests of scale-out and resume) ----------------------------

CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处府"


def article_paths(rng: random.Random, n: int, month: str) -> list[str]:
    """``n`` article paths of piyao.org.cn's shape, dated in ``month`` (``"202509"``)."""
    return [f"/{month}{1 + i % 28:02d}/{rng.getrandbits(128):032x}/c.html" for i in range(n)]


def build_article_site(root: Path, paths: list[str], rng: random.Random, page: str) -> list[str]:
    """Write an article page per path (``page`` formatted with ``title``, ``body`` and ``day``; random text
    from ``rng``), two list pages ``ld.htm`` → ``ld_2.htm`` over them and an allow-all robots.txt."""
    for i, path in enumerate(paths):
        title = f"第{i + 1}号辟谣：" + "".join(rng.choice(CHARS) for _ in range(12))
        body = "".join(f"<p>{''.join(rng.choice(CHARS) for _ in range(60))}。</p>" for _ in range(4))
        article = root / path.lstrip("/")
        article.parent.mkdir(parents=True, exist_ok=True)
        article.write_text(page.format(title=title, body=body, day=1 + i % 28), "utf-8")
    half = len(paths) // 2
    for name, chunk, nxt in (("ld.htm", paths[:half], "ld_2.htm"), ("ld_2.htm", paths[half:], None)):
        items = "".join(f"<li><h2><a href='{p}'>文章</a></h2></li>" for p in chunk)
        more = f"<a href='{nxt}'>下一页</a>" if nxt else ""
        (root / name).write_text(f"<html><body><ul id='list'>{items}</ul>{more}</body></html>", "utf-8")
    (root / "robots.txt").write_text("User-agent: *\nDisallow:\n", "utf-8")
    return paths


@pytest.fixture
def crawl_tools():
    """The helpers above, for test modules (``crawl_tools.run_scrapy(...)`` etc.)."""
    import types

    return types.SimpleNamespace(
        site_copy=site_copy,
        run_scrapy=run_scrapy,
        run_python=run_python,
        rows=rows,
        rows_and_seen=rows_and_seen,
        Stats=Stats,
        article_paths=article_paths,
        build_article_site=build_article_site,
        REPO=REPO,
        SITES=SITES,
    )
