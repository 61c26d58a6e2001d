"""Writing debunks and claims: exact and near-duplicate detection, outbox rows, audit events.

Importers and Scrapy pipelines both write through these classes, so a debunk
crawled tonight and one imported from a CSV are de-duplicated the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH
from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier.text import normalize, shingles
from store.audit import DebunkImported, DebunkUpdated
from store.models import Claim, Debunk, IndexOutbox, Sighting, utcnow
from store.records import ClaimIn, DebunkIn

# Stored signatures are only comparable under the scheme that made them.
MINHASH_SCHEME = "affine32"
_URL_OK = re.compile(r"^https?://[^\s/]+", re.I)


def content_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


# A shorter text whose shingles lie at least this much inside the stored text is a cut-off copy of it.
TRUNCATED_CONTAINMENT = 0.9


def is_truncated_copy(new: str, stored: str) -> bool:
    """True when ``new`` is a shorter, cut-off copy of ``stored`` (exports often hold both)."""
    if len(new) >= len(stored):
        return False
    grams = shingles(new)
    if not grams:
        return True
    return len(grams & shingles(stored)) / len(grams) >= TRUNCATED_CONTAINMENT


def _fit(value: str | None, column: Any) -> str | None:
    """``value`` as every backend can store it in ``column``: PostgreSQL refuses NUL characters and
    strings longer than a VARCHAR's length, both of which SQLite would keep silently."""
    if value is None:
        return None
    value = value.replace("\x00", "")
    length = getattr(column.type, "length", None)
    return value[:length] if length else value


def enqueue(session: Session, kind: str, doc_id: int, op: str = "upsert") -> None:
    session.add(IndexOutbox(doc_kind=kind, doc_id=doc_id, op=op))


@dataclass
class WriteResult:
    outcome: str  # imported | updated | unchanged | rejected
    reason: str | None = None
    debunk_id: int | None = None
    duplicate_of: int | None = None


@dataclass
class DebunkWriter:
    """Adds debunks to the store, one transaction per call to ``flush``.

    Same URL: the row is updated when its content changed. Different URL but
    near-identical text (MinHash Jaccard ≥ threshold): rejected as a near
    duplicate of the earlier article.
    """

    session: Session
    threshold: float = 0.9
    num_perm: int = 128
    actor: str = "import"
    counts: Counter[str] = field(default_factory=Counter)
    _lsh: MinHashLSH | None = None
    _by_url: dict[str, list[int]] = field(default_factory=dict)
    _sigs: dict[int, MinHash] = field(default_factory=dict)
    _titles: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        for did, url, title, sig in self.session.execute(select(Debunk.id, Debunk.url, Debunk.title, Debunk.minhash)):
            self._remember(did, url, title, self._load(sig) if sig else None)

    def _remember(self, did: int, url: str, title: str, mh: MinHash | None) -> None:
        self._by_url.setdefault(url, []).append(did)
        self._titles[did] = normalize(title)
        if mh is not None:
            self._sigs[did] = mh
            assert self._lsh is not None
            self._lsh.insert(did, mh, check_duplication=False)

    def _same_article(self, url: str, title: str) -> int | None:
        """The stored article this one is a version of: the same URL, and the same title
        when several articles share that URL.

        Some sources give several different articles one URL (a scraper's
        mistake in the shared Weibo export, list pages); those stay separate.
        """
        ids = self._by_url.get(url, [])
        if len(ids) == 1 and not self._titles.get(ids[0]):
            return ids[0]
        ntitle = normalize(title)
        for did in ids:
            if self._titles.get(did) == ntitle:
                return did
        return None

    def _minhash(self, text: str) -> MinHash:
        m = MinHash(num_perm=self.num_perm, scheme=MINHASH_SCHEME)
        grams = shingles(text)
        if grams:
            m.update_batch([g.encode("utf-8") for g in grams])
        return m

    def _load(self, blob: bytes) -> MinHash:
        return MinHash(num_perm=self.num_perm, hashvalues=np.frombuffer(blob, dtype=np.uint64), scheme=MINHASH_SCHEME)

    def add(self, item: DebunkIn) -> WriteResult:
        res = self._add(item)
        self.counts[res.outcome if res.outcome != "rejected" else f"rejected:{res.reason}"] += 1
        return res

    def _add(self, item: DebunkIn) -> WriteResult:
        col = Debunk.__table__.c
        url = (item.url or "").replace("\x00", "").strip()
        if len(url) > getattr(col.url.type, "length", len(url)):  # a cut URL would point elsewhere
            return WriteResult("rejected", "bad_url")
        item = replace(
            item,
            title=_fit((item.title or "").strip(), col.title) or "",
            text=_fit(item.text, col.text) or "",
            source=_fit(item.source, col.source) or "",
            verdict=_fit(item.verdict, col.verdict),
            editor=_fit(item.editor, col.editor),
            origin=_fit(item.origin, col.origin),
        )
        title = item.title
        if not url or not _URL_OK.match(url):
            return WriteResult("rejected", "bad_url")
        if not title and not item.text.strip():
            return WriteResult("rejected", "empty")
        text = item.text.strip() or title
        title = title or text[:60]
        chash = content_hash(title + "\n" + text)
        # Title and body together are the article: near-duplicate detection sees both.
        mh = self._minhash(title + "\n" + text)
        existing_id = self._same_article(url, title)
        if existing_id is not None:
            row = self.session.get(Debunk, existing_id)
            if row is None:
                return WriteResult("rejected", "missing_row")
            if row.content_hash == chash and row.source == item.source:
                return WriteResult("unchanged", debunk_id=row.id)
            if is_truncated_copy(text, row.text):
                return WriteResult("unchanged", debunk_id=row.id)
            old = {"title": row.title, "source": row.source, "content_hash": row.content_hash}
            row.title, row.text, row.source = title, text, item.source
            row.published = item.published or row.published
            row.verdict = item.verdict or row.verdict
            row.editor = item.editor or row.editor
            row.origin = item.origin or row.origin
            row.content_hash = chash
            row.minhash = mh.hashvalues.astype(np.uint64).tobytes()
            self._titles[row.id], self._sigs[row.id] = normalize(title), mh
            enqueue(self.session, "debunk", row.id)
            DebunkUpdated(self.actor, row.id, old, {"title": title, "source": item.source, "content_hash": chash}).record(self.session)
            return WriteResult("updated", debunk_id=row.id)
        assert self._lsh is not None
        dups = self._lsh.query(mh)
        if dups:
            return WriteResult("rejected", "near_duplicate", duplicate_of=min(dups))
        row = Debunk(
            url=url,
            title=title[:1000],
            text=text,
            source=item.source,
            published=item.published,
            verdict=item.verdict,
            editor=item.editor,
            origin=item.origin,
            content_hash=chash,
            minhash=mh.hashvalues.astype(np.uint64).tobytes(),
        )
        self.session.add(row)
        self.session.flush()
        self._remember(row.id, url, row.title, mh)
        enqueue(self.session, "debunk", row.id)
        DebunkImported(self.actor, row.id, None, {"url": url, "title": row.title, "source": item.source}).record(self.session)
        return WriteResult("imported", debunk_id=row.id)


def add_claim(
    session: Session,
    item: ClaimIn,
    *,
    crawl_run_id: int | None = None,
    cluster_threshold: float | None = None,
    clusterer: Any = None,
    seen_at: dt.datetime | None = None,
) -> tuple[Claim, bool]:
    """Store a claim sighting. The same claim seen again (same source id or same text) counts a sighting.

    Every call also logs one ``Sighting`` row (claim, its cluster, ``seen_at``: default now) in the
    same transaction, from which review/gaps.py measures growth per time window.

    A new claim joins the cluster of its near-duplicate variants (store/clusters.py; MinHash over
    3-token jieba shingles, Jaccard ≥ ``cluster_threshold``, default claims.cluster_threshold's 0.6)
    or starts one. ``clusterer``: a ``ClaimClusterer`` to use instead of the session's cached one.
    """
    from store.clusters import DEFAULT_THRESHOLD, claim_minhash, clusterer_for, record_sighting, to_bytes

    col = Claim.__table__.c
    text = (_fit(item.text, col.text) or "").strip()
    chash = content_hash(text)
    external_id = _fit(item.external_id or item.url or chash, col.external_id) or chash
    url = (item.url or "").replace("\x00", "") or None
    if url is not None and len(url) > getattr(col.url.type, "length", len(url)):
        url = None  # too long to store whole: a cut URL would point elsewhere
    item = replace(item, source=_fit(item.source, col.source) or "")
    row = session.scalar(select(Claim).where(Claim.source == item.source, Claim.external_id == external_id))
    if row is None:
        row = session.scalar(select(Claim).where(Claim.content_hash == chash).order_by(Claim.id).limit(1))
    now = seen_at or utcnow()
    if row is not None:
        row.sightings += 1
        row.last_seen = max(row.last_seen, now) if row.last_seen else now
        record_sighting(session, row, source=item.source)
        session.add(Sighting(claim_id=row.id, cluster_id=row.cluster_id, seen_at=now, count=1))
        return row, False
    # `is None`, not `or`: a ClaimClusterer has a length, so an empty one (a fresh store) is falsy and
    # would be passed over for a session clusterer rebuilt from every stored signature.
    clusters = clusterer if clusterer is not None else clusterer_for(session, threshold=cluster_threshold or DEFAULT_THRESHOLD)
    mh = claim_minhash(text, clusters.num_perm)
    row = Claim(
        source=item.source,
        external_id=external_id,
        url=url,
        text=text,
        published=item.published,
        content_hash=chash,
        crawl_run_id=crawl_run_id,
        first_seen=now,
        last_seen=now,
        minhash=to_bytes(mh),
    )
    session.add(row)
    session.flush()
    clusters.assign(session, row, mh)
    session.add(Sighting(claim_id=row.id, cluster_id=row.cluster_id, seen_at=now, count=1))
    enqueue(session, "claim", row.id)
    return row, True
