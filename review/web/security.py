"""Who may do what, CSRF, and making hostile crawled content safe to show.

Pages authenticate by a signed session cookie; the REST API by ``Authorization: Bearer <token>``.
Every unsafe request made with a cookie must carry the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``); bearer-token calls carry no cookie and need none.
Routes declare the weakest role that may use them with ``Depends(require("editor"))``; the
authorization test walks every route and checks every role against that declaration.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import nh3
from fastapi import HTTPException, Request
from markupsafe import Markup

from review.accounts import ROLES, Identity, identify_token, identity_of_user

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class Forbidden(HTTPException):
    def __init__(self, detail: str = "没有权限执行此操作") -> None:
        super().__init__(status_code=403, detail=detail)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def bearer_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def current_identity(request: Request) -> Identity | None:
    """The caller, once per request: a bearer token wins over the session cookie."""
    if "identity" in request.state._state:
        return request.state.identity  # type: ignore[no-any-return]
    store = request.app.state.store
    ident: Identity | None = None
    token = bearer_token(request)
    if token is not None:
        ident = identify_token(store, token)
        request.state.via_token = True
    else:
        request.state.via_token = False
        uid, epoch = request.session.get("uid"), request.session.get("epoch")
        if isinstance(uid, int) and isinstance(epoch, int):
            ident = identity_of_user(store, uid, epoch)
            if ident is None:
                request.session.clear()
    request.state.identity = ident
    return ident


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    tok = request.session.get("csrf")
    if not isinstance(tok, str):
        tok = secrets.token_urlsafe(32)
        request.session["csrf"] = tok
    return tok


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe cookie-authenticated request without the session's CSRF token."""
    if request.method in SAFE_METHODS or bearer_token(request) is not None:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                form = await request.form()
            except Exception:  # noqa: BLE001 - a malformed body is a bad request, not a crash
                raise HTTPException(status_code=400, detail="表单格式错误") from None
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not secrets.compare_digest(expected, sent):
        raise HTTPException(status_code=403, detail="表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")


class require:
    """``Depends(require("editor"))``: the caller must be a user holding this role or a stronger one.

    ``require("partner")`` admits partner tokens only; ``require("partner_or_editor")`` admits
    partner tokens and editors. The role is kept on the instance for the authorization test.
    """

    def __init__(self, role: str) -> None:
        if role not in ROLES and role not in ("partner", "partner_or_viewer", "partner_or_editor"):
            raise ValueError(f"unknown role {role!r}")
        self.role = role

    def __call__(self, request: Request) -> Identity:
        ident = current_identity(request)
        if ident is None:
            raise LoginRequired()
        if self.role == "partner":
            ok = ident.kind == "partner"
        elif self.role.startswith("partner_or_"):
            ok = ident.kind == "partner" or ident.can(self.role[len("partner_or_"):])
        else:
            ok = ident.can(self.role)
        if not ok:
            raise Forbidden()
        return ident

    def __repr__(self) -> str:
        return f"require({self.role!r})"


# --------------------------------------------------------------------------- form input
def parse_day(value: str, name: str) -> dt.date | None:
    """A YYYY-MM-DD day from a filter field (empty: no bound); anything else is a clear 422."""
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if 1900 <= day.year <= 2100:  # "0001-01-01", "9999-12-31": the query's day bounds would overflow
                return day
    raise HTTPException(status_code=422, detail=f"{name}的格式应为 YYYY-MM-DD，例如 2026-11-28")


# --------------------------------------------------------------------------- hostile content
_HIGHLIGHT_TAGS = {"mark", "em", "b"}
_SAFE_SCHEMES = ("http", "https")


def clean_snippet(snippet: str | None) -> Markup:
    """A search snippet or highlight from a backend: only <mark>/<em>/<b> survive, with no attributes."""
    if not snippet:
        return Markup("")
    return Markup(nh3.clean(snippet, tags=_HIGHLIGHT_TAGS, attributes={}, url_schemes=set(), strip_comments=True))


def safe_url(url: str | None) -> str:
    """``url`` when it is an absolute http(s) URL, else ``#``: crawled links may be ``javascript:`` or worse."""
    if not url:
        return "#"
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return "#"
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc or any(c in url for c in "\x00\r\n\t"):
        return "#"
    return url


def highlight(text: str | None, needle: str | None, *, max_terms: int = 20) -> Markup:
    """``text`` escaped, with the words of ``needle`` (jieba tokens of two or more characters) in <mark>."""
    if not text:
        return Markup("")
    if not needle:
        return Markup(html.escape(text))
    from classifier.text import tokenize

    terms = sorted({t for t in tokenize(needle) if len(t) >= 2}, key=len, reverse=True)[:max_terms]
    if not terms:
        return Markup(html.escape(text))
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.I)
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<mark>{html.escape(m.group(0))}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return Markup("".join(out))


def role_name(role: str) -> str:
    return {"admin": "管理员", "editor": "编辑", "viewer": "只读", "partner": "合作平台"}.get(role, role)


def template_globals() -> dict[str, Any]:
    return {"safe_url": safe_url, "clean_snippet": clean_snippet, "highlight": highlight, "role_name": role_name}
