"""Signed webhook callbacks to partner platforms.

When an editor decides on a claim that partners pushed through the API, ``enqueue_decision`` adds one
``WebhookDelivery`` row per partner in the same transaction as the decision (an outbox: a partner's
outage or our restart loses nothing). Delivery, signing and retries live below.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Claim, ClaimMatch, Debunk, Partner, PartnerSubmission, WebhookDelivery, utcnow

__all__ = ["enqueue_decision", "decision_payload"]


def decision_payload(session: Session, claim: Claim, submission: PartnerSubmission) -> dict[str, Any]:
    """What a partner learns about its post: our verdict, status and the debunks an editor linked."""
    linked = session.execute(
        select(ClaimMatch, Debunk).join(Debunk, Debunk.id == ClaimMatch.debunk_id)
        .where(ClaimMatch.claim_id == claim.id, ClaimMatch.linked.is_(True)).order_by(ClaimMatch.rank)
    ).all()
    from store.models import Review

    review = session.scalar(select(Review).where(Review.claim_id == claim.id).order_by(Review.id.desc()).limit(1))
    return {
        "external_id": submission.external_id,
        "claim_id": claim.id,
        "status": claim.status,
        "verdict": review.verdict if review is not None else None,
        "urgent": bool(claim.urgent),
        "decided_at": (review.created_at.isoformat() + "Z") if review is not None else None,
        "debunks": [{"id": d.id, "title": d.title, "url": d.url, "source": d.source} for _, d in linked],
    }


def enqueue_decision(session: Session, claim: Claim, *, event: str = "claim.reviewed") -> int:
    """Queue one callback per partner that submitted ``claim`` (call inside the decision's transaction)."""
    session.flush()
    n = 0
    rows = session.execute(
        select(PartnerSubmission, Partner).join(Partner, Partner.id == PartnerSubmission.partner_id)
        .where(PartnerSubmission.claim_id == claim.id)
    ).all()
    for sub, partner in rows:
        if partner.disabled or not partner.webhook_url:
            continue
        session.add(WebhookDelivery(partner_id=partner.id, event=event, payload=decision_payload(session, claim, sub),
                                    status="pending", attempts=0, next_attempt_at=utcnow()))
        n += 1
    return n
