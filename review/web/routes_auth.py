"""Log in and out. Failed logins are rate limited per account and per address (web.login_*)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from review.accounts import Identity, authenticate, login_blocked
from review.web.app import render
from review.web.security import check_csrf, client_ip, current_identity, require

router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)


def _safe_next(nxt: str | None) -> str:
    """Only a local path: an open redirect would let a phishing link borrow our login page."""
    if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt and len(nxt) < 2000:
        return nxt
    return "/queue"


@router.get("/")
def home(me: Identity = Depends(require("viewer"))) -> Response:
    return RedirectResponse("/queue", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if current_identity(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login")
def login(request: Request, username: str = Form("", max_length=64), password: str = Form("", max_length=1024),
          next: str = Form("/queue", max_length=2000)) -> Response:
    web = request.app.state.settings.web
    store = request.app.state.store
    ip = client_ip(request)
    if login_blocked(store, username.strip().lower(), ip, max_failures=web.login_max_failures,
                     window_minutes=web.login_window_minutes):
        return render(request, "login.html", {"next": _safe_next(next), "username": username,
                      "error": f"登录失败次数过多，请 {int(web.login_window_minutes)} 分钟后再试"}, status_code=429)
    ident = authenticate(store, username, password, ip)
    if ident is None:
        return render(request, "login.html", {"next": _safe_next(next), "username": username,
                      "error": "用户名或密码错误，或账号已停用"}, status_code=401)
    request.session.clear()  # a fresh session (and CSRF token) for the new login
    request.session.update({"uid": ident.id, "epoch": ident.session_epoch})
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
