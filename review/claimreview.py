"""schema.org ClaimReview export of editors' confirmed verdicts (JSON-LD, https://schema.org/ClaimReview).

Search engines and fact-check aggregators read ClaimReview: one object per claim an editor confirmed
(rumor, pseudoscience, misleading), from its latest decision. The rating is on schema.org's 1..5
scale (1: false); ``alternateName`` is the verdict's Chinese name. ``url`` is the debunk that answers
the claim, when an editor linked one. Appearances are the http(s) URLs of the claim and of its
variants (its cluster), earliest first.

JSON-LD is meant to be pasted into pages inside ``<script type="application/ld+json">``; claim texts
are hostile, so ``dumps`` escapes ``<``, ``>`` and ``&`` and the output can never close that element.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select

from classifier.labels import VERDICT_MISLEADING, VERDICT_PSEUDOSCIENCE, VERDICT_RUMOR, VERDICTS
from review.web.security import safe_url
from store.db import Store
from store.models import Claim, ClaimMatch, Debunk, Review

__all__ = ["AUTHOR_NAME", "RATING", "CLAIM_TEXT_CHARS", "claim_reviews", "dumps"]

AUTHOR_NAME = "科学辟谣 piyao"
CLAIM_TEXT_CHARS = 500
MAX_APPEARANCES = 20
# schema.org Rating, 1 (worst: false) .. 5 (best: true), for the verdicts that confirm a rumor.
RATING: dict[str, int] = {VERDICT_RUMOR: 1, VERDICT_PSEUDOSCIENCE: 1, VERDICT_MISLEADING: 2}


def _when(value: dt.datetime | None) -> str | None:
    """Stored times are naive UTC: ISO 8601 with the zone spelled out."""
    return value.replace(microsecond=0).isoformat() + "Z" if value is not None else None


def _url(value: str | None) -> str | None:
    """Only absolute http(s) URLs leave the export: crawled ones may be ``javascript:`` or worse."""
    url = safe_url(value)
    return None if url == "#" else url


def claim_reviews(store: Store, *, since: dt.datetime | None = None, limit: int = 100, offset: int = 0,
                  author: str = AUTHOR_NAME) -> list[dict[str, Any]]:
    """ClaimReview objects for confirmed claims whose latest decision is at or after ``since`` (naive UTC),
    oldest decision first (a consumer pages on with ``since`` = the last ``datePublished``)."""
    with store.session() as s:
        latest = (select(Review.claim_id, func.max(Review.id).label("review_id"))
                  .group_by(Review.claim_id).subquery())
        q = (select(Claim, Review)
             .join(latest, latest.c.claim_id == Claim.id)
             .join(Review, Review.id == latest.c.review_id)
             .where(Claim.status == "confirmed", Review.verdict.in_(list(RATING))))
        if since is not None:
            q = q.where(Review.created_at >= since)
        rows = s.execute(q.order_by(Review.created_at, Review.id).limit(limit).offset(offset)).all()
        if not rows:
            return []
        claim_ids = [c.id for c, _ in rows]
        linked: dict[int, str | None] = {}
        for m, d in s.execute(select(ClaimMatch, Debunk).join(Debunk, Debunk.id == ClaimMatch.debunk_id)
                              .where(ClaimMatch.claim_id.in_(claim_ids), ClaimMatch.linked.is_(True))
                              .order_by(ClaimMatch.claim_id, ClaimMatch.rank, ClaimMatch.id)):
            if linked.get(m.claim_id) is None:
                linked[m.claim_id] = _url(d.url)
        chosen = {r.debunk_id for _, r in rows if r.debunk_id is not None}
        review_debunks = {d.id: _url(d.url) for d in s.scalars(select(Debunk).where(Debunk.id.in_(chosen)))} if chosen else {}
        clusters = {c.cluster_id for c, _ in rows if c.cluster_id is not None}
        variants: dict[int, list[tuple[dt.datetime, int, str]]] = {}
        if clusters:
            for cid, cluster_id, first_seen, url in s.execute(
                select(Claim.id, Claim.cluster_id, Claim.first_seen, Claim.url)
                .where(Claim.cluster_id.in_(clusters), Claim.url.is_not(None))
            ):
                ok = _url(url)
                if ok and cluster_id is not None:
                    variants.setdefault(cluster_id, []).append((first_seen, cid, ok))
        out = []
        for claim, review in rows:
            seen = sorted(variants.get(claim.cluster_id, [])) if claim.cluster_id is not None else []
            own = _url(claim.url)
            if own and not any(cid == claim.id for _, cid, _ in seen):
                seen.append((claim.first_seen, claim.id, own))
                seen.sort()
            urls = list(dict.fromkeys(u for _, _, u in seen))[:MAX_APPEARANCES]
            item: dict[str, Any] = {"@type": "Claim", "datePublished": _when(claim.published or claim.first_seen)}
            if urls:
                item["appearance"] = [{"@type": "CreativeWork", "url": u} for u in urls]
                item["firstAppearance"] = {"@type": "CreativeWork", "url": urls[0]}
            verdict = review.verdict or VERDICT_RUMOR
            obj: dict[str, Any] = {
                "@context": "https://schema.org",
                "@type": "ClaimReview",
                "identifier": f"piyao-claim-{claim.id}",
                "claimReviewed": claim.text[:CLAIM_TEXT_CHARS],
                "itemReviewed": item,
                "reviewRating": {"@type": "Rating", "ratingValue": RATING[verdict], "bestRating": 5, "worstRating": 1,
                                 "alternateName": VERDICTS[verdict]},
                "author": {"@type": "Organization", "name": author},
                "datePublished": _when(review.created_at),
                "inLanguage": "zh-CN",
            }
            url = linked.get(claim.id) or (review_debunks.get(review.debunk_id) if review.debunk_id is not None else None)
            if url:
                obj["url"] = url
            out.append(obj)
        return out


def dumps(data: Any) -> str:
    """JSON safe to embed in an HTML ``<script>`` element (``<``, ``>``, ``&`` escaped as \\u sequences)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
