"""科普统计: the statistics page (ECharts, drawn by static/stats.js) and the monthly rumor list export."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from review.accounts import Identity
from review.stats import (
    StatsRange,
    default_range,
    monthly_csv,
    monthly_json,
    monthly_list,
    monthly_markdown,
    month_bounds,
    shanghai_date,
    stats_data,
)
from review.web.app import render
from review.web.security import check_csrf, require
from store.models import utcnow

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

FORMATS = {"csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8", "json": "application/json; charset=utf-8"}


def _parse(value: str, label: str, errors: list[str]) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or not 1900 <= day.year <= 2100:  # "0001-01-05": the default 30-day range would overflow
        errors.append(f"{label}格式应为 YYYY-MM-DD")
        return None
    return day


def _months(today: dt.date, n: int = 6) -> list[str]:
    """This month and the ``n - 1`` before it, newest first ('YYYY-MM')."""
    out, y, m = [], today.year, today.month
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


@router.get("/stats")
def stats_page(request: Request, me: Identity = Depends(require("viewer")),
               date_from: str = Query("", max_length=20), date_to: str = Query("", max_length=20)) -> Response:
    errors: list[str] = []
    default = default_range()
    first, last = _parse(date_from, "起始日期", errors), _parse(date_to, "截止日期", errors)
    rng = default
    if not errors and (first or last):
        try:
            rng = StatsRange(first or (last or default.last) - dt.timedelta(days=29), last or default.last)
        except ValueError as exc:
            errors.append(str(exc))
    data = stats_data(request.app.state.store, rng)
    today = shanghai_date(utcnow())
    return render(request, "stats.html", {"data": data, "rng": rng, "errors": errors, "months": _months(today)},
                  status_code=422 if errors else 200)


@router.get("/stats/monthly")
def monthly_export(request: Request, me: Identity = Depends(require("viewer")),
                   month: str = Query("", max_length=7), format: str = Query("csv", max_length=4)) -> Response:
    """月度辟谣榜 as CSV (UTF-8 with BOM), Markdown or JSON, as a download."""
    month = month.strip() or _months(shanghai_date(utcnow()), 1)[0]
    if format not in FORMATS:
        raise HTTPException(status_code=422, detail="导出格式应为 csv、md 或 json")
    try:
        month_bounds(month)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    entries = monthly_list(request.app.state.store, month)
    if format == "csv":
        body = monthly_csv(entries)
    elif format == "md":
        body = monthly_markdown(entries, month)
    else:
        body = monthly_json(entries, month)
    filename = f"piyao-monthly-{month}.{format}"
    return Response(body.encode("utf-8"), media_type=FORMATS[format],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
