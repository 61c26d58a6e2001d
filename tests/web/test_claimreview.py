"""schema.org ClaimReview export of confirmed verdicts, over the real app and the seeded store."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from review.claimreview import claim_reviews, dumps
from review.decisions import record_decision
from store.db import Store
from store.models import ClaimMatch
from store.records import ClaimIn
from store.writes import add_claim
from tests.web.seed import CLAIMS


def _first_match(store: Store, claim_id: int) -> tuple[int, str]:
    with store.session() as s:
        m = s.scalar(select(ClaimMatch).where(ClaimMatch.claim_id == claim_id).order_by(ClaimMatch.rank).limit(1))
        assert m is not None
        return m.debunk_id, m.debunk.url


def decide_seeded(store: Store, seeded: dict[str, Any]) -> dict[str, Any]:
    """Rumor (with a linked debunk), misleading (none linked), credible, unproven, the hostile claim as rumor,
    and one long claim as pseudoscience."""
    c = seeded["claims"]
    debunk_id, debunk_url = _first_match(store, c[0])
    record_decision(store, c[0], "rumor", editor="ed", debunk_ids=[debunk_id])
    record_decision(store, c[1], "misleading", editor="ed")
    record_decision(store, c[2], "credible", editor="ed")
    record_decision(store, c[3], "rumor", editor="eve")
    record_decision(store, c[4], "unproven", editor="eve")
    with store.session() as s:
        long, _ = add_claim(s, ClaimIn(source="weibo", text="据说" + "量子能量" * 300, external_id="long-1",
                                       url="https://weibo.example/long"))
        long_id = long.id
    record_decision(store, long_id, "pseudoscience", editor="ed")
    return {"linked_url": debunk_url, "long": long_id}


def test_export_holds_the_confirmed_verdicts_as_claimreview(client: TestClient, store: Store, seeded: dict[str, Any],
                                                            accounts: dict[str, Any]) -> None:
    facts = decide_seeded(store, seeded)
    c = seeded["claims"]
    r = client.get("/api/v1/claimreview", headers={"Authorization": f"Bearer {accounts['acme_token']}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    data = json.loads(r.text)
    assert isinstance(data, list)
    by_id = {int(x["identifier"].rsplit("-", 1)[1]): x for x in data}
    # Credible and unproven are not confirmed rumors: left out.
    assert set(by_id) == {c[0], c[1], c[3], facts["long"]}
    for x in data:
        assert x["@context"] == "https://schema.org" and x["@type"] == "ClaimReview"
        assert x["inLanguage"] == "zh-CN"
        assert x["author"] == {"@type": "Organization", "name": "科学辟谣 piyao"}
        assert dt.datetime.fromisoformat(x["datePublished"].replace("Z", "+00:00"))
        assert x["itemReviewed"]["@type"] == "Claim" and x["itemReviewed"]["datePublished"]
        rating = x["reviewRating"]
        assert rating["@type"] == "Rating" and rating["bestRating"] == 5 and rating["worstRating"] == 1
        assert 1 <= rating["ratingValue"] <= 5 and len(x["claimReviewed"]) <= 500
    rumor = by_id[c[0]]
    assert rumor["claimReviewed"] == CLAIMS[0]["text"]
    assert rumor["reviewRating"]["ratingValue"] == 1 and rumor["reviewRating"]["alternateName"] == "谣言"
    assert rumor["url"] == facts["linked_url"]
    assert rumor["itemReviewed"]["appearance"] == [{"@type": "CreativeWork", "url": "https://example.org/post/0"}]
    assert rumor["itemReviewed"]["firstAppearance"] == {"@type": "CreativeWork", "url": "https://example.org/post/0"}
    misleading = by_id[c[1]]
    assert misleading["reviewRating"]["ratingValue"] == 2 and misleading["reviewRating"]["alternateName"] == "误导/有失实"
    assert "url" not in misleading  # no debunk linked
    assert by_id[facts["long"]]["reviewRating"]["alternateName"] == "伪科学"
    assert len(by_id[facts["long"]]["claimReviewed"]) == 500
    # The hostile claim: its javascript: URL is no appearance, and its markup cannot close a <script> element.
    hostile = by_id[c[3]]
    assert "appearance" not in hostile["itemReviewed"] and "firstAppearance" not in hostile["itemReviewed"]
    assert "<script>" in hostile["claimReviewed"]
    assert "<" not in r.text and ">" not in r.text
    assert "javascript:" not in json.dumps([x.get("url") for x in data] + [x["itemReviewed"] for x in data])


def test_export_pages_by_since_and_limit(client: TestClient, store: Store, seeded: dict[str, Any], accounts: dict[str, Any],
                                         login_as: Any) -> None:
    decide_seeded(store, seeded)
    viewer, _ = login_as("viewer")
    everything = json.loads(viewer.get("/api/v1/claimreview").text)
    assert len(everything) == 4
    first_two = json.loads(viewer.get("/api/v1/claimreview?limit=2").text)
    rest = json.loads(viewer.get("/api/v1/claimreview?limit=2&offset=2").text)
    assert first_two + rest == everything
    dates = [x["datePublished"] for x in everything]
    assert dates == sorted(dates)
    assert json.loads(viewer.get("/api/v1/claimreview?since=2999-01-01T00:00:00Z").text) == []
    later = json.loads(viewer.get("/api/v1/claimreview", params={"since": dates[-1]}).text)
    assert later and later[-1] == everything[-1]
    assert client.get("/api/v1/claimreview").status_code == 401
    assert viewer.get("/api/v1/claimreview?limit=0").status_code == 422
    assert viewer.get("/api/v1/claimreview?since=soon").status_code == 422


def test_a_later_dismissal_withdraws_the_claimreview(store: Store, seeded: dict[str, Any]) -> None:
    c = seeded["claims"]
    record_decision(store, c[0], "rumor", editor="ed")
    assert [x["identifier"] for x in claim_reviews(store)] == [f"piyao-claim-{c[0]}"]
    record_decision(store, c[0], "credible", editor="eve")
    assert claim_reviews(store) == []


def test_dumps_is_safe_inside_a_script_element() -> None:
    text = dumps({"claimReviewed": "</script><script>alert(1)</script> & more"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"claimReviewed": "</script><script>alert(1)</script> & more"}
