"""The FastAPI application: middleware, templates, error pages, and the routers of each room."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier.labels import TOPICS, VERDICTS
from review.web.security import LoginRequired, csrf_token, current_identity, template_globals
from settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Crawled content is hostile: no inline script or style runs, nothing is framed, forms post only here.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
# The OpenAPI pages load Swagger UI's own inline bootstrap; they show no crawled content.
DOCS_PATHS = ("/api/docs", "/api/redoc")


class SecurityHeaders:
    """Adds CSP and the other protective headers to every response (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not path.startswith(DOCS_PATHS):
                    extra.append((b"content-security-policy", CSP.encode()))
                if path.startswith(("/claims", "/queue", "/audit", "/admin", "/debunks", "/stats", "/schedules", "/login")):
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def session_secret(settings: Settings) -> str:
    """web.secret_key, else a random key kept in <data_dir>/web_secret (made once, mode 0600)."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = settings.data_path / "web_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _fmt_time(value: Any) -> str:
    """UTC datetimes shown in Beijing time (editors read 北京时间)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return (value + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    return str(value)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.globals.update(template_globals())
    env.globals.update({"VERDICTS": VERDICTS, "TOPICS": TOPICS})
    env.filters["bjtime"] = _fmt_time
    env.filters["verdict_name"] = lambda code: VERDICTS.get(code or "", code or "")
    env.filters["topic_name"] = lambda code: TOPICS.get(code or "", code or "")
    return templates


def render(request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200) -> Response:
    """A page: the template gets the caller, the CSRF token and the settings besides ``context``."""
    ctx = {"me": current_identity(request), "csrf": csrf_token(request), "settings": request.app.state.settings}
    ctx.update(context or {})
    return request.app.state.templates.TemplateResponse(request, name, ctx, status_code=status_code)  # type: ignore[no-any-return]


STATUS_NAMES = {"new": "新收录", "queued": "待审核", "confirmed": "已确认谣言", "dismissed": "已排除",
                "needs_debunk": "待写辟谣"}


class AppState:
    """Shared, lazily opened heavy parts (index backend, matcher, classifier): one per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._backend: Any = None
        self._matcher: Any = None
        self._classifier: Any = None

    def backend(self) -> Any:
        with self._lock:
            if self._backend is None:
                from index import open_backend

                self._backend = open_backend(self.settings)
            return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


SERVE_SETTINGS_ENV = "PIYAO_SERVE_SETTINGS"


def start_background(app: Any) -> None:
    """The server's background work: the webhook sender and, with scheduler.in_server, the scheduler.

    ``app`` is the served app, or (``piyao serve --workers N``) a stand-in in the parent process with
    ``state.settings`` and ``state.store``: there it runs once, not once per worker.
    """
    from review.webhooks import start_delivery_thread
    from scheduler import start_in_app

    interval = app.state.settings.web.webhook_interval
    if interval > 0:
        start_delivery_thread(app, interval=interval)
    start_in_app(app)  # the crawl scheduler, when scheduler.in_server is true


def stop_background(app: Any) -> None:
    from review.webhooks import stop_delivery_thread
    from scheduler import stop_in_app

    stop_in_app(app)  # and the crawls started with "run now", recorded as interrupted
    if app.state.settings.web.webhook_interval > 0:
        stop_delivery_thread(app)


def app_from_environment() -> FastAPI:
    """uvicorn's app factory for ``piyao serve --workers N``: each worker process builds the app over the
    settings the parent passed in ``PIYAO_SERVE_SETTINGS``; the background work stays in the parent."""
    settings = Settings.model_validate_json(os.environ[SERVE_SETTINGS_ENV])
    return create_app(settings, background=False)


def create_app(settings: Settings, *, store: Any = None, background: bool = True) -> FastAPI:
    """The web app over ``settings``' store and index. ``store``: an open store to share (tests).
    ``background``: run the webhook sender and the hosted scheduler with the app (false in the workers
    of ``piyao serve --workers N``, whose parent runs them)."""
    from store.db import open_store

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            start_background(app)
        yield
        if background:
            stop_background(app)
        app.state.heavy.close()
        if app.state.owns_store:
            app.state.store.close()

    app = FastAPI(title="piyao API", lifespan=lifespan, version="1", docs_url="/api/docs", redoc_url="/api/redoc",
                  openapi_url="/api/openapi.json",
                  description="科学辟谣 piyao: partner claim intake, debunk search, reviews, ClaimReview export.")
    app.state.settings = settings
    app.state.store = store if store is not None else open_store(settings.store_url, echo=settings.store.echo)
    app.state.owns_store = store is None
    app.state.heavy = AppState(settings)
    app.state.templates = make_templates()
    app.state.status_names = STATUS_NAMES
    app.state.templates.env.globals["STATUS_NAMES"] = STATUS_NAMES

    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie="piyao_session",
                       max_age=int(settings.web.session_hours * 3600), same_site="lax",
                       https_only=settings.web.secure_cookies)
    app.add_middleware(SecurityHeaders)
    from review.web.routes_metrics import RequestMetrics

    app.add_middleware(RequestMetrics)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "需要登录或有效的 API 令牌"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(nxt, safe='')}", status_code=303)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "text/html"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                      status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # "type" too: the OpenAPI document promises FastAPI's ValidationError shape (loc, msg, type).
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "value_error")}
                  for e in exc.errors()][:20]
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": errors}, status_code=422)
        detail = "；".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or '请求'}: {e['msg']}" for e in errors)
        return render(request, "error.html", {"status": 422, "detail": f"输入有误：{detail}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:  # never a traceback page
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "服务器内部错误，已记录"}, status_code=500)
        return render(request, "error.html", {"status": 500, "detail": "服务器内部错误，已记录。请稍后重试。"}, status_code=500)

    from sqlalchemy.exc import OperationalError

    @app.exception_handler(OperationalError)
    async def _db_locked(request: Request, exc: OperationalError) -> Response:
        """Another process holds the database's write lock past the busy timeout: the transaction was rolled
        back, so nothing was saved; a 503 says so and to retry (any other database error is a 500)."""
        orig = getattr(exc, "orig", None)
        locked = "database is locked" in str(orig) or "database table is locked" in str(orig) \
            or getattr(orig, "sqlstate", None) == "55P03"  # PostgreSQL: lock_timeout
        if not locked:
            return await _crash(request, exc)
        log.warning("database locked on %s %s: %s", request.method, request.url.path, str(orig).splitlines()[0])
        detail = "数据库正被其他进程占用，本次操作没有保存任何内容，请稍后重试"
        headers = {"Retry-After": "5"}
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "text/html"):
            return JSONResponse({"detail": detail}, status_code=503, headers=headers)
        response = render(request, "error.html", {"status": 503, "detail": detail}, status_code=503)
        response.headers.update(headers)
        return response

    from review.web import routes_admin, routes_api, routes_audit, routes_auth, routes_debunks, routes_metrics, routes_queue, routes_schedules, routes_stats

    for module in (routes_auth, routes_queue, routes_audit, routes_debunks, routes_stats, routes_schedules, routes_admin, routes_api, routes_metrics):
        app.include_router(module.router)
    return app
