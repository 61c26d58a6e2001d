"""The embedded backend: SQLite FTS5 over jieba tokens, BM25, filters, snippets."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Iterator

import pytest

from index.backend import Backend, IndexDoc, SearchFilters
from index.embedded import EmbeddedBackend
from index.passages import Passage

JSONL = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "debunks" / "articles.jsonl"


def _fixture_docs() -> list[IndexDoc]:
    docs = []
    for i, line in enumerate(JSONL.read_text("utf-8").splitlines()):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        docs.append(
            IndexDoc(
                key=f"debunk:{i + 1}", kind="debunk", title=r["title"], text=r["text"], source=r["source"], url=r["url"],
                date=dt.date.fromisoformat(r["date"]),
            )
        )  # fmt: skip
    return docs


EXTRA = [
    IndexDoc("debunk:101", "debunk", "经常吃腐乳会致癌？",
             "腐乳因为带了个“腐”字和后期的腌制工序，民间有很多腐乳致癌的传言。制作腐乳以毛霉菌为主，不会产生毒素。",
             "中国食品辟谣网_新华网", "http://www.xinhuanet.com.cn/food/tofu.html", dt.date(2021, 3, 8)),
    IndexDoc("debunk:102", "debunk", "喝醋能软化血管吗？",
             "没有实验证明喝醋能起到降低血脂和软化血管的作用。<script>alert('醋')</script> 直接喝醋可能刺激食道。",
             "中国食品辟谣网_新华网", "http://www.xinhuanet.com.cn/food/vinegar.html", dt.date(2018, 10, 12)),
    IndexDoc("debunk:103", "debunk", "电磁炉辐射真的会致癌吗？",
             "电磁炉的电磁辐射属于非电离辐射，强度远低于国家标准，不会致癌。",
             "果壳网-谣言粉碎机", "https://www.guokr.com/article/438213/", dt.date(2014, 4, 8)),
    IndexDoc("claim:1", "claim", "腐乳是发霉的豆腐，吃了会致癌",
             "腐乳是发霉的豆腐，吃了会致癌，赶紧告诉家里人！", "weibo", None, dt.date(2024, 1, 5)),
]  # fmt: skip


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(tmp_path / "idx" / "index.sqlite")
    b.upsert(_fixture_docs() + EXTRA)
    yield b
    b.close()


def test_is_a_backend_and_counts(backend: EmbeddedBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.count() == 10
    assert backend.count("debunk") == 9
    assert backend.count("claim") == 1
    assert backend.keys("claim") == {"claim:1"}


def test_chinese_query_ranks_the_right_doc_first(backend: EmbeddedBackend) -> None:
    cases = {
        "吃腐乳会不会致癌": "经常吃腐乳会致癌？",
        "喝醋软化血管": "喝醋能软化血管吗？",
        "保鲜膜包着食物加热": "用保鲜膜包裹食物直接加热，会致癌？",
        "烫伤了敷面粉有用吗": "烫伤后敷面粉？小心火上浇油",
        "牙膏里的化学物质致癌": "牙膏中含有这几种化学物质就会致癌？真的假的？",
    }
    for query, title in cases.items():
        hits = backend.search(query, filters=SearchFilters(kind="debunk"))
        assert hits, query
        assert hits[0].title == title, (query, [h.title for h in hits])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_traditional_query_finds_simplified_text(backend: EmbeddedBackend) -> None:
    hits = backend.search("電磁爐輻射")
    assert hits and hits[0].key == "debunk:103"


def test_hit_fields(backend: EmbeddedBackend) -> None:
    (hit,) = backend.search("电磁炉", limit=1)
    assert hit.key == "debunk:103" and hit.doc_id == 103
    assert hit.kind == "debunk"
    assert hit.url == "https://www.guokr.com/article/438213/"
    assert hit.source == "果壳网-谣言粉碎机"
    assert hit.date == dt.date(2014, 4, 8)
    assert hit.score > 0
    assert "<mark>电磁炉</mark>" in hit.extra["title_html"]


def test_filters(backend: EmbeddedBackend) -> None:
    def keys(query: str, **f: object) -> list[str]:
        return [h.key for h in backend.search(query, limit=50, filters=SearchFilters(**f))]

    everything = keys("致癌")
    assert "claim:1" in everything and "debunk:101" in everything
    assert "claim:1" not in keys("致癌", kind="debunk")
    assert keys("致癌", kind="claim") == ["claim:1"]
    assert keys("致癌", source="中国食品辟谣网_新华网") == ["debunk:101"]
    assert set(keys("致癌", source="公众号-科学辟谣")) == {"debunk:1", "debunk:2", "debunk:3"}
    assert keys("电磁炉", source="中国食品辟谣网_新华网") == []
    in_2014 = keys("致癌", date_from=dt.date(2014, 1, 1), date_to=dt.date(2014, 12, 31))
    assert in_2014 == ["debunk:103"]
    since_2024 = backend.search("致癌", limit=50, filters=SearchFilters(date_from=dt.date(2024, 1, 1)))
    assert since_2024 and all(h.date >= dt.date(2024, 1, 1) for h in since_2024)
    assert "debunk:101" not in {h.key for h in since_2024}
    until_2018 = keys("致癌", date_to=dt.date(2018, 12, 31))
    assert "debunk:103" in until_2018 and "debunk:101" not in until_2018
    # Bounds are inclusive.
    assert keys("腐乳", kind="debunk", date_from=dt.date(2021, 3, 8), date_to=dt.date(2021, 3, 8)) == ["debunk:101"]


def test_limit_and_offset(backend: EmbeddedBackend) -> None:
    all_hits = [h.key for h in backend.search("致癌", limit=50)]
    assert len(all_hits) >= 4
    assert [h.key for h in backend.search("致癌", limit=2)] == all_hits[:2]
    assert [h.key for h in backend.search("致癌", limit=2, offset=2)] == all_hits[2:4]


def test_snippet_marks_terms_and_escapes_html(backend: EmbeddedBackend) -> None:
    (hit,) = [h for h in backend.search("喝醋 软化血管") if h.key == "debunk:102"]
    assert "<mark>" in hit.snippet and "</mark>" in hit.snippet
    assert "<mark>喝醋</mark>" in hit.snippet or "<mark>软化</mark>" in hit.snippet
    assert "<script>" not in hit.snippet
    assert "&lt;script&gt;" in hit.snippet
    # Nothing but <mark> is left as a tag.
    stripped = hit.snippet.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in stripped and ">" not in stripped


def test_upsert_replaces(backend: EmbeddedBackend) -> None:
    before = backend.count()
    backend.upsert([IndexDoc("debunk:103", "debunk", "微波炉加热会让食物致癌吗？", "微波加热不会让食物产生放射性。", "果壳网-谣言粉碎机", None, None)])
    assert backend.count() == before
    assert backend.search("电磁炉") == []
    hits = backend.search("微波炉")
    assert [h.key for h in hits] == ["debunk:103"]
    assert hits[0].date is None and hits[0].url is None


def test_delete(backend: EmbeddedBackend) -> None:
    before = backend.count()
    assert backend.delete(["debunk:103", "debunk:999"]) == 1
    assert backend.count() == before - 1
    assert backend.search("电磁炉") == []
    assert backend.delete(["debunk:103"]) == 0


def test_clear_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    b = EmbeddedBackend(path)
    b.upsert(EXTRA)
    b.close()
    again = EmbeddedBackend(path)
    try:
        assert again.count() == len(EXTRA)
        assert again.search("腐乳")[0].key in {"debunk:101", "claim:1"}
        again.clear()
        assert again.count() == 0 and again.search("腐乳") == []
    finally:
        again.close()


@pytest.mark.parametrize("query", ["", "   ", "？！。，……", "!!!", "的 了 是"])
def test_empty_or_punctuation_query_returns_nothing(backend: EmbeddedBackend, query: str) -> None:
    assert backend.search(query) == []


@pytest.mark.parametrize(
    "query",
    ['"', '腐乳"致癌', "AND", "腐乳 AND 致癌", "OR", "NOT 腐乳", "*", "腐乳*", ")", "(腐乳", "NEAR(腐乳 致癌)", "title:腐乳", "^腐乳", "{}", "-致癌", "+"],
)
def test_fts_syntax_characters_do_not_raise(backend: EmbeddedBackend, query: str) -> None:
    hits = backend.search(query)
    assert isinstance(hits, list)
    if "腐乳" in query:
        assert any(h.key == "debunk:101" for h in hits)


# -- passage term choice: postings budget and remembered counts ----------------------------------
def _passage_doc(i: int, text: str) -> IndexDoc:
    return IndexDoc(f"debunk:{1000 + i}", "debunk", f"doc {i}", text, "test", f"https://example.org/{i}",
                    passages=[Passage("body", text, 0)])  # fmt: skip


def test_passage_search_keeps_its_terms_postings_within_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Terms are taken rarest first while their passages add up to PASSAGE_MAX_POSTINGS; the rarest two always."""
    import index.embedded as embedded

    b = EmbeddedBackend(tmp_path / "index.sqlite")
    # alpha in 1 passage, beta in 5, gamma in 20, delta in 40 (of 100)
    docs = []
    for i in range(100):
        words = ["filler"] + [w for w, n in (("alpha", 1), ("beta", 5), ("gamma", 20), ("delta", 40)) if i < n]
        docs.append(_passage_doc(i, " ".join(words)))
    b.upsert(docs)
    monkeypatch.setattr(embedded, "PASSAGE_COMMON_RATIO", 1.0)
    query = ["delta", "gamma", "beta", "alpha", "unseen"]
    assert b._query_terms(query) == ["alpha", "beta", "gamma", "delta"]  # no budget reached: rarest first
    monkeypatch.setattr(embedded, "PASSAGE_MAX_POSTINGS", 30)
    assert b._query_terms(query) == ["alpha", "beta", "gamma"]  # 1 + 5 + 20 <= 30 < 66
    monkeypatch.setattr(embedded, "PASSAGE_MAX_POSTINGS", 1)
    assert b._query_terms(query) == ["alpha", "beta"]  # the rarest two whatever their postings
    hits = b.search_passages(query, limit=50)
    assert {h.doc_key for h in hits} == {f"debunk:{1000 + i}" for i in range(5)}  # passages of alpha or beta only
    b.close()


def test_remembered_term_counts_follow_the_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts are remembered between searches, refreshed when the corpus moves by DF_REFRESH_RATIO, and a
    term found nowhere is looked up again: a new debunk's new word is searchable at once."""
    import index.embedded as embedded

    b = EmbeddedBackend(tmp_path / "index.sqlite")
    b.upsert([_passage_doc(i, "filler common" + (" rare" if i == 0 else "")) for i in range(200)])
    monkeypatch.setattr(embedded, "PASSAGE_COMMON_RATIO", 0.05)
    assert b._query_terms(["common", "rare"]) == ["rare"]  # common: in every passage
    assert b._df == {"common": 200, "rare": 1}
    assert b.search_passages(["newword"], limit=5) == []
    b.upsert([_passage_doc(500, "filler newword")])
    assert [h.doc_key for h in b.search_passages(["newword"], limit=5)] == ["debunk:1500"]
    assert b._df["rare"] == 1  # 201 passages: within 1 % of 200, counts kept
    b.upsert([_passage_doc(600 + i, "filler rare") for i in range(20)])  # 221 passages: counts read again
    assert b._query_terms(["common", "rare", "newword"]) == ["newword"]  # rare is now in 21 > 5 % of them
    assert b._df["rare"] == 21 and b._df["common"] == 200
    b.close()
