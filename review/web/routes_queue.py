"""The review queue, the claim page and editors' actions on claims.

Decisions post the claim's version back: a claim changed since the page was loaded is answered
with 409 and the claim page as it is now, and nothing is overwritten. After a decision the editor
is sent (303) to the next claim of the queue, so the queue can be worked through by keyboard.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from pydantic import Field
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from classifier.labels import TOPICS, VERDICTS
from review import editorial
from review.accounts import Identity
from review.decisions import ClaimNotFound, ConflictError, LastChange, NotMatched, ReviewError, last_change
from review.queue import BEIJING_OFFSET, ORDERS, STATUSES, QueueFilters, next_in_queue, query_queue, queue_sources
from review.web.app import STATUS_NAMES, render
from review.web.security import check_csrf, parse_day, require
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, Review, utcnow

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

# Hard caps on form fields; the configured limits (settings.web) are checked in the handlers.
NOTE_CAP = 200_000
MAX_LINKS = 50
# Ids from the URL or a form stay in the database's integer range (a larger one overflowed the driver: a 500).
MAX_ID = 2**31 - 1
ClaimId = Annotated[int, Path(ge=1, le=MAX_ID)]
DebunkId = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_BULK = 200
FLASH = "flash"
FLASH_CHARS = 160
# Claims named one by one in a bulk action's report (the rest are counted).
BULK_NAMED = 10

ACTION_VERBS = {
    "claim.reviewed": "保存了对该说法的审核",
    "claim.urgent": "修改了该说法的紧急标记",
    "claim.queued": "将该说法加入了审核队列",
}
DONE_MESSAGES = {
    "confirmed": "已确认为谣言",
    "dismissed": "已排除（误报）",
    "needs_debunk": "已标记为待写辟谣",
}
BULK_NAMES = {"dismiss": "排除（误报）", "needs_debunk": "待写辟谣", "urgent": "标记紧急"}


# --------------------------------------------------------------------------- helpers
def flash(request: Request, notice: str | None = None, error: str | None = None) -> None:
    """A message for the next page (after a redirect), kept in the signed session cookie: short, so that
    the cookie stays well under the browsers' 4 KB limit."""
    request.session[FLASH] = {"notice": notice and notice[:FLASH_CHARS], "error": error and error[:FLASH_CHARS]}


def pop_flash(request: Request) -> dict[str, str | None]:
    value = request.session.pop(FLASH, None)
    if not isinstance(value, dict):
        return {"notice": None, "error": None}
    return {"notice": value.get("notice"), "error": value.get("error")}


def _bj(value: dt.datetime) -> dt.datetime:
    return value + BEIJING_OFFSET


def when_text(at: dt.datetime, now: dt.datetime | None = None) -> str:
    """HH:MM in Beijing time, with the date when it was not today."""
    local, today = _bj(at), _bj(now or utcnow()).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%m-%d %H:%M")


def conflict_message(last: LastChange | None) -> str:
    """What an editor reads when another editor saved first."""
    tail = "您的修改没有保存，请查看最新结果后再决定。"
    if last is None:
        return "保存冲突：该说法已被他人修改。" + tail
    verb = ACTION_VERBS.get(last.action, f"修改了该说法（{last.action}）")
    state = STATUS_NAMES.get(last.status, last.status) + ("，紧急" if last.urgent else "")
    return f"保存冲突：编辑 {last.actor} 已于 {when_text(last.at)} {verb}（状态：{state}）。" + tail


def _order(value: str | None) -> str:
    return value if value in ORDERS else "priority"


def explanation_view(raw: Any) -> dict[str, Any] | None:
    """The classifier's explanation in one of its two shapes (a matched debunk, or terms), defensively:
    stored JSON may be old, partial or odd."""
    if not isinstance(raw, dict):
        return None
    if raw.get("kind") == "debunk" or ("title" in raw and "url" in raw):
        sim = raw.get("similarity")
        return {"kind": "debunk", "title": str(raw.get("title") or "")[:500], "url": str(raw.get("url") or ""),
                "source": str(raw.get("source") or "")[:200],
                "similarity": float(sim) if isinstance(sim, (int, float)) and not isinstance(sim, bool) else None}
    terms = raw.get("terms")
    if isinstance(terms, (list, tuple)):
        words = [str(t)[:50] for t in terms if isinstance(t, (str, int, float)) and str(t).strip()][:30]
        if words:
            return {"kind": "terms", "terms": words}
    return None


# What the claim page shows of a matched debunk (not its whole text).
_DEBUNK_HEAD = selectinload(ClaimMatch.debunk).load_only(Debunk.title, Debunk.url, Debunk.source, Debunk.published)


def claim_context(request: Request, claim_id: int) -> dict[str, Any]:
    """Everything the claim page shows, read in one session."""
    store = request.app.state.store
    with store.session() as s:
        claim = s.get(Claim, claim_id)
        if claim is None:
            raise HTTPException(status_code=404, detail=f"找不到说法 #{claim_id}")
        cluster = s.get(ClaimCluster, claim.cluster_id) if claim.cluster_id is not None else None
        variants = list(s.scalars(select(Claim).where(Claim.cluster_id == claim.cluster_id, Claim.id != claim.id)
                                  .order_by(Claim.last_seen.desc(), Claim.id).limit(100))) if cluster else []
        matches = list(s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == claim.id)
                                 .options(_DEBUNK_HEAD).order_by(ClaimMatch.rank, ClaimMatch.id)))
        from_variants = False
        if not matches and variants:
            # Matched through a variant only: offered for linking (a link copies the variant's match).
            seen: set[int] = set()
            for m in s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id.in_([v.id for v in variants]))
                               .options(_DEBUNK_HEAD).order_by(ClaimMatch.score.desc(), ClaimMatch.id)):
                if m.debunk_id not in seen:
                    seen.add(m.debunk_id)
                    matches.append(m)
            matches = matches[:9]
            from_variants = bool(matches)
        reviews = list(s.scalars(select(Review).where(Review.claim_id == claim.id).order_by(Review.id.desc())))
        last = last_change(s, claim.id)
        matches_view = [{
            "debunk_id": m.debunk_id, "title": m.debunk.title, "url": m.debunk.url, "source": m.debunk.source,
            "published": m.debunk.published, "score": m.score, "decision": m.decision, "rank": m.rank,
            "evidence_kind": m.evidence_kind, "evidence": m.evidence, "snippet": m.snippet,
            "linked": bool(m.linked) and not from_variants, "linked_by": m.linked_by if not from_variants else None,
            "variant_claim_id": m.claim_id if from_variants else None,
        } for m in matches]
        return {
            "claim": claim, "cluster": cluster, "variants": variants, "matches": matches_view,
            "from_variants": from_variants, "reviews": reviews, "last": last,
            "explanation": explanation_view(claim.explanation),
        }


def render_claim(request: Request, claim_id: int, *, status_code: int = 200, error: str | None = None,
                 notice: str | None = None, order: str = "priority") -> Response:
    ctx = claim_context(request, claim_id)
    ctx.update({"error": error, "notice": notice, "order": _order(order),
                "confirm_verdicts": editorial.CONFIRM_VERDICTS, "topics": TOPICS, "verdicts": VERDICTS})
    return render(request, "claim.html", ctx, status_code=status_code)


def check_note(request: Request, note: str) -> str | None:
    limit = request.app.state.settings.web.max_text_chars
    if len(note) > limit:
        raise HTTPException(status_code=422, detail=f"备注最多 {limit} 个字符")
    return note.strip() or None


def check_topic(topic: str) -> str | None:
    if topic and topic not in TOPICS:
        raise HTTPException(status_code=422, detail="未知的主题")
    return topic or None


def after_decision(request: Request, claim_id: int, message: str, order: str) -> Response:
    """Flash the outcome and go on to the next claim of the queue (or the queue when it is empty)."""
    nxt = next_in_queue(request.app.state.store, exclude=claim_id, order=_order(order))
    if nxt is None:
        flash(request, notice=f"{message}。队列已清空。")
        return RedirectResponse("/queue", status_code=303)
    flash(request, notice=f"{message}。下面是队列中的下一条。")
    suffix = "?order=uncertainty" if _order(order) == "uncertainty" else ""
    return RedirectResponse(f"/claims/{nxt}{suffix}", status_code=303)


# --------------------------------------------------------------------------- queue
# The source filter's choices are read at most this often per process (a scan of every flagged claim
# on each page view otherwise); a claim from a new source shows in the list within it.
SOURCES_MAX_AGE = 10.0


def _sources(request: Request) -> list[str]:
    now = time.monotonic()
    cached: tuple[float, list[str]] | None = getattr(request.app.state, "queue_sources", None)
    if cached is None or now - cached[0] > SOURCES_MAX_AGE:
        cached = (now, queue_sources(request.app.state.store))
        request.app.state.queue_sources = cached
    return cached[1]


@router.get("/queue")
def queue_page(
    request: Request,
    me: Identity = Depends(require("viewer")),
    order: str = Query("priority", max_length=20),
    status: str = Query("queued", max_length=20),
    topic: str = Query("", max_length=40),
    source: str = Query("", max_length=200),
    label: str = Query("", max_length=40),
    date_from: str = Query("", max_length=10),
    date_to: str = Query("", max_length=10),
    page: int = Query(1, ge=1, le=1_000_000),
) -> Response:
    if order not in ORDERS:
        raise HTTPException(status_code=422, detail="排序方式应为 priority 或 uncertainty")
    if status != "all" and status not in STATUSES:
        raise HTTPException(status_code=422, detail="未知的状态")
    check_topic(topic)
    start, end = parse_day(date_from, "起始日期"), parse_day(date_to, "截止日期")
    if start and end and start > end:
        raise HTTPException(status_code=422, detail="起始日期晚于截止日期")
    filters = QueueFilters(status=status, topic=topic or None, source=source or None, label=label or None,
                           date_from=start, date_to=end)
    store = request.app.state.store
    result = query_queue(store, filters, order=order, page=page, page_size=request.app.state.settings.web.page_size)
    params = {k: v for k, v in {"order": "" if order == "priority" else order, "status": "" if status == "queued" else status,
                                "topic": topic, "source": source, "label": label,
                                "date_from": date_from, "date_to": date_to}.items() if v}

    def page_url(n: int) -> str:
        return "/queue?" + urlencode({**params, "page": n})

    messages = pop_flash(request)
    return render(request, "queue.html", {
        "result": result, "entries": result.entries, "filters": filters, "order": order, "params": params,
        "page_url": page_url, "back": urlencode({**params, "page": page}),
        "sources": _sources(request), "statuses": STATUSES, "orders": ORDERS, "topics": TOPICS,
        "labels": VERDICTS, "date_from": date_from, "date_to": date_to,
        "claim_suffix": "?order=uncertainty" if order == "uncertainty" else "",
        "notice": messages["notice"], "error": messages["error"],
    })


_BULK_ITEM = re.compile(r"(\d{1,12}):(\d{1,12})")


@router.post("/queue/bulk")
def queue_bulk(
    request: Request,
    me: Identity = Depends(require("editor")),
    action: str = Form(..., max_length=20),
    claim: list[str] = Form([]),
    back: str = Form("", max_length=2000),
) -> Response:
    if action not in editorial.BULK_ACTIONS:
        raise HTTPException(status_code=422, detail="未知的批量操作")
    if len(claim) > MAX_BULK:
        raise HTTPException(status_code=422, detail=f"一次最多处理 {MAX_BULK} 条")
    items: list[tuple[int, int | None]] = []
    for value in claim:
        m = _BULK_ITEM.fullmatch(value.strip())
        if m is None:
            raise HTTPException(status_code=422, detail="选中的说法格式有误，请刷新页面后重试")
        items.append((int(m.group(1)), int(m.group(2))))
    target = "/queue" + ("?" + back if back and re.fullmatch(r"[\w%=&.+\-~]*", back) else "")
    if not items:
        flash(request, error="没有选中任何说法")
        return RedirectResponse(target, status_code=303)
    outcomes = editorial.bulk(request.app.state.store, action, items, editor=me.name)
    done = [o for o in outcomes if o.ok]
    conflicts = [o for o in outcomes if o.conflict]
    failed = [o for o in outcomes if not o.ok and not o.conflict]
    notice = f"批量{BULK_NAMES[action]}：已处理 {len(done)} 条" + (
        "（" + "、".join(f"#{o.claim_id}" for o in done[:BULK_NAMED]) + ("…" if len(done) > BULK_NAMED else "") + "）"
        if done else "")
    problems = []
    for o in (conflicts + failed)[:3]:
        if o.conflict:
            why = (f"编辑 {o.last.actor[:30]} 已于 {when_text(o.last.at)} {ACTION_VERBS.get(o.last.action, '修改了它')}，"
                   f"状态：{STATUS_NAMES.get(o.last.status, o.last.status)}") if o.last else "已被他人修改"
        else:
            why = "说法不存在" if o.missing else (o.error or "")[:80]
        problems.append(f"#{o.claim_id}（{why}）")
    error = None
    refused = len(conflicts) + len(failed)
    if refused:
        rest = [f"#{o.claim_id}" for o in (conflicts + failed)[3:3 + BULK_NAMED]]
        error = (f"{refused} 条没有处理，原有结果未被覆盖：" + "；".join(problems)
                 + (f"；另有 {'、'.join(rest)}" if rest else "") + ("…" if refused > 3 + BULK_NAMED else ""))
    flash(request, notice=notice, error=error)
    return RedirectResponse(target, status_code=303)


# --------------------------------------------------------------------------- claim page and actions
@router.get("/claims/{claim_id}")
def claim_page(request: Request, claim_id: ClaimId, me: Identity = Depends(require("viewer")),
               order: str = Query("priority", max_length=20)) -> Response:
    messages = pop_flash(request)
    return render_claim(request, claim_id, notice=messages["notice"], error=messages["error"], order=order)


def _act(request: Request, claim_id: int, order: str, run: Any) -> Response:
    """Run one action; a conflict re-renders the claim as it is now (409), a refused one explains why (422)."""
    try:
        return run()  # type: ignore[no-any-return]
    except ConflictError as exc:
        return render_claim(request, claim_id, status_code=409, error=conflict_message(exc.last), order=order)
    except ClaimNotFound:
        raise HTTPException(status_code=404, detail=f"找不到说法 #{claim_id}") from None
    except NotMatched as exc:
        return render_claim(request, claim_id, status_code=422, order=order,
                            error=f"无法保存：辟谣 #{exc.debunk_id} 不在该说法（或同簇说法）的匹配结果中。")
    except ReviewError as exc:
        return render_claim(request, claim_id, status_code=422, error=f"无法保存：{exc}", order=order)


@router.post("/claims/{claim_id}/confirm")
def confirm_action(
    request: Request,
    claim_id: ClaimId,
    me: Identity = Depends(require("editor")),
    version: int = Form(..., ge=0),
    verdict: str = Form("rumor", max_length=20),
    debunk_ids: list[DebunkId] = Form([]),
    topic: str = Form("", max_length=40),
    note: str = Form("", max_length=NOTE_CAP),
    order: str = Form("priority", max_length=20),
) -> Response:
    if len(debunk_ids) > MAX_LINKS:
        raise HTTPException(status_code=422, detail=f"最多关联 {MAX_LINKS} 篇辟谣")
    if verdict not in editorial.CONFIRM_VERDICTS:
        raise HTTPException(status_code=422, detail="确认为谣言时，结论应为谣言、伪科学或误导")
    note_text, topic_code = check_note(request, note), check_topic(topic)

    def run() -> Response:
        d = editorial.confirm_claim(request.app.state.store, claim_id, editor=me.name, verdict=verdict,
                                    debunk_ids=debunk_ids, expected_version=version, topic=topic_code, note=note_text)
        links = f"，关联 {len(d.linked)} 篇辟谣" if d.linked else "，未关联辟谣"
        return after_decision(request, claim_id, f"说法 #{claim_id} {DONE_MESSAGES[d.status]}（{VERDICTS[verdict]}{links}）",
                              order)

    return _act(request, claim_id, order, run)


@router.post("/claims/{claim_id}/dismiss")
def dismiss_action(
    request: Request,
    claim_id: ClaimId,
    me: Identity = Depends(require("editor")),
    version: int = Form(..., ge=0),
    topic: str = Form("", max_length=40),
    note: str = Form("", max_length=NOTE_CAP),
    order: str = Form("priority", max_length=20),
) -> Response:
    note_text, topic_code = check_note(request, note), check_topic(topic)

    def run() -> Response:
        d = editorial.dismiss(request.app.state.store, claim_id, editor=me.name, expected_version=version,
                              topic=topic_code, note=note_text)
        return after_decision(request, claim_id, f"说法 #{claim_id} {DONE_MESSAGES[d.status]}", order)

    return _act(request, claim_id, order, run)


@router.post("/claims/{claim_id}/needs-debunk")
def needs_debunk_action(
    request: Request,
    claim_id: ClaimId,
    me: Identity = Depends(require("editor")),
    version: int = Form(..., ge=0),
    topic: str = Form("", max_length=40),
    note: str = Form("", max_length=NOTE_CAP),
    order: str = Form("priority", max_length=20),
) -> Response:
    note_text, topic_code = check_note(request, note), check_topic(topic)

    def run() -> Response:
        d = editorial.needs_debunk(request.app.state.store, claim_id, editor=me.name, expected_version=version,
                                   topic=topic_code, note=note_text)
        return after_decision(request, claim_id, f"说法 #{claim_id} {DONE_MESSAGES[d.status]}", order)

    return _act(request, claim_id, order, run)


@router.post("/claims/{claim_id}/urgent")
def urgent_action(
    request: Request,
    claim_id: ClaimId,
    me: Identity = Depends(require("editor")),
    version: int = Form(..., ge=0),
    urgent: str = Form(..., max_length=1),
    order: str = Form("priority", max_length=20),
) -> Response:
    if urgent not in ("0", "1"):
        raise HTTPException(status_code=422, detail="urgent 应为 0 或 1")

    def run() -> Response:
        ch = editorial.set_urgent(request.app.state.store, claim_id, urgent == "1", editor=me.name,
                                  expected_version=version)
        flash(request, notice=f"说法 #{claim_id} " + ("已标记为紧急" if ch.urgent else "已取消紧急标记"))
        suffix = "?order=uncertainty" if _order(order) == "uncertainty" else ""
        return RedirectResponse(f"/claims/{claim_id}{suffix}", status_code=303)

    return _act(request, claim_id, order, run)
