"""End to end in a real browser: log in, review a claim by keyboard, search, the two-editor conflict,
hostile crawled content staying inert; screenshots of the main pages as test artifacts."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select

from store.models import AuditEvent, Claim, ClaimMatch, Review
from tests.web.browser.conftest import LiveServer, artifacts_dir, log_in, shot
from tests.web.conftest import PASSWORD
from tests.web.seed import CLAIMS


def _claim_id(live_server: LiveServer, needle: str) -> int:
    return int(live_server.seeded["claims"][next(i for i, c in enumerate(CLAIMS) if needle in c["text"])])


def test_login_shows_errors_then_lands_on_the_queue(page: Any, live_server: LiveServer) -> None:
    page.goto("/queue")
    page.wait_for_url("**/login?next=%2Fqueue")
    shot(page, "login")
    page.fill("#username", "ed")
    page.fill("#password", "wrong password")
    page.press("#password", "Enter")
    assert "用户名或密码错误" in page.inner_text(".error")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url("**/queue")
    assert page.locator("tr[data-claim-id]").count() >= 4
    shot(page, "queue")
    assert not page.errors  # type: ignore[attr-defined]


def test_hostile_crawled_content_stays_inert(page: Any, live_server: LiveServer) -> None:
    """The seeded claim carries <script>, an onerror image, a javascript: link and a <style> that hides the body."""
    cid = _claim_id(live_server, "板蓝根")
    log_in(page, "vic")
    for path in ("/queue", f"/claims/{cid}"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("main img").count() == 0, path  # the <img onerror> is text, not an element
        assert page.locator("main style").count() == 0, path
        assert page.locator("main a[href^='javascript:']").count() == 0, path
        assert page.is_visible("main"), path  # the injected CSS did not hide the page
        assert "<script>" in page.inner_text("main"), path  # shown as text, for the editor to read
    # The claim's own link (javascript:…) is rendered harmless.
    hrefs = page.eval_on_selector_all("main a", "els => els.map(e => e.getAttribute('href'))")
    assert not any(h and h.lower().startswith("javascript") for h in hrefs)
    shot(page, "claim-hostile")
    assert not page.errors  # type: ignore[attr-defined]


def test_review_a_claim_end_to_end_by_keyboard(page: Any, live_server: LiveServer) -> None:
    """Login → queue → claim → link the first debunk → confirm, with the keyboard only."""
    keys = 0
    start = time.monotonic()
    page.goto("/login")
    page.keyboard.type("ed")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    keys += 3
    page.wait_for_url("**/queue")
    first = page.locator("tr[data-claim-id]").first
    cid = int(first.get_attribute("data-claim-id"))
    page.keyboard.press("j")
    page.wait_for_selector(f"tr.selected[data-claim-id='{cid}']")  # the row is selected before Enter opens it
    page.keyboard.press("Enter")
    keys += 2
    page.wait_for_url(f"**/claims/{cid}")
    shot(page, "claim")
    page.keyboard.press("1")
    page.keyboard.press("c")
    keys += 2
    page.wait_for_selector(".notice")
    elapsed = time.monotonic() - start
    with live_server.store().session() as s:
        claim = s.get(Claim, cid)
        assert claim is not None and claim.status == "confirmed"
        links = s.scalars(select(ClaimMatch).where(ClaimMatch.claim_id == cid, ClaimMatch.linked.is_(True))).all()
        assert len(links) == 1 and links[0].linked_by == "ed"
        assert s.scalar(select(Review).where(Review.claim_id == cid)).editor == "ed"  # type: ignore[union-attr]
        assert s.scalars(select(AuditEvent).where(AuditEvent.object_type == "claim", AuditEvent.object_id == cid,
                                                  AuditEvent.action == "claim.reviewed")).first() is not None
    (artifacts_dir().parent / "keyboard_review.json").write_text(json.dumps(
        {"claim_id": cid, "keystrokes_after_typing": keys, "seconds": round(elapsed, 2)}))
    assert not page.errors  # type: ignore[attr-defined]


def test_search_debunks_with_highlighting(page: Any, live_server: LiveServer) -> None:
    log_in(page, "vic")
    page.goto("/debunks")
    page.keyboard.press("/")
    page.keyboard.type("腐乳 致癌")
    page.keyboard.press("Enter")
    page.wait_for_selector(".hit")
    assert page.locator(".hit mark").count() >= 1
    assert "腐乳" in page.inner_text(".hit")
    shot(page, "debunk-search")
    page.locator(".hit a[href^='/debunks/']").first.click()
    page.wait_for_url("**/debunks/*")
    shot(page, "debunk")
    assert not page.errors  # type: ignore[attr-defined]


def test_two_editors_one_claim_second_save_conflicts(browser: Any, live_server: LiveServer) -> None:
    cid = _claim_id(live_server, "味精")
    pages = []
    for user in ("ed", "eve"):
        ctx = browser.new_context(base_url=live_server.url, locale="zh-CN")
        pg = ctx.new_page()
        log_in(pg, user)
        pg.goto(f"/claims/{cid}")
        pages.append(pg)
    ed, eve = pages
    ed.keyboard.press("c")  # ed confirms first
    ed.wait_for_selector(".notice")
    eve.keyboard.press("d")  # eve, on the page she loaded before, dismisses
    eve.wait_for_selector(".error")
    message = eve.inner_text(".error")
    assert "冲突" in message and "ed" in message
    shot(eve, "conflict")
    with live_server.store().session() as s:
        claim = s.get(Claim, cid)
        assert claim is not None and claim.status == "confirmed"
        reviews = s.scalars(select(Review).where(Review.claim_id == cid)).all()
        assert [r.editor for r in reviews] == ["ed"]
    for pg in pages:
        pg.context.close()


def test_screenshots_of_the_main_pages(page: Any, live_server: LiveServer) -> None:
    log_in(page, "alice")
    for path, name in [("/stats", "stats"), ("/audit", "audit"), ("/schedules", "schedules"),
                       ("/admin/users", "admin-users"), ("/queue?order=uncertainty", "queue-uncertainty")]:
        resp = page.goto(path)
        assert resp is not None and resp.status == 200, path
        page.wait_for_load_state("networkidle")
        if name == "stats":
            page.wait_for_selector("[id^=chart-] canvas")
        shot(page, name)
    assert not page.errors  # type: ignore[attr-defined]
