"""Signed webhook callbacks to partner platforms.

When an editor decides on a claim that partners pushed through the API, ``enqueue_decision`` adds one
``WebhookDelivery`` row per partner in the same transaction as the decision (an outbox: a partner's
outage or our restart loses nothing). ``deliver_pending`` posts the due rows, signed:

    X-Piyao-Event: claim.reviewed
    X-Piyao-Delivery: <row id>            (the same id on every retry of one call)
    X-Piyao-Timestamp: <unix seconds>
    X-Piyao-Signature: sha256=<hex HMAC-SHA256(partner.webhook_secret, "<timestamp>.<body>")>

A 2xx answer delivers the row; anything else is tried again after 30 s, 60 s, 120 s … until
web.webhook_max_attempts, then the row is ``failed``. ``verify_signature`` is the partners' side
(docs/api.md). The server sends from a thread (``start_delivery_thread``); ``piyao webhooks send``
makes one pass from the command line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from settings import Settings
from store.db import Store
from store.models import Claim, ClaimMatch, Debunk, Partner, PartnerSubmission, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

__all__ = ["enqueue_decision", "decision_payload", "payload_body", "sign", "verify_signature", "backoff",
           "deliver_pending", "list_deliveries", "DeliveryThread", "start_delivery_thread", "stop_delivery_thread"]


def decision_payload(session: Session, claim: Claim, submission: PartnerSubmission) -> dict[str, Any]:
    """What a partner learns about its post: our verdict, status and the debunks an editor linked."""
    linked = session.execute(
        select(ClaimMatch, Debunk).join(Debunk, Debunk.id == ClaimMatch.debunk_id)
        .where(ClaimMatch.claim_id == claim.id, ClaimMatch.linked.is_(True)).order_by(ClaimMatch.rank)
    ).all()
    from store.models import Review

    review = session.scalar(select(Review).where(Review.claim_id == claim.id).order_by(Review.id.desc()).limit(1))
    return {
        "external_id": submission.external_id,
        "claim_id": claim.id,
        "status": claim.status,
        "verdict": review.verdict if review is not None else None,
        "urgent": bool(claim.urgent),
        "decided_at": (review.created_at.isoformat() + "Z") if review is not None else None,
        "debunks": [{"id": d.id, "title": d.title, "url": d.url, "source": d.source} for _, d in linked],
    }


def enqueue_decision(session: Session, claim: Claim, *, event: str = "claim.reviewed") -> int:
    """Queue one callback per partner that submitted ``claim`` (call inside the decision's transaction)."""
    session.flush()
    n = 0
    rows = session.execute(
        select(PartnerSubmission, Partner).join(Partner, Partner.id == PartnerSubmission.partner_id)
        .where(PartnerSubmission.claim_id == claim.id)
    ).all()
    for sub, partner in rows:
        if partner.disabled or not partner.webhook_url:
            continue
        session.add(WebhookDelivery(partner_id=partner.id, event=event, payload=decision_payload(session, claim, sub),
                                    status="pending", attempts=0, next_attempt_at=utcnow()))
        n += 1
    return n


# --------------------------------------------------------------------------- signing
SIGNATURE_PREFIX = "sha256="
# Backoff after a failed attempt: 30 s, then doubling (30, 60, 120 … seconds).
BACKOFF_BASE_S = 30.0
# A row being sent is leased for this long past the timeout: a crashed sender's row is retried after it.
LEASE_MARGIN_S = 60.0
BATCH = 100


def payload_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact UTF-8 JSON with sorted keys."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: the X-Piyao-Signature header."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes | str, header: str, *,
                     tolerance_s: float | None = 300.0, now: float | None = None) -> bool:
    """True when ``header`` (X-Piyao-Signature) signs ``timestamp`` (X-Piyao-Timestamp) and ``body``.

    For partners to copy: it needs only the standard library. ``body`` must be the raw request body,
    byte for byte (parse the JSON after verifying). ``tolerance_s``: refuse timestamps further than
    this from ``now`` (default: the clock), so a captured call cannot be replayed later; None skips it.
    """
    if not isinstance(timestamp, str) or not timestamp.isdigit() or not isinstance(header, str):
        return False
    if tolerance_s is not None:
        clock = time.time() if now is None else now
        if abs(clock - int(timestamp)) > tolerance_s:
            return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(SIGNATURE_PREFIX + expected, header.strip())


# --------------------------------------------------------------------------- delivery
def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: 30 s, 60 s, 120 s …"""
    return dt.timedelta(seconds=BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


def _lease(store: Store, row_id: int, now: dt.datetime, until: dt.datetime) -> bool:
    """Take a due row for this sender (compare-and-set on next_attempt_at): two senders (the server's thread and
    ``piyao webhooks send``) never post the same row at once."""
    with store.session() as s:
        res = s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row_id, WebhookDelivery.status == "pending",
                   or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now))
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(res, "rowcount", 0) == 1)


def _post(client: httpx.Client, url: str, secret: str, row_id: int, event: str, body: bytes) -> str | None:
    """POST one signed call; None when the partner answered 2xx, else what went wrong (one line)."""
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "piyao-webhooks/1",
        "X-Piyao-Event": event,
        "X-Piyao-Delivery": str(row_id),
        "X-Piyao-Timestamp": str(ts),
        "X-Piyao-Signature": sign(secret, ts, body),
    }
    try:
        r = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"[:500] or exc.__class__.__name__
    if 200 <= r.status_code < 300:
        return None
    return f"HTTP {r.status_code}"


def deliver_pending(store: Store, settings: Settings, *, now: dt.datetime | None = None,
                    client: httpx.Client | None = None, limit: int = BATCH) -> dict[str, int]:
    """One pass over the due outbox rows: POST each signed payload to its partner's webhook_url.

    2xx: delivered. Anything else (an error status, a timeout, a refused connection): attempts + 1 and
    the next try after an exponential backoff from 30 s, or ``failed`` after web.webhook_max_attempts.
    ``now`` (naive UTC) decides which rows are due and when they are tried again (tests pass a clock);
    the signed X-Piyao-Timestamp is always the real time. Returns counts: delivered, retry, failed.
    """
    web = settings.web
    now = now or utcnow()
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    with store.session() as s:
        due = s.execute(
            select(WebhookDelivery.id).where(WebhookDelivery.status == "pending",
                                             or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        ).scalars().all()
    if not due:
        return counts
    own = client is None
    http = client or httpx.Client(timeout=web.webhook_timeout, follow_redirects=False)
    try:
        for row_id in due:
            if not _lease(store, row_id, now, now + dt.timedelta(seconds=web.webhook_timeout + LEASE_MARGIN_S)):
                continue  # another sender took it
            with store.session() as s:
                row = s.get(WebhookDelivery, row_id)
                partner = s.get(Partner, row.partner_id) if row is not None else None
                if row is None:
                    continue
                target = (partner.webhook_url, partner.webhook_secret or "") if partner is not None and not partner.disabled else None
                event, body = row.event, payload_body(row.payload)
            if target is None or not target[0]:
                error: str | None = "the partner is disabled or has no webhook URL"
                give_up = True
            else:
                error = _post(http, target[0], target[1], row_id, event, body)
                give_up = False
            with store.session() as s:
                row = s.get(WebhookDelivery, row_id)
                if row is None:
                    continue
                row.attempts += 1
                if error is None:
                    row.status, row.delivered_at, row.next_attempt_at, row.last_error = "delivered", utcnow(), None, None
                    counts["delivered"] += 1
                elif give_up or row.attempts >= web.webhook_max_attempts:
                    row.status, row.next_attempt_at, row.last_error = "failed", None, error
                    counts["failed"] += 1
                    log.warning("webhook %s to partner %s failed for good: %s", row_id, row.partner_id, error)
                else:
                    row.next_attempt_at, row.last_error = now + backoff(row.attempts), error
                    counts["retry"] += 1
    finally:
        if own:
            http.close()
    return counts


def list_deliveries(store: Store, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Outbox rows, newest first, with the partner's name (for ``piyao webhooks list``)."""
    with store.session() as s:
        q = select(WebhookDelivery, Partner.name).join(Partner, Partner.id == WebhookDelivery.partner_id)
        if status:
            q = q.where(WebhookDelivery.status == status)
        rows = s.execute(q.order_by(WebhookDelivery.id.desc()).limit(limit)).all()
        return [{"id": d.id, "partner": name, "event": d.event, "status": d.status, "attempts": d.attempts,
                 "created_at": d.created_at, "next_attempt_at": d.next_attempt_at, "delivered_at": d.delivered_at,
                 "last_error": d.last_error, "external_id": (d.payload or {}).get("external_id")} for d, name in rows]


# --------------------------------------------------------------------------- the server's sender thread
class DeliveryThread(threading.Thread):
    """Calls ``deliver_pending`` every ``interval`` seconds until stopped; an error is logged, never fatal."""

    def __init__(self, store: Store, settings: Settings, *, interval: float = 5.0) -> None:
        super().__init__(name="piyao-webhooks", daemon=True)
        self.store, self.settings, self.interval = store, settings, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                deliver_pending(self.store, self.settings)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the sender
                log.exception("webhook delivery pass failed")
            self._stop_event.wait(self.interval)

    def stop(self, timeout: float | None = None) -> None:
        self._stop_event.set()
        self.join(timeout)


def start_delivery_thread(app: Any, *, interval: float = 5.0) -> DeliveryThread:
    """Start the app's webhook sender (``app.state.webhook_thread``); a running one is returned as is."""
    with _thread_lock:
        running = getattr(app.state, "webhook_thread", None)
        if isinstance(running, DeliveryThread) and running.is_alive():
            return running
        thread = DeliveryThread(app.state.store, app.state.settings, interval=interval)
        app.state.webhook_thread = thread
        thread.start()
        return thread


def stop_delivery_thread(app: Any, *, timeout: float | None = None) -> None:
    """Stop the app's webhook sender, waiting for a pass in progress (at most ``timeout`` seconds)."""
    with _thread_lock:
        thread = getattr(app.state, "webhook_thread", None)
        app.state.webhook_thread = None
    if isinstance(thread, DeliveryThread):
        thread.stop(timeout if timeout is not None else thread.settings.web.webhook_timeout * 2 + 5)


_thread_lock = threading.Lock()
