"""Claim clusters: variants of one claim (near-duplicates) counted as one.

Two claims are variants when the Jaccard similarity of their 3-token jieba
shingles (``classifier.text.tokenize``), estimated with MinHash, is at least
``claims.cluster_threshold``. ``store.writes.add_claim`` puts every new claim
into the cluster of its most similar stored variant, or into a new cluster.

The LSH index lives in memory: ``ClaimClusterer`` is rebuilt from the
signatures stored on the claims (``Claim.minhash``) when it is created, and
picks up claims other processes stored since (``refresh``, run before every
lookup). Candidates are checked against the database, so ids of rows that
were rolled back are dropped rather than trusted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from classifier.text import tokenize
from store.models import Claim, ClaimCluster, utcnow

SHINGLE_TOKENS = 3
NUM_PERM = 128
MINHASH_SCHEME = "affine32"  # as store.writes: stored signatures are only comparable under one scheme
DEFAULT_THRESHOLD = 0.6
_SESSION_KEY = "piyao_claim_clusterer"


def claim_shingles(text: str, k: int = SHINGLE_TOKENS) -> set[str]:
    """k-token shingles of ``text`` (jieba tokens, normalized, without punctuation and stop words)."""
    toks = tokenize(text)
    if len(toks) <= k:
        return {" ".join(toks)} if toks else set()
    return {" ".join(toks[i : i + k]) for i in range(len(toks) - k + 1)}


def claim_minhash(text: str, num_perm: int = NUM_PERM) -> MinHash:
    m = MinHash(num_perm=num_perm, scheme=MINHASH_SCHEME)
    grams = claim_shingles(text)
    if grams:
        m.update_batch([g.encode("utf-8") for g in grams])
    return m


def to_bytes(mh: MinHash) -> bytes:
    return mh.hashvalues.astype(np.uint64).tobytes()


def from_bytes(blob: bytes, num_perm: int = NUM_PERM) -> MinHash | None:
    values = np.frombuffer(blob, dtype=np.uint64)
    if len(values) != num_perm:
        return None  # made with another num_perm: recomputed from the text
    return MinHash(num_perm=num_perm, hashvalues=values, scheme=MINHASH_SCHEME)


class ClaimClusterer:
    """Finds the cluster a new claim belongs to (MinHashLSH over the stored claims' signatures)."""

    def __init__(self, session: Session, *, threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._sigs: dict[int, MinHash] = {}
        self._last_id = 0
        self.refresh(session)

    def __len__(self) -> int:
        return len(self._sigs)

    def refresh(self, session: Session) -> int:
        """Index the claims stored since the last refresh (all of them the first time); returns how many.

        Claims without a usable signature (stored before clustering existed) get one computed from
        their text and written back.
        """
        n = 0
        rows = session.execute(
            select(Claim.id, Claim.minhash, Claim.text).where(Claim.id > self._last_id).order_by(Claim.id)
        ).all()
        for cid, blob, text in rows:
            mh = from_bytes(blob, self.num_perm) if blob else None
            if mh is None:
                mh = claim_minhash(text or "", self.num_perm)
                session.execute(update(Claim).where(Claim.id == cid).values(minhash=to_bytes(mh)).execution_options(synchronize_session=False))
            self.add(cid, mh)
            self._last_id = max(self._last_id, cid)
            n += 1
        return n

    def add(self, claim_id: int, mh: MinHash) -> None:
        if claim_id in self._sigs:
            return
        self._sigs[claim_id] = mh
        self._lsh.insert(claim_id, mh, check_duplication=False)
        self._last_id = max(self._last_id, claim_id)

    def forget(self, claim_id: int) -> None:
        if self._sigs.pop(claim_id, None) is not None:
            self._lsh.remove(claim_id)

    def similar(self, mh: MinHash, *, exclude: int | None = None) -> list[tuple[float, int]]:
        """(estimated Jaccard, claim id) of stored claims at or above the threshold, most similar first."""
        out = []
        for cid in self._lsh.query(mh):
            if cid == exclude:
                continue
            j = mh.jaccard(self._sigs[cid])
            if j >= self.threshold:
                out.append((j, cid))
        out.sort(key=lambda t: (-t[0], t[1]))
        return out

    def assign(self, session: Session, claim: Claim, mh: MinHash) -> ClaimCluster:
        """Put the new, flushed ``claim`` into its most similar variant's cluster, or a new one."""
        self.refresh(session)
        cluster = None
        for _j, cid in self.similar(mh, exclude=claim.id):
            other = session.get(Claim, cid)
            if other is None:  # rolled back since it was indexed
                self.forget(cid)
                continue
            if other.cluster_id is None:
                other.cluster_id = _new_cluster(session, other).id
            cluster = _locked(session, other.cluster_id)
            if cluster is not None:
                break
        self.add(claim.id, mh)
        if cluster is None:
            cluster = _new_cluster(session, claim)
            claim.cluster_id = cluster.id
            return cluster
        claim.cluster_id = cluster.id
        cluster.size += 1
        cluster.sightings += claim.sightings or 1
        _add_source(cluster, claim.source)
        cluster.first_seen = min(cluster.first_seen, claim.first_seen) if cluster.first_seen else claim.first_seen
        cluster.last_seen = max(cluster.last_seen, claim.last_seen) if cluster.last_seen else claim.last_seen
        return cluster


def _locked(session: Session, cluster_id: int) -> ClaimCluster | None:
    """The cluster row, locked for this transaction on PostgreSQL (concurrent crawlers update counters)."""
    return session.scalar(
        select(ClaimCluster).where(ClaimCluster.id == cluster_id).with_for_update().execution_options(populate_existing=True)
    )


def _add_source(cluster: ClaimCluster, source: str) -> None:
    names = list(cluster.source_names or [])
    if source not in names:
        names.append(source)
        cluster.source_names = names  # a new list: JSON columns do not track in-place changes
    cluster.sources = len(names)


def _new_cluster(session: Session, claim: Claim) -> ClaimCluster:
    now = utcnow()
    cluster = ClaimCluster(
        representative_claim_id=claim.id,
        size=1,
        sightings=claim.sightings or 1,
        sources=1,
        source_names=[claim.source],
        first_seen=claim.first_seen or now,
        last_seen=claim.last_seen or now,
    )
    session.add(cluster)
    session.flush()
    return cluster


def record_sighting(session: Session, claim: Claim, *, source: str | None = None) -> ClaimCluster | None:
    """Count one more sighting of the stored ``claim`` on its cluster (``source``: where it was seen)."""
    if claim.cluster_id is None:
        return None
    cluster = _locked(session, claim.cluster_id)
    if cluster is None:
        return None
    cluster.sightings += 1
    cluster.last_seen = max(cluster.last_seen, claim.last_seen) if cluster.last_seen else claim.last_seen
    _add_source(cluster, source or claim.source)
    return cluster


def clusterer_for(session: Session, *, threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM) -> ClaimClusterer:
    """The session's clusterer (built on first use from the stored signatures, then kept in session.info)."""
    key = (_SESSION_KEY, threshold, num_perm)
    found: Any = session.info.get(key)
    if found is None:
        found = session.info[key] = ClaimClusterer(session, threshold=threshold, num_perm=num_perm)
    return found


def forget_clusterers(session: Session) -> None:
    """Drop the session's cached clusterers (after a rollback, say); the next use rebuilds one."""
    for key in [k for k in session.info if isinstance(k, tuple) and k and k[0] == _SESSION_KEY]:
        del session.info[key]
