"""Browser tests: Playwright drives Debian's headless Chromium against a real `piyao serve` process.

The server runs in its own process on a free loopback port over a seeded data dir (SQLite store,
embedded index; tests/web/seed.py). Screenshots of the main pages are written to
``$PIYAO_TEST_ARTIFACTS/screenshots`` (default var/test-artifacts/screenshots).
Chromium is /usr/bin/chromium (`scripts/chromium.sh install`; env PIYAO_CHROMIUM); when it is
missing the tests skip, and CI (PIYAO_NO_SKIPS=1) fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from review.accounts import create_user
from settings import load_settings
from store.db import open_store
from tests.web.conftest import PASSWORD, ROLE_USERS

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("PIYAO_CHROMIUM", "/usr/bin/chromium")
# The flags this closed network needs: no background connections, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def artifacts_dir() -> Path:
    base = Path(os.environ.get("PIYAO_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts"))
    out = base / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env |= {"PIYAO_WEB__SECRET_KEY": "browser-test-secret-0123456789", "PIYAO_MATCHING__DENSE": "false",
            "PIYAO_CLASSIFIER__MODEL": "models/starter", "PYTHONUNBUFFERED": "1"}
    return env


class LiveServer:
    def __init__(self, url: str, data: Path, proc: subprocess.Popen[bytes], seeded: dict[str, Any]) -> None:
        self.url, self.data, self.proc, self.seeded = url, data, proc, seeded

    def store(self) -> Any:
        return open_store(f"sqlite:///{self.data / 'piyao.db'}", migrate=False)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`piyao serve` on a free port over a freshly seeded data dir (one per test module)."""
    from index.embedded import EmbeddedBackend
    from tests.web.seed import seed

    data = tmp_path_factory.mktemp("web") / "data"
    settings = load_settings(data_dir=data, environ=_server_env(data))
    store = open_store(settings.store_url)
    backend = EmbeddedBackend(settings.index_path)
    seeded = seed(store, backend)
    for role, name in ROLE_USERS.items():
        create_user(store, name, PASSWORD, "editor" if role == "editor2" else role)
    backend.close()
    store.close()
    port = _free_port()
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "import pipeline; pipeline.main()", "--data-dir", str(data),
                             "serve", "--port", str(port)], cwd=ROOT, env=_server_env(data), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"piyao serve did not start: {(data / 'server.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    yield LiveServer(url, data, proc, seeded)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: run `bash scripts/chromium.sh install` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a page; console errors and page errors are collected."""
    ctx = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900}, locale="zh-CN")
    pg = ctx.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))  # type: ignore[attr-defined]
    pg.on("dialog", lambda d: d.accept())
    yield pg
    ctx.close()


def log_in(page: Any, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.press("#password", "Enter")
    page.wait_for_url("**/queue**")


def shot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
