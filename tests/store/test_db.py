"""Opening the store: migrations, revisions, SQLite pragmas, idempotent re-opening."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from store.db import StoreError, open_store
from store.models import Base, ClaimMatch, Debunk


def test_migrations_create_every_model_table(store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    expected = set(Base.metadata.tables)
    assert "origin" in {c["name"] for c in inspect(store.engine).get_columns("debunks")}
    assert expected == {
        "debunks", "crawl_runs", "claims", "claim_matches", "reviews", "audit_events", "index_outbox",
        "claim_clusters", "seen_urls", "sightings", "users", "partners", "api_tokens", "login_attempts",
        "partner_submissions", "webhook_deliveries", "schedule_runs", "alerts",
    }  # fmt: skip
    assert expected <= tables
    assert "alembic_version" in tables


def test_migrated_columns_match_the_models(store) -> None:
    insp = inspect(store.engine)
    for name, table in Base.metadata.tables.items():
        assert {c["name"] for c in insp.get_columns(name)} == {c.name for c in table.columns}, name


def test_current_revision_is_head(store) -> None:
    head = store.head_revision()
    assert head is not None
    assert store.current_revision() == head


def test_unmigrated_store_has_no_revision(db_url) -> None:
    st = open_store(db_url, migrate=False)
    try:
        assert st.current_revision() is None
        assert st.head_revision() is not None
    finally:
        st.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store, db_url) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar().lower() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    # Sessions use the same pragmas (every new connection gets them).
    with store.session() as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db_file = db_url[len("sqlite:///") :]
    with store.session() as s:
        s.add(Debunk(url="https://example.org/a", title="t", source="s", text="x", content_hash="h"))
    import os

    assert os.path.exists(db_file + "-wal")


def test_foreign_keys_are_enforced(store) -> None:
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(ClaimMatch(claim_id=424242, debunk_id=434343, rank=1, score=1.0))


def test_opening_twice_is_idempotent(db_url) -> None:
    first = open_store(db_url)
    with first.session() as s:
        s.add(Debunk(url="https://example.org/a", title="腐乳", source="s", text="腐乳不致癌", content_hash="h"))
    tables = set(inspect(first.engine).get_table_names())
    rev = first.current_revision()
    first.close()

    second = open_store(db_url)
    try:
        assert second.current_revision() == rev == second.head_revision()
        assert set(inspect(second.engine).get_table_names()) == tables
        with second.session() as s:
            assert [d.title for d in s.query(Debunk).all()] == ["腐乳"]
            versions = s.execute(text("SELECT count(*) FROM alembic_version")).scalar()
        assert versions == 1
        second.migrate()  # migrating an up-to-date database is a no-op
        assert second.current_revision() == rev
    finally:
        second.close()


def test_session_rolls_back_on_error(store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(Debunk(url="https://example.org/a", title="t", source="s", text="x", content_hash="h"))
            s.flush()
            raise RuntimeError("boom")
    with store.session() as s:
        assert s.query(Debunk).count() == 0


def test_unopenable_database_is_one_line_store_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError) as err:
        open_store(f"sqlite:///{blocker / 'sub' / 'piyao.db'}")
    assert "\n" not in str(err.value)
    assert "cannot open the database" in str(err.value)
