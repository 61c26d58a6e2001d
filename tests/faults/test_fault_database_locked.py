"""The SQLite store locked by another process longer than the busy timeout (store/db.py: 30 s): the CLI
says so in one line, the web app and the API answer 503 with a Chinese message (never a traceback or a 500
page), nothing is half-written, and the same operations succeed once the lock is released.

Another process holds ``BEGIN EXCLUSIVE`` on the database (a write lock; in WAL mode readers go on) until
the test has all four answers: an import from the command line, a partner intake and an editor decision
through the API, and a decision through the editors' web form, all sent at once to a real `piyao serve`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
from sqlalchemy import func, select

from store.db import Store
from store.models import AuditEvent, Claim, Debunk, IndexOutbox, PartnerSubmission, Review, WebhookDelivery
from tests.faults.tools import PASSWORD, ROOT, assert_agree, integrity_ok, one_error_line, piyao, seeded_data_dir, start_server, stop

BUSY_TIMEOUT_S = 30  # store/db.py's PRAGMA busy_timeout
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def _snapshot(store: Store) -> dict[str, int]:
    with store.session() as s:
        return {name: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in (("debunks", Debunk), ("claims", Claim), ("reviews", Review), ("audit", AuditEvent),
                                    ("webhooks", WebhookDelivery), ("outbox", IndexOutbox), ("submissions", PartnerSubmission))}


def _csrf(html: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def test_sqlite_locked_past_the_busy_timeout_is_a_clear_error_and_nothing_half_written(tmp_path: Path, store: Store, db_url: str) -> None:
    data = tmp_path / "data"
    env, partner_token, editor_token = seeded_data_dir(data, store, db_url)
    with store.session() as s:
        api_claim, form_claim = list(s.scalars(select(Claim.id).order_by(Claim.id)))[:2]
    lines = (ROOT / "demo" / "debunks.jsonl").read_text("utf-8").splitlines()
    extra = tmp_path / "more.jsonl"
    extra.write_text("\n".join(lines[150:170]) + "\n", "utf-8")
    proc, url = start_server(env, data)
    editor = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {editor_token}"}, timeout=120)
    partner = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {partner_token}"}, timeout=120)
    browser = httpx.Client(base_url=url, timeout=120, headers={"Accept": "text/html"})
    try:
        r = browser.post("/login", data={"username": "ed", "password": PASSWORD, "next": "/queue",
                                         "csrf_token": _csrf(browser.get("/login").text)})
        assert r.status_code == 303, r.text[:300]
        page = browser.get(f"/claims/{form_claim}").text
        form = {"csrf_token": _csrf(page), "version": re.search(r'name="version" value="(\d+)"', page).group(1)}  # type: ignore[union-attr]
        api_version = editor.get(f"/api/v1/claims/{api_claim}").json()["version"]
        before = _snapshot(store)

        calls: dict[str, Callable[[], Any]] = {
            "import": lambda: piyao(env, "debunks", "import", str(extra), timeout=120),
            "review": lambda: editor.post(f"/api/v1/claims/{api_claim}/review", json={"verdict": "rumor", "expected_version": api_version}),
            "intake": lambda: partner.post("/api/v1/claims", json={"items": [{"external_id": "locked-1", "text": "网传喝醋可以软化血管，每天一杯"}]}),
            "form": lambda: browser.post(f"/claims/{form_claim}/dismiss", data=form),
        }
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(data / "piyao.db")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            started = time.monotonic()
            results: dict[str, Any] = {}
            threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, f())) for k, f in calls.items()]
            for t in threads:
                t.start()
            # Reads go on meanwhile (WAL).
            assert editor.get(f"/api/v1/claims/{api_claim}").status_code == 200
            for t in threads:
                t.join(BUSY_TIMEOUT_S * 3)
            waited = time.monotonic() - started
            assert set(results) == set(calls) and locker.poll() is None  # all answered while the lock was still held
        finally:
            if locker.poll() is None:
                assert locker.stdin is not None
                locker.stdin.write("release\n")
                locker.stdin.close()
            locker.wait(10)
        assert waited >= BUSY_TIMEOUT_S - 1

        line = one_error_line(results["import"])
        assert "database is locked" in line and "run the command again" in line
        for name in ("review", "intake"):
            r = results[name]
            assert r.status_code == 503 and r.headers["content-type"].startswith("application/json"), (name, r.status_code, r.text[:300])
            assert r.json() == {"detail": "数据库正被其他进程占用，本次操作没有保存任何内容，请稍后重试"}
            assert r.headers["retry-after"] == "5"
        r = results["form"]
        assert r.status_code == 503 and r.headers["content-type"].startswith("text/html"), (r.status_code, r.text[:300])
        assert "数据库正被其他进程占用" in r.text and "Traceback" not in r.text and "OperationalError" not in r.text
        assert _snapshot(store) == before  # nothing half-written

        # Released: the same operations succeed.
        res = piyao(env, "debunks", "import", str(extra), "--json")
        assert res.returncode == 0, res.stderr
        imported = json.loads(res.stdout)["imported"]
        assert imported > 10
        r = editor.post(f"/api/v1/claims/{api_claim}/review", json={"verdict": "rumor", "expected_version": api_version})
        assert r.status_code == 200, r.text
        r = partner.post("/api/v1/claims", json={"items": [{"external_id": "locked-1", "text": "网传喝醋可以软化血管，每天一杯"}]})
        assert r.status_code == 200 and r.json()["items"][0]["new"] is True, r.text
        r = browser.post(f"/claims/{form_claim}/dismiss", data=form)
        assert r.status_code == 303, r.text[:300]
    finally:
        for c in (editor, partner, browser):
            c.close()
        stop(proc)
    after = _snapshot(store)
    assert after["reviews"] == before["reviews"] + 2 and after["debunks"] == before["debunks"] + imported
    assert after["submissions"] == before["submissions"] + 1 and after["claims"] == before["claims"] + 1
    integrity_ok(data / "piyao.db")
    assert_agree(env)
