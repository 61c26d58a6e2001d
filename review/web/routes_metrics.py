"""Prometheus metrics at ``/metrics``, read from the store at scrape time.

Crawls, the scheduler and the web app run in different processes, so in-process counters would
miss most of what happens: ``StoreCollector`` counts the rows instead (crawl runs, scheduled
runs, claims, the queue, the index outbox, reviews, webhook deliveries, alerts) each time
Prometheus scrapes. The route needs a viewer: Prometheus scrapes with a viewer's API token
(``piyao tokens add --user <viewer>``; ``authorization: {type: Bearer, credentials: …}`` in the
scrape config, see docs/operations.md). When the store cannot be read, ``piyao_store_up`` is 0
and the other store metrics are left out, rather than the scrape failing.

``RequestMetrics`` is an ASGI middleware counting the web app's own requests and their latency
(``piyao_http_requests_total``, ``piyao_http_request_duration_seconds``) by method, route
template and status; once added to the app, ``/metrics`` includes them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Iterable, Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from review.accounts import Identity
from review.web.security import check_csrf, require
from store.db import Store
from store.models import (
    Alert,
    Claim,
    CrawlRun,
    Debunk,
    IndexOutbox,
    Review,
    ScheduleRun,
    WebhookDelivery,
)

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

# Hours from a claim's first sighting to its first review: an hour … a month.
LATENCY_BUCKETS = (1.0, 3.0, 6.0, 12.0, 24.0, 48.0, 72.0, 168.0, 336.0, 720.0)


def _epoch(value: dt.datetime | None) -> float | None:
    """A stored naive-UTC time as Unix seconds."""
    return value.replace(tzinfo=dt.timezone.utc).timestamp() if value is not None else None


def _add_times(family: GaugeMetricFamily, rows: Iterable[Any]) -> None:
    """One sample per (label, time) row, as Unix seconds; rows without a time are left out."""
    for label, at in rows:
        stamp = _epoch(at)
        if stamp is not None:
            family.add_metric([str(label)], stamp)


def _histogram(values: list[float], bounds: tuple[float, ...]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative buckets (with +Inf) and the sum, as HistogramMetricFamily takes them."""
    counts = [0] * len(bounds)
    for v in values:
        for i, b in enumerate(bounds):
            if v <= b:
                counts[i] += 1
    buckets = [(floatToGoString(b), float(c)) for b, c in zip(bounds, counts)] + [("+Inf", float(len(values)))]
    return buckets, float(sum(values))


class StoreCollector(Collector):
    """Every piyao metric that lives in the database, computed per scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("piyao_store_up", "1 when the database answered this scrape, else 0.")
        started = time.perf_counter()
        try:
            families = list(self._families())
        except Exception as exc:  # noqa: BLE001 - a scrape reports the outage instead of failing
            log.warning("metrics: cannot read the store: %s: %s", exc.__class__.__name__, str(exc).splitlines()[:1])
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families
        took = GaugeMetricFamily("piyao_metrics_collect_seconds", "Seconds spent reading the store for this scrape.")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self) -> Iterator[Metric]:
        with self.store.session() as s:
            # Crawl runs (every spider run, scheduled or by hand).
            runs = CounterMetricFamily("piyao_crawl_runs", "Crawl runs by spider and final status.", labels=["spider", "status"])
            pages = CounterMetricFamily("piyao_crawl_pages", "Pages fetched by crawl runs.", labels=["spider"])
            items = CounterMetricFamily("piyao_crawl_items", "Items (claims and debunks) stored by crawl runs.", labels=["spider"])
            errors = CounterMetricFamily("piyao_crawl_errors", "Errors logged by crawl runs.", labels=["spider"])
            new_claims = CounterMetricFamily("piyao_crawl_new_claims", "New claims stored by crawl runs.", labels=["spider"])
            for spider, status, n in s.execute(
                select(CrawlRun.spider, CrawlRun.status, func.count()).group_by(CrawlRun.spider, CrawlRun.status)
            ):
                runs.add_metric([spider, status or ""], float(n))
            for spider, p, i, e, c in s.execute(
                select(CrawlRun.spider, func.sum(CrawlRun.pages), func.sum(CrawlRun.items), func.sum(CrawlRun.errors),
                       func.sum(CrawlRun.new_claims)).group_by(CrawlRun.spider)
            ):
                pages.add_metric([spider], float(p or 0))
                items.add_metric([spider], float(i or 0))
                errors.add_metric([spider], float(e or 0))
                new_claims.add_metric([spider], float(c or 0))
            yield from (runs, pages, items, errors, new_claims)

            # Scheduled runs: history and the last run per schedule.
            sruns = CounterMetricFamily("piyao_schedule_runs", "Scheduled runs by schedule and status.", labels=["schedule", "status"])
            for schedule, status, n in s.execute(
                select(ScheduleRun.schedule_id, ScheduleRun.status, func.count())
                .group_by(ScheduleRun.schedule_id, ScheduleRun.status)
            ):
                sruns.add_metric([schedule, status], float(n))
            last = GaugeMetricFamily("piyao_schedule_last_run_timestamp_seconds",
                                     "When the schedule's latest run started (Unix time).", labels=["schedule"])
            _add_times(last, s.execute(
                select(ScheduleRun.schedule_id, func.max(ScheduleRun.started_at)).group_by(ScheduleRun.schedule_id)
            ))
            ok = GaugeMetricFamily("piyao_schedule_last_success_timestamp_seconds",
                                   "When the schedule's latest finished run ended (Unix time).", labels=["schedule"])
            _add_times(ok, s.execute(
                select(ScheduleRun.schedule_id, func.max(ScheduleRun.finished_at))
                .where(ScheduleRun.status == "finished").group_by(ScheduleRun.schedule_id)
            ))
            running = GaugeMetricFamily("piyao_schedule_running", "Scheduled runs going on now.", labels=["schedule"])
            for schedule, n in s.execute(
                select(ScheduleRun.schedule_id, func.count()).where(ScheduleRun.status == "running")
                .group_by(ScheduleRun.schedule_id)
            ):
                running.add_metric([schedule], float(n))
            yield from (sruns, last, ok, running)

            # Claims, the review queue, debunks.
            total = s.scalar(select(func.count()).select_from(Claim)) or 0
            classified = s.scalar(select(func.count()).select_from(Claim).where(Claim.classified_at.is_not(None))) or 0
            flagged = s.scalar(select(func.count()).select_from(Claim).where(Claim.flagged.is_(True))) or 0
            for name, doc, value in (
                ("piyao_claims", "Claims stored.", total),
                ("piyao_claims_classified", "Claims the classifier has scored.", classified),
                ("piyao_claims_flagged", "Claims the classifier flagged as likely rumors.", flagged),
            ):
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], float(value))
                yield g
            by_status = GaugeMetricFamily("piyao_claims_by_status", "Claims by review status.", labels=["status"])
            counts: dict[str, int] = {}
            queued = urgent = 0
            for status, is_urgent, n in s.execute(
                select(Claim.status, Claim.urgent, func.count()).group_by(Claim.status, Claim.urgent)
            ):
                counts[status or ""] = counts.get(status or "", 0) + int(n)
                if status == "queued":
                    queued += int(n)
                    urgent += int(n) if is_urgent else 0
            for status, n in sorted(counts.items()):
                by_status.add_metric([status], float(n))
            yield by_status
            q = GaugeMetricFamily("piyao_queue_size", "Claims waiting for an editor (status queued).")
            q.add_metric([], float(queued))
            qu = GaugeMetricFamily("piyao_queue_urgent", "Queued claims marked urgent (应急科普).")
            qu.add_metric([], float(urgent))
            d = GaugeMetricFamily("piyao_debunks", "Debunk articles stored.")
            d.add_metric([], float(s.scalar(select(func.count()).select_from(Debunk)) or 0))
            yield from (q, qu, d)

            # The index outbox: writes stored but not yet in the search index.
            backlog = GaugeMetricFamily("piyao_index_outbox_backlog", "Index writes waiting in the outbox.")
            backlog.add_metric([], float(s.scalar(select(func.count()).select_from(IndexOutbox)) or 0))
            retrying = GaugeMetricFamily("piyao_index_outbox_retrying", "Outbox writes that failed at least once.")
            retrying.add_metric([], float(s.scalar(select(func.count()).select_from(IndexOutbox).where(IndexOutbox.attempts > 0)) or 0))
            yield from (backlog, retrying)

            # Review latency: first sighting → first review, per reviewed claim.
            hours = []
            first_review = (select(Review.claim_id, func.min(Review.created_at).label("at"))
                            .group_by(Review.claim_id).subquery())
            for seen, at in s.execute(select(Claim.first_seen, first_review.c.at).join(first_review, first_review.c.claim_id == Claim.id)):
                if seen is not None and at is not None:
                    hours.append(max(0.0, (at - seen).total_seconds() / 3600))
            buckets, total_hours = _histogram(hours, LATENCY_BUCKETS)
            latency = HistogramMetricFamily("piyao_review_latency_hours",
                                            "Hours from a claim's first sighting to its first review.")
            latency.add_metric([], buckets, total_hours)
            yield latency

            # Partner webhook deliveries and alerts.
            hooks = GaugeMetricFamily("piyao_webhook_deliveries", "Partner webhook calls by status (pending, delivered, failed).",
                                      labels=["status"])
            seen_status = set()
            for status, n in s.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)):
                hooks.add_metric([status], float(n))
                seen_status.add(status)
            for status in ("pending", "failed"):
                if status not in seen_status:
                    hooks.add_metric([status], 0.0)
            alerts = CounterMetricFamily("piyao_alerts", "Alerts raised by rule and status (sent, failed, suppressed, logged).",
                                         labels=["rule", "status"])
            for rule, status, n in s.execute(select(Alert.rule, Alert.status, func.count()).group_by(Alert.rule, Alert.status)):
                alerts.add_metric([rule, status], float(n))
            last_alert = GaugeMetricFamily("piyao_alert_last_timestamp_seconds", "When the latest alert of each rule was raised.",
                                           labels=["rule"])
            _add_times(last_alert, s.execute(select(Alert.rule, func.max(Alert.created_at)).group_by(Alert.rule)))
            yield from (hooks, alerts, last_alert)


class RequestMetrics:
    """ASGI middleware: requests and their latency by method, route template and status (this process only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("piyao_http_requests", "HTTP requests served by this web process.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("piyao_http_request_duration_seconds", "Time to answer HTTP requests (this web process).",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        if app is not None:
            app.state.request_metrics = self
        status = {"code": 500}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.requests.labels(method, route, str(status["code"])).inc()
            self.latency.labels(method, route).observe(time.perf_counter() - started)


@router.get("/metrics")
def metrics(request: Request, me: Identity = Depends(require("viewer"))) -> Response:
    """Prometheus text exposition of the store's metrics (and the request metrics, when the middleware runs)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(request.app.state.store))
    body = generate_latest(registry)
    extra: Any = getattr(request.app.state, "request_metrics", None)
    if isinstance(extra, RequestMetrics):
        body += generate_latest(extra.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
