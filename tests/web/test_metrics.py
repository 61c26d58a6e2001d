"""/metrics: Prometheus text read from the store at scrape time, for viewers and their API tokens only."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from review.accounts import create_token
from review.web.routes_metrics import RequestMetrics
from store.db import Store
from store.models import Alert, Claim, CrawlRun, Debunk, IndexOutbox, Review, ScheduleRun, WebhookDelivery

T0 = dt.datetime(2026, 11, 1, 0, 0, 0)


def scrape(client: TestClient, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _claim(s: Any, n: int, *, status: str = "new", urgent: bool = False, classified: bool = False,
           flagged: bool = False, first_seen: dt.datetime = T0) -> Claim:
    c = Claim(source="weibo", external_id=f"m{n}-{uuid.uuid4().hex[:6]}", text=f"说法 {n}", content_hash=f"{n:064d}",
              status=status, urgent=urgent, flagged=flagged, first_seen=first_seen, last_seen=first_seen,
              classified_at=T0 if classified else None, score=0.9 if classified else None)
    s.add(c)
    s.flush()
    return c


def _world(store: Store, partner_id: int) -> None:
    with store.session() as s:
        s.add_all([
            CrawlRun(spider="piyao_org_cn", status="finished", pages=10, items=8, errors=1, new_claims=0),
            CrawlRun(spider="piyao_org_cn", status="finished", pages=5, items=4, errors=0, new_claims=0),
            CrawlRun(spider="weibo", status="failed", pages=2, items=0, errors=3, new_claims=0),
        ])
        for i, (schedule, status, started) in enumerate([
            ("nightly", "finished", T0), ("nightly", "failed", T0 + dt.timedelta(days=1)),
            ("weekly", "running", T0 + dt.timedelta(days=2)),
        ]):
            s.add(ScheduleRun(run_key=str(uuid.uuid4()), schedule_id=schedule, spider="piyao_org_cn", trigger="schedule",
                              status=status, started_at=started,
                              finished_at=started + dt.timedelta(hours=1) if status != "running" else None))
        a = _claim(s, 1, status="queued", classified=True, flagged=True)
        _claim(s, 2, status="queued", urgent=True, classified=True, flagged=True)
        b = _claim(s, 3, status="confirmed", classified=True)
        _claim(s, 4)
        # First reviews 2 h and 30 h after the first sighting; a later second review does not count.
        s.add_all([Review(claim_id=a.id, editor="ed", decision="queued", created_at=T0 + dt.timedelta(hours=2)),
                   Review(claim_id=b.id, editor="ed", decision="confirmed", created_at=T0 + dt.timedelta(hours=30)),
                   Review(claim_id=b.id, editor="eve", decision="confirmed", created_at=T0 + dt.timedelta(hours=300))])
        s.add(Debunk(url="https://example.org/d", title="辟谣", source="example", text="…", content_hash="e" * 64))
        s.add_all([IndexOutbox(doc_kind="claim", doc_id=a.id, op="upsert"),
                   IndexOutbox(doc_kind="claim", doc_id=b.id, op="upsert", attempts=2, last_error="down")])
        s.add_all([WebhookDelivery(partner_id=partner_id, event="claim.reviewed", payload={}, status="pending"),
                   WebhookDelivery(partner_id=partner_id, event="claim.reviewed", payload={}, status="failed"),
                   WebhookDelivery(partner_id=partner_id, event="claim.reviewed", payload={}, status="delivered")])
        s.add_all([Alert(rule="failure", subject="schedule:nightly", fingerprint="f" * 64, status="sent", title="t",
                         created_at=T0),
                   Alert(rule="failure", subject="schedule:nightly", fingerprint="f" * 64, status="suppressed", title="t",
                         created_at=T0 + dt.timedelta(hours=1)),
                   Alert(rule="surge", subject="cluster:1", fingerprint="c" * 64, status="failed", title="t", created_at=T0)])


def ts(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.timezone.utc).timestamp()


def test_metrics_read_the_store_at_scrape_time(client: TestClient, store: Store, accounts: dict[str, Any]) -> None:
    _world(store, accounts["acme_id"])
    _, token = create_token(store, user="vic", note="prometheus")
    m = scrape(client, token)

    assert m[("piyao_store_up", ())] == 1
    assert m[("piyao_crawl_runs_total", (("spider", "piyao_org_cn"), ("status", "finished")))] == 2
    assert m[("piyao_crawl_runs_total", (("spider", "weibo"), ("status", "failed")))] == 1
    assert m[("piyao_crawl_pages_total", (("spider", "piyao_org_cn"),))] == 15
    assert m[("piyao_crawl_items_total", (("spider", "piyao_org_cn"),))] == 12
    assert m[("piyao_crawl_errors_total", (("spider", "weibo"),))] == 3
    assert m[("piyao_schedule_runs_total", (("schedule", "nightly"), ("status", "failed")))] == 1
    assert m[("piyao_schedule_last_run_timestamp_seconds", (("schedule", "nightly"),))] == ts(T0 + dt.timedelta(days=1))
    assert m[("piyao_schedule_last_success_timestamp_seconds", (("schedule", "nightly"),))] == ts(T0 + dt.timedelta(hours=1))
    assert ("piyao_schedule_last_success_timestamp_seconds", (("schedule", "weekly"),)) not in m
    assert m[("piyao_schedule_running", (("schedule", "weekly"),))] == 1

    assert m[("piyao_claims", ())] == 4
    assert m[("piyao_claims_classified", ())] == 3
    assert m[("piyao_claims_flagged", ())] == 2
    assert m[("piyao_claims_by_status", (("status", "queued"),))] == 2
    assert m[("piyao_queue_size", ())] == 2
    assert m[("piyao_queue_urgent", ())] == 1
    assert m[("piyao_debunks", ())] == 1
    assert m[("piyao_index_outbox_backlog", ())] == 2
    assert m[("piyao_index_outbox_retrying", ())] == 1

    # Review latency: 2 h and 30 h.
    assert m[("piyao_review_latency_hours_count", ())] == 2
    assert m[("piyao_review_latency_hours_sum", ())] == 32
    assert m[("piyao_review_latency_hours_bucket", (("le", "1.0"),))] == 0
    assert m[("piyao_review_latency_hours_bucket", (("le", "3.0"),))] == 1
    assert m[("piyao_review_latency_hours_bucket", (("le", "24.0"),))] == 1
    assert m[("piyao_review_latency_hours_bucket", (("le", "48.0"),))] == 2
    assert m[("piyao_review_latency_hours_bucket", (("le", "+Inf"),))] == 2

    assert m[("piyao_webhook_deliveries", (("status", "pending"),))] == 1
    assert m[("piyao_webhook_deliveries", (("status", "failed"),))] == 1
    assert m[("piyao_alerts_total", (("rule", "failure"), ("status", "sent")))] == 1
    assert m[("piyao_alerts_total", (("rule", "failure"), ("status", "suppressed")))] == 1
    assert m[("piyao_alerts_total", (("rule", "surge"), ("status", "failed")))] == 1
    assert m[("piyao_alert_last_timestamp_seconds", (("rule", "failure"),))] == ts(T0 + dt.timedelta(hours=1))

    # Written by another process between two scrapes: the next scrape sees it.
    with store.session() as s:
        _claim(s, 5, status="queued")
        s.add(CrawlRun(spider="weibo", status="finished", pages=1, items=1, errors=0, new_claims=1))
    m2 = scrape(client, token)
    assert m2[("piyao_queue_size", ())] == 3 and m2[("piyao_claims", ())] == 5
    assert m2[("piyao_crawl_runs_total", (("spider", "weibo"), ("status", "finished")))] == 1


def test_an_empty_store_still_exposes_the_gauges(client: TestClient, store: Store, accounts: dict[str, Any]) -> None:
    _, token = create_token(store, user="vic")
    m = scrape(client, token)
    assert m[("piyao_store_up", ())] == 1 and m[("piyao_queue_size", ())] == 0
    assert m[("piyao_review_latency_hours_count", ())] == 0
    assert m[("piyao_webhook_deliveries", (("status", "pending"),))] == 0


def test_who_may_scrape(client: TestClient, store: Store, accounts: dict[str, Any],
                        login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    r = client.get("/metrics")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {accounts['acme_token']}"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer py_made_up"}).status_code == 303
    assert client.get("/metrics", headers={"Authorization": f"Bearer {accounts['ed_token']}"}).status_code == 200
    viewer, _ = login_as("viewer")
    r = viewer.get("/metrics")
    assert r.status_code == 200 and "piyao_queue_size" in r.text


def test_request_metrics_count_the_apps_own_requests(app: Any, store: Store, accounts: dict[str, Any]) -> None:
    if not any(m.cls is RequestMetrics for m in app.user_middleware):
        app.add_middleware(RequestMetrics)
    _, token = create_token(store, user="vic")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        assert c.get("/login").status_code == 200
        assert c.get("/no/such/page").status_code == 404
        m = scrape(c, token)
        m = scrape(c, token)  # the first scrape is counted in the second
    assert m[("piyao_http_requests_total", (("method", "GET"), ("route", "/login"), ("status", "200")))] == 1
    assert m[("piyao_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert m[("piyao_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))] == 1
    assert m[("piyao_http_request_duration_seconds_count", (("method", "GET"), ("route", "/login")))] == 1
