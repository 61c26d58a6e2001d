"""The audit log page and its export over the real app and store: every event, filters, paging, CSV / JSONL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from review.editorial import confirm_claim, set_urgent
from store.db import Store
from store.models import AuditEvent
from tests.web.seed import claim_version

Login = Callable[[str], tuple[TestClient, str]]


def event_ids(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-event-id="(\d+)"', page)]


def count(store: Store, **where: Any) -> int:
    q = select(func.count(AuditEvent.id))
    for k, v in where.items():
        q = q.where(getattr(AuditEvent, k) == v)
    with store.session() as s:
        return s.scalar(q) or 0


def add_event(store: Store, **fields: Any) -> int:
    with store.session() as s:
        row = AuditEvent(**fields)
        s.add(row)
        s.flush()
        return row.id


@pytest.fixture
def decided(seeded: dict[str, Any], store: Store) -> dict[str, Any]:
    """ed confirms the first claim (linking its best debunk), eve marks the second urgent."""
    ids = seeded["claims"]
    with store.session() as s:
        from store.models import ClaimMatch

        did = s.scalar(select(ClaimMatch.debunk_id).where(ClaimMatch.claim_id == ids[0]).order_by(ClaimMatch.rank).limit(1))
    confirm_claim(store, ids[0], editor="ed", debunk_ids=[did], expected_version=claim_version(store, ids[0]))
    set_urgent(store, ids[1], True, editor="eve", expected_version=claim_version(store, ids[1]))
    return {**seeded, "debunk": did}


def test_audit_page_lists_every_event_newest_first(decided: dict[str, Any], store: Store, login_as: Login) -> None:
    ids = decided["claims"]
    viewer, _ = login_as("viewer")
    r = viewer.get("/audit")
    assert r.status_code == 200
    total = count(store)
    assert total > 20 and f"共 {total} 条" in r.text
    shown = event_ids(r.text)
    with store.session() as s:
        newest = list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(20)))
    assert shown == newest
    # The two decisions on top: who, what, the object's page, old → new.
    first = r.text[r.text.index(f'<tr data-event-id="{shown[0]}"'):r.text.index(f'<tr data-event-id="{shown[1]}"')]
    assert "<td>eve</td>" in first and "紧急标记" in first and f'<a href="/claims/{ids[1]}">说法 #{ids[1]}</a>' in first
    assert '<span class="key">urgent：</span><del>否</del> → <ins>是</ins>' in first
    second = r.text[r.text.index(f'<tr data-event-id="{shown[1]}"'):r.text.index(f'<tr data-event-id="{shown[2]}"')]
    assert "<td>ed</td>" in second and "审核决定" in second
    assert '<span class="key">status：</span><del>queued</del> → <ins>confirmed</ins>' in second
    assert f'<span class="key">linked：</span><del>[]</del> → <ins>[{decided["debunk"]}]</ins>' in second
    # Beijing time: the newest event's UTC time plus eight hours.
    with store.session() as s:
        at = s.scalar(select(AuditEvent.at).where(AuditEvent.id == shown[0]))
    assert f"<td>{(at + dt.timedelta(hours=8)).strftime('%Y-%m-%d %H:%M')}</td>" in first
    # Debunk events written by others are shown the same way, linked to the debunk page.
    assert re.search(r'<a href="/debunks/\d+">辟谣 #\d+</a>', viewer.get("/audit?action=debunk.imported").text)


def test_audit_pages(decided: dict[str, Any], store: Store, login_as: Login) -> None:
    viewer, _ = login_as("viewer")
    total = count(store)
    pages = -(-total // 20)
    seen: list[int] = []
    for n in range(1, pages + 1):
        page = viewer.get(f"/audit?page={n}").text
        assert f"第 {n} / {pages} 页" in page
        seen += event_ids(page)
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen, reverse=True)
    assert 'href="/audit?action=debunk.imported&amp;page=2"' in viewer.get("/audit?action=debunk.imported").text


def test_audit_filters(decided: dict[str, Any], store: Store, login_as: Login) -> None:
    ids = decided["claims"]
    viewer, _ = login_as("viewer")
    assert len(event_ids(viewer.get("/audit?actor=ed").text)) == count(store, actor="ed") == 1
    assert len(event_ids(viewer.get("/audit?action=claim.urgent").text)) == 1
    by_object = viewer.get(f"/audit?object_type=claim&object_id={ids[0]}").text
    assert len(event_ids(by_object)) == count(store, object_type="claim", object_id=ids[0]) == 1
    assert event_ids(viewer.get("/audit?object_type=user&actor=ed").text) == []
    assert len(event_ids(viewer.get("/audit?object_type=user").text)) == count(store, object_type="user")
    # Date range in Beijing days: 2026-01-01 17:30 UTC is 2026-01-02 01:30 in Beijing.
    late = add_event(store, at=dt.datetime(2026, 1, 1, 17, 30), actor="old-editor", action="claim.reviewed",
                     object_type="claim", object_id=ids[2], old={"status": "queued"}, new={"status": "dismissed"})
    early = add_event(store, at=dt.datetime(2026, 1, 1, 3, 0), actor="old-editor", action="claim.reviewed",
                      object_type="claim", object_id=ids[2], old={"status": "queued"}, new={"status": "confirmed"})
    assert event_ids(viewer.get("/audit?date_from=2026-01-02&date_to=2026-01-02").text) == [late]
    assert event_ids(viewer.get("/audit?date_from=2026-01-01&date_to=2026-01-01").text) == [early]
    assert event_ids(viewer.get("/audit?date_to=2026-01-31").text) == [early, late]  # newest id first
    assert set(event_ids(viewer.get("/audit?actor=old-editor&date_from=2026-01-01").text)) == {late, early}
    page = viewer.get("/audit?actor=ed&action=claim.reviewed").text
    assert 'name="actor" value="ed"' in page and '<option value="claim.reviewed" selected>' in page
    assert 'href="/audit/export?actor=ed&amp;action=claim.reviewed&amp;format=csv"' in page


@pytest.mark.parametrize("query, message", [
    ("object_id=abc", "对象编号应为数字"),
    ("date_from=2026-02-30", "YYYY-MM-DD"),
    ("date_from=2026-03-02&date_to=2026-03-01", "起始日期晚于截止日期"),
    ("page=0", "输入有误"),
    ("actor=" + "x" * 101, "输入有误"),
])
def test_bad_audit_filters_get_a_clear_error(query: str, message: str, accounts: dict[str, Any], login_as: Login) -> None:
    viewer, _ = login_as("viewer")
    for path in ("/audit", "/audit/export") if "page=" not in query else ("/audit",):
        r = viewer.get(f"{path}?{query}", headers={"accept": "text/html"})
        assert r.status_code == 422 and message in r.text and "Traceback" not in r.text
    r = viewer.get("/audit/export?format=xml", headers={"accept": "text/html"})
    assert r.status_code == 422 and "csv 或 jsonl" in r.text


def test_hostile_values_in_events_are_escaped(decided: dict[str, Any], store: Store, login_as: Login) -> None:
    add_event(store, actor="crawler", action="debunk.updated", object_type="debunk", object_id=1,
              old={"title": "旧标题"}, new={"title": '<script>window.__pwned=1</script><img src=x onerror="alert(1)">'})
    viewer, _ = login_as("viewer")
    page = viewer.get("/audit?actor=crawler").text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "<script>window" not in page and "<img" not in page


def _export(client: TestClient, query: str) -> Any:
    r = client.get(f"/audit/export?{query}")
    assert r.status_code == 200
    return r


def test_csv_export_opens_in_excel_and_follows_the_filters(decided: dict[str, Any], store: Store, login_as: Login) -> None:
    ids = decided["claims"]
    hostile = add_event(store, actor="=HYPERLINK(\"http://evil.example\")", action="claim.reviewed", object_type="claim",
                        object_id=ids[3], old=None, new={"status": "confirmed", "note": "中文备注"})
    viewer, _ = login_as("viewer")
    r = _export(viewer, "format=csv")
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM Excel needs for Chinese
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == count(store)
    assert list(rows[0]) == ["id", "at_utc", "at_beijing", "actor", "action", "object_type", "object_id", "old", "new"]
    assert [int(x["id"]) for x in rows] == sorted(int(x["id"]) for x in rows)
    by_id = {int(x["id"]): x for x in rows}
    bad = by_id[hostile]
    assert bad["actor"].startswith("'=HYPERLINK")  # a formula is kept as text
    assert json.loads(bad["new"]) == {"status": "confirmed", "note": "中文备注"} and bad["old"] == ""
    reviewed = [x for x in rows if x["action"] == "claim.reviewed" and x["actor"] == "ed"]
    assert len(reviewed) == 1 and json.loads(reviewed[0]["new"])["linked"] == [decided["debunk"]]
    at_utc = dt.datetime.fromisoformat(reviewed[0]["at_utc"].rstrip("Z"))
    assert dt.datetime.fromisoformat(reviewed[0]["at_beijing"]).replace(tzinfo=None) == at_utc + dt.timedelta(hours=8)
    filtered = list(csv.DictReader(io.StringIO(_export(viewer, "format=csv&object_type=claim").content.decode("utf-8-sig"))))
    assert len(filtered) == count(store, object_type="claim") and {x["object_type"] for x in filtered} == {"claim"}


def test_jsonl_export(decided: dict[str, Any], store: Store, login_as: Login) -> None:
    viewer, _ = login_as("viewer")
    r = _export(viewer, "format=jsonl&action=debunk.imported")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == count(store, action="debunk.imported") > 100
    assert all(x["action"] == "debunk.imported" and x["object_type"] == "debunk" for x in lines)
    assert isinstance(lines[0]["new"], dict) and lines[0]["new"]["title"]
    assert [x["id"] for x in lines] == sorted(x["id"] for x in lines)
    empty = _export(viewer, "format=jsonl&actor=nobody")
    assert empty.text == ""


def test_audit_needs_a_login(client: TestClient, accounts: dict[str, Any]) -> None:
    r = client.get("/audit")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert client.get("/audit/export?format=csv").status_code == 303
    r = client.get("/audit", headers={"authorization": f"Bearer {accounts['acme_token']}"})
    assert r.status_code == 403  # partners read no audit log


def test_object_ids_past_the_integer_column_are_a_clear_422(accounts: dict[str, Any], login_as: Login) -> None:
    """Found by the fuzz tests on PostgreSQL: the comparison with an integer column overflowed into a 500."""
    viewer, _ = login_as("viewer")
    for path in ("/audit", "/audit/export"):
        r = viewer.get(path, params={"object_id": "999999999999"})
        assert r.status_code == 422 and "超出范围" in r.text, (path, r.status_code)
        r = viewer.get(path, params={"object_id": "²"})
        assert r.status_code == 422, (path, r.status_code)
