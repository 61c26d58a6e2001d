"""The review queue page over the real app and store: order, filters, paging, keyboard hooks, bulk actions."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from review.editorial import set_urgent
from review.queue import QueueFilters, query_queue
from store.db import Store
from store.models import AuditEvent, Claim, Review
from store.records import ClaimIn
from store.writes import add_claim
from tests.web.conftest import web_settings

PAGE = 5


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    """Five rows a page (the smallest page_size allowed), so that paging shows with a small working set."""
    return web_settings(tmp_path, db_url, page_size=PAGE)


def row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-claim-id="(\d+)"', html)]


def add_queued(store: Store, text: str, *, source: str = "weibo", score: float = 0.7, topic: str = "other",
               label: str = "rumor", seen: dt.datetime, status: str = "queued") -> int:
    with store.session() as s:
        claim, created = add_claim(s, ClaimIn(source=source, text=text, external_id=f"t-{abs(hash(text))}"), seen_at=seen)
        assert created
        claim.score, claim.label, claim.topic, claim.flagged, claim.status = score, label, topic, True, status
        s.flush()
        return claim.id


def test_queue_orders_by_priority_with_urgent_first(seeded: dict[str, Any], store: Store,
                                                    login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    ids = seeded["claims"]
    viewer, _ = login_as("viewer")
    page = viewer.get("/queue")
    assert page.status_code == 200
    # Scores 0.93 … 0.62 with 12, 5, 3, 2, 1 sightings: score × sightings × recency puts them in seed order.
    assert row_ids(page.text) == ids
    assert "共 5 条" in page.text
    set_urgent(store, ids[4], True, editor="ed")
    page = viewer.get("/queue")
    assert row_ids(page.text) == [ids[4]] + ids[:4]
    assert re.search(rf'<tr data-claim-id="{ids[4]}"[^>]*class="urgent-row"', page.text)
    # Uncertainty: closest to 0.5 first (0.62, 0.77, 0.81, 0.88, 0.93), urgent still first.
    set_urgent(store, ids[4], False, editor="ed")
    set_urgent(store, ids[0], True, editor="ed")
    page = viewer.get("/queue?order=uncertainty")
    assert row_ids(page.text) == [ids[0], ids[4], ids[3], ids[2], ids[1]]
    assert f'data-href="/claims/{ids[0]}?order=uncertainty"' in page.text


def test_queue_shows_one_entry_per_cluster(seeded: dict[str, Any], store: Store,
                                           login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    ids = seeded["claims"]
    with store.session() as s:
        head = s.get(Claim, ids[0])
        assert head is not None
        variant, _ = add_claim(s, ClaimIn(source="douyin", text="转给家里人：隔夜菜千万不能吃，吃了会致癌！！", external_id="variant-1"),
                               seen_at=dt.datetime(2026, 11, 28, 3, 0))
        variant.cluster_id, variant.score, variant.status, variant.flagged = head.cluster_id, 0.5, "queued", True
        variant_id = variant.id
    viewer, _ = login_as("viewer")
    ids_on_page = row_ids(viewer.get("/queue").text)
    assert variant_id not in ids_on_page and ids_on_page[0] == ids[0]  # the better variant stands for the cluster
    entries = query_queue(store, QueueFilters(), page_size=10).entries
    assert entries[0].claim_id == ids[0] and entries[0].cluster_size >= 1


def test_queue_filters(seeded: dict[str, Any], store: Store, login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    ids = seeded["claims"]
    viewer, _ = login_as("viewer")
    assert sorted(row_ids(viewer.get("/queue?topic=food_safety").text)) == sorted(ids[:3])
    assert sorted(row_ids(viewer.get("/queue?source=wechat").text)) == sorted([ids[1], ids[4]])
    assert row_ids(viewer.get("/queue?label=pseudoscience").text) == [ids[4]]
    assert row_ids(viewer.get("/queue?topic=food_safety&source=douyin").text) == [ids[2]]
    # Status: decided claims leave the default view and show under their status and "all".
    with store.session() as s:
        c = s.get(Claim, ids[1])
        assert c is not None
        c.status = "confirmed"
    assert ids[1] not in row_ids(viewer.get("/queue").text)
    assert row_ids(viewer.get("/queue?status=confirmed").text) == [ids[1]]
    assert row_ids(viewer.get("/queue?status=dismissed").text) == []
    assert sorted(row_ids(viewer.get("/queue?status=all").text)) == sorted(ids)
    page = viewer.get("/queue?status=confirmed")
    assert '<option value="confirmed" selected>' in page.text


def test_queue_date_range_is_in_beijing_days(seeded: dict[str, Any], store: Store,
                                             login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    # 2026-10-01 17:30 UTC is 2026-10-02 01:30 in Beijing.
    late = add_queued(store, "据说用微波炉加热的食物会产生辐射，长期吃会得白血病", seen=dt.datetime(2026, 10, 1, 17, 30))
    early = add_queued(store, "有人说吃香蕉能治好便秘，每天三根就够了，不用去医院", seen=dt.datetime(2026, 10, 1, 3, 0))
    viewer, _ = login_as("viewer")
    assert row_ids(viewer.get("/queue?date_from=2026-10-02&date_to=2026-10-02").text) == [late]
    assert row_ids(viewer.get("/queue?date_from=2026-10-01&date_to=2026-10-01").text) == [early]
    assert sorted(row_ids(viewer.get("/queue?date_to=2026-10-31").text)) == sorted([late, early])
    assert sorted(row_ids(viewer.get("/queue?date_from=2026-11-28").text)) == sorted(seeded["claims"])


def test_queue_pages(seeded: dict[str, Any], store: Store, login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    extra = [add_queued(store, text, score=0.55 - 0.01 * i, seen=dt.datetime(2026, 11, 27, 12, 0))
             for i, text in enumerate(["喝红酒可以软化血管，每晚一杯预防心脏病", "手机充电时打电话会爆炸，已经有人被炸伤",
                                       "吃猪蹄可以补充胶原蛋白，让皮肤变好"])]
    viewer, _ = login_as("viewer")
    first = viewer.get("/queue")
    assert len(row_ids(first.text)) == PAGE and "第 1 / 2 页" in first.text and "共 8 条" in first.text
    assert 'href="/queue?page=2"' in first.text
    second = viewer.get("/queue?page=2")
    assert row_ids(second.text) == extra  # lowest priority last
    assert not set(row_ids(first.text)) & set(row_ids(second.text))
    assert row_ids(viewer.get("/queue?page=9").text) == []
    # Filters survive paging.
    assert 'href="/queue?status=all&amp;order=uncertainty&amp;page=2"' not in first.text
    assert 'href="/queue?order=uncertainty&amp;status=all&amp;page=2"' in viewer.get("/queue?status=all&order=uncertainty").text
    assert row_ids(viewer.get("/queue?topic=other&page=1").text) == extra


@pytest.mark.parametrize("query, message", [
    ("date_from=2026-13-01", "YYYY-MM-DD"),
    ("date_to=yesterday", "YYYY-MM-DD"),
    ("date_from=2026-11-02&date_to=2026-11-01", "起始日期晚于截止日期"),
    ("status=deleted", "未知的状态"),
    ("order=random", "排序方式"),
    ("topic=cooking", "未知的主题"),
    ("page=0", "输入有误"),
    ("source=" + "x" * 201, "输入有误"),
])
def test_bad_queue_filters_get_a_clear_error(query: str, message: str, accounts: dict[str, Any],
                                             login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    viewer, _ = login_as("viewer")
    r = viewer.get(f"/queue?{query}", headers={"accept": "text/html"})  # as a browser asks
    assert r.status_code == 422 and message in r.text and 'class="error"' in r.text
    assert "Traceback" not in r.text


def test_queue_keyboard_hooks_and_roles(seeded: dict[str, Any], login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    viewer, _ = login_as("viewer")
    page = viewer.get("/queue").text
    assert '<script src="/static/queue.js" defer></script>' in page
    for key in "jkox":
        assert f'data-key="{key}" data-key-help=' in page
    assert "data-bulk" not in page and "/queue/bulk" in page and 'value="dismiss"' not in page  # no actions for viewers
    editor, _ = login_as("editor")
    page = editor.get("/queue").text
    assert page.count("data-bulk") == 5 and "data-select-all" in page and 'value="dismiss"' in page
    js = viewer.get("/static/queue.js")
    assert js.status_code == 200 and 'input[name="debunk_ids"]' in js.text and "tr[data-claim-id]" in js.text


def _versions(store: Store, ids: list[int]) -> dict[int, int]:
    with store.session() as s:
        return {c.id: c.version for c in s.scalars(select(Claim).where(Claim.id.in_(ids)))}


def test_bulk_actions_decide_and_audit_each_claim(seeded: dict[str, Any], store: Store,
                                                  login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    ids = seeded["claims"]
    editor, csrf = login_as("editor")
    v = _versions(store, ids)
    r = editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "dismiss", "back": "status=queued&page=1",
                                         "claim": [f"{ids[3]}:{v[ids[3]]}", f"{ids[4]}:{v[ids[4]]}"]})
    assert r.status_code == 303 and r.headers["location"] == "/queue?status=queued&page=1"
    page = editor.get(r.headers["location"]).text
    assert re.search(r'class="notice"[^>]*>批量排除（误报）：已处理 2 条', page)
    assert row_ids(page) == ids[:3]
    r = editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "urgent", "claim": [f"{ids[2]}:{v[ids[2]]}"]})
    assert r.status_code == 303
    assert row_ids(editor.get("/queue").text)[0] == ids[2]
    r = editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "needs_debunk", "claim": [f"{ids[1]}:{v[ids[1]]}"]})
    assert r.status_code == 303
    with store.session() as s:
        status = {c.id: (c.status, c.urgent) for c in s.scalars(select(Claim).where(Claim.id.in_(ids)))}
        assert status[ids[3]] == ("dismissed", False) and status[ids[4]] == ("dismissed", False)
        assert status[ids[2]] == ("queued", True) and status[ids[1]][0] == "needs_debunk"
        reviews = s.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.claim_id, r.verdict, r.editor) for r in reviews] == [
            (ids[3], "credible", "ed"), (ids[4], "credible", "ed"), (ids[1], "unproven", "ed")]
        events = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(["claim.reviewed", "claim.urgent"]))
                           .order_by(AuditEvent.id)).all()
        assert [(e.action, e.object_id, e.actor) for e in events] == [
            ("claim.reviewed", ids[3], "ed"), ("claim.reviewed", ids[4], "ed"), ("claim.urgent", ids[2], "ed"),
            ("claim.reviewed", ids[1], "ed")]
        assert events[0].old["status"] == "queued" and events[0].new["status"] == "dismissed"
        assert events[2].old == {"urgent": False} and events[2].new == {"urgent": True}


def test_bulk_reports_claims_changed_meanwhile_and_keeps_them(seeded: dict[str, Any], store: Store,
                                                              login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    ids = seeded["claims"]
    ed, ed_csrf = login_as("editor")
    eve, eve_csrf = login_as("editor2")
    queue_page = ed.get("/queue").text  # ed loads the queue: the versions ride in the checkboxes
    boxes = {int(cid): value for value, cid in re.findall(r'name="claim" value="((\d+):\d+)"', queue_page)}
    # eve confirms ids[1] first.
    claim_page = eve.get(f"/claims/{ids[1]}").text
    version = re.search(r'name="version" value="(\d+)"', claim_page).group(1)  # type: ignore[union-attr]
    assert eve.post(f"/claims/{ids[1]}/confirm", data={"csrf_token": eve_csrf, "version": version,
                                                        "verdict": "rumor"}).status_code == 303
    r = ed.post("/queue/bulk", data={"csrf_token": ed_csrf, "action": "dismiss",
                                     "claim": [boxes[ids[0]], boxes[ids[1]]]})
    assert r.status_code == 303
    page = ed.get("/queue?status=all").text
    assert "已处理 1 条" in page
    assert re.search(rf'class="error"[^>]*>1 条没有处理，原有结果未被覆盖：#{ids[1]}（编辑 eve 已于 [^）]*已确认谣言）', page)
    with store.session() as s:
        assert s.get(Claim, ids[1]).status == "confirmed"  # type: ignore[union-attr]
        assert s.get(Claim, ids[0]).status == "dismissed"  # type: ignore[union-attr]
        assert [(r.claim_id, r.editor) for r in s.scalars(select(Review).order_by(Review.id))] == [
            (ids[1], "eve"), (ids[0], "ed")]


def test_bulk_is_for_editors_and_checks_its_input(seeded: dict[str, Any], store: Store,
                                                  login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    ids = seeded["claims"]
    v = _versions(store, ids)
    viewer, vcsrf = login_as("viewer")
    r = viewer.post("/queue/bulk", data={"csrf_token": vcsrf, "action": "dismiss", "claim": [f"{ids[0]}:{v[ids[0]]}"]})
    assert r.status_code == 403
    editor, csrf = login_as("editor")
    r = editor.post("/queue/bulk", data={"action": "dismiss", "claim": [f"{ids[0]}:{v[ids[0]]}"]})
    assert r.status_code == 403 and "CSRF" in r.text
    assert editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "delete",
                                            "claim": [f"{ids[0]}:{v[ids[0]]}"]}).status_code == 422
    assert editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "dismiss",
                                            "claim": ["1; DROP TABLE claims"]}).status_code == 422
    r = editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "dismiss", "back": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/queue"
    assert "没有选中任何说法" in editor.get("/queue").text
    r = editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "dismiss", "claim": ["999999:1"]})
    assert r.status_code == 303 and "#999999（说法不存在）" in editor.get("/queue").text
    with store.session() as s:
        assert s.scalar(select(func.count(Review.id))) == 0
        assert all(c.status == "queued" for c in s.scalars(select(Claim).where(Claim.id.in_(ids))))


def test_a_bulk_report_of_many_conflicts_keeps_the_session_cookie_small(seeded: dict[str, Any], store: Store,
                                                                        login_as: Callable[[str], tuple[TestClient, str]]) -> None:
    """The report rides in the signed session cookie; a long one would exceed 4 KB and log the editor out."""
    ids = seeded["claims"]
    more = [add_queued(store, f"第{i}条测试说法：喝某种神奇的水可以治百病，赶快转发给家人朋友", seen=dt.datetime(2026, 11, 27, 12, i))
            for i in range(20)]
    editor, csrf = login_as("editor")
    stale = [f"{cid}:0" for cid in ids + more]  # version 0: every claim changed since
    r = editor.post("/queue/bulk", data={"csrf_token": csrf, "action": "dismiss", "claim": stale})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert len(cookie.split(";")[0]) < 3500, len(cookie)
    page = editor.get("/queue")
    assert page.status_code == 200 and re.search(r'class="error"[^>]*>25 条没有处理', page.text)
    with store.session() as s:
        assert s.scalar(select(func.count(Review.id))) == 0
