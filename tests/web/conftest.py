"""Fixtures for the web app: a real app over a real store (SQLite and PostgreSQL), users of every role.

``client`` is FastAPI's TestClient (real ASGI app, real HTTP semantics, no server socket); the
browser tests (tests/web/browser/) run a real uvicorn server and drive Chromium instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from review.accounts import create_partner, create_token, create_user
from settings import load_settings
from store.db import Store

PASSWORD = "correct horse battery"
ROLE_USERS = {"admin": "alice", "editor": "ed", "editor2": "eve", "viewer": "vic"}


def web_settings(tmp_path: Path, db_url: str, **web: Any) -> Any:
    # No background webhook sender: the webhook tests deliver explicitly, with a controlled clock.
    env = {"PIYAO_STORE__URL": db_url, "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789", "PIYAO_WEB__WEBHOOK_INTERVAL": "0"}
    for k, v in web.items():
        env[f"PIYAO_WEB__{k.upper()}"] = str(v)
    return load_settings(data_dir=tmp_path / "data", environ=env)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    return web_settings(tmp_path, db_url)


@pytest.fixture
def accounts(store: Store) -> dict[str, Any]:
    """alice (admin), ed and eve (editors), vic (viewer); partners acme and other, one token each."""
    for role, name in ROLE_USERS.items():
        create_user(store, name, PASSWORD, "editor" if role == "editor2" else role)
    acme, acme_secret = create_partner(store, "acme", webhook_url="http://127.0.0.1:9/hook")
    other, _ = create_partner(store, "other")
    _, acme_token = create_token(store, partner="acme")
    _, other_token = create_token(store, partner="other")
    _, ed_token = create_token(store, user="ed")
    return {"acme_token": acme_token, "other_token": other_token, "ed_token": ed_token,
            "acme_secret": acme_secret, "acme_id": acme.id, "other_id": other.id}


@pytest.fixture
def app(settings: Any, store: Store) -> Iterator[Any]:
    from review.web import create_app

    application = create_app(settings, store=store)
    yield application
    application.state.heavy.close()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


def csrf_of(client: TestClient, path: str = "/login") -> str:
    """The session's CSRF token, read from a page's <meta name="csrf-token">."""
    r = client.get(path)
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', r.text)
    assert m, f"no CSRF token on {path} ({r.status_code})"
    return m.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log ``client`` in; returns the new session's CSRF token."""
    token = csrf_of(client)
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": "/queue"})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return csrf_of(client, "/queue")


@pytest.fixture
def login_as(app: Any, accounts: dict[str, Any]) -> Callable[[str], tuple[TestClient, str]]:
    """``login_as("editor")`` → (a logged-in TestClient of its own, its CSRF token)."""
    opened: list[TestClient] = []

    def make(role: str) -> tuple[TestClient, str]:
        c = TestClient(app, base_url="http://testserver", follow_redirects=False)
        opened.append(c)
        return c, login(c, ROLE_USERS[role])

    yield make  # type: ignore[misc]
    for c in opened:
        c.close()


@pytest.fixture
def seeded(app: Any, store: Store, accounts: dict[str, Any]) -> dict[str, Any]:
    """The seed working set (tests/web/seed.py) in the app's store and embedded index."""
    from tests.web.seed import seed

    return seed(store, app.state.heavy.backend())
