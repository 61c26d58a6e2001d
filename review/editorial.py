"""What an editor does to a claim in the web app: confirm it as a rumor (linking the debunks that
answer it), dismiss it as a false positive, ask for a new debunk, mark it urgent, and the same in
bulk from the queue.

Every call is one transaction built on review.decisions (Review row, claim status, links, audit
event, partner webhook outbox rows) and takes the claim version the editor saw: a claim that
changed since raises ``ConflictError`` and nothing is overwritten. Bulk actions decide and audit
each claim on its own, so one conflict does not undo the others; it is reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy.orm.exc import StaleDataError

from classifier.labels import VERDICT_CREDIBLE, VERDICT_MISLEADING, VERDICT_PSEUDOSCIENCE, VERDICT_RUMOR, VERDICT_UNPROVEN
from review.decisions import ClaimNotFound, ConflictError, Decision, LastChange, ReviewError, check_version, conflict, record_decision
from store.audit import Event
from store.db import Store
from store.models import Claim

__all__ = ["CONFIRM_VERDICTS", "BULK_ACTIONS", "ClaimUrgencyChanged", "UrgencyChange", "BulkOutcome",
           "confirm_claim", "dismiss", "needs_debunk", "set_urgent", "bulk", "ConflictError", "LastChange", "ReviewError"]

# The verdicts that confirm a claim as not credible.
CONFIRM_VERDICTS = (VERDICT_RUMOR, VERDICT_PSEUDOSCIENCE, VERDICT_MISLEADING)
BULK_ACTIONS = ("dismiss", "needs_debunk", "urgent")


@dataclass(frozen=True)
class ClaimUrgencyChanged(Event):
    action: str = field(init=False, default="claim.urgent")
    object_type: str = field(init=False, default="claim")


@dataclass(frozen=True)
class UrgencyChange:
    claim_id: int
    urgent: bool
    changed: bool
    version: int


@dataclass(frozen=True)
class BulkOutcome:
    """One claim of a bulk action: done, refused as changed by someone else (``conflict``), or failed."""

    claim_id: int
    ok: bool
    conflict: bool = False
    last: LastChange | None = None
    error: str | None = None
    missing: bool = False


def confirm_claim(store: Store, claim_id: int, *, editor: str, verdict: str = VERDICT_RUMOR,
                  debunk_ids: Iterable[int] = (), expected_version: int | None = None, topic: str | None = None,
                  note: str | None = None) -> Decision:
    """Confirm the claim as not credible (rumor, pseudoscience, misleading) and link exactly ``debunk_ids``."""
    if verdict not in CONFIRM_VERDICTS:
        raise ReviewError(f"a confirmation's verdict is one of {', '.join(CONFIRM_VERDICTS)}, not {verdict!r}")
    return record_decision(store, claim_id, verdict, editor=editor, topic=topic, note=note,
                           expected_version=expected_version, debunk_ids=list(debunk_ids))


def dismiss(store: Store, claim_id: int, *, editor: str, expected_version: int | None = None,
            topic: str | None = None, note: str | None = None) -> Decision:
    """A false positive: the claim is credible; no debunk answers it, so every link is removed."""
    return record_decision(store, claim_id, VERDICT_CREDIBLE, editor=editor, topic=topic, note=note,
                           expected_version=expected_version, debunk_ids=[])


def needs_debunk(store: Store, claim_id: int, *, editor: str, expected_version: int | None = None,
                 topic: str | None = None, note: str | None = None) -> Decision:
    """No existing debunk answers the claim (verdict unproven): it goes to the writers; links are removed."""
    return record_decision(store, claim_id, VERDICT_UNPROVEN, editor=editor, topic=topic, note=note,
                           expected_version=expected_version, debunk_ids=[])


def set_urgent(store: Store, claim_id: int, urgent: bool, *, editor: str,
               expected_version: int | None = None) -> UrgencyChange:
    """Mark the claim urgent (应急科普: answered first) or not; audited. Setting the value it has changes nothing."""
    if not editor.strip():
        raise ReviewError("a change needs the editor's name")
    try:
        with store.session() as s:
            claim = s.get(Claim, claim_id)
            if claim is None:
                raise ClaimNotFound(f"no claim with id {claim_id}")
            check_version(s, claim, expected_version)
            if bool(claim.urgent) == urgent:
                return UrgencyChange(claim.id, urgent, False, claim.version)
            old = {"urgent": bool(claim.urgent)}
            claim.urgent = urgent
            claim.version = (claim.version or 1) + 1
            s.flush()
            ClaimUrgencyChanged(editor[:100], claim.id, old, {"urgent": urgent}).record(s)
            return UrgencyChange(claim.id, urgent, True, claim.version)
    except StaleDataError:
        raise conflict(store, claim_id, expected_version) from None


def bulk(store: Store, action: str, items: Sequence[tuple[int, int | None]], *, editor: str) -> list[BulkOutcome]:
    """Apply ``action`` (dismiss, needs_debunk, urgent) to each (claim id, version seen), one transaction each."""
    if action not in BULK_ACTIONS:
        raise ReviewError(f"unknown bulk action {action!r}; expected one of {', '.join(BULK_ACTIONS)}")
    out: list[BulkOutcome] = []
    seen: set[int] = set()
    for claim_id, version in items:
        if claim_id in seen:
            continue
        seen.add(claim_id)
        try:
            if action == "dismiss":
                dismiss(store, claim_id, editor=editor, expected_version=version)
            elif action == "needs_debunk":
                needs_debunk(store, claim_id, editor=editor, expected_version=version)
            else:
                set_urgent(store, claim_id, True, editor=editor, expected_version=version)
        except ConflictError as exc:
            out.append(BulkOutcome(claim_id, False, conflict=True, last=exc.last))
        except ClaimNotFound as exc:
            out.append(BulkOutcome(claim_id, False, error=str(exc), missing=True))
        except ReviewError as exc:
            out.append(BulkOutcome(claim_id, False, error=str(exc)))
        else:
            out.append(BulkOutcome(claim_id, True))
    return out
