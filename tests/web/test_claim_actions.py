"""The claim page and editors' actions over the real app and store: content, hostile text, decisions with
links, audit rows and webhook outbox rows, urgent marks, optimistic locking between two editors, roles."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text

from review.decisions import ConflictError, record_decision
from store.db import Store
from store.models import AuditEvent, Claim, ClaimMatch, PartnerSubmission, Review, WebhookDelivery
from store.records import ClaimIn
from store.writes import add_claim
from tests.web.seed import CLAIMS, claim_version

Login = Callable[[str], tuple[TestClient, str]]


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser would build them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def form_version(page: str) -> int:
    m = re.search(r'name="version" value="(\d+)"', page)
    assert m, "no version field on the claim page"
    return int(m.group(1))


def matches_of(store: Store, claim_id: int) -> list[ClaimMatch]:
    with store.session() as s:
        return list(s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == claim_id).order_by(ClaimMatch.rank)))


def decisions(store: Store, claim_id: int) -> list[AuditEvent]:
    with store.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.object_type == "claim", AuditEvent.object_id == claim_id,
                                                       AuditEvent.action == "claim.reviewed").order_by(AuditEvent.id)))


# --------------------------------------------------------------------------- the page
def test_claim_page_shows_the_claim_its_cluster_explanation_and_matches(seeded: dict[str, Any], store: Store,
                                                                        login_as: Login) -> None:
    cid = seeded["claims"][0]
    viewer, _ = login_as("viewer")
    r = viewer.get(f"/claims/{cid}")
    assert r.status_code == 200
    page = r.text
    assert CLAIMS[0]["text"] in page and "weibo" in page
    assert 'href="https://example.org/post/0"' in page
    assert "0.930" in page and "谣言" in page and "食品安全" in page and "seed" in page and "待审核" in page
    assert "出现 12 次" in page  # the claim's own sightings; the cluster's line below
    assert re.search(r"共出现 12 次 · 来源 1 个", page)
    assert re.search(r'id="explanation">关键词：<span class="badge">隔夜菜</span>', page)
    matches = matches_of(store, cid)
    assert matches
    for m in matches:
        assert f'href="/debunks/{m.debunk_id}"' in page
    assert '<span class="badge auto">自动匹配</span>' in page and '<span class="badge suggest">建议</span>' in page
    # The evidence passage, with the claim's words marked.
    assert re.search(r'<div class="evidence">[^<]*<mark>[^<]+</mark>', page)
    assert "尚无审核记录" in page
    # Viewers read; they get no action forms.
    assert 'name="debunk_ids"' not in page and 'data-key="c"' not in page
    assert viewer.get("/claims/999999", headers={"accept": "text/html"}).status_code == 404
    assert viewer.get("/claims/abc", headers={"accept": "text/html"}).status_code == 422


def test_claim_page_explanation_of_a_matched_debunk_and_of_odd_json(seeded: dict[str, Any], store: Store,
                                                                    login_as: Login) -> None:
    cid = seeded["claims"][1]
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None
        c.explanation = {"kind": "debunk", "title": "腐乳致癌？<b>假的</b>", "url": "javascript:alert(1)",
                         "source": "科普中国", "similarity": 0.8123}
    viewer, _ = login_as("viewer")
    page = viewer.get(f"/claims/{cid}").text
    assert "与已有辟谣相似" in page and "腐乳致癌？&lt;b&gt;假的&lt;/b&gt;" in page and "0.812" in page
    assert "javascript:alert" not in page
    for odd in ({"kind": "terms", "terms": "not a list"}, {"weird": [1, 2]}, {"kind": "terms", "terms": [None, {"x": 1}]}):
        with store.session() as s:
            c = s.get(Claim, cid)
            assert c is not None
            c.explanation = odd
        r = viewer.get(f"/claims/{cid}")
        assert r.status_code == 200 and "没有可显示的依据" in r.text


def test_hostile_claim_is_shown_only_as_text(seeded: dict[str, Any], login_as: Login) -> None:
    cid = seeded["claims"][3]
    editor, _ = login_as("editor")
    page = editor.get(f"/claims/{cid}").text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "onerror=&#34;window.__pwned=2&#34;" in page or "onerror=&quot;window.__pwned=2&quot;" in page
    assert "<script>window" not in page and "<img" not in page and "<style>body" not in page
    assert "javascript:" not in page.replace("&lt;a href=&#34;javascript:", "").replace("&lt;a href=&quot;javascript:", "")
    tags = tags_of(page)
    for tag, attrs in tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        assert tag not in ("img", "style", "iframe", "object")
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/"), attrs  # type: ignore[union-attr]
        for k in ("href", "src", "action", "formaction"):
            value = attrs.get(k)
            assert value is None or not value.strip().lower().startswith("javascript:"), (tag, attrs)
    link = [a for t, a in tags if t == "a" and a.get("id") == "claim-link"]
    assert link and link[0]["href"] == "#"
    # The same text in the queue is escaped too.
    queue = editor.get("/queue").text
    assert "<script>window" not in queue and "&lt;script&gt;window.__pwned=1" in queue


def test_editor_page_has_the_action_forms_and_keys(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    cid = seeded["claims"][0]
    editor, _ = login_as("editor")
    page = editor.get(f"/claims/{cid}").text
    assert form_version(page) == claim_version(store, cid)
    boxes = re.findall(r'<input type="checkbox" name="debunk_ids" value="(\d+)"', page)
    assert [int(b) for b in boxes] == [m.debunk_id for m in matches_of(store, cid)]
    assert "<kbd>1</kbd>" in page and 'data-key="1…9"' in page
    for key, action in (("c", None), ("d", "dismiss"), ("n", "needs-debunk"), ("u", None)):
        assert f'data-key="{key}"' in page
        if action:
            assert re.search(rf'formaction="/claims/{cid}/{action}" [^>]*data-key="{key}"', page)
    assert re.search(r'<button type="submit" class="primary" id="confirm-button" data-key="c"', page)
    assert f'action="/claims/{cid}/confirm"' in page and f'action="/claims/{cid}/urgent"' in page
    assert '<script src="/static/queue.js" defer></script>' in page


# --------------------------------------------------------------------------- actions
def test_confirm_links_debunks_audits_and_goes_to_the_next_claim(seeded: dict[str, Any], store: Store,
                                                                  login_as: Login) -> None:
    ids = seeded["claims"]
    cid = ids[0]
    editor, csrf = login_as("editor")
    version = form_version(editor.get(f"/claims/{cid}").text)
    matches = matches_of(store, cid)
    first = matches[0].debunk_id
    r = editor.post(f"/claims/{cid}/confirm", data={"csrf_token": csrf, "version": version, "verdict": "misleading",
                                                     "debunk_ids": [first], "topic": "health_wellness", "note": "已有辟谣"})
    assert r.status_code == 303 and r.headers["location"] == f"/claims/{ids[1]}"
    nxt = editor.get(r.headers["location"]).text
    assert re.search(rf'class="notice"[^>]*>说法 #{cid} 已确认为谣言（误导/有失实，关联 1 篇辟谣）', nxt)
    assert editor.get(r.headers["location"]).text.count('class="notice"') == 0  # shown once
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and (c.status, c.topic, c.version) == ("confirmed", "health_wellness", version + 1)
        reviews = s.scalars(select(Review).where(Review.claim_id == cid)).all()
        assert [(r.editor, r.verdict, r.decision, r.debunk_id, r.note) for r in reviews] == [
            ("ed", "misleading", "confirmed", first, "已有辟谣")]
    linked = {m.debunk_id: (m.linked, m.linked_by) for m in matches_of(store, cid)}
    assert linked[first] == (True, "ed")
    assert all(v == (False, None) for k, v in linked.items() if k != first)
    [ev] = decisions(store, cid)
    assert ev.actor == "ed"
    assert ev.old == {"status": "queued", "label": "rumor", "topic": "food_safety", "linked": []}
    assert ev.new["status"] == "confirmed" and ev.new["verdict"] == "misleading" and ev.new["linked"] == [first]
    page = editor.get(f"/claims/{cid}").text
    assert "已确认谣言" in page and re.search(r"<td>ed</td><td>误导/有失实</td>", page)
    assert re.search(rf'name="debunk_ids" value="{first}" checked', page)
    # A new decision replaces the links: the second debunk only.
    second = matches[1].debunk_id
    r = editor.post(f"/claims/{cid}/confirm", data={"csrf_token": csrf, "version": version + 1, "verdict": "rumor",
                                                     "debunk_ids": [second]})
    assert r.status_code == 303
    linked = {m.debunk_id: m.linked for m in matches_of(store, cid)}
    assert linked[second] and not linked[first]
    assert decisions(store, cid)[-1].old["linked"] == [first]


def test_dismiss_and_needs_debunk_clear_links(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    ids = seeded["claims"]
    editor, csrf = login_as("editor")
    cid = ids[2]
    did = matches_of(store, cid)[0].debunk_id
    v = form_version(editor.get(f"/claims/{cid}").text)
    assert editor.post(f"/claims/{cid}/confirm", data={"csrf_token": csrf, "version": v, "debunk_ids": [did]}).status_code == 303
    r = editor.post(f"/claims/{cid}/dismiss", data={"csrf_token": csrf, "version": v + 1, "debunk_ids": [did]})
    assert r.status_code == 303
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and c.status == "dismissed"
        assert s.scalars(select(Review.verdict).where(Review.claim_id == cid).order_by(Review.id)).all() == ["rumor", "credible"]
    assert not any(m.linked for m in matches_of(store, cid))
    assert decisions(store, cid)[-1].new["linked"] == []
    r = editor.post(f"/claims/{cid}/needs-debunk", data={"csrf_token": csrf, "version": v + 2})
    assert r.status_code == 303
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and c.status == "needs_debunk"
        assert s.scalar(select(Review.verdict).where(Review.claim_id == cid).order_by(Review.id.desc()).limit(1)) == "unproven"


def test_urgent_toggle_is_audited_and_stays_on_the_claim(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    cid = seeded["claims"][4]
    editor, csrf = login_as("editor")
    v = form_version(editor.get(f"/claims/{cid}").text)
    r = editor.post(f"/claims/{cid}/urgent", data={"csrf_token": csrf, "version": v, "urgent": "1"})
    assert r.status_code == 303 and r.headers["location"] == f"/claims/{cid}"
    page = editor.get(f"/claims/{cid}").text
    assert "已标记为紧急" in page and 'id="claim-urgent"' in page and 'name="urgent" value="0"' in page
    r = editor.post(f"/claims/{cid}/urgent", data={"csrf_token": csrf, "version": v + 1, "urgent": "0"})
    assert r.status_code == 303
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and not c.urgent and c.status == "queued"
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "claim.urgent").order_by(AuditEvent.id)).all()
        assert [(e.actor, e.old, e.new) for e in events] == [
            ("ed", {"urgent": False}, {"urgent": True}), ("ed", {"urgent": True}, {"urgent": False})]
        assert s.scalar(select(func.count(Review.id))) == 0  # not a decision
    assert editor.post(f"/claims/{cid}/urgent", data={"csrf_token": csrf, "version": v + 2, "urgent": "yes"},
                       headers={"accept": "text/html"}).status_code == 422


def test_decision_on_a_partner_claim_queues_a_webhook(seeded: dict[str, Any], store: Store, accounts: dict[str, Any],
                                                      login_as: Login) -> None:
    cid = seeded["claims"][1]
    with store.session() as s:
        s.add(PartnerSubmission(partner_id=accounts["acme_id"], claim_id=cid, external_id="acme-post-77"))
        s.add(PartnerSubmission(partner_id=accounts["other_id"], claim_id=cid, external_id="other-9"))  # no webhook URL
    editor, csrf = login_as("editor")
    v = form_version(editor.get(f"/claims/{cid}").text)
    did = matches_of(store, cid)[0].debunk_id
    assert editor.post(f"/claims/{cid}/confirm", data={"csrf_token": csrf, "version": v, "verdict": "rumor",
                                                        "debunk_ids": [did]}).status_code == 303
    with store.session() as s:
        rows = s.scalars(select(WebhookDelivery)).all()
        assert len(rows) == 1
        row = rows[0]
        assert row.partner_id == accounts["acme_id"] and row.status == "pending" and row.event == "claim.reviewed"
        assert row.payload["external_id"] == "acme-post-77" and row.payload["claim_id"] == cid
        assert row.payload["status"] == "confirmed" and row.payload["verdict"] == "rumor"
        assert [d["id"] for d in row.payload["debunks"]] == [did]
    # No decision on a claim nobody submitted: no callback.
    other = seeded["claims"][0]
    v = form_version(editor.get(f"/claims/{other}").text)
    assert editor.post(f"/claims/{other}/dismiss", data={"csrf_token": csrf, "version": v}).status_code == 303
    with store.session() as s:
        assert s.scalar(select(func.count(WebhookDelivery.id))) == 1


def test_a_debunk_matched_only_to_a_variant_can_be_linked(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    head = seeded["claims"][0]
    with store.session() as s:
        h = s.get(Claim, head)
        assert h is not None
        variant, _ = add_claim(s, ClaimIn(source="douyin", text="隔夜菜真的不能吃吗？据说会致癌", external_id="v-1"))
        variant.cluster_id, variant.status, variant.score, variant.flagged = h.cluster_id, "queued", 0.6, True
        vid = variant.id
    did = matches_of(store, head)[1].debunk_id
    editor, csrf = login_as("editor")
    page = editor.get(f"/claims/{vid}").text
    assert "匹配自同簇的其他说法" in page and f'name="debunk_ids" value="{did}"' in page
    r = editor.post(f"/claims/{vid}/confirm", data={"csrf_token": csrf, "version": form_version(page), "debunk_ids": [did]})
    assert r.status_code == 303
    [m] = matches_of(store, vid)
    assert (m.debunk_id, m.linked, m.linked_by) == (did, True, "ed")


@pytest.mark.parametrize("form, status, message", [
    ({"verdict": "credible"}, 422, "结论应为谣言、伪科学或误导"),
    ({"verdict": "rumor", "debunk_ids": ["999999"]}, 422, "辟谣 #999999 不在该说法"),
    ({"verdict": "rumor", "debunk_ids": ["abc"]}, 422, "输入有误"),
    ({"verdict": "rumor", "topic": "cooking"}, 422, "未知的主题"),
    ({"verdict": "rumor", "note": "长" * 5001}, 422, "备注最多 5000 个字符"),
    ({"verdict": "rumor", "version": "x"}, 422, "输入有误"),
])
def test_bad_actions_are_refused_and_change_nothing(seeded: dict[str, Any], store: Store, login_as: Login,
                                                    form: dict[str, Any], status: int, message: str) -> None:
    cid = seeded["claims"][0]
    editor, csrf = login_as("editor")
    data = {"csrf_token": csrf, "version": claim_version(store, cid), **form}
    r = editor.post(f"/claims/{cid}/confirm", data=data, headers={"accept": "text/html"})
    assert r.status_code == status and message in r.text and "Traceback" not in r.text
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and c.status == "queued"
        assert s.scalar(select(func.count(Review.id))) == 0
    assert editor.post("/claims/999999/dismiss", data={"csrf_token": csrf, "version": 1},
                       headers={"accept": "text/html"}).status_code == 404


def test_viewers_and_forged_forms_cannot_act(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    cid = seeded["claims"][0]
    v = claim_version(store, cid)
    viewer, vcsrf = login_as("viewer")
    for action in ("confirm", "dismiss", "needs-debunk"):
        r = viewer.post(f"/claims/{cid}/{action}", data={"csrf_token": vcsrf, "version": v, "verdict": "rumor"},
                        headers={"accept": "text/html"})
        assert r.status_code == 403 and "没有权限" in r.text
    assert viewer.post(f"/claims/{cid}/urgent", data={"csrf_token": vcsrf, "version": v, "urgent": "1"}).status_code == 403
    editor, _ = login_as("editor")
    assert editor.post(f"/claims/{cid}/confirm", data={"csrf_token": "forged", "version": v}).status_code == 403
    anonymous = TestClient(viewer.app, follow_redirects=False)
    r = anonymous.get(f"/claims/{cid}")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and (c.status, c.urgent, c.version) == ("queued", False, v)
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.object_type == "claim")) == 0


# --------------------------------------------------------------------------- optimistic locking
def test_two_editors_the_second_save_is_refused(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    cid = seeded["claims"][0]
    ed, ed_csrf = login_as("editor")
    eve, eve_csrf = login_as("editor2")
    ed_version = form_version(ed.get(f"/claims/{cid}").text)
    eve_version = form_version(eve.get(f"/claims/{cid}").text)
    assert ed_version == eve_version
    did = matches_of(store, cid)[0].debunk_id
    r = eve.post(f"/claims/{cid}/confirm", data={"csrf_token": eve_csrf, "version": eve_version, "verdict": "rumor",
                                                  "debunk_ids": [did]})
    assert r.status_code == 303
    r = ed.post(f"/claims/{cid}/dismiss", data={"csrf_token": ed_csrf, "version": ed_version, "note": "我觉得可信"})
    assert r.status_code == 409
    err = re.search(r'<p class="error"[^>]*>([^<]+)</p>', r.text)
    assert err, r.text[:2000]
    message = html.unescape(err.group(1))
    assert re.fullmatch(r"保存冲突：编辑 eve 已于 (\d\d-\d\d )?\d\d:\d\d 保存了对该说法的审核（状态：已确认谣言）。"
                        r"您的修改没有保存，请查看最新结果后再决定。", message), message
    # The page shows the claim as it is now, with the new version in its forms.
    assert 'id="claim-status">已确认谣言' in r.text and form_version(r.text) == eve_version + 1
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and c.status == "confirmed"
        assert [(x.editor, x.verdict) for x in s.scalars(select(Review).where(Review.claim_id == cid))] == [("eve", "rumor")]
    assert [(e.actor, e.new["status"]) for e in decisions(store, cid)] == [("eve", "confirmed")]
    assert [(m.debunk_id, m.linked_by) for m in matches_of(store, cid) if m.linked] == [(did, "eve")]
    # An urgent mark from an old page is refused the same way.
    r = ed.post(f"/claims/{cid}/urgent", data={"csrf_token": ed_csrf, "version": ed_version, "urgent": "1"})
    assert r.status_code == 409 and "保存冲突" in r.text
    # With the fresh version, ed's decision goes through.
    r = ed.post(f"/claims/{cid}/dismiss", data={"csrf_token": ed_csrf, "version": eve_version + 1})
    assert r.status_code == 303


def test_a_write_between_read_and_save_is_a_conflict(seeded: dict[str, Any], store: Store) -> None:
    """Another transaction commits after the decision read the claim: the versioned UPDATE matches no row."""
    cid = seeded["claims"][0]
    version = claim_version(store, cid)

    def meanwhile(session: Any, flush_context: Any, instances: Any) -> None:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE claims SET version = version + 1, urgent = :u WHERE id = :id"), {"u": True, "id": cid})

    event.listen(store._sessions, "before_flush", meanwhile, once=True)
    with pytest.raises(ConflictError):
        record_decision(store, cid, "rumor", editor="ed", expected_version=version, debunk_ids=[])
    with store.session() as s:
        c = s.get(Claim, cid)
        assert c is not None and (c.status, c.urgent, c.version) == ("queued", True, version + 1)
        assert s.scalar(select(func.count(Review.id))) == 0
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "claim.reviewed")) == 0


def test_keyboard_flow_confirms_the_queue_head_and_moves_on(seeded: dict[str, Any], store: Store, login_as: Login) -> None:
    """What the keys do, as requests: open the head of the queue, tick the first debunk, confirm, land on the next."""
    ids = seeded["claims"]
    editor, csrf = login_as("editor")
    queue = editor.get("/queue").text
    head = re.search(r'<tr data-claim-id="(\d+)" data-href="([^"]+)"', queue)
    assert head and int(head.group(1)) == ids[0]
    page = editor.get(head.group(2)).text
    first_box = re.search(r'name="debunk_ids" value="(\d+)"', page)
    assert first_box
    seen = []
    for _ in range(len(ids)):
        cid = int(re.search(r"<h1>说法 #(\d+)", page).group(1))  # type: ignore[union-attr]
        seen.append(cid)
        box = re.search(r'name="debunk_ids" value="(\d+)"', page)
        data: dict[str, Any] = {"csrf_token": csrf, "version": form_version(page), "verdict": "rumor",
                                "order": "priority"}
        if box:
            data["debunk_ids"] = [box.group(1)]
        r = editor.post(f"/claims/{cid}/confirm", data=data)
        assert r.status_code == 303
        if r.headers["location"] == "/queue":
            break
        page = editor.get(r.headers["location"]).text
    assert seen == ids
    assert "队列已清空" in editor.get("/queue").text
