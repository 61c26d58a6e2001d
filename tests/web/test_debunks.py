"""The debunk library over the real app, store (SQLite and PostgreSQL) and embedded index:
search with highlights, filters and pages; hostile crawled text; adding and editing with audit
rows, the index outbox drained at once, optimistic locking, validation; an index outage."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from classifier.text import tokenize
from index.backend import SearchFilters
from index.outbox import backlog, drain
from settings import load_settings
from store.db import Store
from store.models import AuditEvent, Claim, ClaimMatch, Debunk, IndexOutbox
from store.writes import content_hash, enqueue
from tests.web.conftest import login
from tests.web.seed import XSS_TEXT, XSS_URL

Login = Callable[[str], tuple[TestClient, str]]

HIT = re.compile(r'<li class="hit" id="hit-(\d+)"')


def hit_ids(page: str) -> list[int]:
    return [int(x) for x in HIT.findall(page)]


def hit_blocks(page: str) -> list[str]:
    return re.findall(r'<li class="hit".*?</li>', page, re.S)


def link(page: str, rel: str) -> str | None:
    m = re.search(rf'<a href="([^"]+)" rel="{rel}"', page)
    return html.unescape(m.group(1)) if m else None


def all_pages(client: TestClient, url: str, limit: int = 30) -> list[int]:
    """Every hit id, following the "next" links."""
    ids: list[int] = []
    for _ in range(limit):
        r = client.get(url)
        assert r.status_code == 200, r.text[:500]
        ids += hit_ids(r.text)
        nxt = link(r.text, "next")
        if nxt is None:
            return ids
        url = nxt
    raise AssertionError("too many pages")


def store_ids_with(store: Store, word: str, **where: Any) -> set[int]:
    """The stored debunks whose jieba words (as the index sees them) include ``word``."""
    with store.session() as s:
        q = select(Debunk)
        for k, v in where.items():
            q = q.where(getattr(Debunk, k) == v)
        return {d.id for d in s.scalars(q) if word in tokenize(d.title) or word in tokenize(d.text)}


# --------------------------------------------------------------------------- search
def test_search_highlights_and_pages_through_every_hit(login_as: Login, seeded: dict[str, Any], store: Store) -> None:
    client, _ = login_as("viewer")
    r = client.get("/debunks", params={"q": "致癌"})
    assert r.status_code == 200
    blocks = hit_blocks(r.text)
    assert len(blocks) == 20  # settings.web.page_size
    assert all("<mark>致癌</mark>" in b for b in blocks)
    assert 'data-key="/"' in r.text and 'name="q"' in r.text
    # Following "next" visits every article that holds the word, each once.
    ids = all_pages(client, "/debunks?q=%E8%87%B4%E7%99%8C")
    assert len(ids) == len(set(ids))
    assert set(ids) == store_ids_with(store, "致癌")
    last = client.get("/debunks", params={"q": "致癌", "page": 2}).text
    assert f"共 {len(ids)} 条" in last and link(last, "prev") == "/debunks?q=%E8%87%B4%E7%99%8C"


def test_search_filters_by_source_date_and_verdict(login_as: Login, seeded: dict[str, Any], store: Store, app: Any) -> None:
    client, _ = login_as("viewer")
    source = "微博辟谣"
    page = client.get("/debunks", params={"q": "谣言", "source": source})
    assert page.status_code == 200
    got = set(all_pages(client, "/debunks?" + "q=%E8%B0%A3%E8%A8%80&source=" + "%E5%BE%AE%E5%8D%9A%E8%BE%9F%E8%B0%A3"))
    assert got and got == store_ids_with(store, "谣言", source=source)
    nxt = link(page.text, "next")
    if nxt:  # the pager keeps the filters
        assert parse_qs(urlsplit(nxt).query)["source"] == [source]
    # Dates: only articles published inside the range.
    got = set(all_pages(client, "/debunks?q=%E8%B0%A3%E8%A8%80&date_from=2024-01-01&date_to=2024-02-29"))
    with store.session() as s:
        want = {d.id for d in s.scalars(select(Debunk)) if ("谣言" in tokenize(d.title) or "谣言" in tokenize(d.text))
                and d.published and dt.date(2024, 1, 1) <= d.published <= dt.date(2024, 2, 29)}
    assert got and got == want
    # Verdict: the store's verdicts (the index has none); two articles marked as rumors.
    marked = sorted(store_ids_with(store, "致癌"))[:2]
    with store.session() as s:
        for d in s.scalars(select(Debunk).where(Debunk.id.in_(marked))):
            d.verdict = "rumor"
    r = client.get("/debunks", params={"q": "致癌", "verdict": "rumor"})
    assert sorted(hit_ids(r.text)) == marked and "共 2 条" in r.text
    # Without a query: the newest debunks from the store, filtered and counted.
    r = client.get("/debunks", params={"verdict": "rumor"})
    assert sorted(hit_ids(r.text)) == marked
    r = client.get("/debunks", params={"source": source})
    with store.session() as s:
        n = s.scalar(select(func.count()).select_from(Debunk).where(Debunk.source == source))
    assert n > 10 and f"共 {n} 条" in r.text and len(hit_ids(r.text)) == n


def test_browsing_without_a_query_lists_the_newest_first(login_as: Login, seeded: dict[str, Any], store: Store) -> None:
    client, _ = login_as("viewer")
    ids = all_pages(client, "/debunks")
    with store.session() as s:
        dates = {d.id: d.published for d in s.scalars(select(Debunk))}
    assert len(ids) == len(dates) == len(set(ids)) > 100
    dated = [dates[i] for i in ids if dates[i] is not None]
    assert dated == sorted(dated, reverse=True)
    assert all(dates[i] is None for i in ids[len(dated):])  # undated last
    first = client.get("/debunks").text
    assert f"共 {len(dates)} 条" in first and link(first, "prev") is None


def test_bad_queries_get_clear_messages(login_as: Login, seeded: dict[str, Any]) -> None:
    client, _ = login_as("viewer")
    r = client.get("/debunks", params={"q": "谣" * 201})
    assert r.status_code == 422 and "搜索词太长" in r.text and "最多 200 个字" in r.text
    r = client.get("/debunks", params={"q": "谣言", "date_from": "2024-13-01"})
    assert r.status_code == 422 and "起始日期格式应为 YYYY-MM-DD" in r.text
    r = client.get("/debunks", params={"q": "谣言", "verdict": "nonsense"})
    assert r.status_code == 422 and "未知的结论" in r.text
    r = client.get("/debunks", params={"q": "zqxjvbw"})
    assert r.status_code == 200 and not hit_ids(r.text) and "没有找到" in r.text


# --------------------------------------------------------------------------- hostile content
def test_hostile_debunk_is_escaped_and_its_link_disabled(login_as: Login, seeded: dict[str, Any], store: Store, app: Any) -> None:
    with store.session() as s:  # a row from an older import, before URLs were checked
        d = Debunk(url=XSS_URL, title="板蓝根<script>window.__pwned=5</script>", source="hostile<b>src</b>", text=XSS_TEXT,
                   content_hash=content_hash(XSS_TEXT), summary='<img src=x onerror="window.__pwned=6">')
        s.add(d)
        s.flush()
        enqueue(s, "debunk", d.id)
        did = d.id
    drain(store, app.state.heavy.backend())
    client, _ = login_as("viewer")
    for page in (client.get(f"/debunks/{did}").text, client.get("/debunks", params={"q": "板蓝根"}).text,
                 client.get("/debunks").text):
        assert "<script>window" not in page and "<img src=x" not in page and "<a href=\"javascript:" not in page
        assert "<style>body" not in page and "<b>src</b>" not in page
    page = client.get(f"/debunks/{did}").text
    assert 'id="debunk-url" href="#"' in page and "javascript:window.__pwned=4" in page  # shown as text only
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    search = client.get("/debunks", params={"q": "板蓝根"}).text
    block = next(b for b in hit_blocks(search) if f'id="hit-{did}"' in b)
    assert "<mark>板蓝根</mark>" in block and 'href="#"' in block and "&lt;script&gt;" in block


# --------------------------------------------------------------------------- add and edit
FORM = {"title": "喝苏打水能治痛风？专家：不能替代药物", "url": "https://example.org/debunk/soda",
        "source": "科普编辑部", "origin": "", "published": "2026-11-20", "verdict": "misleading",
        "summary": "苏打水不能降尿酸。", "text": "网传喝苏打水可以碱化尿液、治疗痛风。\n医生指出：苏打水里的碳酸氢钠含量很低，不能替代降尿酸药物。"}


def search_keys(app: Any, q: str) -> list[int]:
    return [h.doc_id for h in app.state.heavy.backend().search(q, limit=50, filters=SearchFilters(kind="debunk"))]


def test_editor_adds_a_debunk_found_by_search_at_once(login_as: Login, seeded: dict[str, Any], store: Store, app: Any) -> None:
    client, csrf = login_as("editor")
    assert client.get("/debunks/new").status_code == 200
    r = client.post("/debunks/new", data={**FORM, "csrf_token": csrf})
    assert r.status_code == 303, r.text[:500]
    did = int(re.search(r"/debunks/(\d+)\?saved=created$", r.headers["location"]).group(1))
    with store.session() as s:
        d = s.get(Debunk, did)
        assert d.title == FORM["title"] and d.verdict == "misleading" and d.published == dt.date(2026, 11, 20)
        assert d.text == FORM["text"] and d.summary == FORM["summary"] and d.version == 1
        assert d.content_hash == content_hash(FORM["title"] + "\n" + FORM["text"]) and d.minhash
        events = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "debunk", AuditEvent.object_id == did)).all()
        assert [(e.action, e.actor) for e in events] == [("debunk.created", "ed")]
        assert events[0].new["title"] == FORM["title"] and events[0].new["url"] == FORM["url"]
    assert backlog(store) == 0
    page = client.get(r.headers["location"]).text
    assert "辟谣已添加" in page and "搜索索引暂时无法更新" not in page
    r = client.get("/debunks", params={"q": "苏打水 痛风"})
    assert hit_ids(r.text)[0] == did and "<mark>苏打水</mark>" in r.text
    # The same article twice is refused, with the form kept.
    r = client.post("/debunks/new", data={**FORM, "csrf_token": csrf})
    assert r.status_code == 422 and f"#{did}" in r.text and html.escape(FORM["title"], quote=True) in r.text


def test_edit_audits_changed_fields_and_reindexes(login_as: Login, seeded: dict[str, Any], store: Store, app: Any) -> None:
    client, csrf = login_as("editor")
    with store.session() as s:
        d = s.scalars(select(Debunk).order_by(Debunk.id)).first()
        did, old_title, old_text, version, url, source = d.id, d.title, d.text, d.version, d.url, d.source
        published = d.published.isoformat() if d.published else ""
    form = client.get(f"/debunks/{did}/edit").text
    assert f'name="version" value="{version}"' in form and html.escape(old_title, quote=True) in form
    new_title = "（已更新）锑超标的保温杯会让人中毒"
    data = {"title": new_title, "url": url, "source": source, "origin": "", "published": published, "verdict": "rumor",
            "summary": "编辑核实后补充的摘要", "text": old_text, "version": str(version), "csrf_token": csrf}
    r = client.post(f"/debunks/{did}/edit", data=data)
    assert r.status_code == 303 and r.headers["location"] == f"/debunks/{did}?saved=updated"
    with store.session() as s:
        d = s.get(Debunk, did)
        assert d.title == new_title and d.verdict == "rumor" and d.summary == "编辑核实后补充的摘要" and d.version == version + 1
        e = s.scalars(select(AuditEvent).where(AuditEvent.action == "debunk.updated", AuditEvent.object_id == did)).one()
        assert e.actor == "ed"
        assert e.old == {"title": old_title, "verdict": None, "summary": None}
        assert e.new == {"title": new_title, "verdict": "rumor", "summary": "编辑核实后补充的摘要"}
    assert backlog(store) == 0
    assert search_keys(app, "保温杯 锑超标 已更新")[0] == did
    page = client.get(r.headers["location"]).text
    assert "修改已保存" in page and "修改记录" in page and "编辑核实后补充的摘要" in page
    assert re.search(r"<td>ed</td><td>修改</td>", page)
    # Saving the same values again writes nothing.
    data["version"] = str(version + 1)
    r = client.post(f"/debunks/{did}/edit", data=data)
    assert r.status_code == 303 and r.headers["location"].endswith("saved=unchanged")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "debunk.updated")) == 1
        assert s.get(Debunk, did).version == version + 1


def test_stale_edit_is_a_conflict_and_overwrites_nothing(login_as: Login, seeded: dict[str, Any], store: Store) -> None:
    ed, ed_csrf = login_as("editor")
    eve, eve_csrf = login_as("editor2")
    with store.session() as s:
        d = s.scalars(select(Debunk).order_by(Debunk.id.desc())).first()
        did, version = d.id, d.version
        base = {"url": d.url, "source": d.source, "origin": "", "published": d.published.isoformat() if d.published else "",
                "verdict": "", "summary": "", "text": d.text, "version": str(version)}
    assert 'value="%d"' % version in ed.get(f"/debunks/{did}/edit").text
    assert 'value="%d"' % version in eve.get(f"/debunks/{did}/edit").text
    r = ed.post(f"/debunks/{did}/edit", data={**base, "title": "编辑甲保存的标题", "csrf_token": ed_csrf})
    assert r.status_code == 303
    mine = "编辑乙写了很久的正文，不能丢。\n第二段。"
    r = eve.post(f"/debunks/{did}/edit", data={**base, "title": "编辑乙的标题", "text": mine, "csrf_token": eve_csrf})
    assert r.status_code == 409
    assert "保存冲突" in r.text and "编辑甲保存的标题" in r.text  # the other editor's saved values
    assert html.escape(mine) in r.text and 'value="编辑乙的标题"' in r.text  # her own text kept
    assert f'name="version" value="{version + 1}"' in r.text
    with store.session() as s:
        d = s.get(Debunk, did)
        assert d.title == "编辑甲保存的标题" and d.text == base["text"] and d.version == version + 1
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.object_id == did,
                                                                          AuditEvent.action == "debunk.updated")) == 1
    # Having read the other version, she saves again deliberately.
    r = eve.post(f"/debunks/{did}/edit", data={**base, "title": "编辑乙的标题", "text": mine, "version": str(version + 1),
                                                "csrf_token": eve_csrf})
    assert r.status_code == 303
    with store.session() as s:
        assert s.get(Debunk, did).text == mine.replace("\r\n", "\n")


def test_invalid_input_returns_the_form_with_messages_and_input_kept(login_as: Login, seeded: dict[str, Any], store: Store,
                                                                     settings: Any) -> None:
    client, csrf = login_as("editor")
    with store.session() as s:
        before = s.scalar(select(func.count()).select_from(Debunk))
    long_body = "很长的正文" * (settings.web.max_body_chars // 5) + "多"
    r = client.post("/debunks/new", data={**FORM, "title": "  ", "url": "javascript:alert(1)", "text": long_body,
                                          "published": "2024-02-30", "verdict": "fake", "csrf_token": csrf})
    assert r.status_code == 422
    assert "标题不能为空" in r.text
    assert "链接必须是以 http:// 或 https:// 开头的完整网址" in r.text
    assert f"正文不能超过 {settings.web.max_body_chars} 字" in r.text
    assert "发布日期格式应为 YYYY-MM-DD" in r.text and "结论必须是列表中的一项" in r.text
    assert 'value="javascript:alert(1)"' in r.text and long_body in r.text  # nothing lost
    assert html.escape(FORM["summary"]) in r.text and 'value="科普编辑部"' in r.text
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Debunk)) == before
    # Editing too: the stored row is untouched.
    with store.session() as s:
        d = s.scalars(select(Debunk).order_by(Debunk.id)).first()
        did, title, version = d.id, d.title, d.version
    r = client.post(f"/debunks/{did}/edit", data={**FORM, "title": "", "url": "ftp://example.org/x", "version": str(version),
                                                 "csrf_token": csrf})
    assert r.status_code == 422 and "标题不能为空" in r.text and 'value="ftp://example.org/x"' in r.text
    with store.session() as s:
        assert s.get(Debunk, did).title == title


def test_viewers_cannot_add_or_edit(login_as: Login, seeded: dict[str, Any], store: Store) -> None:
    client, csrf = login_as("viewer")
    with store.session() as s:
        did = s.scalars(select(Debunk.id).order_by(Debunk.id)).first()
    assert client.get("/debunks/new").status_code == 403
    assert client.post("/debunks/new", data={**FORM, "csrf_token": csrf}).status_code == 403
    assert client.get(f"/debunks/{did}/edit").status_code == 403
    assert client.post(f"/debunks/{did}/edit", data={**FORM, "version": "1", "csrf_token": csrf}).status_code == 403
    page = client.get(f"/debunks/{did}")
    assert page.status_code == 200 and f"/debunks/{did}/edit" not in page.text
    assert 'href="/debunks/new"' not in client.get("/debunks").text
    assert client.get("/debunks/999999").status_code == 404


def test_debunk_page_lists_linked_claims(login_as: Login, seeded: dict[str, Any], store: Store) -> None:
    cid = seeded["claims"][0]
    with store.session() as s:
        m = s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == cid).order_by(ClaimMatch.rank)).first()
        m.linked, m.linked_by = True, "ed"
        did = m.debunk_id
        text = s.get(Claim, cid).text
    client, _ = login_as("viewer")
    page = client.get(f"/debunks/{did}").text
    assert f'href="/claims/{cid}"' in page and text in page and "已关联的说法（1）" in page


# --------------------------------------------------------------------------- an index outage
@pytest.fixture
def dead_index_app(tmp_path: Path, db_url: str, store: Store, accounts: dict[str, Any]) -> Any:
    """The app configured with an Elasticsearch node that does not answer (nothing listens on port 9)."""
    from review.web import create_app

    settings = load_settings(data_dir=tmp_path / "dead", environ={
        "PIYAO_STORE__URL": db_url, "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789",
        "PIYAO_INDEX__BACKEND": "elasticsearch", "PIYAO_INDEX__ELASTICSEARCH__HOSTS": "['http://127.0.0.1:9']",
        "PIYAO_INDEX__ELASTICSEARCH__MAX_RETRIES": "0", "PIYAO_INDEX__ELASTICSEARCH__REQUEST_TIMEOUT": "2"})
    application = create_app(settings, store=store)
    yield application
    application.state.heavy.close()


def test_index_outage_keeps_the_write_in_the_outbox(dead_index_app: Any, store: Store) -> None:
    with TestClient(dead_index_app, base_url="http://testserver", follow_redirects=False) as client:
        csrf = login(client, "ed")
        r = client.get("/debunks", params={"q": "隔夜菜"})
        assert r.status_code == 503 and "搜索服务暂时不可用" in r.text and "Traceback" not in r.text
        r = client.post("/debunks/new", data={**FORM, "csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"].endswith("saved=created&index=pending")
        page = client.get(r.headers["location"]).text
        assert "搜索索引暂时无法更新" in page and "辟谣已添加" in page
        did = int(re.search(r"/debunks/(\d+)", r.headers["location"]).group(1))
        with store.session() as s:
            rows = s.scalars(select(IndexOutbox)).all()
            assert [(o.doc_kind, o.doc_id, o.op) for o in rows] == [("debunk", did, "upsert")]
        # Browsing the newest debunks needs no index.
        r = client.get("/debunks")
        assert r.status_code == 200 and did in hit_ids(r.text)
