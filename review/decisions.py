"""Editors' decisions: recorded with an audit event, and turned into labelled training data.

A decision gives a verdict (classifier.labels.VERDICTS) on a queued claim. The claim's
status follows: ``confirmed`` for rumor / pseudoscience / misleading, ``dismissed`` for
credible, ``needs_debunk`` for unproven (nobody has settled it yet). ``labelled_reviews``
exports the latest decision of each claim as ``{"id", "text", "label"}`` records
(1 = not credible) for ``piyao train --with-reviews``; unproven decisions carry no
label and are left out.

One decision is one transaction: the Review row, the claim's new status, the debunks the
editor linked (ClaimMatch.linked), the audit event (old → new) and the webhook outbox rows
for partners that submitted the claim (review.webhooks). With ``expected_version`` the
decision is refused with ``ConflictError`` when the claim changed since the editor loaded
it (two editors on one claim: the first save wins, the second overwrites nothing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from classifier.labels import TOPICS, VERDICT_CREDIBLE, VERDICT_UNPROVEN, VERDICTS
from store.audit import ClaimReviewed
from store.db import Store
from store.models import AuditEvent, Claim, ClaimMatch, Review

__all__ = ["STATUS_OF_VERDICT", "ReviewError", "ClaimNotFound", "NotMatched", "ConflictError", "LastChange", "Decision", "decide",
           "record_decision", "last_change", "linked_debunk_ids", "labelled_reviews"]

STATUS_OF_VERDICT: dict[str, str] = {v: "confirmed" for v in VERDICTS}
STATUS_OF_VERDICT[VERDICT_CREDIBLE] = "dismissed"
STATUS_OF_VERDICT[VERDICT_UNPROVEN] = "needs_debunk"


class ReviewError(ValueError):
    """A decision that cannot be recorded (unknown claim, verdict or topic)."""


class ClaimNotFound(ReviewError):
    """No claim with that id."""


class NotMatched(ReviewError):
    """A debunk to link that matching never offered for the claim or its variants."""

    def __init__(self, claim_id: int, debunk_id: int) -> None:
        self.claim_id, self.debunk_id = claim_id, debunk_id
        super().__init__(f"debunk {debunk_id} is not matched to claim {claim_id} or its variants")


@dataclass(frozen=True)
class LastChange:
    """The latest audited change of a claim: who saved what, when (UTC), and the state it left."""

    actor: str
    action: str
    at: dt.datetime
    status: str
    urgent: bool
    version: int


class ConflictError(ReviewError):
    """The claim changed since the editor loaded it (another editor saved first); nothing was written."""

    def __init__(self, claim_id: int, expected: int | None, last: LastChange | None) -> None:
        self.claim_id = claim_id
        self.expected = expected
        self.last = last
        who = f" by {last.actor} ({last.action})" if last is not None else ""
        super().__init__(f"claim {claim_id} changed since version {expected}{who}; nothing was saved")


@dataclass(frozen=True)
class Decision:
    review_id: int
    claim_id: int
    verdict: str
    status: str
    # The debunks linked to the claim after the decision, and the claim's new version.
    linked: tuple[int, ...] = ()
    version: int = 0


def last_change(session: Session, claim_id: int) -> LastChange | None:
    """The claim's latest audit event with its present state (for the conflict message)."""
    claim = session.get(Claim, claim_id, populate_existing=True)
    if claim is None:
        return None
    ev = session.scalar(select(AuditEvent).where(AuditEvent.object_type == "claim", AuditEvent.object_id == claim_id)
                        .order_by(AuditEvent.id.desc()).limit(1))
    if ev is None:
        return None
    return LastChange(ev.actor, ev.action, ev.at, claim.status, bool(claim.urgent), claim.version)


def conflict(store: Store, claim_id: int, expected: int | None) -> ConflictError:
    """A ConflictError carrying the latest change, read after the refused transaction rolled back."""
    with store.session() as s:
        return ConflictError(claim_id, expected, last_change(s, claim_id))


def linked_debunk_ids(session: Session, claim_id: int) -> list[int]:
    return sorted(session.scalars(select(ClaimMatch.debunk_id).where(ClaimMatch.claim_id == claim_id,
                                                                     ClaimMatch.linked.is_(True))))


def check_version(session: Session, claim: Claim, expected_version: int | None) -> None:
    """Refuse the change when the claim is not the version the editor saw."""
    if expected_version is not None and claim.version != expected_version:
        raise ConflictError(claim.id, expected_version, last_change(session, claim.id))


def set_links(session: Session, claim: Claim, debunk_ids: Iterable[int], *, editor: str) -> list[int]:
    """Make exactly ``debunk_ids`` the claim's linked debunks; returns them sorted.

    A debunk matched only to a variant of the claim (same cluster) gets a match row of its own,
    copied from the variant's best one; a debunk matched to neither is refused.
    """
    wanted = list(dict.fromkeys(int(d) for d in debunk_ids))
    own = {m.debunk_id: m for m in session.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == claim.id))}
    missing = [d for d in wanted if d not in own]
    if missing and claim.cluster_id is not None:
        rows = session.scalars(
            select(ClaimMatch).join(Claim, Claim.id == ClaimMatch.claim_id)
            .where(Claim.cluster_id == claim.cluster_id, Claim.id != claim.id, ClaimMatch.debunk_id.in_(missing))
            .order_by(ClaimMatch.score.desc(), ClaimMatch.id)
        ).all()
        rank = max((m.rank for m in own.values()), default=0)
        for v in rows:
            if v.debunk_id in own:
                continue
            rank += 1
            copy = ClaimMatch(claim_id=claim.id, debunk_id=v.debunk_id, rank=rank, score=v.score, snippet=v.snippet,
                              decision=v.decision, evidence_kind=v.evidence_kind, evidence=v.evidence, linked=False)
            session.add(copy)
            own[v.debunk_id] = copy
    unknown = [d for d in wanted if d not in own]
    if unknown:
        raise NotMatched(claim.id, unknown[0])
    for did, m in own.items():
        should = did in wanted
        if bool(m.linked) != should:
            m.linked = should
            m.linked_by = editor[:100] if should else None
    return sorted(wanted)


def decide(
    session: Session,
    claim_id: int,
    verdict: str,
    *,
    editor: str,
    topic: str | None = None,
    note: str | None = None,
    debunk_id: int | None = None,
    expected_version: int | None = None,
    debunk_ids: Iterable[int] | None = None,
    notify: bool = True,
) -> Decision:
    """Record a decision inside ``session`` (the caller's transaction); see ``record_decision``."""
    from review.webhooks import enqueue_decision

    if verdict not in VERDICTS:
        raise ReviewError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    if topic is not None and topic not in TOPICS:
        raise ReviewError(f"unknown topic {topic!r}; expected one of {', '.join(TOPICS)}")
    if not editor.strip():
        raise ReviewError("a decision needs the editor's name")
    status = STATUS_OF_VERDICT[verdict]
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise ClaimNotFound(f"no claim with id {claim_id}")
    check_version(session, claim, expected_version)
    old: dict[str, Any] = {"status": claim.status, "label": claim.label, "topic": claim.topic}
    new: dict[str, Any] = {}
    linked: list[int] | None = None
    if debunk_ids is not None:
        old["linked"] = linked_debunk_ids(session, claim.id)
        linked = set_links(session, claim, debunk_ids, editor=editor)
        if debunk_id is None and linked:
            debunk_id = linked[0]
    review = Review(claim_id=claim.id, editor=editor[:100], decision=status, verdict=verdict, topic=topic,
                    note=note, debunk_id=debunk_id)
    session.add(review)
    claim.status = status
    if topic is not None:
        claim.topic = topic
    claim.version = (claim.version or 1) + 1
    session.flush()
    new.update({"status": status, "verdict": verdict, "topic": claim.topic, "review_id": review.id})
    if linked is not None:
        new["linked"] = linked
    if note:
        new["note"] = note[:500]
    ClaimReviewed(editor[:100], claim.id, old, new).record(session)
    if notify:
        enqueue_decision(session, claim)
    if linked is None:
        linked = linked_debunk_ids(session, claim.id)
    return Decision(review.id, claim.id, verdict, status, tuple(linked), claim.version)


def record_decision(
    store: Store,
    claim_id: int,
    verdict: str,
    *,
    editor: str,
    topic: str | None = None,
    note: str | None = None,
    debunk_id: int | None = None,
    expected_version: int | None = None,
    debunk_ids: Iterable[int] | None = None,
) -> Decision:
    """Store an editor's verdict on a claim, update the claim's status, and audit both in one transaction.

    ``debunk_ids``: the debunks that answer the claim, linked (and every other match unlinked);
    None leaves the links as they are. ``expected_version``: the claim's version the editor saw;
    a claim changed since raises ``ConflictError`` and nothing is written. Partners that
    submitted the claim get a webhook outbox row in the same transaction.
    """
    try:
        with store.session() as s:
            return decide(s, claim_id, verdict, editor=editor, topic=topic, note=note, debunk_id=debunk_id,
                          expected_version=expected_version, debunk_ids=debunk_ids)
    except StaleDataError:  # another transaction updated the claim between our read and our write
        raise conflict(store, claim_id, expected_version) from None


def labelled_reviews(store: Store) -> list[dict[str, Any]]:
    """The latest labelled decision per claim as training records ``{id, text, label, verdict, topic}``."""
    latest: dict[int, tuple[Review, Claim]] = {}
    with store.session() as s:
        rows = s.execute(select(Review, Claim).join(Claim, Claim.id == Review.claim_id).order_by(Review.id)).all()
        for review, claim in rows:
            latest[claim.id] = (review, claim)
        out = []
        for claim_id, (review, claim) in sorted(latest.items()):
            if review.verdict is None or review.verdict == VERDICT_UNPROVEN:
                continue
            out.append({
                "id": f"review:{claim_id}",
                "text": claim.text,
                "label": 0 if review.verdict == VERDICT_CREDIBLE else 1,
                "verdict": review.verdict,
                "topic": review.topic or claim.topic,
            })
    return out
