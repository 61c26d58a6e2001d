"""`piyao serve --workers 2`: two worker processes answer over one cookie key; the parent stops them all.

A real server process over a seeded data dir (SQLite store, embedded index), no web.secret_key set:
the parent makes <data_dir>/web_secret before the workers start, so a session cookie signed by one
worker is accepted by the other (two keys would send half the requests back to the login page).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest

from review.accounts import create_partner, create_token, create_user
from settings import load_settings
from store.db import open_store
from tests.web.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    return env | {"PIYAO_MATCHING__DENSE": "false", "PIYAO_CLASSIFIER__MODEL": "models/starter", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, subprocess.Popen[bytes], str]]:
    from index.embedded import EmbeddedBackend
    from tests.web.browser.conftest import _free_port
    from tests.web.seed import seed

    data = tmp_path_factory.mktemp("workers") / "data"
    settings = load_settings(data_dir=data, environ=_env())
    store = open_store(settings.store_url)
    backend = EmbeddedBackend(settings.index_path)
    seed(store, backend)
    backend.close()
    create_user(store, "wed", PASSWORD, "editor")
    create_partner(store, "wpartner")
    token = create_token(store, partner="wpartner")[1]
    store.close()
    port = _free_port()
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "import pipeline; pipeline.main()", "--data-dir", str(data), "serve",
                             "--port", str(port), "--workers", "2"], cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/login", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"piyao serve --workers 2 did not start: {(data / 'server.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.3)
    yield url, data, proc, token
    if proc.poll() is None:
        proc.kill()
    log.close()


def test_two_workers_share_the_cookie_key(server: tuple[str, Path, subprocess.Popen[bytes], str]) -> None:
    url, data, proc, _token = server
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
    assert len(workers) == 2, [c.cmdline() for c in workers]
    assert (data / "web_secret").exists()
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as c:
        page = c.get("/login").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert csrf
        r = c.post("/login", data={"username": "wed", "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/queue"})
        assert r.status_code == 303, r.text[:300]
        # Fresh connections spread over both workers; each must accept the cookie the first one signed.
        for _ in range(24):
            with httpx.Client(base_url=url, cookies=c.cookies, follow_redirects=False, timeout=30) as fresh:
                assert fresh.get("/queue").status_code == 200


def test_partner_intake_through_the_workers(server: tuple[str, Path, subprocess.Popen[bytes], str]) -> None:
    url, _data, _proc, token = server
    items = [{"external_id": f"w-{i}", "text": f"网传每天喝隔夜茶会致癌，第{i}次转发给家人看看"} for i in range(3)]
    r = httpx.post(url + "/api/v1/claims", json={"items": items}, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert r.status_code == 200, r.text[:500]
    got = r.json()["items"]
    assert [x["external_id"] for x in got] == ["w-0", "w-1", "w-2"]
    assert all(x["score"] is not None for x in got)
    # The same posts again, maybe on the other worker: the stored claims, not new ones.
    again = httpx.post(url + "/api/v1/claims", json={"items": items}, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert [x["claim_id"] for x in again.json()["items"]] == [x["claim_id"] for x in got]
    assert not any(x["new"] for x in again.json()["items"])


def test_terminate_stops_every_worker(server: tuple[str, Path, subprocess.Popen[bytes], str]) -> None:
    _url, _data, proc, _token = server
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.terminate()
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
