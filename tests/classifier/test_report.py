"""`piyao eval` machinery: label parsing, bad lines, duplicate removal, metrics, plots and the JSON report."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from classifier.fingerprints import write_fingerprints
from classifier.report import (
    CONFUSION_PNG,
    PR_PNG,
    PREDICTIONS_FILE,
    RELIABILITY_PNG,
    REPORT_FILE,
    evaluate_file,
    format_summary,
    parse_label,
    read_labelled,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行"


def _text(seed: int, n: int = 60) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(CHARS) for _ in range(n))


# Hand-checked example: 3 rumors, 4 credible items; at threshold 0.5 TP=2 FN=1 FP=1 TN=3.
RUMOR_SCORES = [0.92, 0.83, 0.28]
CREDIBLE_SCORES = [0.07, 0.21, 0.64, 0.43]
RUMORS = [_text(i) for i in range(3)]
CREDIBLES = [_text(10 + i) for i in range(4)]
SCORES = dict(zip(RUMORS + CREDIBLES, RUMOR_SCORES + CREDIBLE_SCORES))
TRAIN = [_text(100 + i) for i in range(30)]


class FixedModel:
    """Returns fixed scores from a dict; fails on a text it was not given (a removed item must not be scored)."""

    model_version = "fixed-1"
    meta = {"version": "fixed-1"}

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.calls = 0

    def predict_proba(self, texts):
        self.calls += 1
        return np.array([self.scores[t] for t in texts])


def _write(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def _rows(extra=()):
    rows = [{"id": f"r{i}", "text": t, "label": lab} for i, (t, lab) in enumerate(zip(RUMORS, [1, "rumor", "谣言"]))]
    rows += [{"id": f"c{i}", "text": t, "label": lab}
             for i, (t, lab) in enumerate(zip(CREDIBLES, [0, "credible", "可信", "0"]))]
    rows += [{"id": "u1", "text": _text(50), "label": "unproven"}, {"id": "u2", "text": _text(51), "label": "尚无定论"}]
    return rows + list(extra)


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200


@pytest.mark.parametrize(
    "raw, expected",
    [(1, 1), (0, 0), ("1", 1), (" 0 ", 0), (1.0, 1), ("rumor", 1), ("Rumor", 1), ("credible", 0),
     ("pseudoscience", 1), ("misleading", 1), ("unproven", None), ("谣言", 1), ("伪科学", 1), ("误导", 1),
     ("有失实", 1), ("误导/有失实", 1), ("可信", 0), ("尚无定论", None)],
)
def test_label_variants(raw, expected):
    assert parse_label(raw) == expected


@pytest.mark.parametrize("raw", ["maybe", 2, True, None, "", "fake", [1]])
def test_unknown_labels_are_errors(raw):
    with pytest.raises(ValueError, match="unknown label"):
        parse_label(raw)


@pytest.mark.parametrize(
    "bad, message",
    [("{not json", "not valid JSON"),
     ("[1, 2]", "JSON object"),
     (json.dumps({"id": "x", "label": 1}), "text"),
     (json.dumps({"id": "x", "text": "  ", "label": 1}), "text"),
     (json.dumps({"id": "x", "text": 5, "label": 1}), "text"),
     (json.dumps({"id": "x", "text": "有文本"}), "label"),
     (json.dumps({"id": "x", "text": "有文本", "label": "maybe"}), "unknown label 'maybe'")],
)
def test_a_bad_line_is_an_error_naming_it(tmp_path, bad, message):
    path = _write(tmp_path / "t.jsonl", [{"id": 1, "text": "好", "label": 1}, "", bad])
    with pytest.raises(ValueError, match=message) as info:
        read_labelled(path)
    assert f"{path}:3:" in str(info.value)
    with pytest.raises(ValueError, match=f"{path}:3:"):
        evaluate_file(path, FixedModel({}), out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / REPORT_FILE).exists()


def test_missing_or_empty_files_are_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        evaluate_file(tmp_path / "nope.jsonl", FixedModel({}), out_dir=tmp_path / "o", progress=False)
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "caf\xe9", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        evaluate_file(tmp_path / "latin1.jsonl", FixedModel({}), out_dir=tmp_path / "o", progress=False)
    only_unproven = _write(tmp_path / "u.jsonl", [{"id": 1, "text": "说不清", "label": "unproven"}])
    with pytest.raises(ValueError, match="no labelled records"):
        evaluate_file(only_unproven, FixedModel({}), out_dir=tmp_path / "o", progress=False)


@pytest.mark.filterwarnings("error")
def test_metrics_match_hand_computed_values(tmp_path, caplog):
    data = _write(tmp_path / "测试集.jsonl", _rows())
    model = FixedModel(SCORES)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        report = evaluate_file(data, model, out_dir=out, progress=False, batch_size=3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "no warnings (fonts, glyphs, ...)"
    assert model.calls == 3  # 7 items in batches of 3
    m = report["metrics"]
    assert m["n"] == 7
    assert m["confusion_matrix"]["rows_true_cols_pred"] == [[3, 1], [1, 2]]
    assert m["per_class"]["rumor"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["per_class"]["credible"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    assert m["macro_f1"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["roc_auc"] == pytest.approx(10 / 12)  # 10 of the 12 rumor/credible pairs are ordered right
    # Rumor PR points (P, R): (1, 1/3), (1, 2/3), (3/5, 1). Credible (on 1 - score): (1, 1/4), (1, 2/4), (3/4, 3/4), (4/5, 1).
    assert m["average_precision"]["rumor"] == pytest.approx(13 / 15)
    assert m["average_precision"]["credible"] == pytest.approx(0.25 + 0.25 + 0.75 / 4 + 0.8 / 4)
    assert m["brier"] == pytest.approx((0.08**2 + 0.17**2 + 0.72**2 + 0.07**2 + 0.21**2 + 0.64**2 + 0.43**2) / 7)
    # Top-label confidences 0.92 0.83 0.72x 0.93 0.79 0.64x 0.57 (x = wrong), bins of 0.05 from 0.5.
    assert m["ece"] == pytest.approx((2 * 0.075 + 0.17 + 0.72 + 0.21 + 0.64 + 0.43) / 7)
    assert sum(b["n"] for b in m["reliability_bins"]) == 7

    c = report["counts"]
    assert c == {"lines": 9, "skipped_unproven": 2, "labelled": 7, "removed_duplicates_of_training": 0,
                 "evaluated": 7, "rumor": 3, "credible": 4}
    assert report["threshold"] == 0.5
    assert report["model_version"] == "fixed-1"
    assert report["data_file"] == "测试集.jsonl" and len(report["data_sha256"]) == 64
    assert report["created"][:2] == "20"
    assert report["dedup"]["method"] == "none" and "could NOT be removed" in report["dedup"]["note"]

    saved = json.loads((out / REPORT_FILE).read_text("utf-8"))
    assert saved["metrics"]["macro_f1"] == m["macro_f1"]
    assert {"created", "model_version", "data_file", "threshold", "counts", "dedup", "metrics", "files"} <= set(saved)
    for name in (CONFUSION_PNG, PR_PNG, RELIABILITY_PNG):
        _assert_png(out / name)
    preds = [json.loads(line) for line in (out / PREDICTIONS_FILE).read_text("utf-8").splitlines()]
    assert [p["id"] for p in preds] == ["r0", "r1", "r2", "c0", "c1", "c2", "c3"]
    assert preds[2] == {"id": "r2", "line": 3, "label": "rumor", "score": 0.28, "predicted": "credible"}

    summary = format_summary(report)
    assert "WARNING" in summary and "could NOT be removed" in summary
    assert "macro-F1=0.7083" in summary and "2 unproven skipped" in summary and "evaluated 7" in summary


def test_threshold_changes_predictions(tmp_path):
    data = _write(tmp_path / "t.jsonl", _rows())
    report = evaluate_file(data, FixedModel(SCORES), out_dir=tmp_path / "o", threshold=0.25, progress=True)
    assert report["threshold"] == 0.25
    # Credible 0.43 and 0.64 are now flagged, every rumor is.
    assert report["metrics"]["confusion_matrix"]["rows_true_cols_pred"] == [[2, 2], [0, 3]]
    with pytest.raises(ValueError, match="threshold"):
        evaluate_file(data, FixedModel(SCORES), out_dir=tmp_path / "o", threshold=1.5, progress=False)


def _with_duplicates():
    exact = {"id": "dup-exact", "text": "【" + TRAIN[3] + "】！！！", "label": 1}
    near = {"id": "dup-near", "text": TRAIN[4][:-2] + "鱼鸟", "label": 0}  # 2 of 56 shingles change
    return _rows([exact, near])


def test_training_duplicates_are_removed_with_training_records(tmp_path):
    data = _write(tmp_path / "t.jsonl", _with_duplicates())
    report = evaluate_file(data, FixedModel(SCORES), out_dir=tmp_path / "o", progress=False,
                           train_records=[{"text": t} for t in TRAIN])
    d = report["dedup"]
    assert (d["method"], d["removed"], d["removed_exact"], d["removed_near"]) == ("training records", 2, 1, 1)
    assert report["counts"]["removed_duplicates_of_training"] == 2 and report["counts"]["evaluated"] == 7
    assert report["metrics"]["macro_f1"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    preds = [json.loads(line) for line in (tmp_path / "o" / PREDICTIONS_FILE).read_text("utf-8").splitlines()]
    removed = {p["id"]: p["removed"] for p in preds if "removed" in p}
    assert removed == {"dup-exact": "exact duplicate of training data", "dup-near": "near duplicate of training data"}
    assert "removed 2 item(s) duplicating the training data (1 exact, 1 near" in format_summary(report)


def test_training_duplicates_are_removed_with_fingerprints(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "meta.json").write_text(json.dumps({"version": "fixed-1"}), "utf-8")
    write_fingerprints(TRAIN, model_dir)
    data = _write(tmp_path / "t.jsonl", _with_duplicates())
    report = evaluate_file(data, FixedModel(SCORES), out_dir=tmp_path / "o", progress=False, model_dir=model_dir)
    d = report["dedup"]
    assert (d["method"], d["removed"], d["removed_exact"], d["removed_near"]) == ("fingerprints", 2, 1, 1)
    assert d["fingerprints"]["count"] == len(TRAIN) and "warning" not in d
    assert "checked against training fingerprints" in format_summary(report)

    # Fingerprints written for another model version are used, with a warning.
    (model_dir / "meta.json").write_text(json.dumps({"version": "other"}), "utf-8")
    write_fingerprints(TRAIN, model_dir)
    report = evaluate_file(data, FixedModel(SCORES), out_dir=tmp_path / "o", progress=False, model_dir=model_dir)
    assert "written for model other, not fixed-1" in report["dedup"]["warning"]

    # A model directory without fingerprints: nothing removed, and the report says so.
    bare = tmp_path / "bare"
    bare.mkdir()
    report = evaluate_file(data, FixedModel({**SCORES, _with_duplicates()[-2]["text"]: 0.9,
                                             _with_duplicates()[-1]["text"]: 0.1}),
                           out_dir=tmp_path / "o", progress=False, model_dir=bare)
    assert report["dedup"]["method"] == "none" and str(bare) in report["dedup"]["note"]
    assert report["counts"]["evaluated"] == 9


def test_everything_removed_is_an_error(tmp_path):
    data = _write(tmp_path / "t.jsonl", [{"id": i, "text": t, "label": 1} for i, t in enumerate(TRAIN[:3])])
    with pytest.raises(ValueError, match="all 3 labelled records duplicate"):
        evaluate_file(data, FixedModel({}), out_dir=tmp_path / "o", progress=False, train_records=TRAIN)


def test_one_class_only_still_reports(tmp_path):
    data = _write(tmp_path / "t.jsonl", [{"id": i, "text": t, "label": 1} for i, t in enumerate(RUMORS)])
    report = evaluate_file(data, FixedModel(SCORES), out_dir=tmp_path / "o", progress=False)
    m = report["metrics"]
    assert m["roc_auc"] is None and m["average_precision"]["credible"] is None
    assert m["average_precision"]["rumor"] == pytest.approx(1.0)
    assert "ROC-AUC n/a" in format_summary(report)
    for name in (CONFUSION_PNG, PR_PNG, RELIABILITY_PNG):
        _assert_png(tmp_path / "o" / name)


def test_bad_model_scores_are_errors(tmp_path):
    data = _write(tmp_path / "t.jsonl", _rows())
    with pytest.raises(ValueError, match="outside 0..1"):
        evaluate_file(data, FixedModel({t: s * 2 for t, s in SCORES.items()}), out_dir=tmp_path / "o", progress=False)


def test_end_to_end_with_a_real_starter_model(tmp_path):
    """Train a tiny starter model, fingerprint its training texts, evaluate from the model directory."""
    from classifier.starter import StarterConfig, StarterModel

    records = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]
    rng = random.Random(7)
    rng.shuffle(records)
    test, train = records[:60], records[60:]
    model = StarterModel(StarterConfig(word_hash_bits=16, char_hash_bits=16, calibration_cv=3))
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    model_dir = tmp_path / "model"
    model.save(model_dir)
    write_fingerprints([r["text"] for r in train], model_dir)
    rows = [{"id": r["id"], "text": r["text"], "label": "rumor" if r["label"] else "credible"} for r in test]
    rows += [{"id": "leak", "text": train[0]["text"], "label": train[0]["label"]}]  # a training item: removed
    data = _write(tmp_path / "held_out.jsonl", rows)
    report = evaluate_file(data, str(model_dir), out_dir=tmp_path / "eval", progress=False)
    assert report["model_version"] == model.model_version
    assert report["dedup"]["method"] == "fingerprints" and report["dedup"]["removed"] >= 1
    assert report["counts"]["evaluated"] == len(rows) - report["dedup"]["removed"]
    m = report["metrics"]
    assert 0.0 <= m["ece"] <= 1.0 and m["roc_auc"] is not None and m["roc_auc"] > 0.5
    for name in (CONFUSION_PNG, PR_PNG, RELIABILITY_PNG):
        _assert_png(tmp_path / "eval" / name)
    assert json.loads((tmp_path / "eval" / REPORT_FILE).read_text("utf-8"))["counts"] == report["counts"]
