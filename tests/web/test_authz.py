"""The authorization matrix: every route of the app, called by every kind of caller.

Each route declares the weakest role that may use it with ``Depends(require(role))``. This test walks
whatever routes exist (pages and API, however many are added later), reads that declaration from the
route's dependencies, and calls the route as anonymous, viewer, editor, admin (browser sessions with a
valid CSRF token), a partner's token and an editor's user token: denied callers get 401 (API) or the
login redirect (pages) when anonymous and 403 otherwise; allowed callers get neither, and no 5xx. A
route without a ``require`` must be on the short allowlist below, so an unprotected route cannot
slip in unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from review.accounts import ROLES, create_partner, create_token, create_user
from review.web.security import require
from store.db import Store
from store.models import Debunk, PartnerSubmission
from tests.web.conftest import PASSWORD, csrf_of

# Routes anyone may call: logging in and out, static files, the API's own documentation.
ALLOWLIST = {"/login", "/logout", "/static", "/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect",
             "/docs/oauth2-redirect", "/api/redoc"}
PARTNER_ROLES = ("partner", "partner_or_viewer", "partner_or_editor")


@dataclass(frozen=True)
class Endpoint:
    path: str  # as declared, e.g. /claims/{claim_id}
    method: str
    role: str | None  # the require() role; None: no require
    params: tuple[tuple[str, type], ...]

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def _requires(dependant: Any) -> Iterator[require]:
    for dep in dependant.dependencies:
        if isinstance(dep.call, require):
            yield dep.call
        yield from _requires(dep)


def _route_contexts(app: Any) -> Iterator[Any]:
    """Every route with its effective path and dependencies (FastAPI ≥0.16x keeps included routers nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is flat already
        yield from app.routes
        return
    yield from iter_route_contexts(app.routes)


def endpoints(app: Any) -> list[Endpoint]:
    out = []
    for route in _route_contexts(app):
        path = getattr(route, "path", None)
        assert path is not None, route
        dependant = getattr(route, "dependant", None)
        methods = sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"})
        roles = [r.role for r in _requires(dependant)] if dependant is not None else []
        assert len(set(roles)) <= 1, f"{path} declares several roles: {roles}"
        params = tuple((p.name, p.field_info.annotation) for p in dependant.path_params) if dependant is not None else ()
        for method in methods:
            out.append(Endpoint(path, method, roles[0] if roles else None, params))
    return out


def allowed(role: str, who: str) -> bool:
    """May ``who`` (anonymous | partner | viewer | editor | admin) use a route that requires ``role``?"""
    if who == "anonymous":
        return False
    if who == "partner":
        return role in PARTNER_ROLES
    base = role[len("partner_or_"):] if role.startswith("partner_or_") else role
    return base in ROLES and ROLES.index(who) >= ROLES.index(base)


@dataclass
class Caller:
    who: str  # anonymous | partner | viewer | editor | admin
    label: str
    client: TestClient
    csrf: str | None = None
    token: str | None = None

    def call(self, method: str, url: str, *, api: bool) -> Any:
        headers = {"Accept": "application/json" if api else "text/html"}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if method == "GET":
            return self.client.get(url, headers=headers)
        if api:
            return self.client.request(method, url, json={}, headers=headers)
        return self.client.request(method, url, data={"csrf_token": self.csrf or ""}, headers=headers)


@pytest.fixture
def world(app: Any, store: Store, seeded: dict[str, Any], accounts: dict[str, Any]) -> dict[str, Any]:
    """Ids for path parameters; throwaway accounts for the routes that change accounts."""
    create_user(store, "zed", PASSWORD, "viewer")
    spare, _ = create_partner(store, "spare")
    token_id, _ = create_token(store, partner="spare")
    with store.session() as s:
        debunk_id = s.scalar(select(Debunk.id).order_by(Debunk.id).limit(1))
        # acme submitted the first seeded claim, other the second.
        s.add(PartnerSubmission(partner_id=accounts["acme_id"], claim_id=seeded["claims"][0], external_id="acme-0"))
        s.add(PartnerSubmission(partner_id=accounts["other_id"], claim_id=seeded["claims"][1], external_id="other-1"))
    return {"claim": seeded["claims"][0], "debunk": debunk_id, "user": "zed", "partner": spare.name,
            "partner_id": spare.id, "token": token_id}


def fill(path: str, params: tuple[tuple[str, type], ...], world: dict[str, Any]) -> str:
    """The path with ids from the seeded world; unknown parameters get values that exist nowhere (→ 404)."""
    types = dict(params)

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        numeric = types.get(name) is int or (m.group(2) or "") == ":int"
        for key in ("claim", "debunk", "token"):
            if key in name:
                return str(world[key])
        if "user" in name:
            return "zed" if not numeric else "999999"
        if "partner" in name:
            return str(world["partner_id"]) if numeric else world["partner"]
        return "999999" if numeric else "no-such-thing"

    return re.sub(r"\{(\w+)(:\w+)?\}", value, path)


@pytest.fixture
def callers(app: Any, login_as: Callable[[str], tuple[TestClient, str]], accounts: dict[str, Any]) -> Iterator[list[Caller]]:
    anon = TestClient(app, base_url="http://testserver", follow_redirects=False)
    anon_csrf = csrf_of(anon, "/login")  # a session without a user, with its CSRF token
    bare = TestClient(app, base_url="http://testserver", follow_redirects=False)
    out = [Caller("anonymous", "anonymous", anon, csrf=anon_csrf),
           Caller("partner", "acme's token", bare, token=accounts["acme_token"]),
           Caller("editor", "ed's user token", bare, token=accounts["ed_token"])]
    for role in ("viewer", "editor", "admin"):
        client, csrf = login_as(role)
        out.append(Caller(role, f"{role} session", client, csrf=csrf))
    yield out
    anon.close()
    bare.close()


def unprotected(app: Any) -> list[str]:
    return sorted({e.path for e in endpoints(app) if e.role is None} - ALLOWLIST)


def test_every_route_declares_a_role_or_is_allowlisted(app: Any) -> None:
    found = endpoints(app)
    assert any(e.path == "/api/v1/claims" for e in found) and any(e.path == "/queue" for e in found)
    assert unprotected(app) == [], f"routes without Depends(require(...)): {unprotected(app)}"
    for e in found:
        if e.role is not None:
            assert e.role in ROLES or e.role in PARTNER_ROLES, e


def test_a_new_unprotected_route_is_caught(settings: Any, store: Store) -> None:
    from fastapi import APIRouter, Depends

    from review.web import create_app

    fresh = create_app(settings, store=store)
    leaky = APIRouter(prefix="/api/v1")

    @leaky.get("/leak")
    def leak() -> dict[str, str]:
        return {}

    @leaky.get("/guarded")
    def guarded(me: Any = Depends(require("viewer"))) -> dict[str, str]:
        return {}

    fresh.include_router(leaky)
    assert unprotected(fresh) == ["/api/v1/leak"]
    assert {e.path: e.role for e in endpoints(fresh)}["/api/v1/guarded"] == "viewer"
    fresh.state.heavy.close()


def test_the_authorization_matrix(app: Any, world: dict[str, Any], callers: list[Caller]) -> None:
    found = [e for e in endpoints(app) if e.role is not None]
    failures: list[str] = []
    checked = 0
    for e in found:
        url = fill(e.path, e.params, world)
        for c in callers:
            r = c.call(e.method, url, api=e.api)
            checked += 1
            status, where = r.status_code, r.headers.get("location", "")
            what = f"{e.method} {url} [{e.role}] as {c.label}: {status} {where}"
            if allowed(e.role or "", c.who):
                if status in (401, 403) or status >= 500 or (status in (302, 303) and where.startswith("/login")):
                    failures.append(f"allowed but refused: {what} {r.text[:200]}")
            elif c.who == "anonymous":
                ok = status == 401 if e.api else (status == 303 and where.startswith("/login?next="))
                if not ok:
                    failures.append(f"anonymous not sent to log in: {what}")
            elif status != 403:
                failures.append(f"denied but not 403: {what}")
    assert failures == [], "\n".join(failures)
    assert checked == len(found) * len(callers)


def test_a_partner_token_opens_no_page_and_no_editor_api(app: Any, world: dict[str, Any], callers: list[Caller]) -> None:
    partner = next(c for c in callers if c.who == "partner")
    for e in endpoints(app):
        if e.role is None or e.role in PARTNER_ROLES:
            continue
        r = partner.call(e.method, fill(e.path, e.params, world), api=e.api)
        assert r.status_code in (401, 403), (e, r.status_code)


def test_the_allowlisted_routes_work_without_login(client: TestClient, accounts: dict[str, Any]) -> None:
    assert client.get("/login").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_a_partner_reads_its_own_claims_and_no_other(client: TestClient, world: dict[str, Any], seeded: dict[str, Any],
                                                     accounts: dict[str, Any]) -> None:
    mine, theirs = seeded["claims"][0], seeded["claims"][1]
    acme = {"Authorization": f"Bearer {accounts['acme_token']}"}
    other = {"Authorization": f"Bearer {accounts['other_token']}"}
    r = client.get(f"/api/v1/claims/{mine}", headers=acme)
    assert r.status_code == 200 and r.json()["external_id"] == "acme-0"
    assert client.get(f"/api/v1/claims/{theirs}", headers=acme).status_code == 404
    assert client.get(f"/api/v1/claims/{theirs}", headers=other).status_code == 200
    assert client.get(f"/api/v1/claims/{mine}", headers=other).status_code == 404
    assert [i["claim_id"] for i in client.get("/api/v1/claims", headers=acme).json()["items"]] == [mine]
    assert [i["claim_id"] for i in client.get("/api/v1/claims", headers=other).json()["items"]] == [theirs]
    # A revoked or made-up token is nobody.
    assert client.get(f"/api/v1/claims/{mine}", headers={"Authorization": "Bearer py_forged"}).status_code == 401
