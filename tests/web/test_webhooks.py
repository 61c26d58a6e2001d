"""Signed webhook delivery against real HTTP receivers on loopback: signed, retried with backoff, given up."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from review.accounts import create_partner
from review.decisions import record_decision
from review.webhooks import (
    backoff,
    deliver_pending,
    payload_body,
    sign,
    start_delivery_thread,
    stop_delivery_thread,
    verify_signature,
)
from settings import load_settings
from store.db import Store
from store.models import Claim, PartnerSubmission, WebhookDelivery, utcnow
from store.records import ClaimIn
from store.writes import add_claim

MAX_ATTEMPTS = 3


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    return load_settings(data_dir=tmp_path / "data", environ={
        "PIYAO_STORE__URL": db_url, "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789",
        "PIYAO_WEB__WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "PIYAO_WEB__WEBHOOK_TIMEOUT": "1",
    })


class Receiver:
    """A partner's webhook endpoint: a real HTTP server on a free loopback port that records each call."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.calls.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/piyao-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def decided_claim(store: Store, webhook_url: str, *, name: str = "hooked") -> tuple[str, int]:
    """A partner with ``webhook_url``, a claim it submitted, and an editor's decision: one outbox row.
    Returns (the partner's signing secret, the row id)."""
    partner, secret = create_partner(store, name, webhook_url=webhook_url)
    with store.session() as s:
        claim, _ = add_claim(s, ClaimIn(source=f"partner:{name}", text=f"喝板蓝根能预防一切病毒（{name}）", external_id="post-77"))
        claim.status = "queued"
        s.add(PartnerSubmission(partner_id=partner.id, claim_id=claim.id, external_id="post-77"))
        s.flush()
        claim_id = claim.id
    record_decision(store, claim_id, "rumor", editor="ed", note="板蓝根不能预防病毒")
    with store.session() as s:
        rows = s.scalars(select(WebhookDelivery).where(WebhookDelivery.partner_id == partner.id)).all()
        assert len(rows) == 1 and rows[0].status == "pending"
        return secret, rows[0].id


def row(store: Store, row_id: int) -> WebhookDelivery:
    with store.session() as s:
        r = s.get(WebhookDelivery, row_id)
        assert r is not None
        return r


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_decision_is_delivered_signed(store: Store, settings: Any, receiver: Receiver) -> None:
    secret, row_id = decided_claim(store, receiver.url)
    assert deliver_pending(store, settings) == {"delivered": 1, "retry": 0, "failed": 0}
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    h, body = call["headers"], call["body"]
    assert call["path"] == "/piyao-hook" and h["content-type"].startswith("application/json")
    assert h["x-piyao-event"] == "claim.reviewed" and h["x-piyao-delivery"] == str(row_id)
    assert abs(int(h["x-piyao-timestamp"]) - time.time()) < 60
    assert h["x-piyao-signature"].startswith("sha256=") and len(h["x-piyao-signature"]) == 7 + 64
    # The partner's side: the signature checks out over the raw body, and only with the right secret.
    assert verify_signature(secret, h["x-piyao-timestamp"], body, h["x-piyao-signature"])
    assert not verify_signature("another secret", h["x-piyao-timestamp"], body, h["x-piyao-signature"])
    assert not verify_signature(secret, h["x-piyao-timestamp"], body.replace(b"rumor", b"credi"), h["x-piyao-signature"])
    assert not verify_signature(secret, str(int(h["x-piyao-timestamp"]) + 1), body, h["x-piyao-signature"])
    # A captured call replayed an hour later is refused.
    assert not verify_signature(secret, h["x-piyao-timestamp"], body, h["x-piyao-signature"], now=time.time() + 3600)
    payload = json.loads(body)
    assert payload["external_id"] == "post-77" and payload["verdict"] == "rumor" and payload["status"] == "confirmed"
    r = row(store, row_id)
    assert r.status == "delivered" and r.attempts == 1 and r.delivered_at is not None and r.last_error is None
    # Delivered rows are not sent again.
    assert deliver_pending(store, settings) == {"delivered": 0, "retry": 0, "failed": 0}
    assert len(receiver.calls) == 1


def test_signature_helpers_agree() -> None:
    body = payload_body({"b": 1, "a": "谣言"})
    assert body == '{"a":"谣言","b":1}'.encode()
    header = sign("s3cret", 1700000000, body)
    assert verify_signature("s3cret", "1700000000", body, header, now=1700000100)
    assert verify_signature("s3cret", "1700000000", body.decode(), header, tolerance_s=None)
    assert not verify_signature("s3cret", "1700000000", body, header, now=1700000400)
    assert not verify_signature("s3cret", "17e8", body, header, tolerance_s=None)
    assert not verify_signature("s3cret", "1700000000", body, "sha1=" + header[7:], tolerance_s=None)
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(store: Store, settings: Any) -> None:
    failing = Receiver(status=500)
    try:
        _, row_id = decided_claim(store, failing.url)
        T0 = utcnow().replace(microsecond=0) + dt.timedelta(seconds=1)  # a controlled clock from now on
        assert deliver_pending(store, settings, now=T0) == {"delivered": 0, "retry": 1, "failed": 0}
        r = row(store, row_id)
        assert r.status == "pending" and r.attempts == 1 and r.last_error == "HTTP 500"
        assert r.next_attempt_at == T0 + dt.timedelta(seconds=30)
        # Not due yet: nothing is sent.
        assert deliver_pending(store, settings, now=T0 + dt.timedelta(seconds=29)) == {"delivered": 0, "retry": 0, "failed": 0}
        assert len(failing.calls) == 1
        t1 = T0 + dt.timedelta(seconds=30)
        assert deliver_pending(store, settings, now=t1)["retry"] == 1
        r = row(store, row_id)
        assert r.attempts == 2 and r.next_attempt_at == t1 + dt.timedelta(seconds=60)
        t2 = t1 + dt.timedelta(seconds=60)
        assert deliver_pending(store, settings, now=t2) == {"delivered": 0, "retry": 0, "failed": 1}
        r = row(store, row_id)
        assert r.status == "failed" and r.attempts == MAX_ATTEMPTS and r.next_attempt_at is None
        assert len(failing.calls) == MAX_ATTEMPTS
        # Every retry is the same call: same delivery id, same payload.
        assert len({c["headers"]["x-piyao-delivery"] for c in failing.calls}) == 1
        assert len({c["body"] for c in failing.calls}) == 1
        # Given up: never sent again.
        assert deliver_pending(store, settings, now=t2 + dt.timedelta(days=1)) == {"delivered": 0, "retry": 0, "failed": 0}
        assert len(failing.calls) == MAX_ATTEMPTS
    finally:
        failing.close()


def test_an_unreachable_or_slow_receiver_is_retried(store: Store, settings: Any) -> None:
    _, row_id = decided_claim(store, f"http://127.0.0.1:{free_port()}/hook")
    assert deliver_pending(store, settings) == {"delivered": 0, "retry": 1, "failed": 0}
    r = row(store, row_id)
    assert r.attempts == 1 and r.last_error is not None and "Connect" in r.last_error
    slow = Receiver(delay=3.0)  # longer than web.webhook_timeout (1 s here)
    try:
        _, slow_id = decided_claim(store, slow.url, name="slowpoke")
        started = time.monotonic()
        counts = deliver_pending(store, settings)
        assert time.monotonic() - started < 2.9
        assert counts["retry"] == 1 and len(slow.calls) == 1
        assert "Timeout" in (row(store, slow_id).last_error or "")
    finally:
        slow.close()


def test_a_second_sender_does_not_post_a_row_taken_by_the_first(store: Store, settings: Any) -> None:
    slow = Receiver(delay=0.5)
    try:
        decided_claim(store, slow.url)
        results: list[dict[str, int]] = []
        threads = [threading.Thread(target=lambda: results.append(deliver_pending(store, settings))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(r["delivered"] for r in results) == 1 and len(slow.calls) == 1
    finally:
        slow.close()


def test_the_server_thread_delivers_in_the_background(store: Store, settings: Any, receiver: Receiver) -> None:
    from review.web import create_app

    _, row_id = decided_claim(store, receiver.url)
    app = create_app(settings, store=store)
    thread = start_delivery_thread(app, interval=0.1)
    try:
        assert start_delivery_thread(app) is thread  # one sender per app
        deadline = time.monotonic() + 20
        while row(store, row_id).status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row(store, row_id).status == "delivered" and len(receiver.calls) == 1
    finally:
        stop_delivery_thread(app)
        app.state.heavy.close()
    assert not thread.is_alive() and app.state.webhook_thread is None


def test_cli_sends_and_lists(store: Store, settings: Any, receiver: Receiver, db_url: str, tmp_path: Path) -> None:
    from pipeline import cli

    _, row_id = decided_claim(store, receiver.url)
    env = {"PIYAO_STORE__URL": db_url}
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "webhooks", "list", "--json"], env=env)
    assert res.exit_code == 0, res.output
    listed = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(x["id"], x["partner"], x["status"], x["external_id"]) for x in listed] == [(row_id, "hooked", "pending", "post-77")]
    res = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "webhooks", "send"], env=env)
    assert res.exit_code == 0, res.output
    assert "delivered 1" in res.stdout and len(receiver.calls) == 1
    res = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "webhooks", "list", "--status", "pending", "--json"], env=env)
    assert res.exit_code == 0 and res.stdout.strip() == ""
    res = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "webhooks", "list", "--status", "delivered", "--json"], env=env)
    assert res.exit_code == 0 and [json.loads(line)["id"] for line in res.stdout.splitlines()] == [row_id]
    res = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "webhooks", "list"], env=env)
    assert res.exit_code == 0 and str(row_id) in res.stdout
    res = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "webhooks", "list", "--status", "lost"], env=env)
    assert res.exit_code == 2


def test_rows_of_a_disabled_partner_fail_without_a_call(store: Store, settings: Any, receiver: Receiver) -> None:
    from store.models import Partner

    _, row_id = decided_claim(store, receiver.url)
    with store.session() as s:
        p = s.scalar(select(Partner).where(Partner.name == "hooked"))
        assert p is not None
        p.disabled = True
    assert deliver_pending(store, settings) == {"delivered": 0, "retry": 0, "failed": 1}
    assert receiver.calls == [] and row(store, row_id).status == "failed"
    with store.session() as s:
        assert s.scalar(select(Claim.status).where(Claim.external_id == "post-77")) == "confirmed"
