"""Accounts page for admins: users (add, disable, enable, role), partners and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from review.accounts import ROLES, AccountError, Identity, create_user, list_tokens, list_users, set_disabled, set_role
from review.web.app import render
from review.web.security import check_csrf, require

router = APIRouter(prefix="/admin", dependencies=[Depends(check_csrf)], include_in_schema=False)


@router.get("/users")
def users_page(request: Request, me: Identity = Depends(require("admin")), error: str | None = None) -> Response:
    store = request.app.state.store
    return render(request, "admin_users.html", {"users": list_users(store), "tokens": list_tokens(store),
                                                "roles": ROLES, "error": error})


@router.post("/users")
def add_user(request: Request, me: Identity = Depends(require("admin")), username: str = Form(..., max_length=64),
             password: str = Form(..., max_length=1024), role: str = Form(..., max_length=10),
             display_name: str = Form("", max_length=100)) -> Response:
    try:
        create_user(request.app.state.store, username, password, role, display_name=display_name or None, actor=me.name)
    except AccountError as exc:
        return users_page(request, me, error=str(exc))
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{username}/disable")
def disable_user(request: Request, username: str, me: Identity = Depends(require("admin")),
                 disabled: str = Form("1", max_length=1)) -> Response:
    if username == me.name and disabled == "1":
        return users_page(request, me, error="不能停用自己的账号")
    try:
        set_disabled(request.app.state.store, username, disabled == "1", actor=me.name)
    except AccountError as exc:
        return users_page(request, me, error=str(exc))
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{username}/role")
def change_role(request: Request, username: str, me: Identity = Depends(require("admin")),
                role: str = Form(..., max_length=10)) -> Response:
    try:
        set_role(request.app.state.store, username, role, actor=me.name)
    except AccountError as exc:
        return users_page(request, me, error=str(exc))
    return RedirectResponse("/admin/users", status_code=303)
