"""Matching claims against the curated debunks: hybrid passage retrieval, calibrated decisions.

For one claim:

1. **Two retrievers over debunk passages** (index.passages: title, rumor as stated,
   verdict, body chunks): BM25 over jieba tokens (``Backend.search_passages``) and
   dense multilingual-e5 vectors (claim encoded with e5's ``query:`` role, passages
   with ``passage:``; ``Backend.knn_passages``). Passages without a vector yet are
   simply absent from the dense list: BM25 answers while embeddings are computed.
2. **Per article**: each retriever's passage list becomes an article ranking (an
   article's best passage); reciprocal rank fusion (RRF, k = ``rrf_k``) merges them
   into the candidates.
3. **A calibrated score** per candidate: logistic regression (``MatchCalibration``,
   ``models/matcher.json``, fitted by ``python -m index.calibrate`` on labelled claim
   sets) over backend-independent features — the RRF score, each retriever's rank,
   the best e5 cosine, and how much of the claim's and the passage's character
   bigrams the best passage shares. The score is the probability that the article
   answers the claim; candidates are ranked by it.
4. **Two thresholds** (config.yaml ``matching.auto_threshold`` and
   ``matching.suggest_threshold``): at or above the high one the debunk is linked
   automatically (``"auto"``), at or above the low one it is suggested to the editor
   (``"suggest"``), below it is ``"none"``.

The evidence an editor sees is the article's best passage (its kind and text).
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from classifier.text import normalize, tokenize
from index.backend import Backend, PassageHit, SearchFilters
from index.snippets import make_snippet
from store.db import Store
from store.models import Claim, ClaimCluster, ClaimMatch, Debunk, utcnow

if TYPE_CHECKING:
    from classifier.encoder import E5Encoder
    from settings import Settings

__all__ = [
    "DECISIONS",
    "FEATURES",
    "Candidate",
    "Match",
    "MatchCalibration",
    "Matcher",
    "match_records",
    "match_stored_claims",
    "match_text",
]

# Long claims are cut to their first distinct terms; BM25 needs only the distinctive ones.
MAX_QUERY_TERMS = 48
# Stored claims whose query vectors are encoded together (match_stored_claims).
ENCODE_BATCH = 512
DECISIONS = ("auto", "suggest", "none")
FEATURES = ("rrf", "bm25_rr", "dense_rr", "cosine", "in_both", "claim_cover", "passage_cover", "claim_kind")
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "models" / "matcher.json"


@functools.lru_cache(maxsize=1)
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _openmp_limit() -> Any:
    return _threadpools().limit(limits=1, user_api="openmp")


@functools.lru_cache(maxsize=65536)
def _bigrams(text: str) -> frozenset[str]:
    s = "".join(ch for ch in normalize(text) if ch.isalnum())
    return frozenset(s[i : i + 2] for i in range(len(s) - 1)) if len(s) > 1 else frozenset([s] if s else [])


@dataclass
class Candidate:
    """One debunk article found for a claim, with the evidence and the features of the decision."""

    doc_key: str
    title: str
    source: str
    url: str | None
    evidence: PassageHit
    bm25_rank: int = 0  # 1-based article rank in the BM25 list; 0 = not found there
    dense_rank: int = 0
    cosine: float = 0.0  # best e5 cosine of the article's passages (0 when none had a vector or was found)
    rrf: float = 0.0
    claim_cover: float = 0.0
    passage_cover: float = 0.0

    @property
    def debunk_id(self) -> int:
        return int(self.doc_key.split(":", 1)[1])

    def features(self) -> list[float]:
        return [
            self.rrf * 60.0,
            1.0 / self.bm25_rank if self.bm25_rank else 0.0,
            1.0 / self.dense_rank if self.dense_rank else 0.0,
            self.cosine,
            float(bool(self.bm25_rank and self.dense_rank)),
            self.claim_cover,
            self.passage_cover,
            float(self.evidence.kind in ("title", "rumor")),
        ]


@dataclass
class MatchCalibration:
    """Features (``FEATURES``) → probability that the article answers the claim.

    ``kind`` "gbdt": a gradient-boosted tree model (scikit-learn's HistGradientBoostingClassifier,
    saved with skops beside the JSON file, its SHA-256 checked on load); "logistic": a logistic
    regression kept in the JSON file itself (the hand-set fallback is one).
    """

    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0
    rrf_k: int = 60
    info: dict[str, object] = field(default_factory=dict)
    kind: str = "logistic"
    model: Any = None

    def score(self, feats: np.ndarray) -> np.ndarray:
        X = np.asarray(feats, dtype=np.float64).reshape(-1, len(FEATURES))
        if self.kind == "gbdt":
            if not len(X):
                return np.zeros(0)
            # One thread: scoring ~100 candidates is too small to share, and OpenMP workers
            # spinning on a busy machine cost more than the prediction (p95 11 ms → 1 ms).
            with _openmp_limit():
                return np.asarray(self.model.predict_proba(X)[:, 1], dtype=np.float64)
        z = X @ np.asarray(self.coef, dtype=np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"features": list(FEATURES), "kind": self.kind, "rrf_k": self.rrf_k}
        if self.kind == "logistic":
            d.update(coef=self.coef, intercept=self.intercept)
        d["info"] = self.info
        return d

    def save(self, path: str | Path) -> None:
        path = Path(path)
        doc = self.to_dict()
        if self.kind == "gbdt":
            from classifier.starter import dump_skops

            model_file, trusted_file = path.with_suffix(".skops"), path.with_suffix(".trusted.json")
            doc["model_file"], doc["trusted_file"] = model_file.name, trusted_file.name
            doc["model_sha256"] = dump_skops(self.model, model_file, trusted_file)
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", "utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "MatchCalibration":
        path = Path(path)
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the match calibration {path}: {exc}") from None
        if doc.get("features") != list(FEATURES):
            raise ValueError(f"{path}: calibration features {doc.get('features')} do not match this version's {list(FEATURES)}")
        kind = doc.get("kind", "logistic")
        common = {"rrf_k": int(doc.get("rrf_k", 60)), "info": dict(doc.get("info") or {})}
        if kind == "gbdt":
            from classifier.starter import load_skops

            try:
                model = load_skops(path.parent / doc["model_file"], path.parent / doc["trusted_file"], doc.get("model_sha256"), require_sha256=True)
            except (OSError, KeyError, ValueError) as exc:
                raise ValueError(f"cannot load the match model of {path}: {exc}") from None
            return cls(kind="gbdt", model=model, **common)  # type: ignore[arg-type]
        if kind != "logistic":
            raise ValueError(f"{path}: unknown calibration kind {kind!r}")
        return cls(coef=[float(c) for c in doc["coef"]], intercept=float(doc["intercept"]), **common)  # type: ignore[arg-type]

    @classmethod
    def default(cls) -> "MatchCalibration":
        """The shipped calibration (models/matcher.json), or the fallback when it is missing."""
        return cls.load(DEFAULT_CALIBRATION) if DEFAULT_CALIBRATION.exists() else cls.fallback()

    @classmethod
    def fallback(cls) -> "MatchCalibration":
        """Hand-set weights for when no fitted calibration exists (scores are then only roughly probabilities)."""
        return cls(coef=[1.0, 1.0, 1.0, 12.0, 0.5, 2.0, 1.0, 0.3], intercept=-13.0, info={"fitted": False})


@dataclass
class Match:
    url: str | None
    title: str
    source: str
    score: float
    debunk_id: int
    snippet: str
    decision: str = "none"
    evidence_kind: str = ""
    evidence: str = ""

    def as_contract(self) -> dict[str, object]:
        return {
            "url": self.url,
            "title": self.title,
            "source": self.source,
            "score": round(self.score, 4),
            "decision": self.decision,
            "evidence": {"kind": self.evidence_kind, "text": self.evidence},
        }


class Matcher:
    """Hybrid BM25 + e5 matching of claims against debunk passages; see the module doc."""

    def __init__(
        self,
        backend: Backend,
        *,
        encoder: E5Encoder | None = None,
        calibration: MatchCalibration | None = None,
        top_k: int = 5,
        candidates: int = 50,
        auto_threshold: float | None = None,
        suggest_threshold: float | None = None,
        min_score: float = 0.0,
        use_dense: bool = True,
        use_bm25: bool = True,
        query_max_chars: int = 128,
        encoder_threads: int = 0,
        cache_path: str | Path | None = None,
        encoder_engine: str | None = None,
    ) -> None:
        from settings import MatchingSettings

        # Unset thresholds are the configured defaults (settings.MatchingSettings, config.yaml).
        fields = MatchingSettings.model_fields
        auto_threshold = fields["auto_threshold"].default if auto_threshold is None else auto_threshold
        suggest_threshold = fields["suggest_threshold"].default if suggest_threshold is None else suggest_threshold
        if not 0.0 <= suggest_threshold <= auto_threshold <= 1.0:
            raise ValueError("matching thresholds must satisfy 0 <= suggest_threshold <= auto_threshold <= 1")
        self.backend = backend
        self.calibration = calibration or MatchCalibration.default()
        self.top_k, self.candidates = top_k, candidates
        self.auto_threshold, self.suggest_threshold, self.min_score = auto_threshold, suggest_threshold, min_score
        self.use_dense, self.use_bm25 = use_dense, use_bm25
        self._encoder = encoder
        self._encoder_lock = threading.Lock()  # one encoder (one model load) when threads ask at once
        self._cache_path = cache_path
        self.query_max_chars, self.encoder_threads = query_max_chars, encoder_threads
        self.encoder_engine = encoder_engine

    @classmethod
    def from_settings(cls, settings: Settings, backend: Backend, *, top_k: int | None = None) -> "Matcher":
        m = settings.matching
        path = Path(m.calibration) if m.calibration else DEFAULT_CALIBRATION
        if not path.is_absolute():
            path = Path(__file__).resolve().parents[1] / path
        if m.calibration and not path.exists():
            raise ValueError(f"matching.calibration: no calibration file at {path}")
        calibration = MatchCalibration.load(path) if path.exists() else MatchCalibration.fallback()
        return cls(
            backend,
            encoder=None,
            calibration=calibration,
            top_k=top_k or m.top_k,
            candidates=m.candidates,
            auto_threshold=m.auto_threshold,
            suggest_threshold=m.suggest_threshold,
            min_score=m.min_score,
            use_dense=m.dense,
            query_max_chars=m.query_max_chars,
            encoder_threads=m.encoder_threads,
            cache_path=settings.embedding_cache_path,
            encoder_engine=settings.classifier.embedding_engine,
        )

    @property
    def encoder(self) -> E5Encoder:
        with self._encoder_lock:
            if self._encoder is None:
                from classifier.encoder import E5Encoder

                self._encoder = E5Encoder(
                    cache_path=self._cache_path, max_chars=self.query_max_chars, num_threads=self.encoder_threads or None,
                    engine=self.encoder_engine,
                )
            return self._encoder

    # -- retrieval -------------------------------------------------------------------
    def candidates_for(self, text: str, filters: SearchFilters | None = None, *, vector: np.ndarray | None = None) -> list[Candidate]:
        """The fused candidate articles for ``text`` (unscored), RRF order."""
        tokens = list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS]
        bm25 = self.backend.search_passages(tokens, limit=self.candidates, filters=filters) if tokens and self.use_bm25 else []
        dense: list[PassageHit] = []
        if self.use_dense and normalize(text).strip():
            if vector is None:
                vector = self.encoder.encode([text], role="query")[0]
            dense = self.backend.knn_passages(vector, limit=self.candidates, filters=filters)
        k = self.calibration.rrf_k
        cands: dict[str, Candidate] = {}
        claim_grams = _bigrams(text)
        seen_passages: dict[str, list[PassageHit]] = {}
        for which, hits in (("bm25", bm25), ("dense", dense)):
            rank = 0
            for h in hits:
                seen_passages.setdefault(h.doc_key, []).append(h)
                c = cands.get(h.doc_key)
                if c is None:
                    c = cands[h.doc_key] = Candidate(h.doc_key, h.title, h.source, h.url, evidence=h)
                if which == "bm25" and not c.bm25_rank:
                    rank += 1
                    c.bm25_rank = rank
                    c.rrf += 1.0 / (k + rank)
                elif which == "dense" and not c.dense_rank:
                    rank += 1
                    c.dense_rank = rank
                    c.cosine = h.score
                    c.rrf += 1.0 / (k + rank)
                    c.evidence = h  # the nearest passage in meaning is the evidence shown
        for key, c in cands.items():
            best = (0.0, 0.0, c.evidence)
            for h in seen_passages[key]:
                grams = _bigrams(h.text)
                shared = len(claim_grams & grams)
                cc = shared / len(claim_grams) if claim_grams else 0.0
                pc = shared / len(grams) if grams else 0.0
                if cc + pc > best[0] + best[1]:
                    best = (cc, pc, h)
            c.claim_cover, c.passage_cover = best[0], best[1]
            if not c.dense_rank:
                c.evidence = best[2]
        return sorted(cands.values(), key=lambda c: -c.rrf)

    def score(self, cands: Sequence[Candidate]) -> np.ndarray:
        if not cands:
            return np.zeros(0)
        return self.calibration.score(np.array([c.features() for c in cands]))

    def decide(self, score: float) -> str:
        if score >= self.auto_threshold:
            return "auto"
        if score >= self.suggest_threshold:
            return "suggest"
        return "none"

    def query_vectors(self, texts: Sequence[str], stand_ins: Sequence[str | None] | None = None) -> list[np.ndarray | None]:
        """The e5 query vectors ``match`` would compute for ``texts``, in one batched encode.

        One text at a time, e5 splits each matrix product over the cores and waits for them
        at every layer; a batch gives each core whole texts: the same vectors, bit for bit,
        several times faster (most of all on a busy machine, where those waits stall). None
        where ``match`` would not encode (dense retrieval off, or nothing left after
        normalization).

        ``stand_ins[i]``, when given, is a near-identical text (the representative of the claim's
        cluster, see :func:`stand_in_texts`): when the encoder's caches hold its vector and not the
        text's own, that vector is used and the text is not encoded. A forwarded variant then costs
        no encode; matched with the representative's vector, variants were matched as well as with
        their own (eval/variant_vectors.py, docs/matching.md).
        """
        out: list[np.ndarray | None] = [None] * len(texts)
        if not self.use_dense:
            return out
        todo = [i for i, t in enumerate(texts) if normalize(t).strip()]
        if todo and stand_ins is not None and any(stand_ins[i] for i in todo):
            own = self.encoder.cached([texts[i] for i in todo], role="query")
            alt = [i for i, v in zip(todo, own) if v is None and stand_ins[i]]
            borrowed = dict(zip(alt, self.encoder.cached([str(stand_ins[i]) for i in alt], role="query")))
            for i, v in zip(todo, own):
                out[i] = v if v is not None else borrowed.get(i)
            todo = [i for i in todo if out[i] is None]
        if todo:
            vecs = self.encoder.encode([texts[i] for i in todo], role="query")
            for i, v in zip(todo, vecs):
                out[i] = v
        return out

    def match(self, text: str, filters: SearchFilters | None = None, *, vector: np.ndarray | None = None) -> list[Match]:
        """The debunks that best answer ``text``, best first, each with a decision.

        ``vector``: the text's e5 query vector when already computed (``query_vectors``).
        """
        cands = self.candidates_for(text, filters, vector=vector)
        scores = self.score(cands)
        order = np.argsort(-scores, kind="stable")[: self.top_k]
        terms = list(dict.fromkeys(tokenize(text)))[:MAX_QUERY_TERMS] if len(order) else []
        out = []
        for i in order:
            c, s = cands[int(i)], float(scores[int(i)])
            if s < self.min_score:
                continue
            out.append(
                Match(
                    url=c.url,
                    title=c.title,
                    source=c.source,
                    score=s,
                    debunk_id=c.debunk_id,
                    snippet=make_snippet(c.evidence.text, terms, width=200),
                    decision=self.decide(s),
                    evidence_kind=c.evidence.kind,
                    evidence=c.evidence.text,
                )
            )
        return out


def match_text(backend: Backend, text: str, *, top_k: int = 5, min_score: float = 0.0, matcher: Matcher | None = None) -> list[Match]:
    """The debunks that best answer ``text``, best first (a default Matcher unless one is given)."""
    m = matcher or Matcher(backend, top_k=top_k, min_score=min_score)
    return m.match(text)


def match_records(
    backend: Backend,
    records: Iterable[dict[str, object]],
    *,
    top_k: int = 5,
    min_score: float = 0.0,
    matcher: Matcher | None = None,
) -> Iterator[dict[str, object]]:
    """The `piyao match` contract: {"id", "matches": [{"url", "title", "source", "score", "decision", "evidence"}]}."""
    m = matcher or Matcher(backend, top_k=top_k, min_score=min_score)
    for rec in records:
        yield {"id": rec["id"], "matches": [x.as_contract() for x in m.match(str(rec["text"]))]}


def match_stored_claims(
    store: Store,
    backend: Backend,
    *,
    top_k: int = 5,
    min_score: float = 0.0,
    only_flagged: bool = True,
    matcher: Matcher | None = None,
    cluster_threshold: float | None = None,
) -> tuple[int, int]:
    """Match claims not matched yet; returns (claims processed, claims with an auto or suggested match).

    Every match is stored with its decision and evidence; "none" matches are kept too (an
    editor may still look at them), but only auto/suggest count as answered. ``cluster_threshold``:
    the store's (``claims.cluster_threshold``), for :func:`stand_in_texts`.
    """
    m = matcher or Matcher(backend, top_k=top_k, min_score=min_score)
    processed = matched = 0
    with store.session() as s:
        # The stored matches (store_matches skips debunks a claim has) come with the claims, not one query each.
        q = select(Claim).where(Claim.matched_at.is_(None)).options(selectinload(Claim.matches))
        if only_flagged:
            q = q.where(Claim.flagged.is_(True))
        claims = s.scalars(q).all()
        # The claims' query vectors are encoded a batch at a time (Matcher.query_vectors), not one by one.
        for start in range(0, len(claims), ENCODE_BATCH):
            part = claims[start : start + ENCODE_BATCH]
            for claim, vector in zip(part, m.query_vectors([c.text for c in part], stand_in_texts(s, part, cluster_threshold))):
                found = m.match(claim.text, vector=vector)
                store_matches(s, claim, found)
                processed += 1
                matched += any(x.decision != "none" for x in found)
    return processed, matched


def stand_in_texts(session: Any, claims: Sequence[Claim], threshold: float | None = None) -> list[str | None]:
    """For each claim, the text of its cluster's representative when that is another claim and a
    near-duplicate of this one (MinHash similarity ≥ ``threshold``, default the store's default
    cluster threshold: clusters grow by chains of near-duplicates, so a member can be far from where
    its cluster started); else None.
    Its e5 vector can stand in for the claim's (:meth:`Matcher.query_vectors`)."""
    from sqlalchemy.orm import aliased

    from store.clusters import DEFAULT_THRESHOLD, from_bytes

    out: list[str | None] = [None] * len(claims)
    ids = [c.id for c in claims if c.cluster_id is not None and c.minhash]
    if not ids:
        return out
    rep = aliased(Claim)
    rows = session.execute(
        select(Claim.id, rep.text, rep.minhash)
        .join(ClaimCluster, ClaimCluster.id == Claim.cluster_id)
        .join(rep, rep.id == ClaimCluster.representative_claim_id)
        .where(Claim.id.in_(ids), rep.id != Claim.id)
    ).all()
    found = {cid: (text, blob) for cid, text, blob in rows}
    for i, c in enumerate(claims):
        if c.id not in found or not c.minhash:
            continue
        text, blob = found[c.id]
        mine, theirs = from_bytes(c.minhash), from_bytes(blob) if blob else None
        if mine is not None and theirs is not None and mine.jaccard(theirs) >= (threshold or DEFAULT_THRESHOLD):
            out[i] = text
    return out


def store_matches(session: Any, claim: Claim, found: list[Match]) -> None:
    """Add ``found`` to the claim's stored matches (debunks it has already and vanished ones are skipped)
    and stamp it matched; the pipeline and the partner intake both store matches this way."""
    existing = {x.debunk_id for x in claim.matches}
    ids = [x.debunk_id for x in found]
    valid = set(session.scalars(select(Debunk.id).where(Debunk.id.in_(ids)))) if found else set()
    for rank, x in enumerate(found, 1):
        if x.debunk_id in existing or x.debunk_id not in valid:
            continue
        claim.matches.append(
            ClaimMatch(
                debunk_id=x.debunk_id,
                rank=rank,
                score=x.score,
                snippet=x.snippet,
                decision=x.decision,
                evidence_kind=x.evidence_kind or None,
                evidence=x.evidence[:1000] or None,
            )
        )
    claim.matched_at = utcnow()

