"""Curated debunks in the editors' web app: search, listing, adding and editing.

Every write goes through the store in one transaction with its audit event and an index outbox
row (``store.writes.enqueue``); ``index_now`` then drains the outbox so that search sees the
change at once. When the index is down the outbox keeps the change and ``piyao index`` (or the
next successful drain) catches up: nothing is lost.

Edits are optimistic: the form carries the ``Debunk.version`` it was made from, and an edit made
against an older version raises ``DebunkConflict`` with the values saved meanwhile, so that two
editors never overwrite each other silently (``Debunk.version`` is SQLAlchemy's version column:
the UPDATE itself checks it too, which closes the window between reading and writing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field, fields
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np
from datasketch import MinHash
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from classifier.labels import VERDICTS
from classifier.text import normalize, shingles
from index.backend import Backend, Hit, SearchFilters
from store.audit import DebunkCreated, DebunkUpdated
from store.db import Store
from store.models import AuditEvent, Claim, ClaimMatch, Debunk
from store.writes import MINHASH_SCHEME, content_hash, enqueue

log = logging.getLogger(__name__)

__all__ = [
    "MAX_QUERY_CHARS", "DebunkForm", "Limits", "DebunkInvalid", "DebunkConflict", "DebunkNotFound", "SaveResult",
    "validate", "create_debunk", "update_debunk", "index_now", "SearchQuery", "DebunkRow", "ResultPage",
    "search_debunks", "list_debunks", "debunk_sources", "debunk_detail",
]

# Longest search query accepted (characters): longer texts are claims to match, not searches.
MAX_QUERY_CHARS = 200
# With a verdict filter, search hits are filtered by the store's verdicts: at most this many hits are scanned.
VERDICT_SCAN_CAP = 2000
# Fields whose full old and new values go into the audit event; the body is audited by hash and length.
AUDITED_IN_FULL = ("title", "url", "source", "origin", "published", "verdict", "summary")


# --------------------------------------------------------------------------- the form
@dataclass
class DebunkForm:
    """The edit form's fields exactly as typed (strings), so that a refused form comes back unchanged."""

    title: str = ""
    url: str = ""
    source: str = ""
    origin: str = ""
    published: str = ""  # YYYY-MM-DD or empty
    verdict: str = ""  # a VERDICTS code or empty
    summary: str = ""
    text: str = ""
    version: int | None = None

    @classmethod
    def of(cls, d: Debunk) -> DebunkForm:
        return cls(title=d.title or "", url=d.url or "", source=d.source or "", origin=d.origin or "",
                   published=d.published.isoformat() if d.published else "", verdict=d.verdict or "",
                   summary=d.summary or "", text=d.text or "", version=d.version)


@dataclass(frozen=True)
class Limits:
    """Input limits in characters (the body and summary limits come from settings.web)."""

    title: int = 1000
    url: int = 2048
    source: int = 200
    origin: int = 200
    summary: int = 5000
    text: int = 100_000

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(summary=settings.web.max_text_chars, text=settings.web.max_body_chars)


class DebunkInvalid(ValueError):
    """The form has errors: ``errors`` maps a field name to a message for the editor (Chinese)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class DebunkConflict(Exception):
    """Someone saved the debunk after this form was loaded: ``current`` holds what is saved now."""

    def __init__(self, current: DebunkForm) -> None:
        super().__init__(f"the debunk changed meanwhile (now version {current.version})")
        self.current = current


class DebunkNotFound(LookupError):
    pass


@dataclass
class Clean:
    """Validated values, typed as the store keeps them."""

    title: str
    url: str
    source: str
    origin: str | None
    published: dt.date | None
    verdict: str | None
    summary: str | None
    text: str


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and not any(c.isspace() or c == "\x00" for c in url)


def _clean_text(value: str) -> str:
    """Line ends normalised (browsers send CRLF) and NUL removed (PostgreSQL refuses it)."""
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def validate(form: DebunkForm, limits: Limits) -> Clean:
    """The form's values, or ``DebunkInvalid`` naming every field that is wrong."""
    errors: dict[str, str] = {}
    title = _clean_text(form.title).strip()
    url = form.url.strip()
    source = _clean_text(form.source).strip()
    origin = _clean_text(form.origin).strip()
    summary = _clean_text(form.summary).strip()
    text = _clean_text(form.text).strip()
    if not title:
        errors["title"] = "标题不能为空"
    elif len(title) > limits.title:
        errors["title"] = f"标题不能超过 {limits.title} 字（现有 {len(title)} 字）"
    if not url:
        errors["url"] = "请填写原文链接"
    elif len(url) > limits.url:
        errors["url"] = f"链接不能超过 {limits.url} 个字符"
    elif not _http_url(url):
        errors["url"] = "链接必须是以 http:// 或 https:// 开头的完整网址"
    if not source:
        errors["source"] = "请填写来源（发布平台或机构）"
    elif len(source) > limits.source:
        errors["source"] = f"来源不能超过 {limits.source} 字"
    if len(origin) > limits.origin:
        errors["origin"] = f"原始出处不能超过 {limits.origin} 字"
    published: dt.date | None = None
    if form.published.strip():
        try:
            published = dt.date.fromisoformat(form.published.strip())
        except ValueError:
            errors["published"] = "发布日期格式应为 YYYY-MM-DD"
        else:
            if not dt.date(1900, 1, 1) <= published <= dt.date.today() + dt.timedelta(days=1):
                errors["published"] = "发布日期不在合理范围内"
    verdict = form.verdict.strip()
    if verdict and verdict not in VERDICTS:
        errors["verdict"] = "结论必须是列表中的一项"
    if len(summary) > limits.summary:
        errors["summary"] = f"编辑摘要不能超过 {limits.summary} 字（现有 {len(summary)} 字）"
    if not text:
        errors["text"] = "正文不能为空"
    elif len(text) > limits.text:
        errors["text"] = f"正文不能超过 {limits.text} 字（现有 {len(text)} 字）"
    if errors:
        raise DebunkInvalid(errors)
    return Clean(title=title, url=url, source=source, origin=origin or None, published=published,
                 verdict=verdict or None, summary=summary or None, text=text)


def _minhash(title: str, text: str, num_perm: int) -> bytes:
    """The near-duplicate signature as store.writes.DebunkWriter computes it (title and body together),
    so that a crawled copy of a curated article is recognised as one."""
    m = MinHash(num_perm=num_perm, scheme=MINHASH_SCHEME)
    grams = shingles(title + "\n" + text)
    if grams:
        m.update_batch([g.encode("utf-8") for g in grams])
    return bytes(m.hashvalues.astype(np.uint64).tobytes())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _values(d: Debunk) -> dict[str, Any]:
    """The audited values of a row (JSON-ready)."""
    return {"title": d.title, "url": d.url, "source": d.source, "origin": d.origin,
            "published": d.published.isoformat() if d.published else None, "verdict": d.verdict,
            "summary": d.summary, "text_sha256": _sha(d.text or ""), "text_chars": len(d.text or "")}


@dataclass
class SaveResult:
    debunk_id: int
    # Field → (old, new) of what changed; empty for a new debunk or an edit that changed nothing.
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    created: bool = False


def _duplicate(s: Session, clean: Clean, chash: str, exclude: int | None) -> int | None:
    """A stored debunk with the same text, or with the same URL and title (the same article twice)."""
    q = select(Debunk.id).where(Debunk.content_hash == chash)
    if exclude is not None:
        q = q.where(Debunk.id != exclude)
    found = s.scalar(q.order_by(Debunk.id).limit(1))
    if found is not None:
        return int(found)
    ntitle = normalize(clean.title)
    q2 = select(Debunk.id, Debunk.title).where(Debunk.url == clean.url)
    if exclude is not None:
        q2 = q2.where(Debunk.id != exclude)
    for did, title in s.execute(q2):
        if normalize(title or "") == ntitle:
            return int(did)
    return None


def create_debunk(store: Store, form: DebunkForm, *, actor: str, limits: Limits, num_perm: int = 128) -> SaveResult:
    """A new curated debunk, its ``debunk.created`` audit event and its index outbox row, in one transaction."""
    clean = validate(form, limits)
    chash = content_hash(clean.title + "\n" + clean.text)
    with store.session() as s:
        dup = _duplicate(s, clean, chash, None)
        if dup is not None:
            raise DebunkInvalid({"url": f"辟谣库里已有同一篇文章（#{dup}），请直接编辑它"})
        row = Debunk(url=clean.url, title=clean.title, source=clean.source, origin=clean.origin,
                     published=clean.published, verdict=clean.verdict, summary=clean.summary, text=clean.text,
                     content_hash=chash, minhash=_minhash(clean.title, clean.text, num_perm))
        s.add(row)
        s.flush()
        enqueue(s, "debunk", row.id)
        DebunkCreated(actor[:100], row.id, None, _values(row)).record(s)
        return SaveResult(row.id, created=True)


def _current(store: Store, debunk_id: int) -> DebunkForm:
    with store.session() as s:
        row = s.get(Debunk, debunk_id)
        if row is None:
            raise DebunkNotFound(debunk_id)
        return DebunkForm.of(row)


def update_debunk(store: Store, debunk_id: int, form: DebunkForm, *, actor: str, limits: Limits,
                  num_perm: int = 128) -> SaveResult:
    """Apply an edit made against ``form.version``; audit ``debunk.updated`` with old → new of the
    changed fields only. Raises ``DebunkConflict`` (nothing written) when the row changed meanwhile."""
    clean = validate(form, limits)
    try:
        with store.session() as s:
            row = s.get(Debunk, debunk_id)
            if row is None:
                raise DebunkNotFound(debunk_id)
            if form.version is None or row.version != form.version:
                raise DebunkConflict(DebunkForm.of(row))
            before = _values(row)
            new_values = {"title": clean.title, "url": clean.url, "source": clean.source, "origin": clean.origin,
                          "published": clean.published, "verdict": clean.verdict, "summary": clean.summary,
                          "text": clean.text}
            for name, value in new_values.items():
                if getattr(row, name) != value:
                    setattr(row, name, value)
            if not s.dirty:
                return SaveResult(row.id)
            chash = content_hash(clean.title + "\n" + clean.text)
            if chash != row.content_hash:
                with s.no_autoflush:  # one versioned UPDATE for the whole edit
                    dup = _duplicate(s, clean, chash, row.id)
                if dup is not None:
                    raise DebunkInvalid({"text": f"辟谣库里已有内容相同的文章（#{dup}）"})
                row.content_hash = chash
                row.minhash = _minhash(clean.title, clean.text, num_perm)
            s.flush()  # the versioned UPDATE: StaleDataError when another writer got there first
            after = _values(row)
            changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
            old = {k: v[0] for k, v in changed.items()}
            new = {k: v[1] for k, v in changed.items()}
            enqueue(s, "debunk", row.id)
            DebunkUpdated(actor[:100], row.id, old, new).record(s)
            return SaveResult(row.id, changed=changed)
    except StaleDataError:
        raise DebunkConflict(_current(store, debunk_id)) from None


def index_now(store: Store, backend: Callable[[], Backend]) -> bool:
    """Drain the index outbox now; False (the changes stay in the outbox) when the index is unavailable."""
    from index.outbox import drain

    try:
        drain(store, backend())
    except Exception as exc:  # noqa: BLE001 - any index failure leaves the outbox for the next drain
        log.warning("index not updated now, the outbox keeps the change: %s: %s", exc.__class__.__name__, exc)
        return False
    return True


# --------------------------------------------------------------------------- search and listing
@dataclass
class SearchQuery:
    q: str = ""
    source: str = ""
    verdict: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    page: int = 1

    def params(self, **override: Any) -> dict[str, str]:
        """The query string of this search (empty values left out), for pager links."""
        values = {"q": self.q, "source": self.source, "verdict": self.verdict,
                  "date_from": self.date_from.isoformat() if self.date_from else "",
                  "date_to": self.date_to.isoformat() if self.date_to else "", "page": str(self.page)}
        values.update({k: str(v) for k, v in override.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


@dataclass
class DebunkRow:
    """One result: the store's current fields, with the index's highlighted snippet for a search hit."""

    id: int
    title: str
    url: str
    source: str
    published: dt.date | None
    verdict: str | None
    summary: str | None
    snippet_html: str | None = None  # HTML from the backend: clean it before showing (clean_snippet)
    title_html: str | None = None
    score: float | None = None


@dataclass
class ResultPage:
    rows: list[DebunkRow]
    page: int
    page_size: int
    has_next: bool
    total: int | None  # None when counting would cost a second full search
    truncated: bool = False  # a verdict-filtered search stopped scanning at VERDICT_SCAN_CAP hits

    @property
    def first(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.page_size + len(self.rows)


def _rows_by_id(s: Session, ids: list[int]) -> dict[int, Debunk]:
    if not ids:
        return {}
    return {d.id: d for d in s.scalars(select(Debunk).where(Debunk.id.in_(ids)))}


def _row(d: Debunk, hit: Hit | None = None) -> DebunkRow:
    return DebunkRow(id=d.id, title=d.title, url=d.url, source=d.source, published=d.published, verdict=d.verdict,
                     summary=d.summary, snippet_html=hit.snippet if hit else None,
                     title_html=str(hit.extra.get("title_html") or "") or None if hit else None,
                     score=hit.score if hit else None)


def search_debunks(store: Store, backend: Backend, query: SearchQuery, page_size: int) -> ResultPage:
    """Full-text search through the index (source and dates filtered there, the verdict from the store).

    Hits whose debunk is no longer in the store (the index lags a deletion) are left out. Raises the
    backend's errors (index.backend.BackendError): the caller tells the user the index is unavailable.
    """
    filters = SearchFilters(kind="debunk", source=query.source or None, date_from=query.date_from, date_to=query.date_to)
    offset = (query.page - 1) * page_size
    if not query.verdict:
        hits = backend.search(query.q, limit=page_size + 1, offset=offset, filters=filters)
        with store.session() as s:
            by_id = _rows_by_id(s, [h.doc_id for h in hits])
        rows = [_row(by_id[h.doc_id], h) for h in hits[:page_size] if h.doc_id in by_id]
        has_next = len(hits) > page_size
        total = offset + len(rows) if not has_next else None
        return ResultPage(rows, query.page, page_size, has_next, total)
    wanted = offset + page_size + 1
    chunk = max(100, page_size * 5)
    kept: list[DebunkRow] = []
    scanned, truncated = 0, False
    while len(kept) < wanted:
        if scanned >= VERDICT_SCAN_CAP:
            truncated = True
            break
        hits = backend.search(query.q, limit=chunk, offset=scanned, filters=filters)
        with store.session() as s:
            by_id = _rows_by_id(s, [h.doc_id for h in hits])
        kept += [_row(by_id[h.doc_id], h) for h in hits if h.doc_id in by_id and by_id[h.doc_id].verdict == query.verdict]
        scanned += len(hits)
        if len(hits) < chunk:
            break
    rows = kept[offset : offset + page_size]
    has_next = len(kept) > offset + page_size
    total = len(kept) if not has_next and not truncated else None
    return ResultPage(rows, query.page, page_size, has_next, total, truncated)


def list_debunks(store: Store, query: SearchQuery, page_size: int) -> ResultPage:
    """The newest debunks (by published date, then the newest added) matching the filters, counted."""
    conds = []
    if query.source:
        conds.append(Debunk.source == query.source)
    if query.verdict:
        conds.append(Debunk.verdict == query.verdict)
    if query.date_from:
        conds.append(Debunk.published >= query.date_from)
    if query.date_to:
        conds.append(Debunk.published <= query.date_to)
    offset = (query.page - 1) * page_size
    with store.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Debunk).where(*conds)) or 0)
        found = s.scalars(
            select(Debunk).where(*conds)
            .order_by(Debunk.published.is_(None), Debunk.published.desc(), Debunk.id.desc())
            .limit(page_size).offset(offset)
        ).all()
        rows = [_row(d) for d in found]
    return ResultPage(rows, query.page, page_size, offset + len(rows) < total, total)


def debunk_sources(store: Store, limit: int = 500) -> list[str]:
    """The distinct sources of stored debunks, for the filter's select (most articles first)."""
    with store.session() as s:
        return [src for src, _ in s.execute(
            select(Debunk.source, func.count()).group_by(Debunk.source).order_by(func.count().desc(), Debunk.source).limit(limit)
        ) if src]


@dataclass
class LinkedClaim:
    id: int
    text: str
    status: str
    sightings: int
    linked_by: str | None


@dataclass
class HistoryEntry:
    at: dt.datetime
    actor: str
    action: str
    changes: list[tuple[str, Any, Any]]  # (field, old, new)


@dataclass
class DebunkDetail:
    debunk: Debunk
    claims: list[LinkedClaim]
    history: list[HistoryEntry]


def _changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    old, new = old or {}, new or {}
    keys = list(dict.fromkeys([*new.keys(), *old.keys()]))
    return [(k, old.get(k), new.get(k)) for k in keys]


def debunk_detail(store: Store, debunk_id: int, *, history_limit: int = 100) -> DebunkDetail:
    """The debunk, the claims editors linked to it, and its audit history (newest first)."""
    with store.session() as s:
        d = s.get(Debunk, debunk_id)
        if d is None:
            raise DebunkNotFound(debunk_id)
        claims = [
            LinkedClaim(cid, text, status, sightings, linked_by)
            for cid, text, status, sightings, linked_by in s.execute(
                select(Claim.id, Claim.text, Claim.status, Claim.sightings, ClaimMatch.linked_by)
                .join(ClaimMatch, ClaimMatch.claim_id == Claim.id)
                .where(ClaimMatch.debunk_id == debunk_id, ClaimMatch.linked.is_(True))
                .order_by(Claim.sightings.desc(), Claim.id)
            )
        ]
        history = [
            HistoryEntry(e.at, e.actor, e.action, _changes(e.old, e.new))
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.object_type == "debunk", AuditEvent.object_id == debunk_id)
                .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(history_limit)
            )
        ]
        return DebunkDetail(d, claims, history)


def form_fields() -> tuple[str, ...]:
    """The form's field names (the template and the routes share them)."""
    return tuple(f.name for f in fields(DebunkForm) if f.name != "version")
