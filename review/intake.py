"""Claim intake for partner platforms: store, classify, queue, index and match, in one call.

A partner pushes suspect posts (``POST /api/v1/claims``) and gets, in the same response, our
classifier's score and the debunks that answer each post. Every step reuses the pipeline's code:
``store.writes.add_claim`` (de-duplication, clusters, sightings), ``pipeline.load_classifier`` and
``classifier.predict.classify_records`` with the configured thresholds, ``index.outbox.drain`` and
``pipeline.make_matcher``. The classifier and the matcher are loaded once per app, lazily, by
``IntakeService`` (kept on ``app.state.intake``).

Idempotency: a partner's ``external_id`` is its post id; sending it again returns the stored result
and counts one more sighting (the text sent the second time is not used). The steps commit one by
one, so a call that fails half way (the index down, say) is finished by sending it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from review.accounts import Identity
from settings import Settings, WebSettings
from store.audit import ClaimQueued
from store.clusters import DEFAULT_THRESHOLD, ClaimClusterer
from store.db import Store
from store.models import Claim, ClaimMatch, Debunk, Partner, PartnerSubmission, utcnow
from store.records import ClaimIn
from store.writes import add_claim

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["IntakeItem", "IntakeRequest", "IntakeMatch", "IntakeResult", "IntakeResponse", "IntakeError",
           "IntakeUnavailable", "IntakeService", "intake_for", "check_limits", "claim_source"]


def _upper_bound(name: str) -> int:
    """The largest value config.yaml may give ``web.<name>``: the static limit the request models carry.

    The configured (smaller) limit is checked per request by ``check_limits``; the models keep the hard
    bound so that no configuration can let a larger body through validation.
    """
    for meta in WebSettings.model_fields[name].metadata:
        le = getattr(meta, "le", None)
        if le is not None:
            return int(le)
    raise RuntimeError(f"web.{name} has no upper bound")  # pragma: no cover - settings.py always sets one


MAX_TEXT_BOUND = _upper_bound("max_text_chars")
MAX_ITEMS_BOUND = _upper_bound("max_intake_items")
URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"


# --------------------------------------------------------------------------- request and response models
class IntakeItem(BaseModel):
    """One post from a partner platform."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(..., min_length=1, max_length=200,
                             description="The partner's own id of the post; sending it again is idempotent.")
    text: str = Field(..., min_length=1, max_length=MAX_TEXT_BOUND,
                      description="The post's text (at most web.max_text_chars characters, default 5000).")
    url: str | None = Field(None, max_length=2048, pattern=URL_PATTERN, description="The post's http(s) URL.")
    published: dt.datetime | None = Field(None, description="When the post was published (ISO 8601; UTC unless it has an offset).")

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("external_id is empty")
        if any(ord(c) < 32 for c in v):
            raise ValueError("external_id holds control characters")
        return v

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        v = v.replace("\x00", "").strip()
        if not v:
            raise ValueError("text is empty")
        return v

    @field_validator("published")
    @classmethod
    def _published(cls, v: dt.datetime | None) -> dt.datetime | None:
        """Stored as naive UTC, like every other time in the store."""
        if v is not None and v.tzinfo is not None:
            try:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            except OverflowError:  # pydantic turns ValueError (only) into a 422
                raise ValueError("published is out of range once converted to UTC") from None
        return v


class IntakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[IntakeItem] = Field(..., min_length=1, max_length=MAX_ITEMS_BOUND,
                                    description="1 to web.max_intake_items (default 50) posts.")


class IntakeMatch(BaseModel):
    """A debunk that answers the claim, as the matcher scored it."""

    debunk_id: int
    title: str
    url: str | None
    source: str
    score: float = Field(description="Probability (calibrated) that the debunk answers the claim.")
    decision: str | None = Field(description="auto: linked automatically; suggest: shown to editors; none: weak.")
    evidence_kind: str | None = Field(description="The passage that matched: title, rumor, verdict or body.")
    evidence: str | None
    linked: bool = Field(False, description="An editor confirmed that this debunk answers the claim.")


class IntakeResult(BaseModel):
    claim_id: int
    external_id: str
    new: bool = Field(description="False when the post (or the same text) was known already: one more sighting.")
    label: str | None
    score: float | None = Field(description="Probability that the text is not credible (0..1).")
    flagged: bool
    topic: str | None
    explanation: dict[str, Any] | None
    model_version: str | None
    status: str = Field(description="new | queued | confirmed | dismissed | needs_debunk")
    matches: list[IntakeMatch]


class IntakeResponse(BaseModel):
    items: list[IntakeResult]


class IntakeError(ValueError):
    """Input that passes the schema but breaks a configured limit; ``errors`` as FastAPI lists them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("msg")) for e in errors))
        self.errors = errors


class IntakeUnavailable(RuntimeError):
    """The classifier or the index cannot be used now; what was stored stays, a retry finishes the call."""


def check_limits(req: IntakeRequest, web: WebSettings) -> None:
    """The configured limits (web.max_intake_items, web.max_text_chars), as 422 errors naming the fields."""
    errors: list[dict[str, Any]] = []
    if len(req.items) > web.max_intake_items:
        errors.append({"loc": ["body", "items"], "type": "too_long",
                       "msg": f"at most {web.max_intake_items} items per call (got {len(req.items)})"})
    for i, item in enumerate(req.items):
        if len(item.text) > web.max_text_chars:
            errors.append({"loc": ["body", "items", i, "text"], "type": "string_too_long",
                           "msg": f"String should have at most {web.max_text_chars} characters"})
    if errors:
        raise IntakeError(errors)


def claim_source(me: Identity) -> str:
    """The claim source of a submitter: ``partner:<name>`` for partner tokens, ``api:<username>`` for users."""
    return f"partner:{me.name}" if me.kind == "partner" else f"api:{me.name}"


# --------------------------------------------------------------------------- the service
def _retrying(step: Callable[[], T], attempts: int = 6) -> T:
    """Run a store step again when a concurrent call won a race (same post twice at once, same claim updated):
    each step re-reads what is there, so the retry sees the other call's rows and finishes cleanly."""
    for n in range(attempts):
        try:
            return step()
        except (IntegrityError, StaleDataError):
            if n == attempts - 1:
                raise
            log.info("intake: a concurrent write won; retrying the step")
            time.sleep(random.uniform(0.01, 0.05) * (n + 1))  # let the winner commit; contenders spread out
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Resolved:
    claim_id: int
    external_id: str
    new: bool


class IntakeService:
    """The classifier and the matcher of one app, loaded on first use (thread-safe), and the intake steps.

    ``backend``: a callable returning the app's index backend (``app.state.heavy.backend``).
    ``classifier``: an already loaded model to use instead of loading ``classifier.model``.
    """

    def __init__(self, settings: Settings, store: Store, backend: Callable[[], Any], *, classifier: Any = None) -> None:
        self.settings = settings
        self.store = store
        self._backend = backend
        self._classifier = classifier
        self._matcher: Any = None
        self._load_lock = threading.Lock()
        # The classifier's models are not documented as thread-safe: one prediction at a time.
        self._predict_lock = threading.Lock()
        # One clusterer for the app's lifetime, refreshed from the store before each lookup (claims that
        # crawls stored since); rebuilding it per call read every stored signature each time (O(claims)).
        # It is dropped when a store step fails: it may hold the signature of a claim that was rolled back.
        self._clusterer: ClaimClusterer | None = None
        self._store_lock = threading.Lock()

    def _context(self) -> Any:
        from pipeline import Context

        return Context(self.settings, _store=self.store, _backend=self._backend())

    def classifier(self) -> Any:
        with self._load_lock:
            if self._classifier is None:
                from index.backend import BackendError
                from pipeline import UserError, load_classifier

                try:
                    self._classifier = load_classifier(self._context())
                except UserError as exc:
                    raise IntakeUnavailable(exc.format_message()) from None
                except BackendError as exc:  # the default model reads known debunks from the index
                    raise IntakeUnavailable(f"the search index is unavailable: {exc}") from None
            return self._classifier

    def matcher(self) -> Any:
        with self._load_lock:
            if self._matcher is None:
                from index.backend import BackendError
                from pipeline import UserError, make_matcher

                try:
                    self._matcher = make_matcher(self._context())
                except (UserError, BackendError) as exc:
                    msg = exc.format_message() if isinstance(exc, UserError) else str(exc)
                    raise IntakeUnavailable(msg) from None
            return self._matcher

    # -- the steps -------------------------------------------------------------------
    def submit(self, me: Identity, items: Sequence[IntakeItem]) -> list[IntakeResult]:
        """Store, classify, queue, index and match ``items`` for ``me``; the results in the items' order."""
        resolved = _retrying(lambda: self._store_items(me, items))
        ids = list(dict.fromkeys(r.claim_id for r in resolved))
        _retrying(lambda: self._classify(ids, actor=me.name))
        self._index()
        _retrying(lambda: self._match(ids))
        return self._results(resolved)

    def _store_items(self, me: Identity, items: Sequence[IntakeItem]) -> list[_Resolved]:
        source = claim_source(me)
        out: list[_Resolved] = []
        with self._store_lock:
            try:
                with self.store.session() as s:
                    if self._clusterer is None:
                        self._clusterer = ClaimClusterer(s, threshold=self.settings.claims.cluster_threshold or DEFAULT_THRESHOLD)
                    partner = s.get(Partner, me.id) if me.kind == "partner" else None
                    for item in items:
                        out.append(self._store_one(s, source, partner, item))
            except BaseException:
                self._clusterer = None
                raise
        return out

    def _store_one(self, s: Session, source: str, partner: Partner | None, item: IntakeItem) -> _Resolved:
        threshold = self.settings.claims.cluster_threshold
        if partner is not None:
            sub = s.scalar(select(PartnerSubmission).where(PartnerSubmission.partner_id == partner.id,
                                                           PartnerSubmission.external_id == item.external_id))
            if sub is not None:
                known = s.get(Claim, sub.claim_id)
                if known is not None:
                    # The same post again: one more sighting of the stored claim, found by its own key.
                    add_claim(s, ClaimIn(source=known.source, text=known.text, external_id=known.external_id),
                              cluster_threshold=threshold, clusterer=self._clusterer)
                    return _Resolved(known.id, item.external_id, False)
        claim, new = add_claim(s, ClaimIn(source=source, text=item.text, external_id=item.external_id, url=item.url,
                                          published=item.published), cluster_threshold=threshold,
                                clusterer=self._clusterer)
        if partner is not None:
            s.add(PartnerSubmission(partner_id=partner.id, claim_id=claim.id, external_id=item.external_id))
            s.flush()
        return _Resolved(claim.id, item.external_id, new)

    def _classify(self, ids: list[int], *, actor: str) -> None:
        """Classify the claims not scored yet (as ``pipeline.classify_stored_claims`` does) and queue the flagged."""
        from classifier.predict import classify_records
        from pipeline import apply_classification, classify_options

        with self.store.session() as s:
            todo = s.scalars(select(Claim).where(Claim.id.in_(ids), Claim.score.is_(None))).all()
            if todo:
                model = self.classifier()
                by_id = {c.id: c for c in todo}
                with self._predict_lock:
                    results = list(classify_records(model, ({"id": c.id, "text": c.text} for c in todo),
                                                    **classify_options(self._context())))
                now = utcnow()
                for r in results:
                    apply_classification(by_id[r["id"]], r, now)
                s.flush()
            # As review.queue.enqueue_flagged, for these claims only.
            for c in s.scalars(select(Claim).where(Claim.id.in_(ids), Claim.status == "new", Claim.flagged.is_(True))).all():
                c.status = "queued"
                ClaimQueued(actor[:100], c.id, {"status": "new"}, {"status": "queued", "score": c.score}).record(s)

    def _index(self) -> None:
        """Drain the index outbox; an index outage leaves the rows there (``piyao index`` writes them later)."""
        from index.backend import BackendError
        from index.outbox import OutboxError, drain

        try:
            # No refresh per call: Elasticsearch shows the new claims in searches at its next periodic
            # refresh (within a second); matching reads only the debunks' passages.
            drain(self.store, self._backend(), batch_size=self.settings.index.batch_size, refresh=False)
        except (OutboxError, BackendError) as exc:
            log.warning("intake: indexing deferred: %s", exc)

    def _match(self, ids: list[int]) -> None:
        """Match the claims not matched yet and store the matches as ``index.matching.match_stored_claims`` does
        (that function matches every unmatched claim of the store; here only this call's claims)."""
        from index.backend import BackendError
        from index.matching import stand_in_texts, store_matches

        with self.store.session() as s:
            todo = s.scalars(select(Claim).where(Claim.id.in_(ids), Claim.matched_at.is_(None))
                             .options(selectinload(Claim.matches))).all()
            if not todo:
                return
            matcher = self.matcher()
            try:
                # The call's claims are encoded in one batch; then no lock of our own: the encoder and the
                # embedded index serialize their own use and Elasticsearch's client is thread-safe, so one
                # request's searches need not wait for another's (with Elasticsearch, mostly network waits).
                # A forwarded variant of a claim seen before borrows that claim's vector (no encode).
                vectors = matcher.query_vectors([c.text for c in todo], stand_in_texts(s, todo, self.settings.claims.cluster_threshold))
                found = [matcher.match(c.text, vector=v) for c, v in zip(todo, vectors)]
            except BackendError as exc:
                raise IntakeUnavailable(f"matching is unavailable: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - e5 weights missing and the like: logged, answered 503
                log.exception("intake: matching failed")
                raise IntakeUnavailable(f"matching failed: {exc.__class__.__name__}") from None
            for claim, matches in zip(todo, found):
                store_matches(s, claim, matches)

    def _results(self, resolved: list[_Resolved]) -> list[IntakeResult]:
        with self.store.session() as s:
            ids = [r.claim_id for r in resolved]
            claims = {c.id: c for c in s.scalars(select(Claim).where(Claim.id.in_(ids)).options(with_match_heads()))}
            return [result_of(claims[r.claim_id], r.external_id, new=r.new) for r in resolved]


def with_match_heads() -> Any:
    """Loader option: a claim's matches with their debunks' title, URL and source (what ``match_view``
    shows), not the debunks' whole texts."""
    return selectinload(Claim.matches).selectinload(ClaimMatch.debunk).load_only(Debunk.title, Debunk.url, Debunk.source)


def match_view(m: ClaimMatch) -> IntakeMatch:
    d = m.debunk
    return IntakeMatch(debunk_id=m.debunk_id, title=d.title, url=d.url, source=d.source, score=round(float(m.score), 4),
                       decision=m.decision, evidence_kind=m.evidence_kind, evidence=m.evidence, linked=bool(m.linked))


def result_of(claim: Claim, external_id: str, *, new: bool) -> IntakeResult:
    """A claim as the intake answers it (its matches loaded with their debunks)."""
    return IntakeResult(
        claim_id=claim.id, external_id=external_id, new=new, label=claim.label,
        score=None if claim.score is None else round(float(claim.score), 4), flagged=bool(claim.flagged),
        topic=claim.topic, explanation=claim.explanation, model_version=claim.model_version, status=claim.status,
        matches=[match_view(m) for m in sorted(claim.matches, key=lambda m: (m.rank, m.id))],
    )


_attach_lock = threading.Lock()


def intake_for(app: Any) -> IntakeService:
    """The app's intake service (``app.state.intake``), made on first use."""
    with _attach_lock:
        svc = getattr(app.state, "intake", None)
        if svc is None:
            svc = IntakeService(app.state.settings, app.state.store, app.state.heavy.backend)
            app.state.intake = svc
        return svc  # type: ignore[no-any-return]
