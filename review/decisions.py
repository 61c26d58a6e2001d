"""Editors' decisions: recorded with an audit event, and turned into labelled training data.

A decision gives a verdict (classifier.labels.VERDICTS) on a queued claim. The claim's
status follows: ``confirmed`` for rumor / pseudoscience / misleading, ``dismissed`` for
credible, ``needs_debunk`` for unproven (nobody has settled it yet). ``labelled_reviews``
exports the latest decision of each claim as ``{"id", "text", "label"}`` records
(1 = not credible) for ``piyao train --with-reviews``; unproven decisions carry no
label and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from classifier.labels import TOPICS, VERDICT_CREDIBLE, VERDICT_UNPROVEN, VERDICTS
from store.audit import ClaimReviewed
from store.db import Store
from store.models import Claim, Review

__all__ = ["STATUS_OF_VERDICT", "ReviewError", "Decision", "record_decision", "labelled_reviews"]

STATUS_OF_VERDICT: dict[str, str] = {v: "confirmed" for v in VERDICTS}
STATUS_OF_VERDICT[VERDICT_CREDIBLE] = "dismissed"
STATUS_OF_VERDICT[VERDICT_UNPROVEN] = "needs_debunk"


class ReviewError(ValueError):
    """A decision that cannot be recorded (unknown claim, verdict or topic)."""


@dataclass(frozen=True)
class Decision:
    review_id: int
    claim_id: int
    verdict: str
    status: str


def record_decision(
    store: Store,
    claim_id: int,
    verdict: str,
    *,
    editor: str,
    topic: str | None = None,
    note: str | None = None,
    debunk_id: int | None = None,
) -> Decision:
    """Store an editor's verdict on a claim, update the claim's status, and audit both in one transaction."""
    if verdict not in VERDICTS:
        raise ReviewError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    if topic is not None and topic not in TOPICS:
        raise ReviewError(f"unknown topic {topic!r}; expected one of {', '.join(TOPICS)}")
    if not editor.strip():
        raise ReviewError("a decision needs the editor's name")
    status = STATUS_OF_VERDICT[verdict]
    with store.session() as s:
        claim = s.get(Claim, claim_id)
        if claim is None:
            raise ReviewError(f"no claim with id {claim_id}")
        old = {"status": claim.status, "label": claim.label, "topic": claim.topic}
        review = Review(claim_id=claim.id, editor=editor[:100], decision=status, verdict=verdict, topic=topic,
                        note=note, debunk_id=debunk_id)
        s.add(review)
        claim.status = status
        if topic is not None:
            claim.topic = topic
        claim.version = (claim.version or 1) + 1
        s.flush()
        ClaimReviewed(editor[:100], claim.id, old, {"status": status, "verdict": verdict, "topic": claim.topic,
                                                     "review_id": review.id}).record(s)
        return Decision(review.id, claim.id, verdict, status)


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
