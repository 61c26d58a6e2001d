"""Alerts: a crawl that failed, stored nothing or far less than usual, and a rumor that surges.

Two entry points, called by the scheduler:

* ``check_run(store, settings, schedule_run_id)`` after a scheduled run (``ScheduleRun``):
  ``failure`` (status failed, timeout, interrupted or missed; alerts.on_failure), ``zero_items``
  (a finished run that stored no item; alerts.on_zero_items) and ``drop`` (a finished run with
  items < (1 - alerts.drop_ratio) × the median items of the schedule's last alerts.baseline_runs
  finished runs before it; needs that many earlier runs; a zero-item run alerts as ``zero_items``
  instead when that rule is on).
* ``check_surges(store, settings, now=...)``: a rumor cluster (or a claim without a cluster) seen
  ``recent`` times in the last alerts.surge_window_hours and ``previous`` times in the window
  before, with ``recent ≥ alerts.surge_min_sightings`` and
  ``recent / (previous + 1) ≥ alerts.surge_factor`` (add-one: a rumor never seen before the
  window needs surge_factor × 1 sightings, never a division by zero). The alert names the
  cluster's representative claim, its counts, whether a debunk already answers it (a match an
  editor linked, or an ``auto`` match), and the claim's page in the web app.

Every alert raised is stored as an ``Alert`` row, even with no webhook configured (status
``logged``), and logged. **De-duplication**: fingerprint = sha256("<rule>:<subject>"); when an
alert with the same fingerprint that was not itself suppressed was raised within
alerts.dedup_hours, the new one is stored as ``suppressed`` and not sent (a failed delivery
counts too: a broken robot is not hammered every check; the metrics show failed alerts).

**Delivery** goes to every webhook of alerts.webhooks in its own format (``build_request``):
DingTalk and WeCom robots (markdown), Feishu/Lark custom bots (``post`` rich text), generic JSON
(signed with ``X-Piyao-Signature``). A webhook that fails (timeout, refused, non-2xx, or the
vendor's error code in a 200 answer) never raises: its result goes into ``Alert.deliveries``
({name, format, ok, status, error}) and the log; the alert's status is ``sent`` when at least
one webhook took it, else ``failed``. Webhook URLs carry access tokens: they are never stored
or logged.

Claim texts, debunk titles and run messages are crawled or remote text: in the chat markdown
their markdown and HTML characters are replaced by full-width look-alikes and ``://`` is broken,
so a hostile claim cannot put a link or markup into the operators' group.

Links point to the web app at ``web.public_url``, else ``http://<web.host>:<web.port>`` (the machine's name when the
server listens on every address); see docs/operations.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from settings import AlertWebhook, Settings
from store.db import Store
from store.models import Alert, Claim, ClaimCluster, ClaimMatch, Debunk, ScheduleRun, Sighting, utcnow

log = logging.getLogger(__name__)

__all__ = ["RULES", "FAILED_STATUSES", "Message", "Surge", "check_run", "check_surges", "run_messages", "find_surges",
           "raise_alert", "fingerprint", "build_request", "deliver", "neutral", "sign_dingtalk", "sign_feishu",
           "sign_generic", "web_base_url"]

RULES = ("failure", "zero_items", "drop", "surge")
# Run statuses that are a failure of the schedule (scheduler/ records them).
FAILED_STATUSES = ("failed", "timeout", "interrupted", "missed")
STATUS_NAMES = {"failed": "失败", "timeout": "超时被终止", "interrupted": "中断（调度器退出）", "missed": "错过（未运行）",
                "finished": "完成", "running": "运行中", "skipped": "跳过"}
# Every title starts with this tag: DingTalk robots with a keyword check can use "piyao" as the keyword.
TAG = "【piyao】"
# WeCom refuses markdown content over 4096 bytes; DingTalk and Feishu take more, but a chat alert is short.
WECOM_MAX_BYTES = 4096
CLAIM_CHARS = 120
MESSAGE_CHARS = 300
BEIJING = dt.timedelta(hours=8)


# --------------------------------------------------------------------------- text helpers
# Markdown and HTML characters in remote text, replaced by full-width look-alikes for the chat robots.
_NEUTRAL = str.maketrans({"[": "［", "]": "］", "<": "＜", ">": "＞", "*": "＊", "`": "｀", "#": "＃",
                          "!": "！", "|": "｜", "~": "～", "\\": "＼", "(": "（", ")": "）"})


def neutral(text: str | None, limit: int | None = None) -> str:
    """Remote text made inert for chat markdown: one line, no markup, no autolinked URL, cut to ``limit``."""
    flat = " ".join((text or "").split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.translate(_NEUTRAL).replace("://", "：//")


def _bj(value: dt.datetime | None) -> str:
    """A stored (naive UTC) time in Beijing time, as the editors read it."""
    return (value + BEIJING).strftime("%Y-%m-%d %H:%M") + " 北京时间" if value is not None else "—"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def web_base_url(settings: Settings) -> str:
    """``web.public_url``, else ``http://<web.host>:<web.port>`` (a wildcard listen address replaced by this machine's name)."""
    if settings.web.public_url:
        return settings.web.public_url.rstrip("/")
    host = settings.web.host.strip()
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.getfqdn() or "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def fingerprint(rule: str, subject: str) -> str:
    """sha256 of "<rule>:<subject>": the same condition on the same thing is the same alert."""
    return hashlib.sha256(f"{rule}:{subject}".encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the message
@dataclass
class Message:
    """One alert as sent: a title, short lines of text (already made inert), a link, and the data."""

    rule: str
    subject: str
    title: str
    lines: list[str]
    link: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        """The body for DingTalk and WeCom markdown (a heading, one list item per line, the link)."""
        out = [f"### {self.title}", ""] + [f"- {line}" for line in self.lines]
        if self.link:
            out += ["", f"[在 piyao 中查看]({self.link})"]
        return "\n".join(out)

    def text(self) -> str:
        """Plain text: the title, the lines and the link."""
        return "\n".join([self.title, *self.lines] + ([self.link] if self.link else []))


def _cut_utf8(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


# --------------------------------------------------------------------------- signing and payloads
def sign_dingtalk(secret: str, timestamp_ms: str) -> str:
    """DingTalk robot signing: base64(HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>")) (URL-encode it)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_feishu(secret: str, timestamp_s: str) -> str:
    """Feishu/Lark custom bot signing: base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=b""))."""
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode("utf-8"), b"", hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_generic(secret: str, body: bytes) -> str:
    """The generic hook's X-Piyao-Signature: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_request(hook: AlertWebhook, msg: Message, *, created_at: dt.datetime,
                  now: float | None = None) -> tuple[str, bytes, dict[str, str]]:
    """(URL, body, headers) of one webhook call in ``hook.format``; ``now``: the signing clock (epoch seconds)."""
    now = time.time() if now is None else now
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "piyao-alerts/1"}
    url = hook.url
    if hook.format == "dingtalk":
        body = _json({"msgtype": "markdown", "markdown": {"title": msg.title, "text": msg.markdown()}})
        if hook.secret:
            ts = str(int(now * 1000))
            url += ("&" if "?" in url else "?") + urlencode({"timestamp": ts, "sign": sign_dingtalk(hook.secret, ts)})
    elif hook.format == "wecom":
        body = _json({"msgtype": "markdown", "markdown": {"content": _cut_utf8(msg.markdown(), WECOM_MAX_BYTES)}})
    elif hook.format == "feishu":
        rows: list[list[dict[str, str]]] = [[{"tag": "text", "text": line}] for line in msg.lines]
        if msg.link:
            rows.append([{"tag": "a", "text": "在 piyao 中查看", "href": msg.link}])
        doc: dict[str, Any] = {"msg_type": "post", "content": {"post": {"zh_cn": {"title": msg.title, "content": rows}}}}
        if hook.secret:
            ts = str(int(now))
            doc = {"timestamp": ts, "sign": sign_feishu(hook.secret, ts), **doc}
        body = _json(doc)
    else:  # generic
        body = _json({"rule": msg.rule, "subject": msg.subject, "title": msg.title, "text": msg.text(),
                      "payload": msg.payload, "created_at": _iso(created_at)})
        headers["X-Piyao-Event"] = f"alert.{msg.rule}"
        if hook.secret:
            headers["X-Piyao-Signature"] = sign_generic(hook.secret, body)
    return url, body, headers


def _vendor_error(hook: AlertWebhook, resp: httpx.Response) -> str | None:
    """The error a robot reports inside a 2xx answer (DingTalk/WeCom errcode, Feishu code), else None."""
    if hook.format == "generic":
        return None
    try:
        doc = resp.json()
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if hook.format in ("dingtalk", "wecom"):
        code, text = doc.get("errcode", 0), doc.get("errmsg", "")
    else:
        code = doc.get("code", doc.get("StatusCode", 0))
        text = doc.get("msg", doc.get("StatusMessage", ""))
    if code in (0, None, "0"):
        return None
    return f"{hook.format} error {code}: {str(text)[:200]}"


def deliver(hook: AlertWebhook, msg: Message, *, created_at: dt.datetime, timeout: float,
            client: httpx.Client | None = None) -> dict[str, Any]:
    """Send ``msg`` to one webhook; never raises. Returns {name, format, ok, status, error}."""
    result: dict[str, Any] = {"name": hook.name, "format": hook.format, "ok": False, "status": None, "error": None}
    try:
        url, body, headers = build_request(hook, msg, created_at=created_at)
        http = client or httpx.Client(timeout=timeout, follow_redirects=False)
        try:
            resp = http.post(url, content=body, headers=headers, timeout=timeout)
        finally:
            if client is None:
                http.close()
        result["status"] = resp.status_code
        if not 200 <= resp.status_code < 300:
            result["error"] = f"HTTP {resp.status_code}"
        else:
            result["error"] = _vendor_error(hook, resp)
        result["ok"] = result["error"] is None
    except Exception as exc:  # noqa: BLE001 - an alert channel's failure must never stop the caller
        # The URL holds the robot's access token: keep it out of the stored error.
        result["error"] = f"{exc.__class__.__name__}: {str(exc).replace(hook.url, '<url>')[:300]}"
    if not result["ok"]:
        log.warning("alert webhook %s (%s) failed: %s", hook.name, hook.format, result["error"],
                    extra={"alert_rule": msg.rule, "alert_subject": msg.subject, "webhook": hook.name})
    return result


# --------------------------------------------------------------------------- raising an alert
def raise_alert(store: Store, settings: Settings, msg: Message, *, now: dt.datetime | None = None,
                client: httpx.Client | None = None) -> Alert:
    """Store ``msg`` as an Alert (suppressed when a duplicate), send it to every webhook, return the row."""
    cfg = settings.alerts
    now = now or utcnow()
    fp = fingerprint(msg.rule, msg.subject)
    with store.session() as s:
        duplicate = None
        if cfg.dedup_hours > 0:
            duplicate = s.scalar(
                select(Alert.id)
                .where(Alert.fingerprint == fp, Alert.status != "suppressed",
                       Alert.created_at > now - dt.timedelta(hours=cfg.dedup_hours))
                .order_by(Alert.created_at.desc())
                .limit(1)
            )
        # Stored before sending (as failed until a webhook takes it): a second raiser sees it as a duplicate.
        status = "suppressed" if duplicate is not None else ("failed" if cfg.webhooks else "logged")
        payload = dict(msg.payload, link=msg.link, lines=msg.lines)
        row = Alert(rule=msg.rule, subject=msg.subject[:200], fingerprint=fp, status=status, title=msg.title[:300],
                    payload=payload, deliveries=[], created_at=now)
        s.add(row)
        s.flush()
        alert_id = row.id
    extra = {"alert_id": alert_id, "alert_rule": msg.rule, "alert_subject": msg.subject}
    if status == "suppressed":
        log.info("alert %s suppressed (a duplicate of alert %s within %s h): %s", alert_id, duplicate,
                 cfg.dedup_hours, msg.title, extra={**extra, "alert_status": status})
        return row
    if status == "logged":
        log.warning("alert %s (no webhook configured): %s — %s", alert_id, msg.title, " / ".join(msg.lines),
                    extra={**extra, "alert_status": status})
        return row
    deliveries = [deliver(hook, msg, created_at=now, timeout=cfg.timeout_seconds, client=client) for hook in cfg.webhooks]
    status = "sent" if any(d["ok"] for d in deliveries) else "failed"
    with store.session() as s:
        stored = s.get(Alert, alert_id)
        if stored is None:  # deleted meanwhile: keep the outcome on the returned object
            row.status, row.deliveries = status, deliveries
            return row
        stored.status, stored.deliveries = status, deliveries
        row = stored
    log.warning("alert %s %s to %d of %d webhook(s): %s", alert_id, status, sum(d["ok"] for d in deliveries),
                len(deliveries), msg.title, extra={**extra, "alert_status": status})
    return row


# --------------------------------------------------------------------------- crawl runs
def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _run_lines(run: ScheduleRun) -> list[str]:
    lines = [
        f"计划任务：{run.schedule_id}（爬虫 {run.spider}）",
        f"状态：{STATUS_NAMES.get(run.status, run.status)}（{run.status}）",
        f"开始：{_bj(run.started_at)}；结束：{_bj(run.finished_at)}",
        f"抓取：{run.pages} 页，{run.items} 条，新说法 {run.new_claims} 条，新辟谣 {run.new_debunks} 篇，错误 {run.errors} 个",
    ]
    kinds = run.errors_by_kind or {}
    if isinstance(kinds, dict) and kinds:
        top = sorted(kinds.items(), key=lambda kv: (-_int(kv[1]), str(kv[0])))[:5]
        lines.append("错误类型：" + "，".join(f"{neutral(str(k), 60)} × {v}" for k, v in top))
    if run.message:
        lines.append(f"说明：{neutral(run.message, MESSAGE_CHARS)}")
    lines.append(f"运行编号：{run.run_key}")
    return lines


def _run_payload(run: ScheduleRun) -> dict[str, Any]:
    return {"schedule_run_id": run.id, "run_key": run.run_key, "schedule": run.schedule_id, "spider": run.spider,
            "status": run.status, "trigger": run.trigger, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at), "pages": run.pages, "items": run.items, "errors": run.errors,
            "errors_by_kind": run.errors_by_kind or {}, "new_claims": run.new_claims, "new_debunks": run.new_debunks,
            "flagged": run.flagged, "message": run.message}


def _baseline(s: Session, run: ScheduleRun, n: int) -> list[int]:
    """Items of the schedule's last ``n`` finished runs before ``run`` (newest first)."""
    earlier = or_(ScheduleRun.started_at < run.started_at,
                  and_(ScheduleRun.started_at == run.started_at, ScheduleRun.id < run.id))
    return [int(x or 0) for x in s.scalars(
        select(ScheduleRun.items)
        .where(ScheduleRun.schedule_id == run.schedule_id, ScheduleRun.status == "finished", ScheduleRun.id != run.id, earlier)
        .order_by(ScheduleRun.started_at.desc(), ScheduleRun.id.desc())
        .limit(n)
    )]


def run_messages(store: Store, settings: Settings, schedule_run_id: int) -> list[Message]:
    """The alerts a scheduled run calls for (not yet raised)."""
    cfg = settings.alerts
    link = f"{web_base_url(settings)}/schedules"
    with store.session() as s:
        run = s.get(ScheduleRun, schedule_run_id)
        if run is None:
            log.warning("check_run: no schedule run %s", schedule_run_id)
            return []
        subject = f"schedule:{run.schedule_id}"
        lines, payload = _run_lines(run), _run_payload(run)
        out: list[Message] = []
        if run.status in FAILED_STATUSES:
            if cfg.on_failure:
                title = f"{TAG}抓取{STATUS_NAMES.get(run.status, run.status)}：{run.schedule_id}"
                out.append(Message("failure", subject, title, lines, link, payload))
            return out
        if run.status != "finished":
            return out
        items = int(run.items or 0)
        if items == 0 and cfg.on_zero_items:
            out.append(Message("zero_items", subject, f"{TAG}抓取零条目：{run.schedule_id}", lines, link, payload))
            return out
        base = _baseline(s, run, cfg.baseline_runs)
        if len(base) >= cfg.baseline_runs:
            median = float(statistics.median(base))
            if median > 0 and items < (1 - cfg.drop_ratio) * median:
                extra = f"基线：此前 {len(base)} 次完成的运行条目数中位数 {median:g}，本次仅 {items}（低于 {(1 - cfg.drop_ratio) * 100:g}%）"
                out.append(Message("drop", subject, f"{TAG}抓取量骤降：{run.schedule_id}（{items} 条，中位数 {median:g}）",
                                   lines + [extra], link, dict(payload, baseline=base, baseline_median=median,
                                                               drop_ratio=cfg.drop_ratio)))
        return out


def check_run(store: Store, settings: Settings, schedule_run_id: int, *, now: dt.datetime | None = None,
              client: httpx.Client | None = None) -> list[Alert]:
    """After a scheduled run: raise its failure, zero_items or drop alert (see the module doc)."""
    return [raise_alert(store, settings, m, now=now, client=client) for m in run_messages(store, settings, schedule_run_id)]


# --------------------------------------------------------------------------- surges
@dataclass
class Surge:
    """A rumor whose sightings grew fast: the counts behind a surge alert."""

    key: tuple[str, int]  # ("cluster", id) or ("claim", id)
    recent: int
    previous: int
    claim_ids: list[int]

    @property
    def ratio(self) -> float:
        return self.recent / (self.previous + 1)


def find_surges(store: Store, settings: Settings, now: dt.datetime) -> list[Surge]:
    """Clusters (and lone claims) over the surge thresholds at ``now``, fastest-growing first."""
    cfg = settings.alerts
    window = dt.timedelta(hours=cfg.surge_window_hours)
    recent_from, previous_from = now - window, now - 2 * window
    counts: dict[tuple[str, int], list[Any]] = {}
    with store.session() as s:
        rows = s.execute(
            select(Claim.id, Claim.cluster_id,
                   func.sum(case((Sighting.seen_at > recent_from, Sighting.count), else_=0)),
                   func.sum(case((Sighting.seen_at <= recent_from, Sighting.count), else_=0)))
            .join(Claim, Claim.id == Sighting.claim_id)
            .where(Sighting.seen_at > previous_from, Sighting.seen_at <= now)
            .group_by(Claim.id, Claim.cluster_id)
        ).all()
    for claim_id, cluster_id, recent, previous in rows:
        key = ("cluster", int(cluster_id)) if cluster_id is not None else ("claim", int(claim_id))
        c = counts.setdefault(key, [0, 0, []])
        c[0] += int(recent or 0)
        c[1] += int(previous or 0)
        c[2].append(int(claim_id))
    out = [Surge(k, r, p, sorted(ids)) for k, (r, p, ids) in counts.items()
           if r >= cfg.surge_min_sightings and r / (p + 1) >= cfg.surge_factor]
    out.sort(key=lambda x: (-x.ratio, -x.recent, x.key))
    return out


def _surge_message(s: Session, settings: Settings, surge: Surge) -> Message | None:
    cfg = settings.alerts
    kind, ident = surge.key
    cluster = s.get(ClaimCluster, ident) if kind == "cluster" else None
    members = Claim.cluster_id == ident if kind == "cluster" else Claim.id == ident
    rep_id = cluster.representative_claim_id if cluster is not None else None
    rep = s.get(Claim, rep_id) if rep_id is not None else None
    if rep is None or (kind == "cluster" and rep.cluster_id != ident):
        rep = s.scalar(select(Claim).where(members).order_by(Claim.id).limit(1))
    if rep is None:
        return None
    answer = s.execute(
        select(ClaimMatch.claim_id, ClaimMatch.linked, ClaimMatch.decision, Debunk.id, Debunk.title, Debunk.url, Debunk.source)
        .join(Claim, Claim.id == ClaimMatch.claim_id)
        .join(Debunk, Debunk.id == ClaimMatch.debunk_id)
        .where(members, or_(ClaimMatch.linked.is_(True), ClaimMatch.decision == "auto"))
        .order_by(ClaimMatch.linked.desc(), ClaimMatch.score.desc(), Debunk.id)
        .limit(1)
    ).first()
    total = cluster.sightings if cluster is not None else rep.sightings
    sources = cluster.sources if cluster is not None else 1
    size = cluster.size if cluster is not None else 1
    hours = f"{cfg.surge_window_hours:g}"
    link = f"{web_base_url(settings)}/claims/{rep.id}"
    lines = [
        f"说法：{neutral(rep.text, CLAIM_CHARS)}",
        f"近 {hours} 小时出现 {surge.recent} 次，此前 {hours} 小时 {surge.previous} 次（增长 {surge.ratio:.1f} 倍）",
        f"累计 {total} 次，{sources} 个来源，{size} 条变体",
    ]
    if answer is not None:
        how = "编辑已关联" if answer.linked else "自动匹配"
        lines.append(f"已有辟谣（{how}）：{neutral(answer.title, 80)}（{neutral(answer.source, 40)}）")
    else:
        lines.append("尚无辟谣回应：请尽快安排应急科普")
    payload = {
        "cluster_id": ident if kind == "cluster" else None, "claim_id": rep.id, "claim_text": rep.text[:500],
        "claim_ids": surge.claim_ids[:50], "recent_sightings": surge.recent, "previous_sightings": surge.previous,
        "growth": round(surge.ratio, 3), "window_hours": cfg.surge_window_hours, "sightings": total,
        "sources": sources, "cluster_size": size, "answered": answer is not None,
        "debunk": ({"id": answer.id, "title": answer.title, "url": answer.url, "source": answer.source,
                    "linked": bool(answer.linked), "decision": answer.decision} if answer is not None else None),
    }
    title = f"{TAG}谣言激增（应急科普）：{neutral(rep.text, 30)}"
    return Message("surge", f"{kind}:{ident}", title, lines, link, payload)


def check_surges(store: Store, settings: Settings, *, now: dt.datetime | None = None,
                 client: httpx.Client | None = None) -> list[Alert]:
    """Raise a ``surge`` alert for every rumor over the surge thresholds (see the module doc)."""
    now = now or utcnow()
    found = find_surges(store, settings, now)
    if not found:
        return []
    with store.session() as s:
        messages = [m for m in (_surge_message(s, settings, x) for x in found) if m is not None]
    return [raise_alert(store, settings, m, now=now, client=client) for m in messages]

