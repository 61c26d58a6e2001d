"""The embedded backend: SQLite FTS5 over jieba tokens, BM25 ranking. No server needed.

Debunk passages (claim matching) live beside the documents: a ``passages`` table
with each passage's e5 vector (float16 BLOB, NULL until ``piyao embed`` computes
it) and a ``passages_fts`` FTS5 table. Nearest-neighbour search over the vectors
runs in memory (index.vectors): exact numpy dot products up to
``EXACT_LIMIT`` vectors, an HNSW graph (usearch) beyond, rebuilt only when the
vectors changed (a generation number in the ``meta`` table).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from classifier.text import tokenize
from index.backend import BackendError, Hit, IndexDoc, PassageHit, SearchFilters, fingerprint, orphan_fingerprint, passage_digest
from index.snippets import make_snippet

if TYPE_CHECKING:
    import numpy as np

    from index.vectors import VectorIndex

TABLES = """
CREATE TABLE IF NOT EXISTS {docs} (
    rowid INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    date TEXT,
    url TEXT,
    title TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(
    title, body, tokenize = 'unicode61 remove_diacritics 0'
);
CREATE TABLE IF NOT EXISTS {passages} (
    rowid INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    doc_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    vec BLOB
);
CREATE VIRTUAL TABLE IF NOT EXISTS {passages_fts} USING fts5(
    body, tokenize = 'unicode61 remove_diacritics 0'
);
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS docs_kind_source ON docs(kind, source);
CREATE INDEX IF NOT EXISTS docs_date ON docs(date);
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_key);
CREATE INDEX IF NOT EXISTS passages_pending ON passages(kind) WHERE vec IS NULL;
"""
META = """CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_vocab USING fts5vocab(passages_fts, 'row')"""
# Passage searches use at most this many of a claim's terms, rarest first, and skip terms found in
# more than this share of all passages (unless no other term is left: then the rarest few).
PASSAGE_MAX_TERMS = 10
PASSAGE_COMMON_RATIO = 0.05
PASSAGE_MIN_TERMS = 4
# FTS5 scores every passage that holds a query term, so a search costs about 2 us per posting of its
# terms, and postings grow with the corpus. Terms are taken rarest first while their postings add up
# to at most this many (the rarest PASSAGE_KEEP_TERMS always): on the shared corpus (43k passages)
# the 95th-percentile claim has about 4,400, so the budget changes nothing there; at 600k it keeps
# a search near 20 ms instead of 60 (docs/matching.md, "Latency").
PASSAGE_MAX_POSTINGS = 20_000
PASSAGE_KEEP_TERMS = 2
# Passage counts per term are remembered between searches (fts5vocab counts a term's passages by
# walking its posting list: about 5 ms per claim at 600k passages) until the corpus has grown or
# shrunk by this share, or this many terms are remembered. They only choose the terms; a term found
# in no passage is looked up again each time.
DF_REFRESH_RATIO = 0.01
DF_CACHE_TERMS = 200_000
NAMES = {"docs": "docs", "fts": "docs_fts", "passages": "passages", "passages_fts": "passages_fts"}
BUILD_NAMES = {k: v + "_build" for k, v in NAMES.items()}
# Title terms count three times as much as body terms.
TITLE_WEIGHT, BODY_WEIGHT = 3.0, 1.0
# Raw text kept for snippets; the whole text is still indexed.
STORED_TEXT_CHARS = 20_000


def _insert(
    conn: sqlite3.Connection,
    d: IndexDoc,
    names: dict[str, str] = NAMES,
    vectors: dict[tuple[str, str], bytes] | None = None,
) -> None:
    """Insert ``d`` and its passages; ``vectors`` maps (passage key, text) to a vector to carry over."""
    cur = conn.execute(
        f"INSERT INTO {names['docs']}(key, kind, source, date, url, title, text) VALUES (?,?,?,?,?,?,?)",
        (d.key, d.kind, d.source, d.date.isoformat() if d.date else None, d.url, d.title, d.text[:STORED_TEXT_CHARS]),
    )
    conn.execute(
        f"INSERT INTO {names['fts']}(rowid, title, body) VALUES (?,?,?)",
        (cur.lastrowid, " ".join(tokenize(d.title)), " ".join(tokenize(d.text))),
    )
    for p in d.passages:
        pkey = f"{d.key}#{p.position}"
        vec = (vectors or {}).get((pkey, p.text))
        cur = conn.execute(
            f"INSERT INTO {names['passages']}(key, doc_key, kind, position, text, vec) VALUES (?,?,?,?,?,?)",
            (pkey, d.key, p.kind, p.position, p.text, vec),
        )
        conn.execute(f"INSERT INTO {names['passages_fts']}(rowid, body) VALUES (?,?)", (cur.lastrowid, " ".join(tokenize(p.text))))


def _vectors_of(conn: sqlite3.Connection, doc_key: str) -> dict[tuple[str, str], bytes]:
    """The live passage vectors of a document by (passage key, text), to carry over to its new passages."""
    rows = conn.execute("SELECT key, text, vec FROM passages WHERE doc_key = ? AND vec IS NOT NULL", (doc_key,))
    return {(pkey, text): vec for pkey, text, vec in rows}


def _remove(conn: sqlite3.Connection, key: str) -> tuple[bool, dict[tuple[str, str], bytes]]:
    """Delete a document and its passages; returns (existed, the passages' vectors by (key, text))."""
    kept = _vectors_of(conn, key)
    rows = conn.execute("SELECT rowid FROM passages WHERE doc_key = ?", (key,)).fetchall()
    for (rowid,) in rows:
        conn.execute("DELETE FROM passages_fts WHERE rowid = ?", (rowid,))
    if rows:
        conn.execute("DELETE FROM passages WHERE doc_key = ?", (key,))
    old = conn.execute("SELECT rowid FROM docs WHERE key = ?", (key,)).fetchone()
    if old:
        conn.execute("DELETE FROM docs_fts WHERE rowid = ?", old)
        conn.execute("DELETE FROM docs WHERE rowid = ?", old)
    return bool(old), kept


def _bump(conn: sqlite3.Connection) -> None:
    """A new vectors generation: in-memory vector indexes reload before their next search."""
    conn.execute("INSERT INTO meta(name, value) VALUES ('vectors_gen', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1")


def fts_query(tokens: list[str]) -> str:
    """An FTS5 OR-query of quoted terms (BM25 then ranks documents holding more of them first).

    NUL is dropped: FTS5 reads the query as a C string, so a NUL inside a quoted term is an
    "unterminated string" syntax error.
    """
    seen: list[str] = []
    for t in tokens:
        t = t.replace("\x00", "")
        if t not in seen:
            seen.append(t)
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in seen[:64])


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(TABLES.format(**NAMES) + INDEXES + META + ";")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the embedded index {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._vectors: VectorIndex | None = None
        self._df: dict[str, int] = {}
        self._df_total = 0

    # writes --------------------------------------------------------------
    def upsert(self, docs: Iterable[IndexDoc], *, refresh: bool = True) -> int:
        """Add or replace documents (read-after-write whatever ``refresh`` says)."""
        docs = list(docs)
        with self._lock, self._db:
            # The write lock first: read-then-write under a plain BEGIN lets two processes (the workers of
            # `piyao serve --workers`, a crawl) both see a key missing and both insert it.
            self._db.execute("BEGIN IMMEDIATE")
            for d in docs:
                _, kept = _remove(self._db, d.key)
                _insert(self._db, d, vectors=kept)
            if any(d.passages for d in docs):
                _bump(self._db)
        return len(docs)

    def rebuild(self, docs: Iterable[IndexDoc], *, progress: Callable[[int], None] | None = None) -> int:
        """Fill fresh tables beside the live ones on a second connection, then swap them in one transaction.

        Searches (WAL mode) keep answering from the old tables until the swap commits.
        Passage vectors already computed carry over to the new tables (same passage key and text).
        """
        conn = sqlite3.connect(str(self.path), timeout=60)
        try:
            with conn:
                for name in BUILD_NAMES.values():
                    conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.executescript(TABLES.format(**BUILD_NAMES))
            n = 0
            batch: list[IndexDoc] = []
            it = iter(docs)
            while True:
                batch = [d for _, d in zip(range(500), it)]
                if not batch:
                    break
                with conn:
                    for d in batch:
                        _insert(conn, d, BUILD_NAMES, _vectors_of(conn, d.key))
                n += len(batch)
                if progress:
                    progress(len(batch))
            with self._lock, conn:
                # Python's sqlite3 opens no transaction before DDL: without BEGIN each DROP/RENAME would
                # commit on its own and another process could see the tables missing.
                conn.execute("BEGIN IMMEDIATE")
                for key, live in NAMES.items():
                    conn.execute(f"DROP TABLE {live}")
                    conn.execute(f"ALTER TABLE {BUILD_NAMES[key]} RENAME TO {live}")
                for stmt in INDEXES.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                _bump(conn)
        finally:
            conn.close()
        return n

    def delete(self, keys: Iterable[str]) -> int:
        n = 0
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")  # as upsert: read-then-write under the write lock
            for key in keys:
                existed, kept = _remove(self._db, key)
                n += existed
            _bump(self._db)
        return n

    def clear(self) -> None:
        with self._lock, self._db:
            for name in ("docs_fts", "docs", "passages_fts", "passages"):
                self._db.execute(f"DELETE FROM {name}")
            _bump(self._db)

    # reads ---------------------------------------------------------------
    def search(
        self, query: str, *, limit: int = 10, offset: int = 0, filters: SearchFilters | None = None
    ) -> list[Hit]:
        return self.search_tokens(tokenize(query), limit=limit, offset=offset, filters=filters)

    def search_tokens(
        self, tokens: list[str], *, limit: int = 10, offset: int = 0, filters: SearchFilters | None = None
    ) -> list[Hit]:
        if not tokens:
            return []
        where: list[str] = ["docs_fts MATCH ?"]
        params: list[object] = [fts_query(tokens)]
        f = filters or SearchFilters()
        if f.kind:
            where.append("d.kind = ?")
            params.append(f.kind)
        more, more_params = self._parent_filters(f)
        where += more
        params += more_params
        sql = (
            f"SELECT d.key, d.kind, d.title, d.source, d.url, d.date, d.text, "
            f"-bm25(docs_fts, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS score "
            f"FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid "
            f"WHERE {' AND '.join(where)} ORDER BY score DESC, d.rowid LIMIT ? OFFSET ?"
        )
        params += [limit, offset]
        with self._lock:
            try:
                rows = self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise BackendError(f"embedded index query failed: {exc}") from exc
        hits = []
        for key, kind, title, source, url, date, text, score in rows:
            hits.append(
                Hit(
                    key=key,
                    kind=kind,
                    title=title,
                    source=source,
                    url=url,
                    date=dt.date.fromisoformat(date) if date else None,
                    score=float(score),
                    snippet=make_snippet(text, tokens),
                    extra={"title_html": make_snippet(title, tokens, width=200)},
                )
            )
        return hits

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            if kind:
                return int(self._db.execute("SELECT count(*) FROM docs WHERE kind = ?", (kind,)).fetchone()[0])
            return int(self._db.execute("SELECT count(*) FROM docs").fetchone()[0])

    def keys(self, kind: str | None = None) -> set[str]:
        with self._lock:
            sql, params = "SELECT key FROM docs", tuple[str, ...]()
            if kind:
                sql, params = sql + " WHERE kind = ?", (kind,)
            return {r[0] for r in self._db.execute(sql, params)}

    def fingerprints(self, kind: str | None = None) -> Iterator[tuple[str, str]]:
        """(key, fingerprint) of every document, from one read snapshot (a second connection: WAL readers
        see the last commit, whatever another process writes meanwhile)."""
        conn = sqlite3.connect(str(self.path), timeout=60)
        try:
            conn.execute("BEGIN")  # one snapshot for both tables
            where, params = (" WHERE kind = ?", (kind,)) if kind else ("", ())
            parts: dict[str, list[tuple[int, str]]] = {}
            if kind in (None, "debunk"):
                for doc_key, position, pkind, text in conn.execute("SELECT doc_key, position, kind, text FROM passages"):
                    parts.setdefault(doc_key, []).append((position, passage_digest(position, pkind, text)))
            out: list[tuple[str, str]] = []
            rows = conn.execute(f"SELECT key, kind, title, text, source, url, date FROM docs{where} ORDER BY key", params)
            for key, dkind, title, text, source, url, date in rows:
                fp = fingerprint(kind=dkind, title=title, text=text, source=source, url=url, date=date, passages=parts.get(key, ()))
                out.append((key, fp))
                parts.pop(key, None)
            # Passages whose document is gone: listed under that key, so that a check sees them.
            for doc_key, orphans in sorted(parts.items()):
                out.append((doc_key, orphan_fingerprint(doc_key, orphans)))
        except sqlite3.Error as exc:
            raise BackendError(f"cannot read the embedded index {self.path}: {exc}") from exc
        finally:
            conn.close()
        return iter(out)

    # passages ------------------------------------------------------------
    @staticmethod
    def _parent_filters(filters: SearchFilters | None) -> tuple[list[str], list[object]]:
        """SQL conditions on the document ``d`` for the source and date filters (kind is the caller's)."""
        where: list[str] = []
        params: list[object] = []
        f = filters or SearchFilters()
        if f.source:
            where.append("d.source = ?")
            params.append(f.source)
        if f.date_from:
            where.append("d.date >= ?")
            params.append(f.date_from.isoformat())
        if f.date_to:
            where.append("d.date <= ?")
            params.append(f.date_to.isoformat())
        return where, params

    def _query_terms(self, tokens: list[str]) -> list[str]:
        """The claim's distinctive terms: rarest first, common ones dropped, postings bounded (see PASSAGE_MAX_TERMS).

        FTS5 scores every passage holding any query term, so a long post's common words
        ("网友", "视频") would make it score most of the corpus; the rare terms carry the match.
        """
        terms = list(dict.fromkeys(tokens))[:64]
        with self._lock:
            total = self._db.execute("SELECT max(rowid) FROM passages").fetchone()[0] or 0
            if abs(total - self._df_total) > DF_REFRESH_RATIO * self._df_total or len(self._df) > DF_CACHE_TERMS:
                self._df.clear()
                self._df_total = total
            missing = [t for t in terms if t not in self._df]
            if missing:
                marks = ",".join("?" * len(missing))
                got = dict(self._db.execute(f"SELECT term, doc FROM passages_vocab WHERE term IN ({marks})", missing).fetchall())
                self._df.update(got)  # absent terms are not remembered: a new debunk's new words count at once
            df = {t: self._df.get(t, 0) for t in terms}
        known = sorted((t for t in terms if df[t]), key=lambda t: (df[t], terms.index(t)))
        rare = [t for t in known if df[t] <= PASSAGE_COMMON_RATIO * total]
        picked: list[str] = []
        postings = 0
        for t in (rare or known[:PASSAGE_MIN_TERMS])[:PASSAGE_MAX_TERMS]:
            if len(picked) >= PASSAGE_KEEP_TERMS and postings + df[t] > PASSAGE_MAX_POSTINGS:
                break
            picked.append(t)
            postings += df[t]
        return picked

    def search_passages(self, tokens: list[str], *, limit: int = 50, filters: SearchFilters | None = None) -> list[PassageHit]:
        terms = self._query_terms(tokens) if tokens else []
        if not terms:
            return []
        where, params = self._parent_filters(filters)
        if where:
            sql = (
                "SELECT p.key, p.doc_key, p.kind, p.position, p.text, -bm25(passages_fts) AS score, "
                "d.title, d.source, d.url, d.date "
                "FROM passages_fts JOIN passages p ON p.rowid = passages_fts.rowid JOIN docs d ON d.key = p.doc_key "
                f"WHERE passages_fts MATCH ? {''.join(' AND ' + w for w in where)} ORDER BY score DESC, p.rowid LIMIT ?"
            )
        else:  # FTS5 orders by rank itself, then only the best rows are joined
            sql = (
                "SELECT p.key, p.doc_key, p.kind, p.position, p.text, -top.rank AS score, d.title, d.source, d.url, d.date "
                "FROM (SELECT rowid, rank FROM passages_fts WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?) top "
                "JOIN passages p ON p.rowid = top.rowid JOIN docs d ON d.key = p.doc_key ORDER BY top.rank, p.rowid"
            )
        args = [fts_query(terms), *params, limit]
        with self._lock:
            try:
                rows = self._db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                raise BackendError(f"embedded index query failed: {exc}") from exc
        return [_passage_hit(r) for r in rows]

    def _vector_index(self) -> VectorIndex:
        from index.vectors import VectorIndex

        with self._lock:
            gen = self._db.execute("SELECT value FROM meta WHERE name = 'vectors_gen'").fetchone()
            gen = int(gen[0]) if gen else 0
            if self._vectors is None or self._vectors.generation != gen:
                rows = self._db.execute("SELECT rowid, vec FROM passages WHERE vec IS NOT NULL ORDER BY rowid").fetchall()
                self._vectors = VectorIndex.from_blobs(rows, generation=gen, path=self.path.with_suffix(".hnsw"))
            return self._vectors

    def knn_passages(self, vector: np.ndarray, *, limit: int = 50, filters: SearchFilters | None = None) -> list[PassageHit]:
        index = self._vector_index()
        if not len(index):
            return []
        where, params = self._parent_filters(filters)
        want = limit if not where else limit * 4
        out: list[PassageHit] = []
        while True:
            found = index.search(vector, want)
            if not found:
                return []
            marks = ",".join("?" * len(found))
            sql = (
                "SELECT p.key, p.doc_key, p.kind, p.position, p.text, 0.0, d.title, d.source, d.url, d.date, p.rowid "
                f"FROM passages p JOIN docs d ON d.key = p.doc_key WHERE p.rowid IN ({marks})"
                f"{''.join(' AND ' + w for w in where)}"
            )
            with self._lock:
                rows = {r[-1]: r[:-1] for r in self._db.execute(sql, [*found, *params])}
            out = []
            for rowid, sim in found.items():
                if rowid in rows:
                    hit = _passage_hit(rows[rowid])
                    hit.score = sim
                    out.append(hit)
            if len(out) >= limit or want >= len(index):
                return out[:limit]
            want = min(len(index), want * 8)

    def pending_vectors(self, kinds: Sequence[str], *, limit: int = 256) -> list[tuple[str, str]]:
        if not kinds:
            return []
        marks = ",".join("?" * len(kinds))
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, text FROM passages WHERE vec IS NULL AND kind IN ({marks}) ORDER BY rowid LIMIT ?", [*kinds, limit]
            ).fetchall()
        return [(k, t) for k, t in rows]

    def set_vectors(self, items: Sequence[tuple[str, np.ndarray]]) -> int:
        import numpy as np

        n = 0
        with self._lock, self._db:
            for key, vec in items:
                blob = np.asarray(vec, dtype=np.float16).tobytes()
                n += self._db.execute("UPDATE passages SET vec = ? WHERE key = ?", (blob, key)).rowcount
            if n:
                _bump(self._db)
        return n

    def vector_counts(self, kinds: Sequence[str]) -> tuple[int, int]:
        if not kinds:
            return 0, 0
        marks = ",".join("?" * len(kinds))
        with self._lock:
            total, done = self._db.execute(
                f"SELECT count(*), count(vec) FROM passages WHERE kind IN ({marks})", list(kinds)
            ).fetchone()
        return int(total), int(done)

    def close(self) -> None:
        self._db.close()


def _passage_hit(row: Sequence[object]) -> PassageHit:
    key, doc_key, kind, position, text, score, title, source, url, date = row
    return PassageHit(
        key=str(key),
        doc_key=str(doc_key),
        kind=str(kind),
        position=int(position),  # type: ignore[call-overload]
        text=str(text),
        score=float(score),  # type: ignore[arg-type]
        title=str(title),
        source=str(source),
        url=str(url) if url is not None else None,
        date=dt.date.fromisoformat(str(date)) if date else None,
    )
