"""DebunkWriter and add_claim: de-duplication, sightings, outbox rows and audit events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from store.db import Store
from store.importer import import_debunks
from store.models import AuditEvent, Claim, Debunk, IndexOutbox
from store.records import ClaimIn, DebunkIn
from store.writes import DebunkWriter, add_claim

JSONL = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "debunks" / "articles.jsonl"

VINEGAR = (
    "食醋的主要成分是醋酸，作为调味料合理摄入能开胃、消食。但摄入的醋酸不会溶解血液中的物质，"
    "没有实验证明喝醋能起到降低血脂和软化血管的作用。相反，直接喝醋可能对口腔和食道造成刺激。"
)
GARLIC = (
    "大蒜炝锅确实会产生致癌物丙烯酰胺，但数量极少，该物质为2A级致癌物，不属于已知对人类有致癌能力的1级致癌物。"
    "动物试验表明，丙烯酰胺具有潜在的神经毒性、遗传毒性和致癌性，但日常烹调产生的量远不足以危害健康。"
)


def _item(url: str, title: str, text: str, source: str = "测试源") -> DebunkIn:
    return DebunkIn(url=url, title=title, text=text, source=source, published=dt.date(2018, 10, 12))


# --------------------------------------------------------------------------- claims
def test_add_claim_same_text_twice_counts_a_sighting(store) -> None:
    text = "喝醋能软化血管，每天一杯醋，血管年轻十岁！"
    with store.session() as s:
        first, created1 = add_claim(s, ClaimIn(source="weibo", text=text))
        second, created2 = add_claim(s, ClaimIn(source="weibo", text="  " + text + "\n"))
        assert (created1, created2) == (True, False)
        assert first.id == second.id
    with store.session() as s:
        claims = list(s.scalars(select(Claim)))
        outbox = list(s.scalars(select(IndexOutbox)))
    assert len(claims) == 1
    assert claims[0].sightings == 2
    assert claims[0].last_seen >= claims[0].first_seen
    assert claims[0].status == "new" and claims[0].score is None
    # Only the first sighting is a new document for the index.
    assert [(o.doc_kind, o.doc_id, o.op) for o in outbox] == [("claim", claims[0].id, "upsert")]


def test_add_claim_same_external_id_is_one_claim(store) -> None:
    with store.session() as s:
        add_claim(s, ClaimIn(source="feed", external_id="guid-1", text="大蒜炝锅会致癌"))
        add_claim(s, ClaimIn(source="feed", external_id="guid-1", text="大蒜炝锅会致癌！转发给家人"))
        add_claim(s, ClaimIn(source="feed", external_id="guid-2", text="电磁炉辐射会致癌"))
    with store.session() as s:
        rows = {c.external_id: c.sightings for c in s.scalars(select(Claim))}
    assert rows == {"guid-1": 2, "guid-2": 1}


# --------------------------------------------------------------------------- debunks
def test_writer_outcomes(store) -> None:
    with store.session() as s:
        w = DebunkWriter(s)
        a = w.add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR))
        same = w.add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR))
        changed = w.add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR + "专家补充：醋不能代替药物。"))
        other_article_same_url = w.add(_item("https://example.org/vinegar", "大蒜炝锅真的致癌吗？", GARLIC))
        near = w.add(_item("https://mirror.example.com/garlic", "大蒜炝锅真的致癌吗？", GARLIC + "。"))
        bad = w.add(_item("ftp://example.org/x", "标题", VINEGAR))
        empty = w.add(_item("https://example.org/e", "  ", "   "))
    assert (a.outcome, same.outcome, changed.outcome) == ("imported", "unchanged", "updated")
    assert same.debunk_id == changed.debunk_id == a.debunk_id
    assert other_article_same_url.outcome == "imported"  # several articles may share one URL
    assert (near.outcome, near.reason, near.duplicate_of) == ("rejected", "near_duplicate", other_article_same_url.debunk_id)
    assert (bad.outcome, bad.reason) == ("rejected", "bad_url")
    assert (empty.outcome, empty.reason) == ("rejected", "empty")
    assert dict(w.counts) == {
        "imported": 2, "unchanged": 1, "updated": 1, "rejected:near_duplicate": 1, "rejected:bad_url": 1, "rejected:empty": 1,
    }  # fmt: skip


def test_near_duplicates_are_found_across_writers(store) -> None:
    """Signatures are stored: a later run (a new writer) still sees earlier articles."""
    with store.session() as s:
        first = DebunkWriter(s).add(_item("https://example.org/garlic", "大蒜炝锅真的致癌吗？", GARLIC))
    with store.session() as s:
        res = DebunkWriter(s).add(_item("https://other.example.net/garlic", "大蒜炝锅真的致癌吗？", GARLIC + "（转载）"))
        again = DebunkWriter(s).add(_item("https://example.org/garlic", "大蒜炝锅真的致癌吗？", GARLIC))
    assert (res.outcome, res.reason, res.duplicate_of) == ("rejected", "near_duplicate", first.debunk_id)
    assert again.outcome == "unchanged"


def test_audit_events_for_import_and_update(store) -> None:
    with store.session() as s:
        w = DebunkWriter(s, actor="editor-li")
        a = w.add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR))
        w.add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR))  # unchanged: no event
        w.add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR + "专家补充：醋不能代替药物。", source="新来源"))
    with store.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        row = s.get(Debunk, a.debunk_id)
    assert [(e.action, e.object_type, e.object_id, e.actor) for e in events] == [
        ("debunk.imported", "debunk", a.debunk_id, "editor-li"),
        ("debunk.updated", "debunk", a.debunk_id, "editor-li"),
    ]
    imported, updated = events
    assert imported.old is None
    assert imported.new == {"url": "https://example.org/vinegar", "title": "喝醋能软化血管吗？", "source": "测试源"}
    assert updated.old["source"] == "测试源" and updated.new["source"] == "新来源"
    assert updated.old["content_hash"] != updated.new["content_hash"] == row.content_hash
    assert all(e.at is not None for e in events)


def test_import_writes_one_audit_event_per_import_or_update(store) -> None:
    report = import_debunks(store, [JSONL])
    with store.session() as s:
        events = list(s.scalars(select(AuditEvent)))
        ids = set(s.scalars(select(Debunk.id)))
    assert len(events) == report.imported == 6
    assert {e.action for e in events} == {"debunk.imported"}
    assert {e.actor for e in events} == {"import"}
    assert {e.object_id for e in events} == ids


def test_rolled_back_write_leaves_no_audit_or_outbox(store) -> None:
    try:
        with store.session() as s:
            DebunkWriter(s).add(_item("https://example.org/vinegar", "喝醋能软化血管吗？", VINEGAR))
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    with store.session() as s:
        assert s.scalars(select(Debunk)).all() == []
        assert s.scalars(select(AuditEvent)).all() == []
        assert s.scalars(select(IndexOutbox)).all() == []


def test_nul_characters_and_overlong_values_store_on_every_database(store: Store) -> None:
    """PostgreSQL refuses NUL characters and over-long VARCHARs that SQLite would keep."""
    with store.session() as s:
        w = DebunkWriter(s)
        ok = w.add(DebunkIn(url="https://example.org/nul", title="标题\x00含空字符", text="正文\x00里也有空字符，内容足够长。", source="来" * 500))
        too_long = w.add(DebunkIn(url="https://example.org/" + "a" * 3000, title="超长链接", text="一篇正常的文章内容", source="s"))
        claim, created = add_claim(s, ClaimIn(source="s" * 300, text="说法\x00文本", url="https://example.org/" + "b" * 3000, external_id="x" * 400))
    assert ok.outcome == "imported" and too_long.outcome == "rejected" and too_long.reason == "bad_url"
    with store.session() as s:
        row = s.get(Debunk, ok.debunk_id)
        assert row is not None and "\x00" not in row.title + row.text and len(row.source) == 200
        c = s.get(Claim, claim.id)
        assert c is not None and created and c.url is None and c.text == "说法文本" and len(c.external_id) == 300
