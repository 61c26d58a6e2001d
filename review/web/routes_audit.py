"""The audit log: every recorded change (who, when, what, old → new), filtered, paged and exported.

Events are shown generically, whatever wrote them (decisions, debunk edits, accounts …). The
export streams CSV (with a UTF-8 BOM, so that Excel reads the Chinese right) or JSON lines under
the same filters, in id order, a batch at a time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Select, func, select

from review.accounts import Identity
from review.queue import BEIJING_OFFSET
from review.web.app import render
from review.web.security import check_csrf, parse_day, require
from store.db import Store
from store.models import AuditEvent

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

ACTION_NAMES = {
    "claim.reviewed": "审核决定",
    "claim.urgent": "紧急标记",
    "claim.queued": "进入审核队列",
    "debunk.imported": "导入辟谣",
    "debunk.created": "新建辟谣",
    "debunk.updated": "修改辟谣",
    "user.created": "新建账号",
    "user.changed": "修改账号",
    "partner.created": "新建合作平台",
    "token.changed": "API 令牌变更",
}
OBJECT_NAMES = {"claim": "说法", "debunk": "辟谣", "user": "账号", "partner": "合作平台", "token": "API 令牌"}
# Pages of the objects that have one.
OBJECT_LINKS = {"claim": "/claims/{id}", "debunk": "/debunks/{id}"}
EXPORT_BATCH = 500
VALUE_CHARS = 300
CSV_FIELDS = ["id", "at_utc", "at_beijing", "actor", "action", "object_type", "object_id", "old", "new"]


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: int | None = None
    # Beijing calendar days, both inclusive.
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def apply(self, q: Select[Any]) -> Select[Any]:
        if self.actor:
            q = q.where(AuditEvent.actor == self.actor)
        if self.action:
            q = q.where(AuditEvent.action == self.action)
        if self.object_type:
            q = q.where(AuditEvent.object_type == self.object_type)
        if self.object_id is not None:
            q = q.where(AuditEvent.object_id == self.object_id)
        if self.date_from is not None:
            q = q.where(AuditEvent.at >= dt.datetime.combine(self.date_from, dt.time()) - BEIJING_OFFSET)
        if self.date_to is not None:
            q = q.where(AuditEvent.at < dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time()) - BEIJING_OFFSET)
        return q

    def params(self) -> dict[str, str]:
        out = {"actor": self.actor or "", "action": self.action or "", "object_type": self.object_type or "",
               "object_id": "" if self.object_id is None else str(self.object_id),
               "date_from": self.date_from.isoformat() if self.date_from else "",
               "date_to": self.date_to.isoformat() if self.date_to else ""}
        return {k: v for k, v in out.items() if v}


def audit_filters(
    actor: str = Query("", max_length=100),
    action: str = Query("", max_length=50),
    object_type: str = Query("", max_length=20),
    object_id: str = Query("", max_length=12),
    date_from: str = Query("", max_length=10),
    date_to: str = Query("", max_length=10),
) -> AuditFilters:
    """The filters of the page and the export, checked (a clear 422 for bad input)."""
    oid = None
    if object_id.strip():
        if not (object_id.strip().isascii() and object_id.strip().isdigit()):
            raise HTTPException(status_code=422, detail="对象编号应为数字")
        oid = int(object_id.strip())
        if oid > 2**31 - 1:  # past the database's integer column: PostgreSQL refuses the comparison
            raise HTTPException(status_code=422, detail="对象编号超出范围")
    start, end = parse_day(date_from, "起始日期"), parse_day(date_to, "截止日期")
    if start and end and start > end:
        raise HTTPException(status_code=422, detail="起始日期晚于截止日期")
    return AuditFilters(actor.strip() or None, action.strip() or None, object_type.strip() or None, oid, start, end)


def _text(value: Any) -> str:
    """A value of old/new as an editor reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"


def change_lines(old: Any, new: Any) -> list[dict[str, Any]]:
    """``key: old → new`` lines, old keys first; values that did not change are marked as such."""
    old_d = old if isinstance(old, dict) else ({} if old is None else {"值": old})
    new_d = new if isinstance(new, dict) else ({} if new is None else {"值": new})
    keys = list(dict.fromkeys([*old_d, *new_d]))
    lines = []
    for k in keys:
        in_old, in_new = k in old_d, k in new_d
        lines.append({"key": str(k), "old": _text(old_d.get(k)) if in_old else None,
                      "new": _text(new_d.get(k)) if in_new else None,
                      "same": in_old and in_new and old_d.get(k) == new_d.get(k)})
    return lines


def object_link(object_type: str, object_id: int | None) -> str | None:
    pattern = OBJECT_LINKS.get(object_type)
    return pattern.format(id=object_id) if pattern and object_id is not None else None


def _distinct(store: Store, column: Any) -> list[str]:
    with store.session() as s:
        return sorted(v for v in s.scalars(select(column).distinct()) if v)


@router.get("/audit")
def audit_page(request: Request, me: Identity = Depends(require("viewer")),
               filters: AuditFilters = Depends(audit_filters), page: int = Query(1, ge=1, le=1_000_000)) -> Response:
    store = request.app.state.store
    size = request.app.state.settings.web.page_size
    with store.session() as s:
        total = s.scalar(filters.apply(select(func.count(AuditEvent.id)))) or 0
        rows = list(s.scalars(filters.apply(select(AuditEvent)).order_by(AuditEvent.id.desc())
                              .offset((page - 1) * size).limit(size)))
    events = [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
               "action_name": ACTION_NAMES.get(e.action, ""), "object_type": e.object_type,
               "object_name": OBJECT_NAMES.get(e.object_type, e.object_type), "object_id": e.object_id,
               "link": object_link(e.object_type, e.object_id), "lines": change_lines(e.old, e.new)} for e in rows]
    params = filters.params()
    pages = max(1, math.ceil(total / size))
    return render(request, "audit.html", {
        "events": events, "total": total, "page": page, "pages": pages, "filters": filters, "params": params,
        "page_url": lambda n: "/audit?" + urlencode({**params, "page": n}),
        "export_url": lambda fmt: "/audit/export?" + urlencode({**params, "format": fmt}),
        "actions": sorted(set(_distinct(store, AuditEvent.action)) | set(ACTION_NAMES)),
        "object_types": sorted(set(_distinct(store, AuditEvent.object_type)) | set(OBJECT_NAMES)),
        "action_names": ACTION_NAMES, "object_names": OBJECT_NAMES,
    })


def _csv_cell(value: Any) -> Any:
    """Spreadsheet formula injection: a text cell starting with = + - @ (or a tab / CR) is kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_rows(store: Store, filters: AuditFilters) -> Iterator[dict[str, Any]]:
    """Matching events in id order, read a batch at a time (keyset paging: no long-held cursor)."""
    last = 0
    while True:
        with store.session() as s:
            batch = list(s.scalars(filters.apply(select(AuditEvent)).where(AuditEvent.id > last)
                                   .order_by(AuditEvent.id).limit(EXPORT_BATCH)))
        if not batch:
            return
        for e in batch:
            yield {"id": e.id, "at_utc": e.at.isoformat() + "Z",
                   "at_beijing": (e.at + BEIJING_OFFSET).isoformat() + "+08:00", "actor": e.actor,
                   "action": e.action, "object_type": e.object_type, "object_id": e.object_id,
                   "old": e.old, "new": e.new}
        last = batch[-1].id
        if len(batch) < EXPORT_BATCH:
            return


def csv_stream(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(CSV_FIELDS)
    for n, row in enumerate(rows, start=1):
        cells = [row[k] for k in CSV_FIELDS]
        cells[7] = "" if row["old"] is None else json.dumps(row["old"], ensure_ascii=False, default=str)
        cells[8] = "" if row["new"] is None else json.dumps(row["new"], ensure_ascii=False, default=str)
        writer.writerow([_csv_cell(c) for c in cells])
        if n % 200 == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def jsonl_stream(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        yield (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")


@router.get("/audit/export")
def audit_export(request: Request, me: Identity = Depends(require("viewer")),
                 filters: AuditFilters = Depends(audit_filters),
                 format: str = Query("csv", max_length=10)) -> Response:
    if format not in ("csv", "jsonl"):
        raise HTTPException(status_code=422, detail="导出格式应为 csv 或 jsonl")
    rows = export_rows(request.app.state.store, filters)
    stamp = (dt.datetime.now(dt.timezone.utc) + BEIJING_OFFSET).strftime("%Y%m%d-%H%M")
    if format == "csv":
        body, media = csv_stream(rows), "text/csv; charset=utf-8"
    else:
        body, media = jsonl_stream(rows), "application/x-ndjson; charset=utf-8"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="piyao-audit-{stamp}.{format}"'})
