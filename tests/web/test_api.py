"""The REST API over the real app, store, classifier (the shipped starter model) and embedded index.

Matching is BM25-only here (matching.dense false): the e5 weights are not needed for the contract.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from index.backend import SearchFilters
from review.intake import IntakeService, intake_for
from settings import load_settings
from store.db import Store
from store.models import AuditEvent, Claim, ClaimMatch, PartnerSubmission, Review, WebhookDelivery
from tests.web.seed import claim_version

MAX_ITEMS = 5
MAX_TEXT = 300
RUMOR = "紧急扩散！隔夜菜千万不能吃，吃了会致癌，赶紧转给家里人"
NEWS = "市气象台今天发布高温黄色预警，提醒市民注意防暑降温"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    """The web settings with the fast starter model, BM25-only matching and small intake limits."""
    return load_settings(data_dir=tmp_path / "data", environ={
        "PIYAO_STORE__URL": db_url, "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789",
        "PIYAO_CLASSIFIER__MODEL": "models/starter", "PIYAO_CLASSIFIER__WORKERS": "1",
        "PIYAO_MATCHING__DENSE": "false",
        "PIYAO_WEB__MAX_INTAKE_ITEMS": str(MAX_ITEMS), "PIYAO_WEB__MAX_TEXT_CHARS": str(MAX_TEXT),
    })


@pytest.fixture(scope="module")
def starter_model() -> Any:
    """The starter model, loaded once for the module (one test loads it through the app instead)."""
    from pipeline import Context, load_classifier

    return load_classifier(Context(load_settings(environ={"PIYAO_CLASSIFIER__MODEL": "models/starter",
                                                          "PIYAO_CLASSIFIER__WORKERS": "1"})))


@pytest.fixture
def api(app: Any, store: Store, seeded: dict[str, Any], starter_model: Any) -> dict[str, Any]:
    """The seeded app with the module's loaded model in its intake service."""
    app.state.intake = IntakeService(app.state.settings, store, app.state.heavy.backend, classifier=starter_model)
    return seeded


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(client: TestClient, token: str, *items: dict[str, Any]) -> Any:
    return client.post("/api/v1/claims", json={"items": list(items)}, headers=bearer(token))


# --------------------------------------------------------------------------- intake
def test_intake_classifies_queues_indexes_and_matches_in_one_call(client: TestClient, app: Any, store: Store,
                                                                  seeded: dict[str, Any], accounts: dict[str, Any]) -> None:
    assert getattr(app.state, "intake", None) is None  # this test loads the configured model through the app
    r = submit(client, accounts["acme_token"],
               {"external_id": "post-1", "text": RUMOR, "url": "https://weibo.example/p/1", "published": "2026-11-27T08:00:00+08:00"},
               {"external_id": "post-2", "text": NEWS})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["external_id"] for i in items] == ["post-1", "post-2"]
    rumor, news = items
    assert rumor["new"] and rumor["model_version"].startswith("starter")
    assert rumor["label"] == "rumor" and rumor["flagged"] and rumor["status"] == "queued"
    assert 0.5 <= rumor["score"] <= 1 and rumor["explanation"]["terms"]
    assert news["score"] < rumor["score"] and not news["flagged"] and news["status"] == "new"
    # The matches came in the same call: the overnight-dishes debunks, best first, with their evidence.
    assert rumor["matches"], rumor
    assert "隔夜" in rumor["matches"][0]["title"]
    assert [m["score"] for m in rumor["matches"]] == sorted((m["score"] for m in rumor["matches"]), reverse=True)
    for m in rumor["matches"]:
        assert m["decision"] in ("auto", "suggest", "none") and m["evidence_kind"] and m["url"].startswith("http")
    assert intake_for(app) is app.state.intake and app.state.intake._classifier is not None
    with store.session() as s:
        claim = s.get(Claim, rumor["claim_id"])
        assert claim is not None and claim.source == "partner:acme" and claim.external_id == "post-1"
        assert claim.url == "https://weibo.example/p/1" and claim.published is not None and claim.published.hour == 0
        assert claim.matched_at is not None and claim.classified_at is not None
        assert s.scalar(select(func.count()).select_from(ClaimMatch).where(ClaimMatch.claim_id == claim.id)) == len(rumor["matches"])
        sub = s.scalar(select(PartnerSubmission).where(PartnerSubmission.external_id == "post-1"))
        assert sub is not None and sub.partner_id == accounts["acme_id"] and sub.claim_id == claim.id
        queued = s.scalars(select(AuditEvent).where(AuditEvent.action == "claim.queued", AuditEvent.object_id == claim.id)).all()
        assert len(queued) == 1 and queued[0].actor == "acme"
    # Indexed: the claim is searchable, nothing waits in the outbox.
    hits = app.state.heavy.backend().search("隔夜菜 致癌", limit=20, filters=SearchFilters(kind="claim"))
    assert f"claim:{rumor['claim_id']}" in [h.key for h in hits]
    from index.outbox import backlog

    assert backlog(store) == 0


def test_intake_matches_a_forwarded_variant_with_the_vector_of_the_post_it_copies(client: TestClient, app: Any, store: Store,
                                                                               api: dict[str, Any], accounts: dict[str, Any]) -> None:
    """A new post that joins the cluster of an earlier one (a forward with 转发/@ edits) is stored,
    classified and matched as its own claim, with the earlier post's e5 vector: no encode."""
    from classifier.encoder import E5Encoder
    from index.matching import Matcher

    matcher = Matcher(app.state.heavy.backend(), encoder=E5Encoder(max_chars=128), top_k=3)
    app.state.intake._matcher = matcher
    post = "网传：微波炉热过的牛奶营养全没了，还会产生致癌物质，家里有孩子的千万注意"
    first = submit(client, accounts["acme_token"], {"external_id": "orig", "text": post}).json()["items"][0]
    assert matcher.encoder.encoded == 1
    r = submit(client, accounts["other_token"], {"external_id": "fwd", "text": "//@老王:真的假的 " + post + " 转发周知"})
    assert r.status_code == 200, r.text
    fwd = r.json()["items"][0]
    assert fwd["new"] and fwd["claim_id"] != first["claim_id"] and fwd["label"]
    assert matcher.encoder.encoded == 1
    with store.session() as s:
        a, b = s.get(Claim, first["claim_id"]), s.get(Claim, fwd["claim_id"])
        assert a is not None and b is not None and a.cluster_id == b.cluster_id and b.matched_at is not None
    # A post unlike any earlier one is encoded.
    assert submit(client, accounts["acme_token"], {"external_id": "news", "text": NEWS}).status_code == 200
    assert matcher.encoder.encoded == 2


def test_intake_is_idempotent_per_partner_and_counts_sightings(client: TestClient, store: Store, api: dict[str, Any],
                                                               accounts: dict[str, Any]) -> None:
    first = submit(client, accounts["acme_token"], {"external_id": "dup-1", "text": RUMOR}).json()["items"][0]
    # The same post id again (even with another text) is the stored result, one more sighting.
    again = submit(client, accounts["acme_token"], {"external_id": "dup-1", "text": "完全不同的一段文字，讲的是别的事情"})
    assert again.status_code == 200
    second = again.json()["items"][0]
    assert second["claim_id"] == first["claim_id"] and not second["new"]
    assert second["score"] == first["score"] and second["matches"] == first["matches"]
    with store.session() as s:
        claim = s.get(Claim, first["claim_id"])
        assert claim is not None and claim.sightings == 2 and claim.text == RUMOR
        assert s.scalar(select(func.count()).select_from(PartnerSubmission)) == 1
        assert s.scalar(select(func.count()).select_from(Claim).where(Claim.source == "partner:acme")) == 1
    # Another partner sending the same text gets the same claim, under its own post id.
    other = submit(client, accounts["other_token"], {"external_id": "o-9", "text": RUMOR}).json()["items"][0]
    assert other["claim_id"] == first["claim_id"] and other["external_id"] == "o-9" and not other["new"]
    # One call holding the same post twice answers both with one claim.
    twice = submit(client, accounts["acme_token"], {"external_id": "t-1", "text": NEWS}, {"external_id": "t-1", "text": NEWS})
    a, b = twice.json()["items"]
    assert a["claim_id"] == b["claim_id"] and a["new"] and not b["new"]


def test_intake_by_user_token_uses_the_api_source(client: TestClient, store: Store, api: dict[str, Any],
                                                 accounts: dict[str, Any]) -> None:
    r = submit(client, accounts["ed_token"], {"external_id": "ed-1", "text": "量子水杯能治百病，每天喝可以包治高血压糖尿病"})
    assert r.status_code == 200, r.text
    with store.session() as s:
        claim = s.get(Claim, r.json()["items"][0]["claim_id"])
        assert claim is not None and claim.source == "api:ed"
        assert s.scalar(select(func.count()).select_from(PartnerSubmission)) == 0


@pytest.mark.parametrize("body, loc", [
    ({"items": []}, ["body", "items"]),
    ({"items": [{"external_id": f"x{i}", "text": NEWS} for i in range(MAX_ITEMS + 1)]}, ["body", "items"]),
    ({"items": [{"external_id": "long", "text": "谣" * (MAX_TEXT + 1)}]}, ["body", "items", 0, "text"]),
    ({"items": [{"external_id": "huge", "text": "谣" * 300_000}]}, ["body", "items", 0, "text"]),
    ({"items": [{"external_id": "u", "text": NEWS, "url": "javascript:alert(1)"}]}, ["body", "items", 0, "url"]),
    ({"items": [{"external_id": "u", "text": NEWS, "url": "https://x.example/" + "a" * 2100}]}, ["body", "items", 0, "url"]),
    ({"items": [{"text": NEWS}]}, ["body", "items", 0, "external_id"]),
    ({"items": [{"external_id": "e" * 201, "text": NEWS}]}, ["body", "items", 0, "external_id"]),
    ({"items": [{"external_id": "nul\x00", "text": NEWS}]}, ["body", "items", 0, "external_id"]),
    ({"items": [{"external_id": "blank", "text": "   "}]}, ["body", "items", 0, "text"]),
    ({"items": [{"external_id": "d", "text": NEWS, "published": "yesterday"}]}, ["body", "items", 0, "published"]),
    ({"items": [{"external_id": "x", "text": NEWS, "author": "someone"}]}, ["body", "items", 0, "author"]),
    ({"items": "not a list"}, ["body", "items"]),
    ({}, ["body", "items"]),
])
def test_intake_refuses_bad_input_with_422_naming_the_field(client: TestClient, store: Store, accounts: dict[str, Any],
                                                            body: dict[str, Any], loc: list[Any]) -> None:
    r = client.post("/api/v1/claims", json=body, headers=bearer(accounts["acme_token"]))
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert loc in locs, locs
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 0


def test_intake_refuses_a_body_that_is_not_json(client: TestClient, accounts: dict[str, Any]) -> None:
    r = client.post("/api/v1/claims", content=b"{not json", headers=bearer(accounts["acme_token"]) | {"Content-Type": "application/json"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)


def test_intake_needs_a_partner_or_an_editor(client: TestClient, accounts: dict[str, Any], login_as: Any) -> None:
    item = {"items": [{"external_id": "a", "text": NEWS}]}
    r = client.post("/api/v1/claims", json=item)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/v1/claims", json=item, headers=bearer("py_not-a-token")).status_code == 401
    viewer, csrf = login_as("viewer")
    assert viewer.post("/api/v1/claims", json=item, headers={"X-CSRF-Token": csrf}).status_code == 403
    editor, csrf = login_as("editor")
    assert editor.post("/api/v1/claims", json=item).status_code == 403  # a cookie without the CSRF header


def test_intake_reports_an_unusable_model_as_503_and_keeps_the_posts(client: TestClient, app: Any, store: Store,
                                                                     seeded: dict[str, Any], accounts: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    broken = tmp_path / "no-model"
    app.state.intake = IntakeService(app.state.settings.model_copy(update={"classifier": app.state.settings.classifier.model_copy(
        update={"model": str(broken)})}), store, app.state.heavy.backend)
    r = submit(client, accounts["acme_token"], {"external_id": "m-1", "text": RUMOR})
    assert r.status_code == 503 and "no model" in r.json()["detail"]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(PartnerSubmission)) == 1  # stored; a retry finishes it


def test_concurrent_submissions_of_one_post_make_one_claim(app: Any, store: Store, api: dict[str, Any],
                                                           accounts: dict[str, Any]) -> None:
    from review.accounts import identify_token
    from review.intake import IntakeItem

    me = identify_token(store, accounts["acme_token"])
    assert me is not None
    svc: IntakeService = app.state.intake
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def go() -> None:
        try:
            barrier.wait()
            results.append(svc.submit(me, [IntakeItem(external_id="race-1", text=RUMOR)])[0].claim_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(set(results)) == 1 and len(results) == 3
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(PartnerSubmission)) == 1
        claim = s.get(Claim, results[0])
        assert claim is not None and claim.sightings == 3
        assert s.scalar(select(func.count()).select_from(ClaimMatch).where(ClaimMatch.claim_id == claim.id)) == len(
            {m.debunk_id for m in claim.matches})


# --------------------------------------------------------------------------- reading results
def test_a_partner_reads_only_its_own_claims(client: TestClient, api: dict[str, Any], accounts: dict[str, Any],
                                             login_as: Any) -> None:
    mine = submit(client, accounts["acme_token"], {"external_id": "own-1", "text": RUMOR}).json()["items"][0]
    theirs = submit(client, accounts["other_token"], {"external_id": "their-1", "text": NEWS}).json()["items"][0]
    r = client.get(f"/api/v1/claims/{mine['claim_id']}", headers=bearer(accounts["acme_token"]))
    assert r.status_code == 200
    view = r.json()
    assert view["external_id"] == "own-1" and view["status"] == "queued" and view["verdict"] is None
    assert view["source"] is None and view["version"] is None  # users' fields
    assert view["matches"] and view["debunks"] == []
    # Another partner's claim, a seeded (crawled) claim and a missing one all read the same: 404.
    for cid in (theirs["claim_id"], api["claims"][0], 999_999):
        r = client.get(f"/api/v1/claims/{cid}", headers=bearer(accounts["acme_token"]))
        assert r.status_code == 404 and r.json()["detail"] == "没有这条说法（或无权查看）"
    listed = client.get("/api/v1/claims", headers=bearer(accounts["acme_token"])).json()
    assert [i["claim_id"] for i in listed["items"]] == [mine["claim_id"]] and listed["total"] == 1
    assert client.get("/api/v1/claims?external_id=their-1", headers=bearer(accounts["acme_token"])).json()["items"] == []
    assert client.get("/api/v1/claims?since=2999-01-01T00:00:00Z", headers=bearer(accounts["acme_token"])).json()["total"] == 0
    # Users with a viewer role or more read any claim, with the source and the version.
    viewer, _ = login_as("viewer")
    r = viewer.get(f"/api/v1/claims/{theirs['claim_id']}")
    assert r.status_code == 200 and r.json()["source"] == "partner:other" and r.json()["version"] >= 1
    everything = viewer.get("/api/v1/claims?limit=50").json()
    assert everything["total"] == len(api["claims"]) + 2
    assert client.get("/api/v1/claims?limit=0", headers=bearer(accounts["acme_token"])).status_code == 422
    assert client.get("/api/v1/claims?limit=100000", headers=bearer(accounts["acme_token"])).status_code == 422
    assert client.get("/api/v1/claims/abc", headers=bearer(accounts["acme_token"])).status_code == 422


# --------------------------------------------------------------------------- reviews
def test_review_api_records_a_verdict_and_refuses_a_stale_version(client: TestClient, store: Store, api: dict[str, Any],
                                                                  accounts: dict[str, Any]) -> None:
    posted = submit(client, accounts["acme_token"], {"external_id": "rev-1", "text": RUMOR}).json()["items"][0]
    cid = posted["claim_id"]
    debunk = posted["matches"][0]["debunk_id"]
    version = claim_version(store, cid)
    ok = client.post(f"/api/v1/claims/{cid}/review", headers=bearer(accounts["ed_token"]),
                     json={"verdict": "rumor", "expected_version": version, "debunk_ids": [debunk], "note": "已核实"})
    assert ok.status_code == 200, ok.text
    d = ok.json()
    assert d["status"] == "confirmed" and d["linked"] == [debunk] and d["version"] > version
    # A second editor who loaded the same version: 409, nothing overwritten.
    stale = client.post(f"/api/v1/claims/{cid}/review", headers=bearer(accounts["ed_token"]),
                        json={"verdict": "credible", "expected_version": version})
    assert stale.status_code == 409
    body = stale.json()
    assert body["current_version"] == d["version"] and body["last_change"]["actor"] == "ed"
    with store.session() as s:
        claim = s.get(Claim, cid)
        assert claim is not None and claim.status == "confirmed"
        assert s.scalar(select(func.count()).select_from(Review).where(Review.claim_id == cid)) == 1
        # acme submitted the claim: its signed callback waits in the outbox.
        rows = s.scalars(select(WebhookDelivery)).all()
        assert len(rows) == 1 and rows[0].payload["external_id"] == "rev-1" and rows[0].payload["verdict"] == "rumor"
    # The partner now reads the verdict and the linked debunk.
    view = client.get(f"/api/v1/claims/{cid}", headers=bearer(accounts["acme_token"])).json()
    assert view["verdict"] == "rumor" and view["verdict_name"] == "谣言" and [x["debunk_id"] for x in view["debunks"]] == [debunk]
    # The reviews feed (viewer or more).
    feed = client.get("/api/v1/reviews", headers=bearer(accounts["ed_token"])).json()["items"]
    assert [(x["claim_id"], x["verdict"], x["editor"], x["debunk_id"]) for x in feed] == [(cid, "rumor", "ed", debunk)]
    assert client.get("/api/v1/reviews?since=2999-01-01T00:00:00", headers=bearer(accounts["ed_token"])).json()["items"] == []
    assert client.get("/api/v1/reviews", headers=bearer(accounts["acme_token"])).status_code == 403


def test_review_api_refuses_bad_input_and_wrong_callers(client: TestClient, store: Store, api: dict[str, Any],
                                                        accounts: dict[str, Any], login_as: Any) -> None:
    cid = api["claims"][0]
    version = claim_version(store, cid)
    url = f"/api/v1/claims/{cid}/review"
    good = {"verdict": "rumor", "expected_version": version}
    assert client.post(url, json=good).status_code == 401
    assert client.post(url, json=good, headers=bearer(accounts["acme_token"])).status_code == 403
    viewer, csrf = login_as("viewer")
    assert viewer.post(url, json=good, headers={"X-CSRF-Token": csrf}).status_code == 403
    for bad, field in [({"verdict": "fake", "expected_version": version}, "verdict"),
                       ({"verdict": "rumor"}, "expected_version"),
                       ({"verdict": "rumor", "expected_version": version, "note": "注" * (MAX_TEXT + 1)}, "note"),
                       ({"verdict": "rumor", "expected_version": version, "topic": "astrology"}, "topic")]:
        r = client.post(url, json=bad, headers=bearer(accounts["ed_token"]))
        assert r.status_code == 422 and ["body", field] in [e["loc"] for e in r.json()["detail"]], r.text
    r = client.post(url, json=good | {"debunk_ids": [10**6]}, headers=bearer(accounts["ed_token"]))
    assert r.status_code == 422 and "not matched" in r.json()["detail"]
    assert client.post("/api/v1/claims/999999/review", json=good, headers=bearer(accounts["ed_token"])).status_code == 404
    assert claim_version(store, cid) == version  # nothing was written
    # An editor's browser session works with the CSRF header.
    editor, csrf = login_as("editor")
    r = editor.post(url, json=good | {"verdict": "misleading"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["status"] == "confirmed"


# --------------------------------------------------------------------------- debunk search
def test_debunk_search_returns_plain_snippets_with_highlights(client: TestClient, api: dict[str, Any],
                                                             accounts: dict[str, Any], login_as: Any) -> None:
    r = client.get("/api/v1/debunks", params={"q": "隔夜菜 致癌"}, headers=bearer(accounts["acme_token"]))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and "隔夜" in items[0]["title"] and all(i["url"].startswith("http") for i in items)
    marked = []
    for i in items:
        assert "<mark>" not in i["snippet"] and "&lt;" not in i["snippet"]
        marked += [i["snippet"][a:b] for a, b in i["highlights"]]
    assert marked and set(marked) <= {"隔夜菜", "致癌"}, marked
    src = items[0]["source"]
    only = client.get("/api/v1/debunks", params={"q": "隔夜菜", "source": src}, headers=bearer(accounts["acme_token"])).json()["items"]
    assert only and {i["source"] for i in only} == {src}
    dated = client.get("/api/v1/debunks", params={"q": "隔夜菜", "from": "2024-02-10", "to": "2024-02-28"},
                       headers=bearer(accounts["acme_token"])).json()["items"]
    assert dated and all("2024-02-10" <= i["date"] <= "2024-02-28" for i in dated)
    page = client.get("/api/v1/debunks", params={"q": "致癌", "limit": 2, "offset": 1}, headers=bearer(accounts["acme_token"])).json()
    assert len(page["items"]) == 2 and page["offset"] == 1
    viewer, _ = login_as("viewer")
    assert viewer.get("/api/v1/debunks", params={"q": "腐乳"}).json()["items"][0]["title"] == "经常吃腐乳会致癌？"
    assert client.get("/api/v1/debunks", params={"q": "致癌"}).status_code == 401
    for params in ({"q": "谣" * 201}, {}, {"q": ""}, {"q": "x", "from": "yesterday"}, {"q": "x", "limit": 1000}):
        r = client.get("/api/v1/debunks", params=params, headers=bearer(accounts["acme_token"]))
        assert r.status_code == 422, params


def test_plain_snippet_unescapes_and_locates_marks() -> None:
    from review.web.routes_api import plain_snippet

    text, spans = plain_snippet("…吃&lt;b&gt;<mark>隔夜菜</mark>会<mark>致癌</mark>&amp;")
    assert text == "…吃<b>隔夜菜会致癌&"
    assert [text[a:b] for a, b in spans] == ["隔夜菜", "致癌"]


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    paths = spec["paths"]
    for p in ("/api/v1/claims", "/api/v1/claims/{claim_id}", "/api/v1/claims/{claim_id}/review", "/api/v1/reviews",
              "/api/v1/debunks", "/api/v1/claimreview"):
        assert p in paths, p
    item = spec["components"]["schemas"]["IntakeItem"]["properties"]
    assert item["external_id"]["maxLength"] == 200 and item["url"]["anyOf"][0]["maxLength"] == 2048
