"""Accounts, sessions, CSRF and login rate limiting over the real app and store."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from review.accounts import AccountError, authenticate, create_user, set_disabled
from store.db import Store
from store.models import User
from tests.web.conftest import PASSWORD, csrf_of, login


def test_passwords_are_argon2_hashed(store: Store) -> None:
    create_user(store, "zhang", PASSWORD, "editor")
    with store.session() as s:
        u = s.query(User).filter_by(username="zhang").one()
        assert u.password_hash.startswith("$argon2id$") and PASSWORD not in u.password_hash
    assert authenticate(store, "zhang", PASSWORD, "1.2.3.4") is not None
    assert authenticate(store, "zhang", "wrong password!", "1.2.3.4") is None


def test_weak_or_bad_accounts_are_refused(store: Store) -> None:
    for args in [("x", PASSWORD, "editor"), ("ok_name", "short", "editor"), ("ok_name", PASSWORD, "god")]:
        try:
            create_user(store, *args)
        except AccountError:
            continue
        raise AssertionError(f"accepted {args}")
    create_user(store, "dup", PASSWORD, "viewer")
    try:
        create_user(store, "DUP", PASSWORD, "viewer")
    except AccountError as exc:
        assert "exists" in str(exc)
    else:
        raise AssertionError("a duplicate user name was accepted")


def test_pages_need_login(client: TestClient, accounts: dict[str, Any]) -> None:
    r = client.get("/queue")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fqueue")


def test_login_sets_a_secure_session_and_logout_ends_it(client: TestClient, accounts: dict[str, Any]) -> None:
    token = csrf_of(client)
    r = client.post("/login", data={"username": "ed", "password": PASSWORD, "csrf_token": token, "next": "/admin/users"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/users"
    cookie = r.headers["set-cookie"]
    assert "piyao_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert client.get("/admin/users").status_code == 403  # an editor is not an admin
    page = client.get("/queue")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers and "script-src 'self'" in page.headers["content-security-policy"]
    token = csrf_of(client, "/queue")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/queue").status_code == 303


def test_login_refuses_offsite_next(client: TestClient, accounts: dict[str, Any]) -> None:
    token = csrf_of(client)
    r = client.post("/login", data={"username": "ed", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/queue"


def test_forms_without_csrf_token_are_refused(client: TestClient, accounts: dict[str, Any]) -> None:
    r = client.post("/login", data={"username": "ed", "password": PASSWORD})
    assert r.status_code == 403 and "CSRF" in r.text
    login(client, "alice")
    r = client.post("/admin/users", data={"username": "newbie", "password": PASSWORD, "role": "viewer", "csrf_token": "forged"})
    assert r.status_code == 403


def test_login_is_rate_limited(client: TestClient, accounts: dict[str, Any]) -> None:
    token = csrf_of(client)
    for _ in range(5):
        r = client.post("/login", data={"username": "ed", "password": "not the password", "csrf_token": token})
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    # Even the right password is refused while the account is locked out.
    r = client.post("/login", data={"username": "ed", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and "登录失败次数过多" in r.text


def test_disabling_a_user_ends_their_session(client: TestClient, store: Store, accounts: dict[str, Any]) -> None:
    login(client, "ed")
    assert client.get("/queue").status_code == 200
    set_disabled(store, "ed")
    assert client.get("/queue").status_code == 303
    token = csrf_of(client)
    r = client.post("/login", data={"username": "ed", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 401


def test_admin_adds_and_disables_users_in_the_page(client: TestClient, store: Store, accounts: dict[str, Any]) -> None:
    token = login(client, "alice")
    r = client.post("/admin/users", data={"username": "newbie", "password": PASSWORD, "role": "viewer", "csrf_token": token})
    assert r.status_code == 303
    page = client.get("/admin/users").text
    assert "newbie" in page
    r = client.post("/admin/users", data={"username": "newbie", "password": PASSWORD, "role": "viewer", "csrf_token": token})
    assert r.status_code == 200 and "exists" in r.text
    assert client.post("/admin/users/newbie/disable", data={"disabled": "1", "csrf_token": token}).status_code == 303
    assert authenticate(store, "newbie", PASSWORD, "9.9.9.9") is None
    assert re.search(r"newbie.*?已停用", client.get("/admin/users").text, re.S)
