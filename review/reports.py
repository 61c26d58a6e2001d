"""科普统计、监测评估: the weekly and monthly rumor reports editors send upward (``piyao report``).

A report covers one period of Asia/Shanghai days (UTC+8; every stored time is naive UTC): an ISO
week (``2026-W48``: Monday to Sunday) or a month (``2026-11``), and compares it with the period
before (the previous week or month). It is written as Markdown (PNG charts beside it), as one
self-contained HTML file (charts embedded as ``data:`` URIs, a CSP meta tag, no script) and as CSV
tables (UTF-8 with a BOM, for Excel).

Sections and definitions:

* **figures** (this period and the previous one): *new claims* first seen in the period, of which
  *flagged* by the classifier; *claims seen*: distinct claims with a sighting in the period (old
  claims seen again count) and the *sightings* they add up to (``sightings`` log); *reviews*:
  editors' decisions made in the period, and the distinct claims *confirmed* as rumors,
  *dismissed* and marked *needs a new debunk* by them (a claim decided twice counts under both);
  *time to review*: hours from first seen to first review, for the claims first reviewed in the
  period (``review.stats.review_times``: median and p90); *new debunks*: debunks added to the store
  in the period (``Debunk.created_at``).
* **top rumor clusters**: one row per claim cluster (or lone claim) that has a rumor-like claim
  (flagged, or confirmed / needs_debunk by an editor; ``review.stats``' definition), ranked by its
  sightings in the period (those of its claims an editor has not dismissed), then by the increase
  over the previous period, then by the lowest claim id. Each row: the representative claim (the
  cluster's first claim unless dismissed), topic, the strongest status of its claims and the latest
  editor's verdict, sightings in this and the previous period and the change in percent (None: not
  seen before, "新出现"), the cluster's sources, and the debunks that answer it: linked by an
  editor (or named in a review) first, then matching's ``auto`` links, best score first.
* **new debunks**: title, source, URL, verdict, counts by source.
* **gaps**: ``review.gaps.list_gaps`` as of the period's end, its growth window the period's length
  (so growth compares the period with the equally long span before it: for a month, the 28 to 31
  days before), leaving out rumors first seen after the period. Statuses are today's: a gap
  answered since is no longer listed.
* **per topic / per source**: claims first seen in the period (``review.stats.per_topic`` /
  ``per_source``): all, flagged, now confirmed, now dismissed.

Crawled text is hostile: HTML goes through Jinja2's autoescape, Markdown escapes every markup
character, links are only http(s) in both, and CSV cells that a spreadsheet would run as a formula
get a leading ``'``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import jinja2
from markupsafe import Markup
from sqlalchemy import case, distinct, func, or_, select
from sqlalchemy.orm import Session

from classifier.labels import TOPICS, VERDICTS
from classifier.report import cjk_font
from review.gaps import Gap, list_gaps
from review.stats import (
    OFFSET,
    StatsRange,
    _cell,
    _http,
    _md,
    _md_url,
    _rumor_like,
    per_source,
    per_topic,
    review_times,
    shanghai_date,
    shanghai_day,
)
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, Review, Sighting, utcnow

__all__ = ["KINDS", "FORMATS", "PeriodError", "Period", "parse_period", "default_period", "week_period",
           "month_period", "ClusterRow", "DebunkRow", "Report", "build_report", "render_markdown", "render_html",
           "render_csv", "render_charts", "write_report", "FIGURES"]

KINDS = ("weekly", "monthly")
FORMATS = ("md", "html", "csv")
TEMPLATES = Path(__file__).resolve().parent / "report_templates"
# As the web app shows them (review/web/app.py), without importing the web stack.
STATUS_NAMES = {"new": "新收录", "queued": "待审核", "confirmed": "已确认谣言", "dismissed": "已排除",
                "needs_debunk": "待写辟谣"}
# The strongest status of a cluster's claims names the cluster's.
STATUS_ORDER = ("confirmed", "needs_debunk", "queued", "new")
TEXT_CHARS = 120  # claim text in Markdown and HTML tables (CSV keeps up to CSV_TEXT_CHARS)
CSV_TEXT_CHARS = 1000
DEBUNKS_PER_ROW = 5
CHART_CLUSTERS = 5  # lines in the sightings-per-day chart
CHART_SOURCES = 15
NEW_DEBUNKS_LISTED = 500  # rows of the new-debunk list (the counts cover all of them)
GAPS_LISTED = 20
_CHUNK = 500

# (key, Chinese name) of each figure, in the order the reports show them.
FIGURES: list[tuple[str, str]] = [
    ("new_claims", "新发现说法"),
    ("flagged", "其中疑似谣言（模型标记）"),
    ("claims_seen", "被看到的说法（含再次出现）"),
    ("sightings", "传播次数"),
    ("reviews", "审核次数"),
    ("confirmed", "确认为谣言（说法数）"),
    ("dismissed", "排除为误报（说法数）"),
    ("needs_debunk", "需写新辟谣（说法数）"),
    ("first_reviews", "首次审核的说法"),
    ("review_median_hours", "审核用时中位数（小时）"),
    ("review_p90_hours", "审核用时 P90（小时）"),
    ("new_debunks", "新增辟谣文章"),
]


# --------------------------------------------------------------------------- periods
class PeriodError(ValueError):
    """A period that is not a valid ISO week or month; the message is one line for the CLI."""


@dataclass(frozen=True)
class Period:
    """Shanghai days ``first`` … ``last`` of one ISO week or one month."""

    kind: str  # weekly | monthly
    label: str  # 2026-W48 | 2026-11
    first: dt.date
    last: dt.date

    @property
    def range(self) -> StatsRange:
        return StatsRange(self.first, self.last)

    @property
    def start(self) -> dt.datetime:
        """Naive UTC, inclusive."""
        return self.range.start

    @property
    def end(self) -> dt.datetime:
        """Naive UTC, exclusive."""
        return self.range.end

    @property
    def title(self) -> str:
        if self.kind == "weekly":
            year, week, _ = self.first.isocalendar()
            return f"{year} 年第 {week} 周"
        return f"{self.first.year} 年 {self.first.month} 月"

    @property
    def name(self) -> str:
        return "周报" if self.kind == "weekly" else "月报"

    def days(self) -> list[str]:
        return self.range.days()

    def previous(self) -> Period:
        """The week or month before."""
        before = self.first - dt.timedelta(days=1)
        return week_period(before) if self.kind == "weekly" else month_period(before)


def week_period(day: dt.date) -> Period:
    """The ISO week (Monday to Sunday) that holds ``day``."""
    year, week, weekday = day.isocalendar()
    first = day - dt.timedelta(days=weekday - 1)
    return Period("weekly", f"{year}-W{week:02d}", first, first + dt.timedelta(days=6))


def month_period(day: dt.date) -> Period:
    """The calendar month that holds ``day``."""
    first = day.replace(day=1)
    nxt = dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return Period("monthly", f"{first.year}-{first.month:02d}", first, nxt - dt.timedelta(days=1))


_WEEK = re.compile(r"(\d{4})-W(\d{1,2})")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


def parse_period(kind: str, text: str) -> Period:
    """``2026-W48`` for a weekly report, ``2026-11`` for a monthly one; PeriodError otherwise."""
    if kind not in KINDS:
        raise PeriodError(f"unknown report kind {kind!r}; expected weekly or monthly")
    raw = (text or "").strip()
    if kind == "weekly":
        m = _WEEK.fullmatch(raw.upper())
        if not m:
            raise PeriodError(f"bad period {raw!r}: a weekly report needs an ISO week YYYY-Www, e.g. 2026-W48")
        year, week = int(m.group(1)), int(m.group(2))
        _check_year(raw, year)
        weeks = dt.date(year, 12, 28).isocalendar()[1]  # 28 December always lies in the year's last ISO week
        if not 1 <= week <= weeks:
            raise PeriodError(f"bad period {raw!r}: ISO year {year} has weeks 01 to {weeks}")
        return week_period(dt.date.fromisocalendar(year, week, 1))
    m = _MONTH.fullmatch(raw)
    if not m:
        raise PeriodError(f"bad period {raw!r}: a monthly report needs a month YYYY-MM, e.g. 2026-11")
    year, month = int(m.group(1)), int(m.group(2))
    _check_year(raw, year)
    if not 1 <= month <= 12:
        raise PeriodError(f"bad period {raw!r}: the month must be 01 to 12")
    return month_period(dt.date(year, month, 1))


def _check_year(raw: str, year: int) -> None:
    if not 2000 <= year <= 2100:
        raise PeriodError(f"bad period {raw!r}: the year must be 2000 to 2100")


def default_period(kind: str, now: dt.datetime | None = None) -> Period:
    """The last complete week or month in Asia/Shanghai before ``now`` (naive UTC; default: now)."""
    today = shanghai_date(now or utcnow())
    if kind == "weekly":
        return week_period(today - dt.timedelta(days=today.weekday() + 1))
    if kind == "monthly":
        return month_period(today.replace(day=1) - dt.timedelta(days=1))
    raise PeriodError(f"unknown report kind {kind!r}; expected weekly or monthly")


# --------------------------------------------------------------------------- the report's data
@dataclass
class ClusterRow:
    rank: int
    claim_id: int
    cluster_id: int | None
    text: str
    topic: str | None
    topic_name: str
    status: str
    status_name: str
    verdict: str | None
    verdict_name: str
    sightings: int  # in the period
    previous: int  # in the previous period
    growth_pct: float | None  # change over the previous period in percent; None: not seen then
    total_sightings: int
    size: int
    sources: list[str]
    debunks: list[dict[str, Any]]  # {"id", "title", "url", "source", "how": linked | auto}
    daily: list[int]  # sightings per Shanghai day of the period


@dataclass
class DebunkRow:
    id: int
    title: str
    source: str
    url: str
    verdict: str | None
    verdict_name: str
    published: str  # YYYY-MM-DD or ""
    added: str  # Shanghai time, YYYY-MM-DD HH:MM


@dataclass
class Report:
    period: Period
    previous: Period
    generated_at: dt.datetime  # naive UTC
    figures: dict[str, Any]
    previous_figures: dict[str, Any]
    clusters: list[ClusterRow]
    new_debunks: list[DebunkRow]
    debunks_by_source: list[tuple[str, int]]
    gaps: list[Gap]
    topics: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def basename(self) -> str:
        return f"report-{self.period.label}"


def _chunks(ids: Iterable[int], n: int = _CHUNK) -> Iterable[list[int]]:
    items = sorted(set(ids))
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _topic_name(code: str | None) -> str:
    return TOPICS.get(code, code) if code else "未分类"


def _figures(s: Session, period: Period) -> dict[str, Any]:
    """The period's figures (see the module doc)."""
    start, end = period.start, period.end
    new_claims, flagged = s.execute(
        select(func.count(), func.sum(case((Claim.flagged.is_(True), 1), else_=0)))
        .where(Claim.first_seen >= start, Claim.first_seen < end)
    ).one()
    seen, sightings = s.execute(
        select(func.count(distinct(Sighting.claim_id)), func.sum(Sighting.count))
        .where(Sighting.seen_at >= start, Sighting.seen_at < end)
    ).one()
    reviews = s.scalar(select(func.count()).select_from(Review).where(Review.created_at >= start, Review.created_at < end))
    decided = dict(s.execute(
        select(Review.decision, func.count(distinct(Review.claim_id)))
        .where(Review.created_at >= start, Review.created_at < end)
        .group_by(Review.decision)
    ).all())
    times = review_times(s, period.range)["overall"]
    new_debunks = s.scalar(select(func.count()).select_from(Debunk).where(Debunk.created_at >= start, Debunk.created_at < end))
    return {
        "new_claims": int(new_claims or 0),
        "flagged": int(flagged or 0),
        "claims_seen": int(seen or 0),
        "sightings": int(sightings or 0),
        "reviews": int(reviews or 0),
        "confirmed": int(decided.get("confirmed", 0)),
        "dismissed": int(decided.get("dismissed", 0)),
        "needs_debunk": int(decided.get("needs_debunk", 0)),
        "first_reviews": int(times["n"]),
        "review_median_hours": times["median_hours"],
        "review_p90_hours": times["p90_hours"],
        "new_debunks": int(new_debunks or 0),
    }


Key = tuple[str, int]  # ("cluster", cluster id) or ("claim", claim id)


def _key(claim_id: int, cluster_id: int | None) -> Key:
    return ("cluster", cluster_id) if cluster_id is not None else ("claim", claim_id)


def _growth_pct(recent: int, previous: int) -> float | None:
    return None if previous <= 0 else round((recent - previous) / previous * 100, 1)


def _top_clusters(s: Session, period: Period, previous: Period, limit: int) -> list[ClusterRow]:
    """The period's rumor clusters ranked by sightings (see the module doc)."""
    start, end = period.start, period.end
    counts: dict[Key, list[int]] = {}
    rumor: set[Key] = set()
    for cid, cluster_id, recent, before, is_rumor in s.execute(
        select(
            Claim.id,
            Claim.cluster_id,
            func.sum(case((Sighting.seen_at >= start, Sighting.count), else_=0)),
            func.sum(case((Sighting.seen_at < start, Sighting.count), else_=0)),
            func.max(case((_rumor_like(), 1), else_=0)),
        )
        .join(Claim, Claim.id == Sighting.claim_id)
        .where(Sighting.seen_at >= previous.start, Sighting.seen_at < end, Claim.status != "dismissed")
        .group_by(Claim.id, Claim.cluster_id)
    ):
        k = _key(cid, cluster_id)
        tally = counts.setdefault(k, [0, 0, cid])
        tally[0] += int(recent or 0)
        tally[1] += int(before or 0)
        tally[2] = min(tally[2], cid)
        if is_rumor:
            rumor.add(k)
    # A cluster whose rumor-like claim was not seen in these weeks still counts (its variants were).
    unsure = [k[1] for k, t in counts.items() if k not in rumor and k[0] == "cluster" and t[0] > 0]
    for chunk in _chunks(unsure):
        rumor.update(("cluster", int(x)) for x in s.scalars(
            select(Claim.cluster_id).where(Claim.cluster_id.in_(chunk), _rumor_like()).distinct()) if x is not None)
    ranked = sorted((k for k in rumor if counts[k][0] > 0),
                    key=lambda k: (-counts[k][0], -(counts[k][0] - counts[k][1]), counts[k][2]))[:limit]
    if not ranked:
        return []

    # Members (claims not dismissed) of the ranked clusters.
    members: dict[Key, list[Claim]] = {}
    cluster_ids = [k[1] for k in ranked if k[0] == "cluster"]
    lone_ids = [k[1] for k in ranked if k[0] == "claim"]
    for chunk in _chunks(cluster_ids):
        for claim in s.scalars(select(Claim).where(Claim.cluster_id.in_(chunk), Claim.status != "dismissed").order_by(Claim.id)):
            members.setdefault(_key(claim.id, claim.cluster_id), []).append(claim)
    for chunk in _chunks(lone_ids):
        for claim in s.scalars(select(Claim).where(Claim.id.in_(chunk))):
            members.setdefault(("claim", claim.id), []).append(claim)
    key_of = {c.id: k for k, cs in members.items() for c in cs}
    clusters = {c.id: c for chunk in _chunks(cluster_ids) for c in s.scalars(select(ClaimCluster).where(ClaimCluster.id.in_(chunk)))}

    # Sightings per Shanghai day of the period.
    days = period.days()
    index = {d: i for i, d in enumerate(days)}
    daily: dict[Key, list[int]] = {k: [0] * len(days) for k in ranked}
    day = shanghai_day(Sighting.seen_at)
    for chunk in _chunks(key_of):
        for cid, d, n in s.execute(
            select(Sighting.claim_id, day, func.sum(Sighting.count))
            .where(Sighting.claim_id.in_(chunk), Sighting.seen_at >= start, Sighting.seen_at < end)
            .group_by(Sighting.claim_id, day)
        ):
            i = index.get(str(d)[:10])
            if i is not None:
                daily[key_of[cid]][i] += int(n or 0)

    # Verdicts: the latest editor's review of each cluster; debunks: linked, named in reviews, auto-matched.
    verdict: dict[Key, tuple[dt.datetime, int, str | None, str | None]] = {}
    found: dict[Key, dict[int, tuple[int, float, dict[str, Any]]]] = {}
    for chunk in _chunks(key_of):
        for rid, cid, at, v, topic in s.execute(
            select(Review.id, Review.claim_id, Review.created_at, Review.verdict, Review.topic)
            .where(Review.claim_id.in_(chunk), Review.verdict.is_not(None))
        ):
            k = key_of[cid]
            if k not in verdict or (at, rid) > verdict[k][:2]:
                verdict[k] = (at, rid, v, topic)
        for cid, did, linked, decision, score, title, url, source in s.execute(
            select(ClaimMatch.claim_id, ClaimMatch.debunk_id, ClaimMatch.linked, ClaimMatch.decision, ClaimMatch.score,
                   Debunk.title, Debunk.url, Debunk.source)
            .join(Debunk, Debunk.id == ClaimMatch.debunk_id)
            .where(ClaimMatch.claim_id.in_(chunk), or_(ClaimMatch.linked.is_(True), ClaimMatch.decision == "auto"))
        ):
            how = "linked" if linked else "auto"
            _offer(found.setdefault(key_of[cid], {}), did, 0 if linked else 1, float(score or 0.0),
                   {"id": did, "title": title, "url": url, "source": source, "how": how})
        for cid, did, title, url, source in s.execute(
            select(Review.claim_id, Debunk.id, Debunk.title, Debunk.url, Debunk.source)
            .join(Debunk, Debunk.id == Review.debunk_id)
            .where(Review.claim_id.in_(chunk))
        ):
            _offer(found.setdefault(key_of[cid], {}), did, 0, 1.0,
                   {"id": did, "title": title, "url": url, "source": source, "how": "linked"})

    out: list[ClusterRow] = []
    for rank, k in enumerate(ranked, 1):
        recent, before, lowest = counts[k]
        claims = members.get(k) or [c for c in [s.get(Claim, lowest)] if c is not None]
        cluster = clusters.get(k[1]) if k[0] == "cluster" else None
        by_id = {c.id: c for c in claims}
        rep = by_id.get(cluster.representative_claim_id or -1) if cluster is not None else None
        if rep is None:
            rep = max(claims, key=lambda c: (bool(c.flagged) or c.status in ("confirmed", "needs_debunk"),
                                             c.sightings or 0, -c.id))
        status = next((st for st in STATUS_ORDER if any(c.status == st for c in claims)), rep.status)
        _, _, v, review_topic = verdict.get(k, (None, None, None, None))
        topic = rep.topic or review_topic or next((c.topic for c in claims if c.topic), None)
        sources = (list(cluster.source_names) if cluster is not None and cluster.source_names
                   else sorted({c.source for c in claims}))
        debunks = [d for _, _, d in sorted(found.get(k, {}).values(), key=lambda x: (x[0], -x[1], x[2]["id"]))]
        out.append(ClusterRow(
            rank=rank,
            claim_id=rep.id,
            cluster_id=cluster.id if cluster is not None else None,
            text=rep.text,
            topic=topic,
            topic_name=_topic_name(topic),
            status=status,
            status_name=STATUS_NAMES.get(status, status),
            verdict=v,
            verdict_name=VERDICTS.get(v, v) if v else "",
            sightings=recent,
            previous=before,
            growth_pct=_growth_pct(recent, before),
            total_sightings=(max(cluster.sightings or 0, sum(c.sightings or 0 for c in claims)) if cluster is not None
                             else rep.sightings or 0),
            size=cluster.size if cluster is not None else 1,
            sources=sources,
            debunks=debunks[:DEBUNKS_PER_ROW],
            daily=daily[k],
        ))
    return out


def _offer(seen: dict[int, tuple[int, float, dict[str, Any]]], did: int, order: int, score: float,
           item: dict[str, Any]) -> None:
    """Keep the strongest way each debunk answers a cluster: linked beats auto, then the higher score."""
    held = seen.get(did)
    if held is None or (order, -score) < (held[0], -held[1]):
        seen[did] = (order, score, item)


def _new_debunks(s: Session, period: Period, limit: int) -> tuple[list[DebunkRow], list[tuple[str, int]]]:
    n = func.count()
    by_source = [(src, int(c)) for src, c in s.execute(
        select(Debunk.source, n).where(Debunk.created_at >= period.start, Debunk.created_at < period.end)
        .group_by(Debunk.source).order_by(n.desc(), Debunk.source)
    )]
    rows = [
        DebunkRow(id=did, title=title, source=source, url=url, verdict=verdict,
                  verdict_name=VERDICTS.get(verdict, verdict) if verdict else "",
                  published=published.isoformat() if published else "",
                  added=(created + OFFSET).strftime("%Y-%m-%d %H:%M"))
        for did, title, source, url, verdict, published, created in s.execute(
            select(Debunk.id, Debunk.title, Debunk.source, Debunk.url, Debunk.verdict, Debunk.published, Debunk.created_at)
            .where(Debunk.created_at >= period.start, Debunk.created_at < period.end)
            .order_by(Debunk.created_at, Debunk.id).limit(limit)
        )
    ]
    return rows, by_source


def build_report(store: Store, period: Period, *, top: int = 20, gaps: int = GAPS_LISTED,
                 now: dt.datetime | None = None) -> Report:
    """Everything one report shows, read in one pass over the store (see the module doc)."""
    previous = period.previous()
    with store.session() as s:
        figures = _figures(s, period)
        previous_figures = _figures(s, previous)
        clusters = _top_clusters(s, period, previous, top)
        new_debunks, by_source = _new_debunks(s, period, NEW_DEBUNKS_LISTED)
        topics = per_topic(s, period.range)
        sources = per_source(s, period.range, limit=50)
    # gaps.py's windows are (start, end]: one microsecond before the period's end makes them [start, end).
    hours = (period.end - period.start).total_seconds() / 3600
    as_of = period.end - dt.timedelta(microseconds=1)
    gap_list = [g for g in list_gaps(store, now=as_of, window_hours=hours, limit=None) if g.first_seen < period.end]
    notes = []
    if figures["new_debunks"] > len(new_debunks):
        notes.append(f"本期新增辟谣 {figures['new_debunks']} 篇，清单列出最早收录的 {len(new_debunks)} 篇。")
    return Report(period=period, previous=previous, generated_at=now or utcnow(), figures=figures,
                  previous_figures=previous_figures, clusters=clusters, new_debunks=new_debunks,
                  debunks_by_source=by_source, gaps=gap_list[:gaps], topics=topics, sources=sources, notes=notes)


# --------------------------------------------------------------------------- formatting helpers
def _short(text: str, n: int = TEXT_CHARS) -> str:
    one = " ".join((text or "").split())
    return one if len(one) <= n else one[: n - 1] + "…"


def _growth_text(growth_pct: float | None, recent: int) -> str:
    if growth_pct is None:
        return "新出现" if recent > 0 else "—"
    return "持平" if growth_pct == 0 else f"{growth_pct:+.0f}%"


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _change(now: Any, before: Any) -> str:
    if now is None or before is None:
        return "—"
    diff = now - before
    if isinstance(diff, float):
        return f"{diff:+.1f}"
    return f"{diff:+d}" if diff else "0"


def _md_text(text: str, n: int | None = None) -> str:
    """Crawled text for Markdown: every markup character escaped (``&`` too: no entities; ``$``: no math), one line."""
    return _md(_short(text, n) if n else " ".join((text or "").split())).replace("&", "\\&").replace("$", "\\$")


def _md_href(url: str) -> str:
    """An http(s) URL for a Markdown link target: nothing in it can end the link or the table cell."""
    url = "".join(f"%{ord(ch):02X}" if ch.isspace() or ch in "\\`[]" else ch for ch in url)
    return _md_url(url)


def _md_link(title: str, url: str | None) -> str:
    text = _md_text(title or url or "", 80)
    return f"[{text}]({_md_href(url)})" if url and _http(url) and not any(c in url for c in "\r\n\t\x00") else text


def _chart_label(text: str) -> str:
    """Text for matplotlib: an even number of ``$`` would start mathtext (crawled text must not reach its
    parser); escaped, none counts and each shows as a plain ``$``."""
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------- Markdown
def render_markdown(report: Report, charts: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``charts``: chart name → the PNG file name beside it."""
    p, q = report.period, report.previous
    charts = charts or {}
    gen = (report.generated_at + OFFSET).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"# 科学谣言监测{p.name} {p.label}",
        "",
        f"统计时段：{p.title}（{p.first.isoformat()} 至 {p.last.isoformat()}，北京时间）；"
        f"对比上期 {q.label}（{q.first.isoformat()} 至 {q.last.isoformat()}）。生成于 {gen}（北京时间）。",
        "",
        "## 一、总体数据",
        "",
        "| 指标 | 本期 | 上期 | 变化 |",
        "|---|---:|---:|---:|",
    ]
    for key, name in FIGURES:
        now, before = report.figures.get(key), report.previous_figures.get(key)
        lines.append(f"| {name} | {_number(now)} | {_number(before)} | {_change(now, before)} |")
    lines += ["", "## 二、热点谣言（按本期传播次数排序）", ""]
    if "sightings" in charts and report.clusters:
        lines += [f"![热点谣言每日传播次数]({charts['sightings']})", ""]
    if report.clusters:
        lines += ["| 排名 | 说法 | 话题 | 状态 / 结论 | 本期传播 | 上期传播 | 增长 | 变体数 | 来源 | 辟谣文章 |",
                  "|---:|---|---|---|---:|---:|---:|---:|---|---|"]
        for r in report.clusters:
            status = r.status_name + (f" / {r.verdict_name}" if r.verdict_name else "")
            debunks = "<br>".join(_md_link(d["title"], d["url"]) + ("" if d["how"] == "linked" else "（自动匹配）")
                                  for d in r.debunks) or "—"
            lines.append(f"| {r.rank} | {_md_text(r.text, TEXT_CHARS)} (#{r.claim_id}) | {_md_text(r.topic_name)} | "
                         f"{_md_text(status)} | {r.sightings} | {r.previous} | "
                         f"{_growth_text(r.growth_pct, r.sightings)} | {r.size} | "
                         f"{_md_text('、'.join(r.sources), 80)} | {debunks} |")
    else:
        lines.append("本期没有传播中的疑似谣言。")
    lines += ["", "## 三、本期新增辟谣", ""]
    if report.debunks_by_source:
        lines += ["| 来源 | 篇数 |", "|---|---:|"]
        lines += [f"| {_md_text(src)} | {n} |" for src, n in report.debunks_by_source]
        lines += ["", "| 标题 | 来源 | 结论 | 发布日期 | 收录时间 |", "|---|---|---|---|---|"]
        for d in report.new_debunks:
            lines.append(f"| {_md_link(d.title, d.url)} | {_md_text(d.source)} | {_md_text(d.verdict_name) or '—'} | "
                         f"{d.published or '—'} | {d.added} |")
    else:
        lines.append("本期没有新增辟谣文章。")
    lines += ["", "## 四、待写辟谣（缺口）", ""]
    if report.gaps:
        lines += ["| 排名 | 说法 | 话题 | 累计传播 | 本期传播 | 上期传播 | 来源数 | 最接近的辟谣 |",
                  "|---:|---|---|---:|---:|---:|---:|---|"]
        for i, g in enumerate(report.gaps, 1):
            near = g.closest
            closest = f"{_md_link(near['title'], near['url'])}（{near['score']:.2f}）" if near else "—"
            requested = "（编辑要求）" if g.reason == "needs_debunk" else ""
            lines.append(f"| {i} | {_md_text(g.text, TEXT_CHARS)}{requested} (#{g.claim_id}) | {_md_text(_topic_name(g.topic))} | "
                         f"{g.sightings} | {g.recent_sightings} | {g.previous_sightings} | {g.sources} | {closest} |")
    else:
        lines.append("没有待写辟谣的谣言。")
    lines += ["", "## 五、话题与来源（本期新发现说法）", ""]
    if "topics" in charts and report.topics:
        lines += [f"![各话题说法数]({charts['topics']})", ""]
    lines += ["| 话题 | 说法 | 疑似谣言 | 已确认 | 已排除 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {_md_text(t['name'])} | {t['claims']} | {t['flagged']} | {t['confirmed']} | {t['dismissed']} |"
              for t in report.topics] or ["| — | 0 | 0 | 0 | 0 |"]
    lines.append("")
    if "sources" in charts and report.sources:
        lines += [f"![各来源说法数]({charts['sources']})", ""]
    lines += ["| 来源 | 说法 | 疑似谣言 | 已确认 | 已排除 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {_md_text(x['source'])} | {x['claims']} | {x['flagged']} | {x['confirmed']} | {x['dismissed']} |"
              for x in report.sources] or ["| — | 0 | 0 | 0 | 0 |"]
    lines += ["", "## 说明", ""]
    lines += [f"- {_md_text(n)}" for n in [*report.notes, *NOTES]]
    return "\n".join(lines) + "\n"


NOTES = [
    "时间均为北京时间；周为 ISO 周（周一至周日）。",
    "传播次数：采集中每看到一次说法（首次或再次）计一次；热点谣言按同一说法的全部变体合计，已排除的说法不计。",
    "增长：本期传播次数相对上期的变化；上期未出现的记为“新出现”。",
    "确认、排除、需写新辟谣：本期编辑作出该决定的说法数；审核用时：本期首次审核的说法从首次发现到首次审核的小时数。",
    "待写辟谣按累计传播次数与增长排序，状态以生成报告时为准。",
]


# --------------------------------------------------------------------------- HTML
@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(safe_href=_safe_href, short=_short, number=_number, change=_change, growth_text=_growth_text,
                       topic_name=_topic_name)
    return env


def _safe_href(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL without control characters, else None (shown as text)."""
    if not url or not _http(url.strip()) or any(c in url for c in "\r\n\t\x00"):
        return None
    return url.strip()


def render_html(report: Report, charts: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML file: charts as data: URIs, a CSP that allows no script."""
    css = (TEMPLATES / "report.css").read_text("utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; img-src data:; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    images = {name: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for name, png in (charts or {}).items()}
    return _environment().get_template("report.html").render(
        r=report, p=report.period, q=report.previous, css=Markup(css), csp=csp, images=images, figures=FIGURES,
        notes=[*report.notes, *NOTES], text_chars=TEXT_CHARS,
        generated=(report.generated_at + OFFSET).strftime("%Y-%m-%d %H:%M"),
    )


# --------------------------------------------------------------------------- CSV
def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a UTF-8 BOM; text cells cannot start a spreadsheet formula."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(v) if isinstance(v, str) else ("" if v is None else v) for v in row])
    return "\ufeff" + buf.getvalue()


def _links(items: Iterable[dict[str, Any]]) -> str:
    return " | ".join(f"{d['title']} {_safe_href(d['url']) or ''}".strip() for d in items)


def render_csv(report: Report) -> dict[str, str]:
    """The report's tables as CSV files: name → content."""
    p = report.period
    return {
        "figures": _csv(["指标", "代码", p.label, report.previous.label],
                        [(name, key, report.figures.get(key), report.previous_figures.get(key)) for key, name in FIGURES]),
        "clusters": _csv(
            ["排名", "说法编号", "聚类编号", "说法", "话题", "状态", "结论", "本期传播", "上期传播", "增长（%）", "累计传播",
             "变体数", "来源", "辟谣文章"],
            [(r.rank, r.claim_id, r.cluster_id, _short(r.text, CSV_TEXT_CHARS), r.topic_name, r.status_name, r.verdict_name,
              r.sightings, r.previous, r.growth_pct, r.total_sightings, r.size, "、".join(r.sources), _links(r.debunks))
             for r in report.clusters]),
        "new_debunks": _csv(["编号", "标题", "来源", "网址", "结论", "发布日期", "收录时间（北京时间）"],
                            [(d.id, d.title, d.source, _safe_href(d.url) or "", d.verdict_name, d.published, d.added)
                             for d in report.new_debunks]),
        "gaps": _csv(
            ["排名", "说法编号", "说法", "话题", "原因", "累计传播", "本期传播", "上期传播", "来源数", "来源", "最接近的辟谣"],
            [(i, g.claim_id, _short(g.text, CSV_TEXT_CHARS), _topic_name(g.topic),
              "编辑要求" if g.reason == "needs_debunk" else "无辟谣", g.sightings, g.recent_sightings, g.previous_sightings,
              g.sources, "、".join(g.source_names), _links([g.closest]) if g.closest else "")
             for i, g in enumerate(report.gaps, 1)]),
        "topics": _csv(["话题", "代码", "说法", "疑似谣言", "已确认", "已排除"],
                       [(t["name"], t["topic"], t["claims"], t["flagged"], t["confirmed"], t["dismissed"]) for t in report.topics]),
        "sources": _csv(["来源", "说法", "疑似谣言", "已确认", "已排除"],
                        [(x["source"], x["claims"], x["flagged"], x["confirmed"], x["dismissed"]) for x in report.sources]),
    }


# --------------------------------------------------------------------------- charts
def _label(text: str) -> str:
    """Chart text; without a CJK font, CJK characters would be empty boxes, so they become '?'."""
    text = _chart_label(text)
    return text if cjk_font() else "".join(ch if ord(ch) < 0x2E80 else "?" for ch in text)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _rc() -> Any:
    font = cjk_font()
    return {"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"] if font else ["DejaVu Sans"],
            "axes.unicode_minus": False}


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, _label("本期无数据") if cjk_font() else "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def render_charts(report: Report) -> dict[str, bytes]:
    """PNG charts: ``sightings`` (per day, top clusters), ``topics`` and ``sources`` (claims first seen)."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    cjk = cjk_font() is not None
    out: dict[str, bytes] = {}
    days = report.period.days()
    with matplotlib.rc_context(_rc()):
        fig = _figure(8.0, 4.2 + 0.25 * ((min(len(report.clusters), CHART_CLUSTERS) + 1) // 2))
        ax = fig.add_subplot(1, 1, 1)
        rows = report.clusters[:CHART_CLUSTERS]
        if rows and any(any(r.daily) for r in rows):
            x = list(range(len(days)))
            for r in rows:
                name = f"#{r.rank} {_short(r.text, 16)}" if cjk else f"#{r.rank} (claim {r.claim_id})"
                ax.plot(x, r.daily, marker="o", markersize=3, label=_label(name))
            step = max(1, len(days) // 10)
            ax.set_xticks(x[::step], labels=[d[5:] for d in days[::step]])
            ax.set_ylabel(_label("传播次数") if cjk else "sightings")
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
        else:
            _no_data(ax)
        ax.set_title(_label(f"热点谣言每日传播次数 {report.period.label}") if cjk else f"Sightings per day {report.period.label}")
        out["sightings"] = _png(fig)

        for name, items, key, title, limit in (
            ("topics", report.topics, "name", "各话题新发现说法", len(report.topics)),
            ("sources", report.sources, "source", "各来源新发现说法", CHART_SOURCES),
        ):
            shown = list(items)[:limit]
            fig = _figure(8.0, max(2.6, 0.4 * len(shown) + 1.4))
            ax = fig.add_subplot(1, 1, 1)
            if shown:
                labels = [_label(str(t["topic"] if name == "topics" and not cjk else t[key])) for t in shown][::-1]
                y = list(range(len(shown)))
                ax.barh([v + 0.2 for v in y], [t["claims"] for t in shown][::-1], height=0.4,
                        label=_label("全部") if cjk else "all", color="tab:blue")
                ax.barh([v - 0.2 for v in y], [t["flagged"] for t in shown][::-1], height=0.4,
                        label=_label("疑似谣言") if cjk else "flagged", color="tab:red")
                ax.set_yticks(y, labels=labels)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.legend(fontsize=8, loc="lower right")
                ax.grid(True, axis="x", alpha=0.3)
            else:
                _no_data(ax)
            ax.set_title(_label(f"{title} {report.period.label}") if cjk else f"Claims per {name[:-1]} {report.period.label}")
            out[name] = _png(fig)
    return out


# --------------------------------------------------------------------------- writing
def write_report(report: Report, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Write the report in ``formats`` (md, html, csv) into ``out_dir``; returns the paths written."""
    wanted = [f for f in FORMATS if f in set(formats)]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(sorted(unknown))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = report.basename
    written: list[Path] = []
    charts = render_charts(report) if {"md", "html"} & set(wanted) else {}
    if "md" in wanted:
        names = {}
        for name, png in charts.items():
            path = out_dir / f"{base}-{name}.png"
            path.write_bytes(png)
            written.append(path)
            names[name] = path.name
        path = out_dir / f"{base}.md"
        path.write_text(render_markdown(report, names), encoding="utf-8")
        written.append(path)
    if "html" in wanted:
        path = out_dir / f"{base}.html"
        path.write_text(render_html(report, charts), encoding="utf-8")
        written.append(path)
    if "csv" in wanted:
        for name, text in render_csv(report).items():
            path = out_dir / f"{base}-{name}.csv"
            with path.open("w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            written.append(path)
    return written
