"""Web routes: debunks (filled in by its own change)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from review.web.security import check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)
