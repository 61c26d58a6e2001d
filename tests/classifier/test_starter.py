"""The starter model: train on the attributed sample, persist with skops, predict; and the shipped model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from classifier.evaluate import evaluate
from classifier.labels import CREDIBLE, DISPLAY_NAMES, RUMOR, to_binary
from classifier.predict import classify_records, load_model
from classifier.starter import (
    META_FILE,
    MODEL_FILE,
    TRUSTED_FILE,
    StarterConfig,
    StarterModel,
    UntrustedModelError,
)
from classifier.train import load_claims

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"
SHIPPED = ROOT / "models" / "starter"

RUMOR_STYLE = [
    "震惊！隔夜菜含有大量亚硝酸盐，吃了会致癌，赶紧转发给家人！",
    "紧急扩散！明天起全国停水三天，大家快去囤水，不转不是中国人！",
]
NEWS_STYLE = [
    "【国务院新闻办公室今天举行新闻发布会】介绍上半年国民经济运行情况。",
    "国家航天局今天宣布，天问一号探测器成功着陆火星预选着陆区。",
]


def _sample() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]


def _split(records, seed=3, test_share=0.25):
    rng = random.Random(seed)
    train, test = [], []
    for label in (0, 1):
        group = [r for r in records if r["label"] == label]
        rng.shuffle(group)
        n = int(len(group) * test_share)
        test += group[:n]
        train += group[n:]
    return train, test


SMALL = StarterConfig(word_hash_bits=16, char_hash_bits=16, calibration_cv=3)


@pytest.fixture(scope="module")
def split():
    return _split(_sample())


@pytest.fixture(scope="module")
def saved(tmp_path_factory, split):
    train, _ = split
    model = StarterModel(SMALL).fit([r["text"] for r in train], [r["label"] for r in train])
    d = tmp_path_factory.mktemp("model")
    model.save(d, meta={"training_data": "tests/fixtures/claims_sample.jsonl"})
    return model, d


def test_sample_is_small_and_attributed():
    records = _sample()
    assert 100 <= len(records) <= 300
    assert {r["label"] for r in records} == {0, 1}
    assert all(len(r["text"]) <= 200 for r in records)
    readme = (SAMPLE.parent / "claims_sample.README.md").read_text("utf-8")
    assert "Weibo21" in readme and "CED" in readme and "CHECKED" in readme and "research" in readme


def test_labels_taxonomy():
    assert DISPLAY_NAMES == {RUMOR: "谣言", CREDIBLE: "可信"}
    assert to_binary("weibo21_train", 1) == 1 and to_binary("weibo21_val", 0) == 0
    assert to_binary("ced", 1) == 1 and to_binary("ced", "0") == 0
    assert to_binary("checked", "fake") == 1 and to_binary("checked", "real") == 0
    with pytest.raises(ValueError):
        to_binary("checked", "maybe")


def test_load_claims_reads_each_format(tmp_path):
    (tmp_path / "weibo21_train.jsonl").write_text(
        json.dumps({"content": "甲", "label": 1, "category": "科技"}, ensure_ascii=False) + "\n", "utf-8")
    (tmp_path / "ced_weibo.jsonl").write_text(json.dumps({"id": "c1", "text": "乙", "label": 0}) + "\n", "utf-8")
    (tmp_path / "checked_covid.jsonl").write_text(json.dumps({"id": "k1", "text": "丙", "label": "fake"}) + "\n", "utf-8")
    recs = load_claims(sorted(tmp_path.glob("*.jsonl")))
    by = {r["dataset"]: r for r in recs}
    assert by["weibo21_train"] == {"id": "weibo21_train:1", "text": "甲", "label": 1, "dataset": "weibo21_train",
                                   "category": "科技"}
    assert by["ced"]["label"] == 0 and by["ced"]["id"] == "c1"
    assert by["checked"]["label"] == 1


def test_scores_are_probabilities_and_roundtrip(saved, split):
    model, d = saved
    _, test = split
    for name in (MODEL_FILE, TRUSTED_FILE, META_FILE):
        assert (d / name).is_file()
    meta = json.loads((d / META_FILE).read_text("utf-8"))
    assert meta["version"] and meta["created"] and meta["config"]["word_hash_bits"] == 16
    loaded = StarterModel.load(d)
    texts = [r["text"] for r in test]
    a, b = model.predict_proba(texts), loaded.predict_proba(texts)
    assert ((a >= 0) & (a <= 1)).all()
    assert max(abs(a - b)) < 1e-9
    preds = loaded.predict(texts[:5] + [""])
    assert len(preds) == 6
    for p in preds:
        assert 0.0 <= p.score <= 1.0
        assert p.label == (RUMOR if p.score >= 0.5 else CREDIBLE)
        assert p.model_version == meta["version"]
        assert isinstance(p.top_terms, list) and all(isinstance(t, str) and t for t in p.top_terms)


def test_better_than_chance_on_held_out_part(saved, split):
    model, _ = saved
    _, test = split
    m = evaluate(model, test)
    assert m["n"] == len(test)
    assert m["roc_auc"] > 0.6
    assert m["macro_f1"] > 0.5
    assert set(m["per_class"]) == {RUMOR, CREDIBLE}
    assert 0.0 <= m["ece"] <= 1.0
    assert sum(map(sum, m["confusion_matrix"]["rows_true_cols_pred"])) == len(test)
    rumor = model.predict_proba(RUMOR_STYLE)
    news = model.predict_proba(NEWS_STYLE)
    assert rumor.mean() > news.mean()


def test_loading_refuses_tampered_trusted_types(saved, tmp_path):
    _, d = saved
    trusted = json.loads((d / TRUSTED_FILE).read_text("utf-8"))
    assert trusted, "the pipeline holds types skops does not trust by default"

    def copy_with(trusted_list) -> Path:
        t = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        t.mkdir()
        for name in (MODEL_FILE, META_FILE):
            (t / name).write_bytes((d / name).read_bytes())
        (t / TRUSTED_FILE).write_text(json.dumps(trusted_list), "utf-8")
        return t

    with pytest.raises(UntrustedModelError, match="unexpected types"):
        StarterModel.load(copy_with(trusted[1:]))
    with pytest.raises(UntrustedModelError, match="allow-list"):
        StarterModel.load(copy_with(trusted + ["builtins.eval"]))
    with pytest.raises(UntrustedModelError):
        StarterModel.load(copy_with({"not": "a list"}))

    changed = copy_with(trusted)
    (changed / MODEL_FILE).write_bytes((d / MODEL_FILE).read_bytes() + b"\0")
    with pytest.raises(UntrustedModelError, match="SHA-256"):
        StarterModel.load(changed)


def test_classify_records_contract(saved):
    _, d = saved
    model = load_model(d)
    records = [{"id": 7, "text": RUMOR_STYLE[0], "extra": 1}, {"id": "b", "text": NEWS_STYLE[0]},
               {"id": "c", "text": RUMOR_STYLE[1]}]
    out = list(classify_records(model, records, threshold=0.3, batch_size=2))
    assert [o["id"] for o in out] == [7, "b", "c"]
    for o in out:
        assert set(o) == {"id", "score", "label", "flagged", "model_version", "top_terms", "topic", "explanation", "stage"}
        assert o["explanation"] == {"kind": "terms", "terms": o["top_terms"]} and o["stage"] == "linear" and o["topic"] is None
        assert isinstance(o["score"], float) and 0.0 <= o["score"] <= 1.0
        assert o["flagged"] == (o["score"] >= 0.3)
        assert o["label"] == (RUMOR if o["score"] >= 0.5 else CREDIBLE)
        json.dumps(o, ensure_ascii=False)
    everything = list(classify_records(model, records, threshold=0.0))
    assert all(o["flagged"] for o in everything)


@pytest.mark.parametrize(
    "bad, message",
    [({"text": "没有编号"}, "line 2: record has no 'id'"),
     ({"id": "x"}, "line 2: record 'x' has no 'text'"),
     ({"id": "x", "text": 5}, "line 2: record 'x': 'text' must be a string")],
)
def test_classify_records_rejects_incomplete_records(saved, bad, message):
    _, d = saved
    model = load_model(d)
    with pytest.raises(ValueError, match=message):
        list(classify_records(model, [{"id": 1, "text": "正常文本"}, bad], threshold=0.5, batch_size=1))


def test_shipped_model_loads_and_classifies():
    assert (SHIPPED / MODEL_FILE).stat().st_size < 30_000_000
    model = load_model(SHIPPED)
    meta = json.loads((SHIPPED / META_FILE).read_text("utf-8"))
    assert meta["metrics"]["a_weibo21_val"]["macro_f1"] >= 0.85
    assert (SHIPPED / "MODEL_CARD.md").is_file()
    out = list(classify_records(model, [{"id": "r", "text": RUMOR_STYLE[0]}, {"id": "n", "text": NEWS_STYLE[1]}],
                                threshold=0.5, batch_size=256))
    assert [o["id"] for o in out] == ["r", "n"]
    assert out[0]["score"] > out[1]["score"]
    assert out[0]["model_version"] == meta["version"]


def test_prepare_in_worker_processes_equals_in_process() -> None:
    """classifier.workers > 1 spreads text preparation over processes; the result must not change."""
    from classifier.starter import prepare, set_workers

    texts = [r["text"] for r in _sample()][:150]
    single = prepare(texts)
    try:
        assert set_workers(2) == 2
        parallel = prepare(texts)
    finally:
        set_workers(1)
    assert parallel.shape == single.shape == (150, 2)
    assert parallel.tolist() == single.tolist()


def test_broken_worker_pool_falls_back_in_process(monkeypatch) -> None:
    """A failing preparation pool warns once and the batch is prepared in-process: nothing is lost."""
    import classifier.starter as starter

    class Broken:
        def map(self, *a, **k):
            raise OSError("no processes here")

        def shutdown(self, *a, **k):
            pass

    texts = [r["text"] for r in _sample()][:80]
    expected = starter.prepare(texts)
    monkeypatch.setattr(starter, "_WORKERS", 2)
    monkeypatch.setattr(starter, "_POOL", Broken())
    with pytest.warns(RuntimeWarning, match="continuing in-process"):
        got = starter.prepare(texts)
    assert got.tolist() == expected.tolist()
    assert starter._WORKERS == 1 and starter._POOL is None
