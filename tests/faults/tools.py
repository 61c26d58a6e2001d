"""Helpers of the fault tests: piyao as a child process, its environment, `piyao check`, the store's integrity."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
PIYAO = [sys.executable, "-c", "import pipeline; pipeline.main()"]
PASSWORD = "correct horse battery"


def env_for(data: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without PIYAO_* settings, plus this data dir and the fault tests' settings:
    the small starter classifier, no dense matching (no e5 weights needed), no background webhook sender."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env |= {
        "PIYAO_DATA_DIR": str(data),
        "PIYAO_WEB__SECRET_KEY": "fault-test-secret-0123456789",
        "PIYAO_MATCHING__DENSE": "false",
        "PIYAO_CLASSIFIER__MODEL": "models/starter",
        "PIYAO_WEB__WEBHOOK_INTERVAL": "0",
        "PIYAO_SCHEDULER__SCHEDULES": "{}",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


def seeded_data_dir(data: Path, store: Any, db_url: str) -> tuple[dict[str, str], str, str]:
    """tests/web/seed.py's working set in ``store`` (demo debunks indexed in ``data``'s embedded index, queued
    claims), the editor ``ed`` and the partner ``acme`` with a webhook; returns (env, partner token, ed's token)."""
    from index.embedded import EmbeddedBackend
    from review.accounts import create_partner, create_token, create_user
    from settings import load_settings
    from tests.web.seed import seed

    env = env_for(data, PIYAO_STORE__URL=db_url)
    backend = EmbeddedBackend(load_settings(data_dir=data, environ=env).index_path)
    try:
        seed(store, backend)
    finally:
        backend.close()
    create_user(store, "ed", PASSWORD, "editor")
    create_partner(store, "acme", webhook_url="http://127.0.0.1:9/hook")
    _, partner_token = create_token(store, partner="acme")
    _, editor_token = create_token(store, user="ed")
    return env, partner_token, editor_token


def piyao(env: dict[str, str], *args: str, timeout: float = 120, preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """``piyao ARGS`` in a child process, output captured."""
    return subprocess.run([*PIYAO, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec_fn)


def check(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """`piyao check --json`: (exit status, report)."""
    res = piyao(env, "check", "--json")
    assert res.returncode in (0, 1), res.stderr[-3000:]
    return res.returncode, json.loads(res.stdout)


def assert_agree(env: dict[str, str]) -> dict[str, Any]:
    """`piyao index`, then `piyao check` says the store and the index agree with nothing pending."""
    res = piyao(env, "index")
    assert res.returncode == 0, res.stderr[-3000:]
    rc, report = check(env)
    assert rc == 0 and report["agree"] and report["pending"] == 0, report
    assert report["store"] == report["index"], report
    return report


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit status 2 and exactly one line on stderr, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stdout[-2000:], res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("piyao: error: "), res.stderr[-3000:]
    return lines[0]


def integrity_ok(db: Path) -> None:
    """SQLite's own verdict on the file: every page, index and constraint is sound."""
    conn = sqlite3.connect(str(db), timeout=60)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], data: Path, log_name: str = "server.log") -> tuple[subprocess.Popen[bytes], str]:
    """`piyao serve` on a free loopback port; returns (process, base URL) once it answers."""
    port = free_port()
    log = open(data / log_name, "ab")
    proc = subprocess.Popen([*PIYAO, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"piyao serve did not start: {(data / log_name).read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
