"""kill -9 of `piyao serve` in the middle of partner intake and editor decisions: what was answered is kept,
nothing is half-written, and the store and the index agree after `piyao index`.

A real server (uvicorn, its own process) over a seeded data dir on SQLite and on PostgreSQL gets a stream of
partner intake calls (two clients) and editor decisions on the claims they return (one client), until some of
each have been answered; then it is killed with SIGKILL while requests are in flight. Before anything touches
the store again:

- every intake that got a 2xx answer is stored as answered (claim, partner submission, score, matches);
- every decision that got a 2xx answer is stored with its claim status, its audit event and its webhook row;
- nothing is half-written: reviews, claim.reviewed audit events and webhook rows go one for one, per claim;
  every queued claim has its claim.queued audit event; every claim is in the index or in the outbox
  (`piyao check` agrees, pending counted apart).

Then the server is started again, the intakes that got no answer are sent again (the API is idempotent per
external_id: each ends as one claim) and after `piyao index` the check agrees with nothing pending.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from store.db import Store, open_store
from store.models import AuditEvent, Claim, ClaimMatch, Partner, PartnerSubmission, Review, WebhookDelivery
from tests.faults.tools import assert_agree, check, integrity_ok, seeded_data_dir, start_server, stop

# Kill once this many intakes and decisions have been answered (both streams keep going until the kill).
KILL_AFTER_INTAKES = 8
KILL_AFTER_REVIEWS = 4
TEXTS = [
    "网传每天喝{n}杯淡盐水可以降血压，医生都不告诉你",
    "隔夜菜千万不能吃，第{n}位网友吃了以后查出癌症",
    "手机放在枕边{n}厘米以内，辐射会致癌",
    "吃味精会导致脱发，第{n}个案例已经证实",
    "量子水杯连续喝{n}天能治百病",
]
VERDICTS = ["rumor", "credible", "misleading", "unproven"]


class Stream:
    """Intake and decision clients against one server, recording every request and its outcome."""

    def __init__(self, url: str, partner_token: str, editor_token: str) -> None:
        self.url = url
        self.partner = {"Authorization": f"Bearer {partner_token}"}
        self.editor = {"Authorization": f"Bearer {editor_token}"}
        self.lock = threading.Lock()
        self.intakes: list[dict[str, Any]] = []
        self.reviews: list[dict[str, Any]] = []
        self.to_review: queue.Queue[int] = queue.Queue()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._intake, args=(w,), daemon=True) for w in range(2)]
        self.threads.append(threading.Thread(target=self._review, daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.halt.set()
        for t in self.threads:
            t.join(60)

    def answered(self, which: str) -> int:
        with self.lock:
            return sum(1 for r in getattr(self, which) if r["status"] is not None and 200 <= r["status"] < 300)

    def _intake(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, headers=self.partner, timeout=60) as client:
            i = 0
            while not self.halt.is_set():
                n = worker * 1000 + i
                rec: dict[str, Any] = {"external_id": f"post-{n}", "text": TEXTS[i % len(TEXTS)].format(n=n), "status": None}
                with self.lock:
                    self.intakes.append(rec)
                try:
                    r = client.post("/api/v1/claims", json={"items": [{"external_id": rec["external_id"], "text": rec["text"]}]})
                    rec["body"] = r.json()
                    rec["status"] = r.status_code
                    if r.status_code == 200:
                        self.to_review.put(rec["body"]["items"][0]["claim_id"])
                except httpx.HTTPError as exc:  # the server died under this request: its outcome is unknown
                    rec["error"] = repr(exc)
                    time.sleep(0.05)
                i += 1

    def _review(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.editor, timeout=60) as client:
            i = 0
            while not self.halt.is_set():
                try:
                    claim_id = self.to_review.get(timeout=0.1)
                except queue.Empty:
                    continue
                rec: dict[str, Any] = {"claim_id": claim_id, "verdict": VERDICTS[i % len(VERDICTS)], "status": None}
                with self.lock:
                    self.reviews.append(rec)
                try:
                    got = client.get(f"/api/v1/claims/{claim_id}")
                    if got.status_code != 200:
                        rec["status"], rec["body"] = got.status_code, got.text
                        continue
                    version = got.json()["version"]
                    r = client.post(f"/api/v1/claims/{claim_id}/review", json={"verdict": rec["verdict"], "expected_version": version})
                    rec["body"] = r.json()
                    rec["status"] = r.status_code
                except httpx.HTTPError as exc:
                    rec["error"] = repr(exc)
                    time.sleep(0.05)
                finally:
                    i += 1


def _assert_nothing_half_written(store: Store) -> None:
    """Per claim: reviews, claim.reviewed events and webhook rows (partner claims) one for one; queued claims audited."""
    with store.session() as s:
        acme = s.scalar(select(Partner.id).where(Partner.name == "acme"))
        reviews = Counter(s.scalars(select(Review.claim_id)))
        reviewed = Counter(s.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "claim.reviewed")))
        assert reviews == reviewed
        partner_claims = set(s.scalars(select(PartnerSubmission.claim_id).where(PartnerSubmission.partner_id == acme)))
        hooks = Counter(d.payload["claim_id"] for d in s.scalars(select(WebhookDelivery).where(WebhookDelivery.partner_id == acme)))
        assert hooks == Counter({c: n for c, n in reviews.items() if c in partner_claims})
        queued_events = set(s.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "claim.queued")))
        ever_queued = set(s.scalars(select(Claim.id).where(Claim.id.in_(partner_claims), Claim.flagged.is_(True))))
        assert ever_queued <= queued_events
        # One claim per partner post: no duplicate submission, no submission without its claim.
        subs = s.execute(select(PartnerSubmission.external_id, func.count()).group_by(PartnerSubmission.external_id)).all()
        assert all(n == 1 for _, n in subs)
        assert s.scalar(select(func.count()).select_from(PartnerSubmission).outerjoin(Claim, Claim.id == PartnerSubmission.claim_id)
                        .where(Claim.id.is_(None))) == 0


def _assert_answers_kept(store: Store, stream: Stream) -> None:
    """Every 2xx answer is in the store, as answered."""
    with store.session() as s:
        for rec in stream.intakes:
            if rec["status"] != 200:
                continue
            item = rec["body"]["items"][0]
            sub = s.scalar(select(PartnerSubmission).where(PartnerSubmission.external_id == rec["external_id"]))
            assert sub is not None and sub.claim_id == item["claim_id"], rec
            claim = s.get(Claim, item["claim_id"])
            assert claim is not None and claim.text == rec["text"]
            assert claim.score is not None and round(float(claim.score), 4) == item["score"]
            stored = s.scalars(select(ClaimMatch.debunk_id).where(ClaimMatch.claim_id == claim.id).order_by(ClaimMatch.rank)).all()
            assert list(stored) == [m["debunk_id"] for m in item["matches"]]
        for rec in stream.reviews:
            if rec["status"] != 200:
                continue
            body = rec["body"]
            review = s.get(Review, body["review_id"])
            assert review is not None and review.claim_id == rec["claim_id"] and review.verdict == rec["verdict"]
            claim = s.get(Claim, rec["claim_id"])
            assert claim is not None and claim.version >= body["version"]
            events = s.scalars(select(AuditEvent).where(AuditEvent.action == "claim.reviewed", AuditEvent.object_id == claim.id)).all()
            assert any((e.new or {}).get("review_id") == review.id and (e.new or {}).get("status") == body["status"] for e in events)
            hooks = [d for d in s.scalars(select(WebhookDelivery)) if d.payload.get("claim_id") == claim.id]
            assert hooks, rec


def test_kill_9_of_the_server_mid_stream_keeps_every_answer(tmp_path: Path, db_url: str, store: Store) -> None:
    data = tmp_path / "data"
    env, partner_token, editor_token = seeded_data_dir(data, store, db_url)
    proc, url = start_server(env, data)
    stream = Stream(url, partner_token, editor_token)
    try:
        stream.start()
        deadline = time.monotonic() + 60
        while stream.answered("intakes") < KILL_AFTER_INTAKES or stream.answered("reviews") < KILL_AFTER_REVIEWS:
            assert proc.poll() is None, (data / "server.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, (stream.answered("intakes"), stream.answered("reviews"), stream.reviews[:2])
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        stream.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    unanswered = [r for r in stream.intakes if r["status"] is None]
    assert unanswered, "the kill found no intake in flight"
    assert all(r["status"] in (200, None) for r in stream.intakes), [r for r in stream.intakes if r["status"] not in (200, None)]
    assert all(r["status"] in (200, None) for r in stream.reviews), [r for r in stream.reviews if r["status"] not in (200, None)]

    # The store as the kill left it (on SQLite: opened without migrating, as a reader).
    if db_url.startswith("sqlite"):
        integrity_ok(data / "piyao.db")
    killed = open_store(db_url, migrate=False)
    try:
        _assert_answers_kept(killed, stream)
        _assert_nothing_half_written(killed)
    finally:
        killed.close()
    rc, report = check(env)  # before any repair: every stored claim is indexed or pending
    # The differences first: a long report is cut short in pytest's summary line.
    assert rc == 0 and report["agree"], ({k: report[k] for k in ("missing", "extra", "stale", "pending")}, report)

    # Restarted, the server finishes the calls that got no answer (idempotent per external_id).
    proc, url = start_server(env, data)
    try:
        with httpx.Client(base_url=url, headers=stream.partner, timeout=60) as client:
            for rec in unanswered:
                r = client.post("/api/v1/claims", json={"items": [{"external_id": rec["external_id"], "text": rec["text"]}]})
                assert r.status_code == 200, r.text
                rec["status"], rec["body"] = 200, r.json()
    finally:
        stop(proc)
    after = open_store(db_url, migrate=False)
    try:
        _assert_answers_kept(after, stream)
        _assert_nothing_half_written(after)
        with after.session() as s:
            sent = {r["external_id"] for r in stream.intakes}
            assert set(s.scalars(select(PartnerSubmission.external_id))) == sent
    finally:
        after.close()
    report = assert_agree(env)
    assert report["store"]["claim"]["count"] == 5 + len(sent)
    if db_url.startswith("sqlite"):
        integrity_ok(data / "piyao.db")
    print(f"killed after {stream.answered('intakes')} answered intakes ({len(unanswered)} unanswered, sent again) "
          f"and {stream.answered('reviews')} answered decisions of {len(stream.reviews)}")
