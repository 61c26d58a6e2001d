"""The feedback loop: editors' verdicts are stored and audited, become labelled data, and steer the queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from classifier.predict import classify_records, flag_threshold
from pipeline import cli
from review.decisions import ReviewError, labelled_reviews, record_decision
from review.queue import list_queue, uncertainty
from store.models import AuditEvent, Claim, Review
from store.records import ClaimIn
from store.writes import add_claim

TEXTS = [
    ("weibo", "转发扩散！喝醋能软化血管，每天一杯让血管像年轻人一样", 0.93),
    ("weibo", "据气象台消息，明天本市有小到中雨，气温下降五度", 0.52),
    ("wechat", "量子能量水可以治疗糖尿病和高血压，老人喝了都说好", 0.71),
    ("douyin", "专家：保健品不能代替药物，购买时认准蓝帽子标志", 0.45),
]


def _queued(store) -> list[int]:
    ids = []
    with store.session() as s:
        for source, text, score in TEXTS:
            claim, _ = add_claim(s, ClaimIn(source=source, text=text))
            claim.score, claim.label, claim.flagged, claim.status = score, "rumor" if score >= 0.5 else "credible", True, "queued"
            ids.append(claim.id)
    return ids


def test_decision_updates_claim_and_audit(store) -> None:
    ids = _queued(store)
    d = record_decision(store, ids[0], "rumor", editor="编辑甲", topic="health_wellness", note="已有辟谣")
    assert (d.verdict, d.status) == ("rumor", "confirmed")
    assert record_decision(store, ids[3], "credible", editor="编辑乙").status == "dismissed"
    assert record_decision(store, ids[2], "unproven", editor="编辑乙").status == "needs_debunk"
    with store.session() as s:
        c = s.get(Claim, ids[0])
        assert (c.status, c.topic) == ("confirmed", "health_wellness")
        reviews = s.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.claim_id, r.verdict, r.decision) for r in reviews] == [
            (ids[0], "rumor", "confirmed"), (ids[3], "credible", "dismissed"), (ids[2], "unproven", "needs_debunk")]
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "claim.reviewed").order_by(AuditEvent.id)).all()
        assert len(events) == 3
        assert events[0].actor == "编辑甲" and events[0].old["status"] == "queued" and events[0].new["verdict"] == "rumor"


@pytest.mark.parametrize("kwargs, message", [
    ({"claim_id": 99999, "verdict": "rumor"}, "no claim with id 99999"),
    ({"verdict": "fake"}, "unknown verdict 'fake'"),
    ({"verdict": "rumor", "topic": "cooking"}, "unknown topic 'cooking'"),
])
def test_bad_decisions_are_refused_and_change_nothing(store, kwargs, message) -> None:
    ids = _queued(store)
    args = {"claim_id": ids[0], **kwargs}
    with pytest.raises(ReviewError, match=message):
        record_decision(store, args.pop("claim_id"), args.pop("verdict"), editor="编辑甲", **args)
    with store.session() as s:
        assert s.scalars(select(Review)).all() == []
        assert s.get(Claim, ids[0]).status == "queued"


def test_latest_labelled_decision_becomes_training_data(store) -> None:
    ids = _queued(store)
    record_decision(store, ids[0], "credible", editor="编辑甲")
    record_decision(store, ids[0], "rumor", editor="编辑乙")  # a second opinion overrides
    record_decision(store, ids[2], "pseudoscience", editor="编辑乙")
    record_decision(store, ids[3], "credible", editor="编辑乙")
    record_decision(store, ids[1], "unproven", editor="编辑乙")  # no label: left out
    data = labelled_reviews(store)
    assert [(r["id"], r["label"], r["verdict"]) for r in data] == [
        (f"review:{ids[0]}", 1, "rumor"), (f"review:{ids[2]}", 1, "pseudoscience"), (f"review:{ids[3]}", 0, "credible")]
    assert data[0]["text"] == TEXTS[0][1]


def test_queue_sorts_by_uncertainty(store) -> None:
    ids = _queued(store)
    assert uncertainty(0.5) == 1.0 and uncertainty(0.0) == 0.0 and uncertainty(1.0) == 0.0
    by_priority = [e.claim_id for e in list_queue(store, limit=10)]
    by_uncertainty = [e.claim_id for e in list_queue(store, limit=10, order="uncertainty")]
    assert by_priority[0] == ids[0]  # highest score first
    assert by_uncertainty == [ids[1], ids[3], ids[2], ids[0]]  # scores 0.52, 0.45, 0.71, 0.93
    with pytest.raises(ValueError, match="unknown queue order"):
        list_queue(store, order="random")


def test_flag_thresholds_per_label_and_topic() -> None:
    assert flag_threshold("rumor", None, 0.5) == 0.5
    assert flag_threshold("pseudoscience", None, 0.5, {"pseudoscience": 0.4}) == 0.4
    assert flag_threshold("credible", None, 0.5, {"rumor": 0.3}) == 0.3  # measured against the rumor threshold
    assert flag_threshold("rumor", "elderly_scams", 0.5, {}, {"elderly_scams": 0.35}) == 0.35
    assert flag_threshold("rumor", "food_safety", 0.5, {}, {"elderly_scams": 0.35}) == 0.5

    class Fixed:
        def predict(self, texts, top_k=5):
            from classifier.base import Prediction

            return [Prediction(score=0.45, label="credible", topic="elderly_scams", model_version="t"),
                    Prediction(score=0.45, label="credible", topic="food_safety", model_version="t")][: len(texts)]

    out = list(classify_records(Fixed(), [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}], threshold=0.5,
                                topic_thresholds={"elderly_scams": 0.4}))
    assert [r["flagged"] for r in out] == [True, False]
    assert out[0]["topic"] == "elderly_scams" and out[0]["explanation"]["kind"] == "terms"


def test_review_cli_records_and_retrains_with_reviews(tmp_path: Path, clean_env: Path) -> None:
    runner = CliRunner()
    data_dir = tmp_path / "data"
    from settings import load_settings
    from store.db import open_store

    st = open_store(load_settings(data_dir=str(data_dir)).store_url)
    ids = _queued(st)
    st.close()
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "review", str(ids[0]), "--verdict", "rumor", "--editor", "编辑甲"])
    assert res.exit_code == 0, res.output
    assert "confirmed" in res.output
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "review", "424242", "--verdict", "rumor", "--editor", "编辑甲"])
    assert res.exit_code == 2 and "no claim with id 424242" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "queue", "--order", "uncertainty", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert rows and all("uncertainty" in r for r in rows)
