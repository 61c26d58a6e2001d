"""The web fixtures (tests/web/conftest.py: a real app over a real store on SQLite and PostgreSQL, users of
every role, the seeded working set) for the fuzz tests of the search pages and the REST API."""

from __future__ import annotations

from tests.web.conftest import accounts, app, client, login_as, seeded, settings  # noqa: F401 - fixtures

__all__ = ["accounts", "app", "client", "login_as", "seeded", "settings"]
