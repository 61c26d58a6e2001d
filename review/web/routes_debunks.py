"""The debunk library: search, a debunk's page, and adding and editing curated debunks."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from classifier.labels import VERDICTS
from review.accounts import Identity
from review.debunks import (
    MAX_QUERY_CHARS,
    DebunkConflict,
    DebunkForm,
    DebunkInvalid,
    DebunkNotFound,
    Limits,
    ResultPage,
    SearchQuery,
    create_debunk,
    debunk_detail,
    debunk_sources,
    index_now,
    list_debunks,
    search_debunks,
    update_debunk,
)
from review.web.app import render
from review.web.security import check_csrf, require

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

# Transport caps on the form fields: above the largest limit settings.web allows, so that a text a
# little over the configured limit comes back in the form with a message instead of being cut off.
CAP_SHORT = 4000
CAP_URL = 8192
CAP_SUMMARY = 200_000
CAP_BODY = 1_000_000
# A debunk id from the URL stays in the database's integer range (a larger one overflowed the driver: a 500).
DebunkId = Annotated[int, Path(ge=1, le=2**31 - 1)]

SAVED_NOTICES = {"created": "辟谣已添加。", "updated": "修改已保存。", "unchanged": "没有改动，未保存新版本。"}
ACTION_NAMES = {"debunk.created": "新建", "debunk.updated": "修改", "debunk.imported": "导入"}
FIELD_NAMES = {"title": "标题", "url": "原文链接", "source": "来源", "origin": "原始出处", "published": "发布日期",
               "verdict": "结论", "summary": "编辑摘要", "text": "正文", "text_sha256": "正文指纹",
               "text_chars": "正文字数", "content_hash": "内容指纹"}


def _date(value: str, label: str, errors: list[str]) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label}格式应为 YYYY-MM-DD")
        return None


@router.get("/debunks")
def debunks_page(
    request: Request,
    me: Identity = Depends(require("viewer")),
    q: str = Query("", max_length=2000),
    source: str = Query("", max_length=200),
    verdict: str = Query("", max_length=40),
    date_from: str = Query("", max_length=20),
    date_to: str = Query("", max_length=20),
    page: int = Query(1, ge=1, le=100_000),
) -> Response:
    """Search with a query; without one, the newest debunks. Bad input and index outages are messages on the page."""
    store, settings = request.app.state.store, request.app.state.settings
    errors: list[str] = []
    query = SearchQuery(q=q.strip(), source=source.strip(), verdict=verdict.strip(), page=page,
                        date_from=_date(date_from, "起始日期", errors), date_to=_date(date_to, "截止日期", errors))
    if len(query.q) > MAX_QUERY_CHARS:
        errors.append(f"搜索词太长：最多 {MAX_QUERY_CHARS} 个字（现有 {len(query.q)} 个）。请只保留关键词。")
    if query.verdict and query.verdict not in VERDICTS:
        errors.append("未知的结论筛选项")
    if query.date_from and query.date_to and query.date_from > query.date_to:
        errors.append("起始日期晚于截止日期")
    result: ResultPage | None = None
    status = 200
    if errors:
        status = 422
    elif query.q:
        try:
            result = search_debunks(store, request.app.state.heavy.backend(), query, settings.web.page_size)
        except Exception as exc:  # noqa: BLE001 - an index outage is a message, never a 500
            log.warning("debunk search failed: %s: %s", exc.__class__.__name__, exc)
            errors.append("搜索服务暂时不可用（索引无法连接），请稍后重试。不带关键词可以浏览最新收录的辟谣。")
            status = 503
    else:
        result = list_debunks(store, query, settings.web.page_size)
    pages: dict[str, str] = {}
    if result is not None:
        if result.page > 1:
            pages["prev"] = "/debunks?" + urlencode(query.params(page=result.page - 1))
        if result.has_next:
            pages["next"] = "/debunks?" + urlencode(query.params(page=result.page + 1))
    return render(request, "debunks.html", {
        "query": query, "raw": {"q": q[:MAX_QUERY_CHARS * 2], "date_from": date_from, "date_to": date_to},
        "result": result, "errors": errors, "sources": debunk_sources(store), "pages": pages,
    }, status_code=status)


def _limits(request: Request) -> Limits:
    return Limits.from_settings(request.app.state.settings)


def _form_page(request: Request, form: DebunkForm, *, debunk_id: int | None, errors: dict[str, str] | None = None,
               conflict: DebunkForm | None = None, status: int = 200) -> Response:
    return render(request, "debunk_form.html", {
        "form": form, "debunk_id": debunk_id, "errors": errors or {}, "conflict": conflict, "limits": _limits(request),
        "field_names": FIELD_NAMES,
    }, status_code=status)


def _posted(title: str, url: str, source: str, origin: str, published: str, verdict: str, summary: str, text: str,
            version: str) -> DebunkForm:
    try:
        ver: int | None = int(version) if version.strip() else None
    except ValueError:
        ver = None
    return DebunkForm(title=title, url=url, source=source, origin=origin, published=published, verdict=verdict,
                      summary=summary, text=text, version=ver)


def _after_save(request: Request, debunk_id: int, outcome: str) -> Response:
    """Index the change now; if the index is down the outbox keeps it and the page says so."""
    params: dict[str, Any] = {"saved": outcome}
    if outcome != "unchanged" and not index_now(request.app.state.store, request.app.state.heavy.backend):
        params["index"] = "pending"
    return RedirectResponse(f"/debunks/{debunk_id}?{urlencode(params)}", status_code=303)


@router.get("/debunks/new")
def new_debunk_form(request: Request, me: Identity = Depends(require("editor"))) -> Response:
    return _form_page(request, DebunkForm(), debunk_id=None)


@router.post("/debunks/new")
def new_debunk(
    request: Request,
    me: Identity = Depends(require("editor")),
    title: str = Form("", max_length=CAP_SHORT),
    url: str = Form("", max_length=CAP_URL),
    source: str = Form("", max_length=CAP_SHORT),
    origin: str = Form("", max_length=CAP_SHORT),
    published: str = Form("", max_length=40),
    verdict: str = Form("", max_length=40),
    summary: str = Form("", max_length=CAP_SUMMARY),
    text: str = Form("", max_length=CAP_BODY),
) -> Response:
    form = _posted(title, url, source, origin, published, verdict, summary, text, "")
    settings = request.app.state.settings
    try:
        res = create_debunk(request.app.state.store, form, actor=me.name, limits=_limits(request),
                            num_perm=settings.imports.minhash_permutations)
    except DebunkInvalid as exc:
        return _form_page(request, form, debunk_id=None, errors=exc.errors, status=422)
    return _after_save(request, res.debunk_id, "created")


@router.get("/debunks/{debunk_id:int}")
def debunk_page(request: Request, debunk_id: DebunkId, me: Identity = Depends(require("viewer")),
                saved: str = Query("", max_length=20), index: str = Query("", max_length=20)) -> Response:
    try:
        detail = debunk_detail(request.app.state.store, debunk_id)
    except DebunkNotFound:
        raise HTTPException(status_code=404, detail=f"没有编号为 {debunk_id} 的辟谣") from None
    return render(request, "debunk.html", {
        "d": detail.debunk, "claims": detail.claims, "history": detail.history,
        "notice": SAVED_NOTICES.get(saved), "index_pending": index == "pending",
        "action_names": ACTION_NAMES, "field_names": FIELD_NAMES,
    })


@router.get("/debunks/{debunk_id:int}/edit")
def edit_debunk_form(request: Request, debunk_id: DebunkId, me: Identity = Depends(require("editor"))) -> Response:
    try:
        detail = debunk_detail(request.app.state.store, debunk_id, history_limit=0)
    except DebunkNotFound:
        raise HTTPException(status_code=404, detail=f"没有编号为 {debunk_id} 的辟谣") from None
    return _form_page(request, DebunkForm.of(detail.debunk), debunk_id=debunk_id)


@router.post("/debunks/{debunk_id:int}/edit")
def edit_debunk(
    request: Request,
    debunk_id: DebunkId,
    me: Identity = Depends(require("editor")),
    title: str = Form("", max_length=CAP_SHORT),
    url: str = Form("", max_length=CAP_URL),
    source: str = Form("", max_length=CAP_SHORT),
    origin: str = Form("", max_length=CAP_SHORT),
    published: str = Form("", max_length=40),
    verdict: str = Form("", max_length=40),
    summary: str = Form("", max_length=CAP_SUMMARY),
    text: str = Form("", max_length=CAP_BODY),
    version: str = Form("", max_length=20),
) -> Response:
    form = _posted(title, url, source, origin, published, verdict, summary, text, version)
    settings = request.app.state.settings
    try:
        res = update_debunk(request.app.state.store, debunk_id, form, actor=me.name, limits=_limits(request),
                            num_perm=settings.imports.minhash_permutations)
    except DebunkNotFound:
        raise HTTPException(status_code=404, detail=f"没有编号为 {debunk_id} 的辟谣") from None
    except DebunkInvalid as exc:
        return _form_page(request, form, debunk_id=debunk_id, errors=exc.errors, status=422)
    except DebunkConflict as exc:
        # The editor's text stays in the form; saving again (after reading the other version) is a
        # deliberate overwrite, so the form now carries the current version.
        form.version = exc.current.version
        return _form_page(request, form, debunk_id=debunk_id, conflict=exc.current, status=409)
    return _after_save(request, res.debunk_id, "updated" if res.changed else "unchanged")
