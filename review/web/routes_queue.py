"""The review queue and the claim page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from review.accounts import Identity
from review.queue import list_queue
from review.web.app import render
from review.web.security import check_csrf, require

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)


@router.get("/queue")
def queue_page(request: Request, me: Identity = Depends(require("viewer"))) -> Response:
    entries = list_queue(request.app.state.store, limit=request.app.state.settings.web.page_size)
    return render(request, "queue.html", {"entries": entries})
