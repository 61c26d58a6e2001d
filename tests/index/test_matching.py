"""Matching claims to debunks: the match_records contract, stored-claim matching, `piyao match`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from index.embedded import EmbeddedBackend
from index.matching import Matcher, match_records, match_stored_claims, match_text
from index.outbox import drain
from store.importer import import_debunks
from store.models import Claim, ClaimMatch, Debunk
from store.records import ClaimIn
from store.writes import add_claim

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "debunks"
FILES = [FIXTURES / "articles.csv", FIXTURES / "articles.jsonl"]
TOFU_URL = "http://www.xinhuanet.com.cn/food/20210624/C96C5431FE2000015FFC1290A0C5A180/c.html"
RECORDS = [
    {"id": "w1", "text": "吃腐乳会致癌，腐乳是发霉的豆腐，千万别吃！"},
    {"id": 2, "text": "用保鲜膜包着饭菜放进微波炉加热会致癌"},
    {"id": "w3", "text": "烫伤以后马上敷面粉就不会起泡"},
    {"id": "w4", "text": "！！！……"},
    {"id": "w5", "text": "致癌"},
]


@pytest.fixture
def indexed(store, tmp_path: Path) -> Iterator[EmbeddedBackend]:
    import_debunks(store, FILES)
    b = EmbeddedBackend(tmp_path / "index.sqlite")
    drain(store, b)
    yield b
    b.close()


def _check_contract(out: list[dict], top_k: int) -> None:
    for rec in out:
        assert set(rec) == {"id", "matches"}
        assert isinstance(rec["matches"], list)
        assert len(rec["matches"]) <= top_k
        scores = [m["score"] for m in rec["matches"]]
        assert scores == sorted(scores, reverse=True)
        for m in rec["matches"]:
            assert set(m) == {"url", "title", "source", "score", "decision", "evidence"}
            assert m["decision"] in ("auto", "suggest", "none")
            assert set(m["evidence"]) == {"kind", "text"} and m["evidence"]["kind"] in ("title", "rumor", "verdict", "body")
            assert isinstance(m["score"], float)
            assert isinstance(m["title"], str) and isinstance(m["source"], str)


def test_match_records_contract(indexed: EmbeddedBackend) -> None:
    out = list(match_records(indexed, RECORDS, top_k=3))
    assert [r["id"] for r in out] == ["w1", 2, "w3", "w4", "w5"]
    _check_contract(out, 3)
    assert out[0]["matches"][0]["url"] == TOFU_URL
    assert out[0]["matches"][0]["title"] == "经常吃腐乳会致癌？"
    assert out[0]["matches"][0]["source"] == "articles"
    assert out[1]["matches"][0]["title"] == "用保鲜膜包裹食物直接加热，会致癌？"
    assert out[2]["matches"][0]["title"] == "烫伤后敷面粉？小心火上浇油"
    assert out[3]["matches"] == []
    assert len(out[4]["matches"]) == 3  # many debunks mention 致癌: top_k caps them


@pytest.mark.parametrize("top_k", [1, 2, 5, 100])
def test_top_k_respected(indexed: EmbeddedBackend, top_k: int) -> None:
    out = list(match_records(indexed, RECORDS, top_k=top_k))
    _check_contract(out, top_k)
    available = len(indexed.search("致癌", limit=1000))
    assert available >= 5
    assert len(out[4]["matches"]) == min(top_k, available)


def test_min_score_drops_weak_matches(indexed: EmbeddedBackend) -> None:
    all_matches = match_text(indexed, RECORDS[0]["text"], top_k=10)
    assert len(all_matches) >= 2
    cut = (all_matches[0].score + all_matches[-1].score) / 2
    kept = match_text(indexed, RECORDS[0]["text"], top_k=10, min_score=cut)
    assert kept and all(m.score >= cut for m in kept) and len(kept) < len(all_matches)


def test_match_text_only_returns_debunks(store, indexed: EmbeddedBackend) -> None:
    with store.session() as s:
        add_claim(s, ClaimIn(source="weibo", text="吃腐乳会致癌，腐乳是发霉的豆腐"))
    drain(store, indexed)
    assert indexed.count("claim") == 1
    matches = match_text(indexed, "吃腐乳会致癌", top_k=20)
    with store.session() as s:
        debunk_ids = set(s.scalars(select(Debunk.id)))
    assert matches and all(m.debunk_id in debunk_ids for m in matches)


def test_match_stored_claims(store, indexed: EmbeddedBackend) -> None:
    with store.session() as s:
        tofu, _ = add_claim(s, ClaimIn(source="weibo", text="吃腐乳会致癌，腐乳是发霉的豆腐，千万别吃！"))
        junk, _ = add_claim(s, ClaimIn(source="weibo", text="qwertyuiop zxcvbnm"))
        unflagged, _ = add_claim(s, ClaimIn(source="weibo", text="保鲜膜加热会致癌"))
        tofu.flagged = junk.flagged = True
    matcher = Matcher(indexed, top_k=2, use_dense=False, auto_threshold=0.99, suggest_threshold=0.0)
    assert match_stored_claims(store, indexed, matcher=matcher) == (2, 1)
    with store.session() as s:
        rows = s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == tofu.id).order_by(ClaimMatch.rank)).all()
        assert [m.rank for m in rows] == [1, 2][: len(rows)] and rows
        assert s.get(Debunk, rows[0].debunk_id).url == TOFU_URL
        assert "<mark>" in (rows[0].snippet or "")
        assert rows[0].decision in ("auto", "suggest") and rows[0].evidence and rows[0].evidence_kind
        assert s.get(Claim, unflagged.id).matched_at is None
        assert s.get(Claim, junk.id).matched_at is not None
    # Matched claims are not matched again.
    assert match_stored_claims(store, indexed, matcher=matcher) == (0, 0)
    assert match_stored_claims(store, indexed, only_flagged=False, matcher=matcher) == (1, 1)


def test_match_stored_claims_encodes_in_batches_with_the_same_results(store, indexed: EmbeddedBackend, monkeypatch) -> None:
    """Stored claims' query vectors are encoded a batch at a time; the stored matches are those of
    matching each claim on its own (same vectors, same candidates, same scores)."""
    import index.matching as matching
    from classifier.encoder import E5Encoder
    from index.embedding import embed_pending

    class CountingEncoder(E5Encoder):
        """The real encoder, recording how many texts each call is given."""

        def __init__(self) -> None:
            super().__init__(max_chars=128)
            self.calls: list[int] = []

        def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
            self.calls.append(len(texts))
            return super().encode(texts, **kw)

    assert embed_pending(indexed, E5Encoder(), ["title", "rumor", "verdict"]) > 0
    texts = [str(r["text"]) for r in RECORDS] + ["微波炉加热的饭菜有辐射，吃了会致癌", "腐乳发霉了还能吃吗"]
    ids = []
    with store.session() as s:
        for t in texts:
            claim, _ = add_claim(s, ClaimIn(source="weibo", text=t))
            claim.flagged = True
            ids.append(claim.id)
    alone = Matcher(indexed, encoder=E5Encoder(max_chars=128), top_k=3)
    expected = {cid: [(m.debunk_id, m.score, m.decision, m.evidence_kind) for m in alone.match(t)] for cid, t in zip(ids, texts)}
    assert any(expected.values())
    encoder = CountingEncoder()
    monkeypatch.setattr(matching, "ENCODE_BATCH", 4)
    assert match_stored_claims(store, indexed, matcher=Matcher(indexed, encoder=encoder, top_k=3))[0] == len(texts)
    assert encoder.calls == [4, 3]  # two batched encodes, none per claim
    with store.session() as s:
        for cid in ids:
            rows = s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == cid).order_by(ClaimMatch.rank)).all()
            got = [(r.debunk_id, r.score, r.decision, r.evidence_kind) for r in rows]
            assert [g[0] for g in got] == [e[0] for e in expected[cid]]
            assert [g[1] for g in got] == pytest.approx([e[1] for e in expected[cid]], rel=1e-12)
            assert [g[2:] for g in got] == [e[2:] for e in expected[cid]]


# --------------------------------------------------------------------------- CLI
def _import_with_cli() -> None:
    from pipeline import cli

    r = CliRunner().invoke(cli, ["debunks", "import", *map(str, FILES)])
    assert r.exit_code == 0, r.output


def test_cli_match_writes_the_contract(clean_env: Path, tmp_path: Path) -> None:
    from pipeline import cli

    _import_with_cli()
    inp, outp = tmp_path / "claims.jsonl", tmp_path / "matches.jsonl"
    inp.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "\n\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["match", "--input", str(inp), "--output", str(outp), "--top-k", "2"])
    assert r.exit_code == 0, r.output
    assert "matched 4 of 5 claims" in r.stderr
    out = [json.loads(line) for line in outp.read_text("utf-8").splitlines()]
    assert [o["id"] for o in out] == ["w1", 2, "w3", "w4", "w5"]
    _check_contract(out, 2)
    assert out[0]["matches"][0]["url"] == TOFU_URL
    assert not (tmp_path / "matches.jsonl.part").exists()

    # Default top_k comes from the settings (matching.top_k).
    r = CliRunner().invoke(cli, ["match", "--input", str(inp), "--output", "-"], env={"PIYAO_MATCHING__TOP_K": "1"})
    assert r.exit_code == 0, r.output
    out = [json.loads(line) for line in r.stdout.splitlines()]
    _check_contract(out, 1)
    assert len(out[4]["matches"]) == 1


def test_cli_match_malformed_line_exits_2_with_line_number(clean_env: Path, tmp_path: Path) -> None:
    from pipeline import cli

    inp, outp = tmp_path / "claims.jsonl", tmp_path / "matches.jsonl"
    inp.write_text('{"id": 1, "text": "吃腐乳会致癌"}\n{"id": 2, "text": "保鲜膜\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["match", "--input", str(inp), "--output", str(outp)])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("piyao: error:")
    assert f"{inp}:2:" in lines[0]
    assert not outp.exists()


def test_cli_match_line_without_text_exits_2(clean_env: Path, tmp_path: Path) -> None:
    from pipeline import cli

    inp = tmp_path / "claims.jsonl"
    inp.write_text('{"id": 1, "text": "吃腐乳会致癌"}\n\n{"id": 3}\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["match", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 2
    assert f"{inp}:3:" in r.stderr and "Traceback" not in r.output


def test_cli_match_keeps_a_text_holding_a_line_separator(clean_env: Path, tmp_path: Path) -> None:
    from pipeline import cli

    _import_with_cli()
    inp = tmp_path / "claims.jsonl"
    inp.write_text(json.dumps({"id": "u", "text": "吃腐乳会致癌\u2028腐乳是发霉的豆腐"}, ensure_ascii=False) + "\r\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["match", "--input", str(inp), "--output", "-"])
    assert r.exit_code == 0, r.output
    out = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [o["id"] for o in out] == ["u"] and out[0]["matches"][0]["url"] == TOFU_URL


def test_a_variant_borrows_the_cached_vector_of_its_cluster_representative(store, indexed: EmbeddedBackend) -> None:
    """A forwarded variant (same cluster, near-duplicate of the representative) is matched with the
    representative's e5 vector when the encoder has it cached, and is not encoded itself; its own
    cached vector wins over the representative's; a claim far from its representative encodes."""
    from classifier.encoder import E5Encoder
    from index.matching import stand_in_texts

    original = "紧急扩散！隔夜菜千万不能吃，吃了会致癌，赶紧转给家里人看看"
    variant = "//@老王:是真的吗 " + original + "转发周知"
    other = "市气象台今天发布高温黄色预警，提醒市民注意防暑降温"
    with store.session() as s:
        a, _ = add_claim(s, ClaimIn(source="weibo", text=original))
        b, new = add_claim(s, ClaimIn(source="douyin", text=variant))
        c, _ = add_claim(s, ClaimIn(source="weibo", text=other))
        assert new and b.id != a.id and b.cluster_id == a.cluster_id and c.cluster_id != a.cluster_id
        # A member whose text is far from the representative (clusters grow by chains) borrows nothing.
        far, _ = add_claim(s, ClaimIn(source="weibo", text="量子水杯能治百病，每天喝可以包治高血压糖尿病"))
        far.cluster_id = a.cluster_id
        s.flush()
        assert stand_in_texts(s, [a, b, c, far]) == [None, original, None, None]
        assert stand_in_texts(s, [b], threshold=0.99) == [None]
        claims = [b, c, far]
        stand_ins = stand_in_texts(s, claims)
    matcher = Matcher(indexed, encoder=E5Encoder(max_chars=128), top_k=3)
    enc = matcher.encoder
    (va,) = matcher.query_vectors([original])
    assert enc.encoded == 1
    vb, vc, vfar = matcher.query_vectors([x.text for x in claims], stand_ins)
    assert enc.encoded == 3  # the unrelated claim and the far member, not the variant
    assert vb is not None and np.array_equal(vb, va)
    assert vc is not None and vfar is not None and not np.allclose(vc, va) and not np.allclose(vfar, va)
    # Matching the variant with the borrowed vector is matching it with that vector explicitly.
    assert [(m.url, m.score) for m in matcher.match(variant, vector=vb)] == [(m.url, m.score) for m in matcher.match(variant, vector=va)]
    # Once the variant's own vector is cached, it is used rather than the representative's.
    own = E5Encoder(max_chars=128).encode([variant])[0]
    enc.encode([variant])
    (again,) = matcher.query_vectors([variant], [original])
    assert again is not None and np.allclose(again, own, atol=1e-6) and not np.array_equal(again, va)
    # Without stand-ins (or with dense retrieval off) nothing is borrowed.
    matcher2 = Matcher(indexed, encoder=E5Encoder(max_chars=128), top_k=3)
    matcher2.query_vectors([original])
    (plain,) = matcher2.query_vectors([variant])
    assert matcher2.encoder.encoded == 2 and not np.array_equal(plain, va)
    assert Matcher(indexed, use_dense=False).query_vectors([variant], [original]) == [None]
