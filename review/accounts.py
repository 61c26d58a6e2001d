"""Accounts: editors' users and roles, partner platforms and their API tokens, login rate limiting.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher``: salted, memory-hard, and it
tells when a stored hash should be upgraded). API tokens are random (``secrets.token_urlsafe``) and
only their SHA-256 is stored: a token is shown once, when it is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from store.audit import Event
from store.db import Store
from store.models import ApiToken, LoginAttempt, Partner, User, utcnow

__all__ = [
    "ROLES", "AccountError", "Identity", "create_user", "list_users", "set_disabled", "set_password",
    "authenticate", "login_blocked", "create_partner", "create_token", "revoke_token", "identify_token",
]

# Ordered by power: a role may do everything the roles before it may.
ROLES = ("viewer", "editor", "admin")
_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
_PARTNER = re.compile(r"^[a-z0-9][a-z0-9_\-]{1,63}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "py_"

_hasher = PasswordHasher()
# Verified against when the account does not exist, so a wrong user name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """An account operation that cannot be done (bad name, weak password, unknown user …)."""


@dataclass(frozen=True)
class Identity:
    """Who is calling: a user (by session or a user token) or a partner (by a partner token)."""

    kind: str  # user | partner
    id: int
    name: str
    role: str  # viewer | editor | admin | partner
    session_epoch: int = 0
    token_id: int | None = None

    def can(self, role: str) -> bool:
        """True when this identity holds ``role`` or a stronger one (partners hold no user role)."""
        if self.kind != "user":
            return False
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class UserCreated(Event):
    action: str = field(init=False, default="user.created")
    object_type: str = field(init=False, default="user")


@dataclass(frozen=True)
class UserChanged(Event):
    action: str = field(init=False, default="user.changed")
    object_type: str = field(init=False, default="user")


@dataclass(frozen=True)
class PartnerCreated(Event):
    action: str = field(init=False, default="partner.created")
    object_type: str = field(init=False, default="partner")


@dataclass(frozen=True)
class TokenChanged(Event):
    action: str = field(init=False, default="token.changed")
    object_type: str = field(init=False, default="token")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("the password is longer than 1024 characters")


def create_user(store: Store, username: str, password: str, role: str, *, display_name: str | None = None,
                actor: str = "cli") -> User:
    username = username.strip()
    if not _USERNAME.match(username):
        raise AccountError("a user name has 2-64 letters, digits, '_', '.' or '-'")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    _check_password(password)
    with store.session() as s:
        if s.scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None:
            raise AccountError(f"the user {username!r} exists already")
        user = User(username=username, display_name=(display_name or None) and display_name[:100],
                    password_hash=_hasher.hash(password), role=role, disabled=False, session_epoch=1)
        s.add(user)
        s.flush()
        UserCreated(actor, object_id=user.id, new={"username": username, "role": role}).record(s)
        return user


def list_users(store: Store) -> list[User]:
    with store.session() as s:
        return list(s.scalars(select(User).order_by(User.username)))


def _user(s: object, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))  # type: ignore[attr-defined]
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user  # type: ignore[no-any-return]


def set_disabled(store: Store, username: str, disabled: bool = True, *, actor: str = "cli") -> None:
    """Disable (or enable) an account; its open sessions end at their next request."""
    with store.session() as s:
        user = _user(s, username)
        old = {"disabled": user.disabled}
        user.disabled = disabled
        user.session_epoch += 1
        UserChanged(actor, object_id=user.id, old=old, new={"disabled": disabled}).record(s)


def set_role(store: Store, username: str, role: str, *, actor: str = "cli") -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    with store.session() as s:
        user = _user(s, username)
        old = {"role": user.role}
        user.role = role
        user.session_epoch += 1
        UserChanged(actor, object_id=user.id, old=old, new={"role": role}).record(s)


def set_password(store: Store, username: str, password: str, *, actor: str = "cli") -> None:
    _check_password(password)
    with store.session() as s:
        user = _user(s, username)
        user.password_hash = _hasher.hash(password)
        user.session_epoch += 1
        UserChanged(actor, object_id=user.id, new={"password": "changed"}).record(s)


def login_blocked(store: Store, username: str, ip: str, *, max_failures: int, window_minutes: float) -> bool:
    """True when the account or the address has had ``max_failures`` failed logins within the window."""
    since = utcnow() - dt.timedelta(minutes=window_minutes)
    with store.session() as s:
        by_user = s.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username.lower()[:64], LoginAttempt.ok.is_(False), LoginAttempt.at >= since)) or 0
        by_ip = s.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.ip == ip[:64], LoginAttempt.ok.is_(False), LoginAttempt.at >= since)) or 0
    return by_user >= max_failures or by_ip >= max_failures


def authenticate(store: Store, username: str, password: str, ip: str) -> Identity | None:
    """The user's identity when the password is right and the account enabled; every attempt is logged."""
    username = username.strip()[:64]
    ident: Identity | None = None
    with store.session() as s:
        user = s.scalar(select(User).where(User.username == username)) if username else None
        try:
            _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password[:1024])
            ok = user is not None and not user.disabled
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if ok and user is not None:
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            user.last_login_at = utcnow()
            ident = Identity("user", user.id, user.username, user.role, user.session_epoch)
        s.add(LoginAttempt(username=username.lower(), ip=ip[:64], ok=ok, at=utcnow()))
    return ident


def identity_of_user(store: Store, user_id: int, epoch: int) -> Identity | None:
    """The session's user, or None when the account is gone, disabled, or changed since the login."""
    with store.session() as s:
        user = s.get(User, user_id)
        if user is None or user.disabled or user.session_epoch != epoch:
            return None
        return Identity("user", user.id, user.username, user.role, user.session_epoch)


def create_partner(store: Store, name: str, *, webhook_url: str | None = None, actor: str = "cli") -> tuple[Partner, str]:
    """A partner platform with a fresh webhook signing secret; returns (partner, secret)."""
    if not _PARTNER.match(name):
        raise AccountError("a partner name has 2-64 lowercase letters, digits, '_' or '-', starting with a letter or digit")
    if webhook_url and not re.match(r"^https?://[^\s/]+", webhook_url):
        raise AccountError("the webhook URL must start with http:// or https://")
    secret = secrets.token_urlsafe(32)
    with store.session() as s:
        if s.scalar(select(Partner.id).where(Partner.name == name)) is not None:
            raise AccountError(f"the partner {name!r} exists already")
        partner = Partner(name=name, webhook_url=webhook_url or None, webhook_secret=secret, disabled=False)
        s.add(partner)
        s.flush()
        PartnerCreated(actor, object_id=partner.id, new={"partner": name, "webhook_url": webhook_url}).record(s)
        return partner, secret


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, *, partner: str | None = None, user: str | None = None, note: str | None = None,
                 actor: str = "cli") -> tuple[int, str]:
    """A new API token for one partner or one user; returns (token id, the token: shown only now)."""
    if (partner is None) == (user is None):
        raise AccountError("a token belongs to exactly one partner or one user")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session() as s:
        row = ApiToken(token_hash=token_hash(token), prefix=token[:10], note=(note or None) and note[:200], revoked=False)
        if partner is not None:
            p = s.scalar(select(Partner).where(Partner.name == partner))
            if p is None:
                raise AccountError(f"no partner {partner!r}")
            row.partner_id = p.id
        else:
            row.user_id = _user(s, user or "").id
        s.add(row)
        s.flush()
        TokenChanged(actor, object_id=row.id, new={"partner": partner, "user": user, "prefix": row.prefix}).record(s)
        return row.id, token


def revoke_token(store: Store, token_id: int, *, actor: str = "cli") -> None:
    with store.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise AccountError(f"no token with id {token_id}")
        row.revoked = True
        TokenChanged(actor, object_id=row.id, old={"revoked": False}, new={"revoked": True}).record(s)


def identify_token(store: Store, token: str) -> Identity | None:
    """The identity behind a bearer token, or None when it is unknown, revoked or its owner disabled."""
    if not token or len(token) > 200:
        return None
    with store.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
        if row is None or row.revoked:
            return None
        now = utcnow()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
        if row.partner_id is not None:
            p = s.get(Partner, row.partner_id)
            if p is None or p.disabled:
                return None
            return Identity("partner", p.id, p.name, "partner", token_id=row.id)
        u = s.get(User, row.user_id)
        if u is None or u.disabled:
            return None
        return Identity("user", u.id, u.username, u.role, u.session_epoch, token_id=row.id)


def list_tokens(store: Store) -> list[dict[str, object]]:
    with store.session() as s:
        rows = s.execute(select(ApiToken, Partner.name, User.username)
                         .outerjoin(Partner, Partner.id == ApiToken.partner_id)
                         .outerjoin(User, User.id == ApiToken.user_id).order_by(ApiToken.id)).all()
        return [{"id": t.id, "prefix": t.prefix, "partner": pn, "user": un, "note": t.note, "revoked": t.revoked,
                 "created_at": t.created_at, "last_used_at": t.last_used_at} for t, pn, un in rows]
