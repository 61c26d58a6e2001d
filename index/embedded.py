"""The embedded backend: SQLite FTS5 over jieba tokens, BM25 ranking. No server needed."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable

from classifier.text import tokenize
from index.backend import BackendError, Hit, IndexDoc, SearchFilters
from index.snippets import make_snippet

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
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS docs_kind_source ON docs(kind, source);
CREATE INDEX IF NOT EXISTS docs_date ON docs(date);
"""
# Title terms count three times as much as body terms.
TITLE_WEIGHT, BODY_WEIGHT = 3.0, 1.0
# Raw text kept for snippets; the whole text is still indexed.
STORED_TEXT_CHARS = 20_000


def _insert(conn: sqlite3.Connection, d: IndexDoc, docs: str = "docs", fts: str = "docs_fts") -> None:
    cur = conn.execute(
        f"INSERT INTO {docs}(key, kind, source, date, url, title, text) VALUES (?,?,?,?,?,?,?)",
        (d.key, d.kind, d.source, d.date.isoformat() if d.date else None, d.url, d.title, d.text[:STORED_TEXT_CHARS]),
    )
    conn.execute(
        f"INSERT INTO {fts}(rowid, title, body) VALUES (?,?,?)",
        (cur.lastrowid, " ".join(tokenize(d.title)), " ".join(tokenize(d.text))),
    )


def fts_query(tokens: list[str]) -> str:
    """An FTS5 OR-query of quoted terms (BM25 then ranks documents holding more of them first)."""
    seen: list[str] = []
    for t in tokens:
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
            self._db.executescript(TABLES.format(docs="docs", fts="docs_fts") + INDEXES)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open the embedded index {self.path}: {exc}") from exc
        self._lock = threading.RLock()

    # writes --------------------------------------------------------------
    def upsert(self, docs: Iterable[IndexDoc]) -> int:
        docs = list(docs)
        with self._lock, self._db:
            for d in docs:
                old = self._db.execute("SELECT rowid FROM docs WHERE key = ?", (d.key,)).fetchone()
                if old:
                    self._db.execute("DELETE FROM docs_fts WHERE rowid = ?", old)
                    self._db.execute("DELETE FROM docs WHERE rowid = ?", old)
                _insert(self._db, d)
        return len(docs)

    def rebuild(self, docs: Iterable[IndexDoc], *, progress: Callable[[int], None] | None = None) -> int:
        """Fill fresh tables beside the live ones on a second connection, then swap them in one transaction.

        Searches (WAL mode) keep answering from the old tables until the swap commits.
        """
        conn = sqlite3.connect(str(self.path), timeout=60)
        try:
            with conn:
                conn.execute("DROP TABLE IF EXISTS docs_fts_build")
                conn.execute("DROP TABLE IF EXISTS docs_build")
            conn.executescript(TABLES.format(docs="docs_build", fts="docs_fts_build"))
            n = 0
            batch: list[IndexDoc] = []
            it = iter(docs)
            while True:
                batch = [d for _, d in zip(range(500), it)]
                if not batch:
                    break
                with conn:
                    for d in batch:
                        _insert(conn, d, "docs_build", "docs_fts_build")
                n += len(batch)
                if progress:
                    progress(len(batch))
            with self._lock, conn:
                conn.execute("DROP TABLE docs_fts")
                conn.execute("DROP TABLE docs")
                conn.execute("ALTER TABLE docs_build RENAME TO docs")
                conn.execute("ALTER TABLE docs_fts_build RENAME TO docs_fts")
                for stmt in INDEXES.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
        finally:
            conn.close()
        return n

    def delete(self, keys: Iterable[str]) -> int:
        n = 0
        with self._lock, self._db:
            for key in keys:
                old = self._db.execute("SELECT rowid FROM docs WHERE key = ?", (key,)).fetchone()
                if old:
                    self._db.execute("DELETE FROM docs_fts WHERE rowid = ?", old)
                    self._db.execute("DELETE FROM docs WHERE rowid = ?", old)
                    n += 1
        return n

    def clear(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM docs_fts")
            self._db.execute("DELETE FROM docs")

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
        if f.source:
            where.append("d.source = ?")
            params.append(f.source)
        if f.date_from:
            where.append("d.date >= ?")
            params.append(f.date_from.isoformat())
        if f.date_to:
            where.append("d.date <= ?")
            params.append(f.date_to.isoformat())
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

    def close(self) -> None:
        self._db.close()
