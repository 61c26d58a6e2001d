"""Property tests over query handling: whatever a user types, the embedded index (SQLite FTS5) answers
with hits or nothing, never with an FTS5 syntax error, and the search page and the search API answer
200 (or 422 for a query over the limit), never 5xx.

FTS5 has a query language of its own (quotes, ``*``, ``^``, NEAR, AND/OR/NOT, parentheses, column
filters such as ``title:``); ``index.embedded.fts_query`` must quote every term so that none of it
reaches the parser as syntax. The Elasticsearch backend sends the tokens as plain text to
``combined_fields`` (no query syntax at all).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from classifier.text import tokenize
from index.backend import IndexDoc, SearchFilters
from index.embedded import EmbeddedBackend, fts_query
from index.passages import split_passages
from tests.fuzz.support import examples
from tests.web.seed import demo_debunks

FTS_SYNTAX = ['"', '""', "'", "*", "^", "NEAR", "NEAR(", "NEAR/2", "AND", "OR", "NOT", "and", "or", "not", "(", ")",
              "title:", "body:", "{title body}:", "-", "+", ":", "col:", "\\", "%", "_", ";", "--", "/*", "*/", "\x00",
              "\x1a", "'; DROP TABLE docs; --", "隔夜菜", "致癌", "板蓝根", "量子", "味精", "腐乳", "疫苗", "x", "1", " ",
              "\u3000", "ＡＮＤ", "＂", "（", "）", "＊", "😀", "\u202e", "\ufeff"]
queries = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(FTS_SYNTAX), max_size=16).map(" ".join),
                    st.lists(st.sampled_from(FTS_SYNTAX), max_size=16).map("".join))
HOSTILE_TITLES = ['NEAR("a" "b") AND title:x', 'OR OR "" *^ ()', "隔夜菜 NOT 致癌 \"引号\"", "<script>alert(1)</script>"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    """A real embedded index of the 120 demo debunks (with their passages) and a few hostile documents."""
    b = EmbeddedBackend(tmp_path_factory.mktemp("fuzz-index") / "index.sqlite")
    docs = []
    for i, row in enumerate(demo_debunks()):
        docs.append(IndexDoc(key=f"debunk:{i + 1}", kind="debunk", title=row["title"], text=row["text"], source=row["source"],
                             url=row["url"], date=dt.date.fromisoformat(row["date"]) if row.get("date") else None,
                             passages=split_passages(row["title"], row["text"])))
    for j, title in enumerate(HOSTILE_TITLES):
        docs.append(IndexDoc(key=f"claim:{j + 1}", kind="claim", title=title, text=title * 3, source="hostile"))
    b.upsert(docs)
    yield b
    b.close()


SOURCES = sorted({row["source"] for row in demo_debunks()})


@settings(max_examples=examples(400), deadline=None)
@given(q=queries, limit=st.integers(1, 50), offset=st.integers(0, 200),
       kind=st.sampled_from([None, "debunk", "claim"]), source=st.sampled_from([None, *SOURCES, "hostile", "'\""]),
       dates=st.tuples(st.none() | st.dates(dt.date(2010, 1, 1), dt.date(2030, 1, 1)),
                       st.none() | st.dates(dt.date(2010, 1, 1), dt.date(2030, 1, 1))))
@example(q='"', limit=10, offset=0, kind=None, source=None, dates=(None, None))
@example(q="title: NEAR(隔夜菜 致癌) AND ^x*", limit=10, offset=0, kind=None, source=None, dates=(None, None))
@example(q="隔夜\x00菜", limit=10, offset=0, kind=None, source=None, dates=(None, None))
def test_embedded_search_answers_any_query(backend: EmbeddedBackend, q: str, limit: int, offset: int, kind: str | None,
                                           source: str | None, dates: tuple[dt.date | None, dt.date | None]) -> None:
    filters = SearchFilters(kind=kind, source=source, date_from=dates[0], date_to=dates[1])
    hits = backend.search(q, limit=limit, offset=offset, filters=filters)  # BackendError on an FTS5 syntax error
    assert len(hits) <= limit
    for h in hits:
        assert math.isfinite(h.score)
        assert kind is None or h.kind == kind
        assert source is None or h.source == source
        assert dates[0] is None or (h.date is not None and h.date >= dates[0])
        assert dates[1] is None or (h.date is not None and h.date <= dates[1])
        assert "<" not in re.sub(r"</?mark>", "", h.snippet)
    if not tokenize(q):
        assert hits == []
    passages = backend.search_passages(tokenize(q), limit=limit, filters=SearchFilters(source=source))
    assert len(passages) <= limit and all(math.isfinite(p.score) for p in passages)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(FTS_SYNTAX)), min_size=1, max_size=80))
@example(["a\x00b"])
@example(['"'])
@example(["NEAR", "(", ")", "*"])
def test_fts_query_quotes_any_term(tokens: list[str]) -> None:
    """Terms that never came out of tokenize (the passage matcher and other callers build term lists too)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, body)")
    db.execute("INSERT INTO t VALUES (?, ?)", (" ".join(tokens), " ".join(reversed(tokens))))
    query = fts_query(tokens)
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()
    db.close()


def _plain(snippet: str) -> str:
    return html.unescape(re.sub(r"</?mark>", "", snippet))


def test_search_page_and_api_answer_any_query(app: Any, client: Any, seeded: dict[str, Any], accounts: dict[str, Any],
                                              login_as: Any) -> None:
    """/debunks (a logged-in viewer) and GET /api/v1/debunks (a partner token) on the seeded app, random ``q``."""
    viewer, _ = login_as("viewer")
    auth = {"Authorization": f"Bearer {accounts['acme_token']}"}

    @settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(q=queries, page=st.integers(1, 3), source=st.sampled_from(["", "科普中国", "'\"<"]),
           date_from=st.sampled_from(["", "2020-01-01", "2020-13-40", "x"]))
    @example(q='"', page=1, source="", date_from="")
    @example(q="x" * 300, page=1, source="", date_from="")
    def check(q: str, page: int, source: str, date_from: str) -> None:
        r = viewer.get("/debunks", params={"q": q, "page": page, "source": source, "date_from": date_from})
        assert r.status_code in (200, 422), (q, r.status_code)
        assert "text/html" in r.headers["content-type"]
        assert "<script>alert" not in r.text
        r = client.get("/api/v1/debunks", params={"q": q, "source": source or None}, headers=auth)
        if not q or len(q) > 200:
            assert r.status_code == 422, (q, r.status_code)
            return
        assert r.status_code == 200, (q, r.status_code, r.text[:300])
        body = r.json()
        for item in body["items"]:
            for start, end in item["highlights"]:
                assert 0 <= start < end <= len(item["snippet"])

    check()

