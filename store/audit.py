"""Audit events as small typed records, written in the same transaction as the change."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from store.models import AuditEvent


@dataclass(frozen=True)
class Event:
    actor: str
    action: str = field(init=False, default="")
    object_type: str = field(init=False, default="")
    object_id: int | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None

    def record(self, session: Session) -> AuditEvent:
        row = AuditEvent(**{k: v for k, v in asdict(self).items()})
        session.add(row)
        return row


@dataclass(frozen=True)
class DebunkImported(Event):
    action: str = field(init=False, default="debunk.imported")
    object_type: str = field(init=False, default="debunk")


@dataclass(frozen=True)
class DebunkCreated(Event):
    """A curated debunk written by an editor in the web app (imports and crawls record DebunkImported)."""

    action: str = field(init=False, default="debunk.created")
    object_type: str = field(init=False, default="debunk")


@dataclass(frozen=True)
class DebunkUpdated(Event):
    action: str = field(init=False, default="debunk.updated")
    object_type: str = field(init=False, default="debunk")


@dataclass(frozen=True)
class ClaimQueued(Event):
    action: str = field(init=False, default="claim.queued")
    object_type: str = field(init=False, default="claim")


@dataclass(frozen=True)
class ClaimReviewed(Event):
    action: str = field(init=False, default="claim.reviewed")
    object_type: str = field(init=False, default="claim")
