"""Fixtures for the crawler tests: a local HTTP server over a fixture folder, and a crawl runner."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
SITES = REPO / "tests" / "fixtures" / "sites"


@dataclass
class Served:
    root: Path
    url: str
    requests: list[str] = field(default_factory=list)  # request paths, in order

    def paths(self) -> set[str]:
        return {p.split("?", 1)[0] for p in self.requests}


class _Handler(SimpleHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.served.requests.append(self.path)
        super().do_GET()

    def guess_type(self, path):  # type: ignore[no-untyped-def]
        if str(path).endswith((".htm", ".html")):
            return "text/html; charset=utf-8"
        if str(path).endswith(".xml"):
            return "application/xml; charset=utf-8"
        return super().guess_type(path)


@pytest.fixture
def serve_dir() -> Iterator:
    """``serve_dir(path) -> Served``: serve ``path`` on 127.0.0.1 (free port) until the test ends."""
    servers: list[ThreadingHTTPServer] = []

    def start(path: Path) -> Served:
        served = Served(root=Path(path), url="")
        handler = type("Handler", (_Handler,), {"served": served})
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


@pytest.fixture
def crawl_tools():
    """The helpers above, for test modules (``crawl_tools.run_scrapy(...)`` etc.)."""
    import types

    return types.SimpleNamespace(site_copy=site_copy, run_scrapy=run_scrapy, run_python=run_python, REPO=REPO, SITES=SITES)
