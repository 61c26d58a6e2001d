"""REST API v1 for partner platforms and tools: claim intake, results, debunk search, reviews, ClaimReview.

Authentication: ``Authorization: Bearer <token>`` (``piyao tokens add``); a partner's token sees only
the claims that partner submitted (another's claim is a 404, so its existence does not leak). A
logged-in browser session works too, with the CSRF header on writes. Errors are JSON
``{"detail": ...}``; bad input is a 422 listing the fields. docs/api.md describes the whole API.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from classifier.labels import TOPICS, VERDICTS
from review.accounts import Identity
from review.intake import (IntakeError, IntakeMatch, IntakeRequest, IntakeResponse, IntakeUnavailable, check_limits, intake_for, match_view,
                           with_match_heads)
from review.web.security import check_csrf, current_identity, require
from store.models import Claim, PartnerSubmission, Review


async def api_csrf(request: Request) -> None:
    """The CSRF check for callers with a session; a caller with no identity at all gets require's 401 instead
    of a CSRF 403 (there is no session whose authority a forged request could borrow)."""
    if await run_in_threadpool(current_identity, request) is None:  # a token lookup: off the event loop
        return
    await check_csrf(request)


router = APIRouter(prefix="/api/v1", dependencies=[Depends(api_csrf)], tags=["api v1"])

MAX_LIMIT = 200
NOT_FOUND = "没有这条说法（或无权查看）"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or invalid token"},
    403: {"description": "The token's role may not do this"},
}
# Operations with a JSON body: FastAPI answers 400 when the body is not text (not UTF-8).
BODY_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 400: {"description": "The body is not UTF-8 text"}}


def _utc(value: dt.datetime | None, name: str = "since") -> dt.datetime | None:
    """Query times with an offset are converted; times without one are read as UTC (the store's zone)."""
    if value is not None and value.tzinfo is not None:
        try:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # "0001-01-01T00:00:00+01:00" falls before year 1 in UTC
            raise RequestValidationError([{"loc": ["query", name], "type": "value_error",
                                           "msg": "Datetime is out of range once converted to UTC"}]) from None
    return value


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _limit(request: Request, limit: int | None) -> int:
    return limit if limit is not None else int(request.app.state.settings.web.page_size)


# --------------------------------------------------------------------------- intake
@router.post("/claims", response_model=IntakeResponse, responses={**BODY_ERRORS, 422: {"description": "Invalid items"},
             503: {"description": "The classifier or the index is unavailable; retry (the call is idempotent)"}},
             summary="Submit posts: classification and matching debunks in one call")
def submit_claims(request: Request, body: IntakeRequest, me: Identity = Depends(require("partner_or_editor"))) -> IntakeResponse:
    """Store each post as a claim, classify it, queue it for editors when flagged, and match it against the
    debunks. The same ``external_id`` again returns the stored result (and counts a sighting)."""
    try:
        check_limits(body, request.app.state.settings.web)
    except IntakeError as exc:
        raise RequestValidationError(exc.errors) from None
    try:
        results = intake_for(request.app).submit(me, body.items)
    except IntakeUnavailable as exc:
        raise HTTPException(status_code=503, detail=f"暂时无法处理（{exc}），已收录的内容不会丢失，请稍后重试") from None
    return IntakeResponse(items=results)


# --------------------------------------------------------------------------- reading claims
class ClaimView(BaseModel):
    claim_id: int
    external_id: str | None = Field(description="The partner's post id (partners), else the claim's source id.")
    text: str
    source: str | None = Field(None, description="Users only.")
    url: str | None = Field(None, description="Users only.")
    status: str
    verdict: str | None = Field(description="The editors' latest verdict: " + ", ".join(VERDICTS))
    verdict_name: str | None
    decided_at: str | None
    urgent: bool
    label: str | None
    score: float | None
    flagged: bool
    topic: str | None
    explanation: dict[str, Any] | None
    model_version: str | None
    sightings: int
    first_seen: str | None
    last_seen: str | None
    version: int | None = Field(None, description="Users only: send it as expected_version when reviewing.")
    debunks: list[IntakeMatch] = Field(description="The debunks an editor linked to the claim.")
    matches: list[IntakeMatch] = Field(description="Every debunk the matcher found, best first.")


class ClaimList(BaseModel):
    items: list[ClaimView]
    total: int
    limit: int
    offset: int


def _latest_reviews(s: Session, claim_ids: list[int]) -> dict[int, Review]:
    if not claim_ids:
        return {}
    latest = select(func.max(Review.id)).where(Review.claim_id.in_(claim_ids)).group_by(Review.claim_id)
    return {r.claim_id: r for r in s.scalars(select(Review).where(Review.id.in_(latest)))}


def _view(claim: Claim, review: Review | None, me: Identity, external_id: str | None) -> ClaimView:
    is_user = me.kind == "user"
    matches = [match_view(m) for m in sorted(claim.matches, key=lambda m: (m.rank, m.id))]
    return ClaimView(
        claim_id=claim.id, external_id=external_id if not is_user else claim.external_id, text=claim.text,
        source=claim.source if is_user else None, url=claim.url if is_user else None, status=claim.status,
        verdict=review.verdict if review is not None else None,
        verdict_name=VERDICTS.get(review.verdict or "") if review is not None else None,
        decided_at=_when(review.created_at) if review is not None else None, urgent=bool(claim.urgent),
        label=claim.label, score=None if claim.score is None else round(float(claim.score), 4), flagged=bool(claim.flagged),
        topic=claim.topic, explanation=claim.explanation, model_version=claim.model_version, sightings=claim.sightings,
        first_seen=_when(claim.first_seen), last_seen=_when(claim.last_seen), version=claim.version if is_user else None,
        debunks=[m for m in matches if m.linked], matches=matches,
    )


@router.get("/claims/{claim_id}", response_model=ClaimView, responses={**ERRORS, 404: {"description": "No such claim (for you)"}},
            summary="One claim: status, verdict, linked debunks")
def get_claim(request: Request, claim_id: int = Path(..., ge=1, le=2**31 - 1),
              me: Identity = Depends(require("partner_or_viewer"))) -> ClaimView:
    with request.app.state.store.session() as s:
        external_id: str | None = None
        if me.kind == "partner":
            external_id = s.scalar(select(PartnerSubmission.external_id).where(
                PartnerSubmission.partner_id == me.id, PartnerSubmission.claim_id == claim_id)
                .order_by(PartnerSubmission.id).limit(1))
            if external_id is None:
                raise HTTPException(status_code=404, detail=NOT_FOUND)
        claim = s.scalar(select(Claim).where(Claim.id == claim_id).options(with_match_heads()))
        if claim is None:
            raise HTTPException(status_code=404, detail=NOT_FOUND)
        return _view(claim, _latest_reviews(s, [claim.id]).get(claim.id), me, external_id)


@router.get("/claims", response_model=ClaimList, responses=ERRORS, summary="Claims, newest first (a partner's own)")
def list_claims(
    request: Request,
    external_id: str | None = Query(None, min_length=1, max_length=200, description="Only this post id."),
    since: dt.datetime | None = Query(None, description="Submitted (partners) or first seen (users) at or after; ISO 8601, UTC unless it has an offset."),
    limit: int | None = Query(None, ge=1, le=MAX_LIMIT, description="Default: web.page_size."),
    offset: int = Query(0, ge=0, le=1_000_000),
    me: Identity = Depends(require("partner_or_viewer")),
) -> ClaimList:
    n = _limit(request, limit)
    since = _utc(since)
    with request.app.state.store.session() as s:
        if me.kind == "partner":
            q = select(PartnerSubmission).where(PartnerSubmission.partner_id == me.id)
            if external_id is not None:
                q = q.where(PartnerSubmission.external_id == external_id)
            if since is not None:
                q = q.where(PartnerSubmission.created_at >= since)
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            subs = s.scalars(q.order_by(PartnerSubmission.id.desc()).limit(n).offset(offset)).all()
            pairs: list[tuple[int, str | None]] = [(x.claim_id, x.external_id) for x in subs]
        else:
            cq = select(Claim.id, Claim.external_id)
            if external_id is not None:
                cq = cq.where(Claim.external_id == external_id)
            if since is not None:
                cq = cq.where(Claim.first_seen >= since)
            total = s.scalar(select(func.count()).select_from(cq.subquery())) or 0
            pairs = [(cid, ext) for cid, ext in s.execute(cq.order_by(Claim.id.desc()).limit(n).offset(offset))]
        ids = [cid for cid, _ in pairs]
        claims = {c.id: c for c in s.scalars(select(Claim).where(Claim.id.in_(ids)).options(with_match_heads()))} if ids else {}
        reviews = _latest_reviews(s, ids)
        items = [_view(claims[cid], reviews.get(cid), me, ext) for cid, ext in pairs if cid in claims]
    return ClaimList(items=items, total=int(total), limit=n, offset=offset)


# --------------------------------------------------------------------------- reviews
_VERDICT_PATTERN = "^(" + "|".join(map(re.escape, VERDICTS)) + ")$"


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(..., pattern=_VERDICT_PATTERN, description="One of: " + ", ".join(f"{k} ({v})" for k, v in VERDICTS.items()))
    expected_version: int = Field(..., ge=1, le=2**31 - 1, description="The claim's `version` you read; a claim changed since → 409.")
    debunk_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        None, max_length=50, description="The debunks that answer the claim (linked; others unlinked). Omit to keep the links.")
    note: str | None = Field(None, max_length=5000)
    topic: str | None = Field(None, max_length=40, description="One of: " + ", ".join(TOPICS))

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and v not in TOPICS:
            raise ValueError(f"unknown topic; expected one of {', '.join(TOPICS)}")
        return v


class ReviewOut(BaseModel):
    review_id: int
    claim_id: int
    verdict: str
    status: str
    linked: list[int]
    version: int


@router.post("/claims/{claim_id}/review", response_model=ReviewOut,
             responses={**BODY_ERRORS, 404: {"description": "No such claim"},
                        409: {"description": "The claim changed since expected_version; nothing was saved"},
                        422: {"description": "Invalid fields (a list, as elsewhere), or a decision that cannot be recorded "
                                             "(a message: a debunk not matched to the claim)",
                              "content": {"application/json": {"schema": {"anyOf": [
                                  {"$ref": "#/components/schemas/HTTPValidationError"},
                                  {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
                              ]}}}}},
             summary="Record an editor's verdict (optimistic locking with expected_version)")
def review_claim(request: Request, claim_id: int = Path(..., ge=1, le=2**31 - 1), body: ReviewIn = Body(...),
                 me: Identity = Depends(require("editor"))) -> Any:
    from review.decisions import ConflictError, ReviewError, record_decision

    web = request.app.state.settings.web
    if body.note is not None and len(body.note) > web.max_text_chars:
        raise RequestValidationError([{"loc": ["body", "note"], "type": "string_too_long",
                                       "msg": f"String should have at most {web.max_text_chars} characters"}])
    store = request.app.state.store
    with store.session() as s:
        if s.get(Claim, claim_id) is None:
            raise HTTPException(status_code=404, detail=NOT_FOUND)
    try:
        d = record_decision(store, claim_id, body.verdict, editor=me.name, topic=body.topic, note=body.note or None,
                            expected_version=body.expected_version, debunk_ids=body.debunk_ids)
    except ConflictError as exc:
        last = exc.last
        return JSONResponse(status_code=409, content={
            "detail": "这条说法已被他人修改，未保存任何内容；请重新读取后再提交",
            "claim_id": claim_id, "expected_version": body.expected_version,
            "current_version": last.version if last is not None else None,
            "last_change": None if last is None else {"actor": last.actor, "action": last.action, "at": _when(last.at),
                                                      "status": last.status, "urgent": last.urgent},
        })
    except ReviewError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return ReviewOut(review_id=d.review_id, claim_id=d.claim_id, verdict=d.verdict, status=d.status,
                     linked=list(d.linked), version=d.version)


class ReviewView(BaseModel):
    review_id: int
    claim_id: int
    editor: str
    decision: str
    verdict: str | None
    verdict_name: str | None
    topic: str | None
    note: str | None
    debunk_id: int | None
    created_at: str | None


class ReviewList(BaseModel):
    items: list[ReviewView]
    limit: int
    offset: int


@router.get("/reviews", response_model=ReviewList, responses=ERRORS, summary="Editors' decisions, oldest first")
def list_reviews(
    request: Request,
    since: dt.datetime | None = Query(None, description="Decided at or after (ISO 8601, UTC unless it has an offset)."),
    limit: int | None = Query(None, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=1_000_000),
    me: Identity = Depends(require("viewer")),
) -> ReviewList:
    n = _limit(request, limit)
    since = _utc(since)
    with request.app.state.store.session() as s:
        q = select(Review)
        if since is not None:
            q = q.where(Review.created_at >= since)
        rows = s.scalars(q.order_by(Review.created_at, Review.id).limit(n).offset(offset)).all()
        items = [ReviewView(review_id=r.id, claim_id=r.claim_id, editor=r.editor, decision=r.decision, verdict=r.verdict,
                            verdict_name=VERDICTS.get(r.verdict or ""), topic=r.topic, note=r.note, debunk_id=r.debunk_id,
                            created_at=_when(r.created_at)) for r in rows]
    return ReviewList(items=items, limit=n, offset=offset)


# --------------------------------------------------------------------------- debunk search
_MARK = re.compile(r"(</?mark>)")


def plain_snippet(snippet: str) -> tuple[str, list[tuple[int, int]]]:
    """A backend snippet (escaped HTML with <mark>) as plain text and the [start, end) offsets of its marks."""
    text: list[str] = []
    spans: list[tuple[int, int]] = []
    pos, start = 0, None
    for part in _MARK.split(snippet or ""):
        if part == "<mark>":
            start = pos
        elif part == "</mark>":
            if start is not None and pos > start:
                spans.append((start, pos))
            start = None
        else:
            piece = html.unescape(part)
            text.append(piece)
            pos += len(piece)
    return "".join(text), spans


class DebunkHit(BaseModel):
    debunk_id: int
    title: str
    url: str | None
    source: str
    date: dt.date | None
    score: float
    snippet: str = Field(description="Plain text (not HTML).")
    highlights: list[tuple[int, int]] = Field(description="[start, end) character offsets of the query's words in snippet.")


class DebunkList(BaseModel):
    items: list[DebunkHit]
    limit: int
    offset: int


@router.get("/debunks", response_model=DebunkList, responses={**ERRORS, 503: {"description": "The index is unavailable"}},
            summary="Search the debunk articles")
def search_debunks(
    request: Request,
    q: str = Query(..., min_length=1, max_length=200, description="Search words (Chinese is segmented)."),
    source: str | None = Query(None, max_length=200, description="Only this outlet."),
    date_from: dt.date | None = Query(None, alias="from", description="Published on or after (YYYY-MM-DD)."),
    date_to: dt.date | None = Query(None, alias="to", description="Published on or before (YYYY-MM-DD)."),
    limit: int | None = Query(None, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=10_000),
    me: Identity = Depends(require("partner_or_viewer")),
) -> DebunkList:
    from index.backend import BackendError, SearchFilters

    n = _limit(request, limit)
    filters = SearchFilters(kind="debunk", source=source or None, date_from=date_from, date_to=date_to)
    try:
        hits = request.app.state.heavy.backend().search(q, limit=n, offset=offset, filters=filters)
    except BackendError as exc:
        raise HTTPException(status_code=503, detail=f"检索服务暂不可用：{exc}") from None
    items = []
    for h in hits:
        text, spans = plain_snippet(h.snippet)
        items.append(DebunkHit(debunk_id=h.doc_id, title=h.title, url=h.url, source=h.source, date=h.date,
                               score=round(float(h.score), 4), snippet=text, highlights=spans))
    return DebunkList(items=items, limit=n, offset=offset)


# --------------------------------------------------------------------------- ClaimReview
@router.get("/claimreview", responses={**ERRORS, 200: {"content": {"application/ld+json": {}},
            "description": "A JSON array of schema.org ClaimReview objects"}},
            summary="schema.org ClaimReview (JSON-LD) of confirmed verdicts")
def claimreview(
    request: Request,
    since: dt.datetime | None = Query(None, description="Decided at or after (ISO 8601, UTC unless it has an offset)."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
    me: Identity = Depends(require("partner_or_viewer")),
) -> Response:
    from review.claimreview import claim_reviews, dumps

    data = claim_reviews(request.app.state.store, since=_utc(since), limit=limit, offset=offset)
    return Response(content=dumps(data), media_type="application/ld+json")
