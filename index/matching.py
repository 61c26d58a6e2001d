"""Matching claims against the curated debunks in the index (BM25 over jieba tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from sqlalchemy import select

from classifier.text import tokenize
from index.backend import Backend, Hit, SearchFilters
from store.db import Store
from store.models import Claim, ClaimMatch, Debunk, utcnow

# Long claims are cut to their first terms; BM25 needs only the distinctive ones.
MAX_QUERY_TERMS = 48


@dataclass
class Match:
    url: str | None
    title: str
    source: str
    score: float
    debunk_id: int
    snippet: str

    def as_contract(self) -> dict[str, object]:
        return {"url": self.url, "title": self.title, "source": self.source, "score": round(self.score, 4)}


def match_text(backend: Backend, text: str, *, top_k: int = 5, min_score: float = 0.0) -> list[Match]:
    """The debunks that best answer ``text``, best first."""
    tokens = list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS]
    if not tokens:
        return []
    search_tokens = getattr(backend, "search_tokens", None)
    filters = SearchFilters(kind="debunk")
    hits: list[Hit]
    if search_tokens is not None:
        hits = search_tokens(tokens, limit=top_k, filters=filters)
    else:
        hits = backend.search(" ".join(tokens), limit=top_k, filters=filters)
    return [
        Match(url=h.url, title=h.title, source=h.source, score=h.score, debunk_id=h.doc_id, snippet=h.snippet)
        for h in hits
        if h.score >= min_score
    ]


def match_records(
    backend: Backend, records: Iterable[dict[str, object]], *, top_k: int = 5, min_score: float = 0.0
) -> Iterator[dict[str, object]]:
    """The `piyao match` contract: {"id", "matches": [{"url", "title", "source", "score"}, ...]} per record."""
    for rec in records:
        matches = match_text(backend, str(rec["text"]), top_k=top_k, min_score=min_score)
        yield {"id": rec["id"], "matches": [m.as_contract() for m in matches]}


def match_stored_claims(
    store: Store, backend: Backend, *, top_k: int = 5, min_score: float = 0.0, only_flagged: bool = True
) -> tuple[int, int]:
    """Match claims that have not been matched yet; returns (claims processed, claims with a match)."""
    processed = matched = 0
    with store.session() as s:
        q = select(Claim).where(Claim.matched_at.is_(None))
        if only_flagged:
            q = q.where(Claim.flagged.is_(True))
        for claim in s.scalars(q).all():
            found = match_text(backend, claim.text, top_k=top_k, min_score=min_score)
            existing = {m.debunk_id for m in claim.matches}
            valid = set(s.scalars(select(Debunk.id).where(Debunk.id.in_([m.debunk_id for m in found])))) if found else set()
            for rank, m in enumerate(found, 1):
                if m.debunk_id in existing or m.debunk_id not in valid:
                    continue
                claim.matches.append(ClaimMatch(debunk_id=m.debunk_id, rank=rank, score=m.score, snippet=m.snippet))
            claim.matched_at = utcnow()
            processed += 1
            matched += bool(found)
    return processed, matched
