"""SQLAlchemy 2 models. Schema changes go through Alembic (store/migrations)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Debunk(Base):
    """A curated refutation article."""

    __tablename__ = "debunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not unique: some sources publish several articles under one URL.
    url: Mapped[str] = mapped_column(String(2048), index=True)
    title: Mapped[str] = mapped_column(String(1000))
    source: Mapped[str] = mapped_column(String(200), index=True)
    published: Mapped[dt.date | None] = mapped_column(Date, index=True)
    text: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(40))
    editor: Mapped[str | None] = mapped_column(String(200))
    # The original publisher when the carrying platform (source) republishes it.
    origin: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # MinHash signature of the text, for near-duplicate detection across runs.
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # An editor's short summary (the web app); NULL for crawled and imported articles.
    summary: Mapped[str | None] = mapped_column(Text)
    # Optimistic locking: an edit made against an older version is refused (two editors, one article).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class CrawlRun(Base):
    """One run of one spider."""

    __tablename__ = "crawl_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spider: Mapped[str] = mapped_column(String(100), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    pages: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    new_claims: Mapped[int] = mapped_column(Integer, default=0)
    new_debunks: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # New claims of this run that the classifier flagged (set after classification).
    flagged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The scheduled run that started this crawl (schedule_runs.id; not a foreign key: history outlives it).
    schedule_run_id: Mapped[int | None] = mapped_column(Integer)


class Claim(Base):
    """A statement seen online that may be a rumor."""

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_claim_source_external"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    external_id: Mapped[str] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(String(2048))
    text: Mapped[str] = mapped_column(Text)
    published: Mapped[dt.datetime | None] = mapped_column(DateTime)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    sightings: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    crawl_run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    # The cluster of near-identical variants this claim belongs to (store/clusters.py).
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("claim_clusters.id", ondelete="SET NULL"), index=True)
    # MinHash signature over 3-token jieba shingles (uint64 hash values), for clustering variants.
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Classifier output; NULL until classified.
    score: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(40))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    model_version: Mapped[str | None] = mapped_column(String(100))
    # Topic code (classifier.labels.TOPICS) and what an editor reads as the reason for the score.
    topic: Mapped[str | None] = mapped_column(String(40))
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    classified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    matched_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # new → queued → confirmed | dismissed | needs_debunk
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    # Marked urgent by an editor (应急科普: answer first).
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    version: Mapped[int] = mapped_column(Integer, default=1)

    matches: Mapped[list[ClaimMatch]] = relationship(
        back_populates="claim", cascade="all, delete-orphan", order_by="ClaimMatch.rank"
    )

    __mapper_args__ = {"version_id_col": version}


class ClaimCluster(Base):
    """Variants of one claim (MinHash over jieba-token shingles ≥ claims.cluster_threshold).

    Counters are kept by store.writes.add_claim: size (claims), sightings (of all its claims),
    sources (distinct Claim.source values). The representative is the claim the cluster started
    with; it is not a foreign key (the two tables would reference each other).
    """

    __tablename__ = "claim_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    representative_claim_id: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer, default=1)
    sightings: Mapped[int] = mapped_column(Integer, default=1)
    sources: Mapped[int] = mapped_column(Integer, default=1)
    # The distinct sources behind ``sources`` (an identical text from another source counts too).
    source_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Sighting(Base):
    """One sighting of a claim (first seen, or seen again), logged by store.writes.add_claim in the
    same transaction, so that growth can be measured per time window (review/gaps.py).

    ``cluster_id`` is the claim's cluster when it was seen (not a foreign key: a log row outlives
    cluster changes); ``count`` is how many sightings the row stands for (1 from add_claim).
    """

    __tablename__ = "sightings"
    __table_args__ = (Index("ix_sightings_cluster_seen", "cluster_id", "seen_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    cluster_id: Mapped[int | None] = mapped_column(Integer)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    count: Mapped[int] = mapped_column(Integer, default=1)


class SeenUrl(Base):
    """A page a spider fetched: incremental crawls skip it until it expires (crawl.seen_expiry_hours),
    then revalidate it with If-None-Match / If-Modified-Since (crawlers/seen.py)."""

    __tablename__ = "seen_urls"

    spider: Mapped[str] = mapped_column(String(100), primary_key=True)
    # sha256 hex of the URL (URLs are too long for a portable unique index).
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    last_fetched: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    etag: Mapped[str | None] = mapped_column(String(300))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    # sha256 of the response body: a 200 with the stored hash is treated as unchanged.
    content_hash: Mapped[str | None] = mapped_column(String(64))


class ClaimMatch(Base):
    """A debunk that answers a claim, as found by matching."""

    __tablename__ = "claim_matches"
    __table_args__ = (UniqueConstraint("claim_id", "debunk_id", name="uq_match_claim_debunk"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    debunk_id: Mapped[int] = mapped_column(ForeignKey("debunks.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    snippet: Mapped[str | None] = mapped_column(Text)
    # auto (linked), suggest (shown to the editor) or none (kept, not counted as an answer).
    decision: Mapped[str | None] = mapped_column(String(10))
    # The passage that matched: its kind (title, rumor, verdict, body) and text.
    evidence_kind: Mapped[str | None] = mapped_column(String(10))
    evidence: Mapped[str | None] = mapped_column(Text)
    # An editor confirmed that this debunk answers the claim (the web app's "confirm and link").
    linked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    linked_by: Mapped[str | None] = mapped_column(String(100))

    claim: Mapped[Claim] = relationship(back_populates="matches")
    debunk: Mapped[Debunk] = relationship()


class Review(Base):
    """An editor's decision on a claim."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    editor: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(20))
    # The editor's verdict (classifier.labels.VERDICTS) and topic: labelled data for `piyao train --with-reviews`.
    verdict: Mapped[str | None] = mapped_column(String(20))
    topic: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    debunk_id: Mapped[int | None] = mapped_column(ForeignKey("debunks.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Who changed what, when: old → new."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50), index=True)
    object_type: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[int | None] = mapped_column(Integer)
    old: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class IndexOutbox(Base):
    """A pending write to the search index; drained by `piyao index`."""

    __tablename__ = "index_outbox"
    # AUTOINCREMENT: SQLite would hand a freed id to the next write, and a drain deletes the rows it indexed
    # by id (migration 0009 says how that lost writes).
    __table_args__ = (Index("ix_outbox_doc", "doc_kind", "doc_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_kind: Mapped[str] = mapped_column(String(10))  # debunk | claim
    doc_id: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(10))  # upsert | delete
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class User(Base):
    """An editor's account. Roles: admin (everything, accounts too), editor (reviews, debunks), viewer (reads)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    # argon2id (argon2-cffi's PasswordHasher), never the password.
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped when the account is disabled or its password changes: older session cookies stop working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Partner(Base):
    """A partner platform that pushes suspect posts through the API and receives verdicts by webhook."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # HMAC-SHA256 key for the X-Piyao-Signature header of webhook calls.
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for the REST API, scoped to one partner or acting as one user. Only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, to tell tokens apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    note: Mapped[str | None] = mapped_column(String(200))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class LoginAttempt(Base):
    """One login attempt, for rate limiting by account and by address (web.login_*)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_user_at", "username", "at"), Index("ix_login_attempts_ip_at", "ip", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PartnerSubmission(Base):
    """A claim a partner pushed through the API, under the partner's own post id."""

    __tablename__ = "partner_submissions"
    __table_args__ = (UniqueConstraint("partner_id", "external_id", name="uq_submission_partner_external"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class WebhookDelivery(Base):
    """An outbox row for a signed webhook call, written in the same transaction as the decision it reports;
    delivered (with retries) by review.webhooks, so a partner's outage loses nothing."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending | delivered | failed (gave up after web.webhook_max_attempts)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ScheduleRun(Base):
    """One run of a schedule (nightly crawl), kept across restarts: the run history and the one-at-a-time lock.

    status: running | finished | failed | timeout (stopped past its time limit) | interrupted (the scheduler
    died under it) | missed (found too late to run) | skipped (another run of the schedule was still going).
    trigger: schedule | catchup (a run missed while the scheduler was down) | manual (run now).
    """

    __tablename__ = "schedule_runs"
    __table_args__ = (Index("ix_schedule_runs_schedule_started", "schedule_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A random id carried in every log line of the run (logging.format: json).
    run_key: Mapped[str] = mapped_column(String(36), unique=True)
    schedule_id: Mapped[str] = mapped_column(String(100))
    spider: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(20))
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(DateTime)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), index=True)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(200))
    args: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    errors_by_kind: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new_claims: Mapped[int] = mapped_column(Integer, default=0)
    new_debunks: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)


class Alert(Base):
    """An alert raised (crawl failed, no items, item drop, rumor surge) and where it went; the de-duplication record."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_fingerprint_created", "fingerprint", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # failure | zero_items | drop | surge
    rule: Mapped[str] = mapped_column(String(20))
    # What it is about: a schedule or spider, or a cluster ("cluster:12").
    subject: Mapped[str] = mapped_column(String(200))
    # sha256 of rule + subject: the same alert within alerts.dedup_hours is suppressed.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # sent | failed (every webhook failed) | suppressed (a duplicate) | logged (no webhook configured)
    status: Mapped[str] = mapped_column(String(12))
    title: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Per webhook: {name, ok, status or error}.
    deliveries: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
