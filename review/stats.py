"""科普统计: the figures behind the statistics page and the monthly rumor list (月度辟谣榜).

Days and weeks are Asia/Shanghai days (UTC+8, no daylight saving): every stored time is naive
UTC, and a claim first seen at 2026-11-27 17:00 UTC counts on 2026-11-28. The queries are plain
SQLAlchemy and run on SQLite and PostgreSQL alike; only the Shanghai day of a timestamp needs
SQL of each dialect (``shanghai_day``).

Definitions:

* **claims per day**: claims by the day they were first seen (``Claim.first_seen``), split by
  topic and by classifier label (``none``: not classified yet); **flagged rate**: flagged / all of
  the day (None on a day without claims).
* **top rumor clusters of the week**: clusters (or lone claims) of rumor-like claims (flagged, or
  confirmed / needs_debunk by an editor; dismissed claims never count) ranked by the growth of
  their sightings (``sightings`` log): the sightings of the 7 days ending at the range's end minus
  those of the 7 days before, ties to more recent sightings; only clusters seen in that week.
* **time to review**: hours from a claim's ``first_seen`` to its first ``Review``, by the
  Shanghai week (Monday) of that first review: count, median and p90 (linear interpolation
  between order statistics, as numpy's default).
* **per source**: claims first seen in the range by ``Claim.source``: all, flagged, and those
  now confirmed or dismissed.
* **monthly list**: the rumors confirmed in a month (a claim's first ``confirmed`` review in the
  month, Shanghai time), one row per cluster, ranked by the cluster's sightings logged in that
  month, then its total sightings; with verdict, topic, first seen, sources and the debunks
  linked to it (editor-linked matches and the debunks named in the confirming reviews).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from sqlalchemy import String, and_, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from classifier.labels import DISPLAY_NAMES, TOPICS, VERDICTS
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, Review, Sighting, utcnow

__all__ = [
    "OFFSET", "UNKNOWN", "MAX_RANGE_DAYS", "StatsRange", "default_range", "shanghai_date", "quantile",
    "claims_per_day", "top_clusters", "review_times", "per_source", "per_topic", "stats_data", "MonthlyEntry",
    "month_bounds", "monthly_list", "monthly_csv", "monthly_markdown", "monthly_json",
]

OFFSET = dt.timedelta(hours=8)  # Asia/Shanghai: UTC+8 all year
UNKNOWN = "none"
MAX_RANGE_DAYS = 366
RUMOR_STATUSES = ("confirmed", "needs_debunk")


class shanghai_day(FunctionElement[str]):
    """The Shanghai calendar day of a naive-UTC timestamp column, as 'YYYY-MM-DD' text."""

    type = String()
    inherit_cache = True
    name = "shanghai_day"


@compiles(shanghai_day, "sqlite")
def _day_sqlite(element: shanghai_day, compiler: Any, **kw: Any) -> str:
    return "date(%s, '+8 hours')" % compiler.process(list(element.clauses)[0], **kw)


@compiles(shanghai_day)
def _day_default(element: shanghai_day, compiler: Any, **kw: Any) -> str:  # PostgreSQL
    return "to_char(%s + interval '8 hours', 'YYYY-MM-DD')" % compiler.process(list(element.clauses)[0], **kw)


def shanghai_date(ts: dt.datetime) -> dt.date:
    """The Shanghai day of a naive-UTC timestamp."""
    return (ts + OFFSET).date()


def _utc_start(day: dt.date) -> dt.datetime:
    """The naive-UTC instant at which the Shanghai ``day`` begins."""
    return dt.datetime.combine(day, dt.time()) - OFFSET


@dataclass(frozen=True)
class StatsRange:
    """Shanghai days ``first`` … ``last``, both included."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError("起始日期晚于截止日期")
        if (self.last - self.first).days + 1 > MAX_RANGE_DAYS:
            raise ValueError(f"时间范围最长 {MAX_RANGE_DAYS} 天")

    @property
    def start(self) -> dt.datetime:
        return _utc_start(self.first)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: the start of the day after ``last``."""
        return _utc_start(self.last + dt.timedelta(days=1))

    def days(self) -> list[str]:
        n = (self.last - self.first).days + 1
        return [(self.first + dt.timedelta(days=i)).isoformat() for i in range(n)]


def default_range(now: dt.datetime | None = None, days: int = 30) -> StatsRange:
    """The last ``days`` Shanghai days, today included."""
    today = shanghai_date(now or utcnow())
    return StatsRange(today - dt.timedelta(days=days - 1), today)


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile of ``values`` by linear interpolation between order statistics (None when empty)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _day_str(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def _label_name(code: str) -> str:
    if code == UNKNOWN:
        return "未分类"
    return VERDICTS.get(code) or DISPLAY_NAMES.get(code) or code


def _topic_name(code: str) -> str:
    return "未分类" if code == UNKNOWN else TOPICS.get(code, code)


# --------------------------------------------------------------------------- per day
def claims_per_day(s: Session, rng: StatsRange) -> dict[str, Any]:
    """Claims first seen per Shanghai day: totals, by topic, by label, flagged and the flagged rate."""
    days = rng.days()
    index = {d: i for i, d in enumerate(days)}
    day = shanghai_day(Claim.first_seen)
    totals, flagged = [0] * len(days), [0] * len(days)
    by_topic: dict[str, list[int]] = {}
    by_label: dict[str, list[int]] = {}
    rows = s.execute(
        select(day, Claim.topic, Claim.label, Claim.flagged, func.count())
        .where(Claim.first_seen >= rng.start, Claim.first_seen < rng.end)
        .group_by(day, Claim.topic, Claim.label, Claim.flagged)
    )
    for d, topic, label, is_flagged, n in rows:
        i = index.get(_day_str(d))
        if i is None:
            continue
        totals[i] += n
        if is_flagged:
            flagged[i] += n
        by_topic.setdefault(topic or UNKNOWN, [0] * len(days))[i] += n
        by_label.setdefault(label or UNKNOWN, [0] * len(days))[i] += n
    topic_order = [c for c in [*TOPICS, UNKNOWN] if c in by_topic] + sorted(set(by_topic) - set(TOPICS) - {UNKNOWN})
    label_order = [c for c in [*VERDICTS, *DISPLAY_NAMES, UNKNOWN] if c in by_label]
    label_order = list(dict.fromkeys(label_order)) + sorted(set(by_label) - set(label_order))
    return {
        "days": days,
        "totals": totals,
        "flagged": flagged,
        "flagged_rate": [round(f / t, 4) if t else None for f, t in zip(flagged, totals)],
        "by_topic": [{"code": c, "name": _topic_name(c), "counts": by_topic[c]} for c in topic_order],
        "by_label": [{"code": c, "name": _label_name(c), "counts": by_label[c]} for c in label_order],
    }


# --------------------------------------------------------------------------- top clusters
def _rumor_like() -> Any:
    return and_(or_(Claim.flagged.is_(True), Claim.status.in_(RUMOR_STATUSES)), Claim.status != "dismissed")


def top_clusters(s: Session, week_end: dt.datetime, *, limit: int = 10) -> list[dict[str, Any]]:
    """The rumor clusters whose sightings grew most in the 7 days before ``week_end`` (see the module doc)."""
    recent_from, previous_from = week_end - dt.timedelta(days=7), week_end - dt.timedelta(days=14)
    counts: dict[tuple[str, int], list[int]] = {}
    members: dict[tuple[str, int], list[int]] = {}
    for cid, cluster_id, recent, previous in s.execute(
        select(
            Claim.id,
            Claim.cluster_id,
            func.sum(case((Sighting.seen_at >= recent_from, Sighting.count), else_=0)),
            func.sum(case((Sighting.seen_at < recent_from, Sighting.count), else_=0)),
        )
        .join(Claim, Claim.id == Sighting.claim_id)
        .where(Sighting.seen_at >= previous_from, Sighting.seen_at < week_end, _rumor_like())
        .group_by(Claim.id, Claim.cluster_id)
    ):
        key = ("cluster", cluster_id) if cluster_id is not None else ("claim", cid)
        c = counts.setdefault(key, [0, 0])
        c[0] += int(recent or 0)
        c[1] += int(previous or 0)
        members.setdefault(key, []).append(cid)
    ranked = sorted((k for k, (r, _) in counts.items() if r > 0),
                    key=lambda k: (-(counts[k][0] - counts[k][1]), -counts[k][0], min(members[k])))[:limit]
    out = []
    for key in ranked:
        recent, previous = counts[key]
        cluster = s.get(ClaimCluster, key[1]) if key[0] == "cluster" else None
        rep_id = cluster.representative_claim_id if cluster is not None and cluster.representative_claim_id else min(members[key])
        rep = s.get(Claim, rep_id) or s.get(Claim, min(members[key]))
        assert rep is not None
        out.append({
            "claim_id": rep.id,
            "cluster_id": cluster.id if cluster is not None else None,
            "text": rep.text[:300],
            "topic": rep.topic,
            "topic_name": _topic_name(rep.topic or UNKNOWN),
            "recent": recent,
            "previous": previous,
            "increase": recent - previous,
            "growth": round((recent + 1) / (previous + 1), 3),
            "total": cluster.sightings if cluster is not None else rep.sightings,
            "size": cluster.size if cluster is not None else 1,
        })
    return out


# --------------------------------------------------------------------------- time to review
def _week_of(ts: dt.datetime) -> dt.date:
    d = shanghai_date(ts)
    return d - dt.timedelta(days=d.weekday())


def review_times(s: Session, rng: StatsRange) -> dict[str, Any]:
    """Hours from first seen to first review, per Shanghai week of the first review, and over the range."""
    first_review = func.min(Review.created_at)
    rows = s.execute(
        select(Claim.id, Claim.first_seen, first_review)
        .join(Review, Review.claim_id == Claim.id)
        .group_by(Claim.id, Claim.first_seen)
        .having(first_review >= rng.start, first_review < rng.end)
    ).all()
    weeks: dict[dt.date, list[float]] = {}
    every: list[float] = []
    for _, seen, reviewed in rows:
        hours = max(0.0, (reviewed - seen).total_seconds() / 3600)
        weeks.setdefault(_week_of(reviewed), []).append(hours)
        every.append(hours)

    def summary(values: list[float]) -> dict[str, Any]:
        med, p90 = quantile(values, 0.5), quantile(values, 0.9)
        return {"n": len(values), "median_hours": None if med is None else round(med, 2),
                "p90_hours": None if p90 is None else round(p90, 2)}

    return {
        "weeks": [{"week": w.isoformat(), **summary(v)} for w, v in sorted(weeks.items())],
        "overall": summary(every),
    }


# --------------------------------------------------------------------------- per source
def per_source(s: Session, rng: StatsRange, *, limit: int = 50) -> list[dict[str, Any]]:
    """Claims first seen in the range per source: all, flagged, confirmed, dismissed (most claims first)."""
    n = func.count()
    rows = s.execute(
        select(
            Claim.source,
            n,
            func.sum(case((Claim.flagged.is_(True), 1), else_=0)),
            func.sum(case((Claim.status == "confirmed", 1), else_=0)),
            func.sum(case((Claim.status == "dismissed", 1), else_=0)),
        )
        .where(Claim.first_seen >= rng.start, Claim.first_seen < rng.end)
        .group_by(Claim.source)
        .order_by(n.desc(), Claim.source)
        .limit(limit)
    )
    return [{"source": src, "claims": int(total), "flagged": int(fl or 0), "confirmed": int(co or 0),
             "dismissed": int(di or 0)} for src, total, fl, co, di in rows]


# --------------------------------------------------------------------------- per topic
def per_topic(s: Session, rng: StatsRange) -> list[dict[str, Any]]:
    """Claims first seen in the range per topic: all, flagged, confirmed, dismissed (topics in taxonomy order,
    ``none``: not classified yet, last); the reports' counterpart of ``per_source``."""
    topic = func.coalesce(Claim.topic, UNKNOWN)
    rows = s.execute(
        select(
            topic,
            func.count(),
            func.sum(case((Claim.flagged.is_(True), 1), else_=0)),
            func.sum(case((Claim.status == "confirmed", 1), else_=0)),
            func.sum(case((Claim.status == "dismissed", 1), else_=0)),
        )
        .where(Claim.first_seen >= rng.start, Claim.first_seen < rng.end)
        .group_by(topic)
    ).all()
    found = {code: (int(total), int(fl or 0), int(co or 0), int(di or 0)) for code, total, fl, co, di in rows}
    order = [c for c in [*TOPICS, UNKNOWN] if c in found] + sorted(set(found) - set(TOPICS) - {UNKNOWN})
    return [{"topic": c, "name": _topic_name(c), "claims": found[c][0], "flagged": found[c][1],
             "confirmed": found[c][2], "dismissed": found[c][3]} for c in order]


def stats_data(store: Store, rng: StatsRange, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the statistics page shows, JSON-ready (the page's charts and tables read this)."""
    week_end = min(rng.end, now or utcnow())
    with store.session() as s:
        return {
            "range": {"from": rng.first.isoformat(), "to": rng.last.isoformat()},
            "per_day": claims_per_day(s, rng),
            "clusters": top_clusters(s, week_end),
            "clusters_week": {"from": shanghai_date(week_end - dt.timedelta(days=7)).isoformat(),
                              "to": shanghai_date(week_end - dt.timedelta(microseconds=1)).isoformat()},
            "review_time": review_times(s, rng),
            "sources": per_source(s, rng),
        }


# --------------------------------------------------------------------------- the monthly list
@dataclass
class MonthlyEntry:
    rank: int
    claim_id: int
    cluster_id: int | None
    text: str
    verdict: str | None
    verdict_name: str
    topic: str | None
    topic_name: str
    first_seen: str  # Shanghai time, "YYYY-MM-DD HH:MM"
    sightings: int  # logged during the month
    total_sightings: int
    sources: list[str]
    debunks: list[dict[str, Any]] = field(default_factory=list)  # {"id", "title", "url"}


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """The naive-UTC [start, end) of a Shanghai month 'YYYY-MM'; ValueError with a Chinese message."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        first = dt.date(year, mon, 1)
    except (ValueError, TypeError):
        raise ValueError("月份格式应为 YYYY-MM，例如 2026-11") from None
    if len(month) != 7 or not 2000 <= year <= 2100:
        raise ValueError("月份格式应为 YYYY-MM，例如 2026-11")
    nxt = dt.date(year + (mon == 12), mon % 12 + 1, 1)
    return _utc_start(first), _utc_start(nxt)


def monthly_list(store: Store, month: str, *, limit: int = 100) -> list[MonthlyEntry]:
    """The month's confirmed rumors, one per cluster, ranked by sightings (see the module doc)."""
    start, end = month_bounds(month)
    with store.session() as s:
        first_confirm = func.min(Review.created_at)
        confirmed = s.execute(
            select(Claim.id, Claim.cluster_id)
            .join(Review, Review.claim_id == Claim.id)
            .where(Claim.status == "confirmed", Review.decision == "confirmed")
            .group_by(Claim.id, Claim.cluster_id)
            .having(first_confirm >= start, first_confirm < end)
        ).all()
        groups: dict[tuple[str, int], list[int]] = {}
        for cid, cluster_id in confirmed:
            key = ("cluster", cluster_id) if cluster_id is not None else ("claim", cid)
            groups.setdefault(key, []).append(cid)
        entries: list[MonthlyEntry] = []
        for key, confirmed_ids in groups.items():
            cluster = s.get(ClaimCluster, key[1]) if key[0] == "cluster" else None
            if cluster is not None:
                claims = list(s.scalars(select(Claim).where(Claim.cluster_id == cluster.id)))
            else:
                claims = [c for c in [s.get(Claim, key[1])] if c is not None]
            ids = [c.id for c in claims]
            rep = min((c for c in claims if c.id in confirmed_ids), key=lambda c: (-(c.sightings or 0), c.id))
            review = s.scalars(
                select(Review).where(Review.claim_id.in_(confirmed_ids), Review.decision == "confirmed")
                .order_by(Review.created_at.desc(), Review.id.desc()).limit(1)
            ).first()
            month_sightings = int(s.scalar(
                select(func.coalesce(func.sum(Sighting.count), 0))
                .where(Sighting.claim_id.in_(ids), Sighting.seen_at >= start, Sighting.seen_at < end)
            ) or 0)
            debunk_ids = list(dict.fromkeys([
                *s.scalars(select(ClaimMatch.debunk_id).where(ClaimMatch.claim_id.in_(ids), ClaimMatch.linked.is_(True))
                           .order_by(ClaimMatch.rank, ClaimMatch.debunk_id)),
                *s.scalars(select(Review.debunk_id).where(Review.claim_id.in_(ids), Review.debunk_id.is_not(None))
                           .order_by(Review.id)),
            ]))
            debunks = {d.id: d for d in s.scalars(select(Debunk).where(Debunk.id.in_(debunk_ids)))} if debunk_ids else {}
            verdict = review.verdict if review is not None else None
            topic = rep.topic or (review.topic if review is not None else None)
            first_seen = min([c.first_seen for c in claims] + ([cluster.first_seen] if cluster is not None else []))
            entries.append(MonthlyEntry(
                rank=0,
                claim_id=rep.id,
                cluster_id=cluster.id if cluster is not None else None,
                text=rep.text,
                verdict=verdict,
                verdict_name=VERDICTS.get(verdict or "", verdict or ""),
                topic=topic,
                topic_name=TOPICS.get(topic or "", topic or ""),
                first_seen=(first_seen + OFFSET).strftime("%Y-%m-%d %H:%M"),
                sightings=month_sightings,
                total_sightings=max(cluster.sightings, sum(c.sightings or 0 for c in claims)) if cluster is not None
                else (rep.sightings or 0),
                sources=list(cluster.source_names or []) if cluster is not None and cluster.source_names
                else sorted({c.source for c in claims}),
                debunks=[{"id": d.id, "title": d.title, "url": d.url} for i in debunk_ids if (d := debunks.get(i))],
            ))
    entries.sort(key=lambda e: (-e.sightings, -e.total_sightings, e.claim_id))
    for i, e in enumerate(entries[:limit], 1):
        e.rank = i
    return entries[:limit]


CSV_COLUMNS = ["排名", "说法", "结论", "话题", "首次发现（北京时间）", "本月传播次数", "累计传播次数", "来源", "辟谣文章", "说法编号"]


def _cell(value: str) -> str:
    """A spreadsheet cell that cannot start a formula (crawled text is hostile: =HYPERLINK(...) and the like)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _http(url: str) -> str:
    return url if url.lower().startswith(("http://", "https://")) else ""


def monthly_csv(entries: Iterable[MonthlyEntry]) -> str:
    """CSV with a UTF-8 BOM (Excel opens it as UTF-8), one row per rumor."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for e in entries:
        w.writerow([e.rank, _cell(e.text), e.verdict_name, e.topic_name, e.first_seen, e.sightings, e.total_sightings,
                    _cell("、".join(e.sources)),
                    _cell(" | ".join(f"{d['title']} {_http(d['url'])}".strip() for d in e.debunks)), e.claim_id])
    return "\ufeff" + buf.getvalue()


def _md(text: str) -> str:
    """Text for a Markdown table cell: no markup, no HTML, one line."""
    out = " ".join(text.split())
    for ch in "\\`*_{}[]()<>#|!~":
        out = out.replace(ch, "\\" + ch)
    return out


def _md_url(url: str) -> str:
    """An http(s) URL that cannot end the Markdown link or the table cell early."""
    for ch, code in ((" ", "%20"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E"), ("|", "%7C")):
        url = url.replace(ch, code)
    return url


def monthly_markdown(entries: list[MonthlyEntry], month: str) -> str:
    lines = [f"# 月度辟谣榜 {month}", "", "| 排名 | 说法 | 结论 | 话题 | 首次发现 | 本月传播 | 累计传播 | 来源 | 辟谣文章 |",
             "|---:|---|---|---|---|---:|---:|---|---|"]
    for e in entries:
        links = "<br>".join(f"[{_md(d['title'])}]({_md_url(d['url'])})" if _http(d["url"]) else _md(d["title"])
                            for d in e.debunks)
        lines.append(f"| {e.rank} | {_md(e.text)} | {_md(e.verdict_name)} | {_md(e.topic_name)} | {e.first_seen} | "
                     f"{e.sightings} | {e.total_sightings} | {_md('、'.join(e.sources))} | {links} |")
    if not entries:
        lines.append("")
        lines.append("本月没有确认的谣言。")
    return "\n".join(lines) + "\n"


def monthly_json(entries: list[MonthlyEntry], month: str) -> str:
    return json.dumps({"month": month, "entries": [asdict(e) for e in entries]}, ensure_ascii=False, indent=2)
