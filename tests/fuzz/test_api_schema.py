"""schemathesis against the REST API's own OpenAPI document, on SQLite and PostgreSQL.

Every operation of /api/openapi.json gets requests generated from the schema (fitting it and breaking
it), sent as a partner token and as an editor's user token to the real app over the seeded working set,
with the real intake (the starter model, BM25 matching). Each response must be no 5xx and must be
documented: status code, content type and JSON body. bench/fuzz_api.py runs the same checks for
10,000 cases and more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from review.intake import IntakeService
from settings import load_settings
from store.db import Store
from store.models import Claim
from tests.fuzz import api_fuzz
from tests.fuzz.support import examples

# Cases per (operation, identity, generation mode): 7 operations × 3 identities × 2 modes × 6 ≈ 250 a database.
CASES_PER_RUN = examples(6)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    """The web settings with the fast starter model, BM25-only matching and small intake limits (as tests/web/test_api.py)."""
    return load_settings(data_dir=tmp_path / "data", environ={
        "PIYAO_STORE__URL": db_url, "PIYAO_WEB__SECRET_KEY": "test-secret-key-0123456789", "PIYAO_WEB__WEBHOOK_INTERVAL": "0",
        "PIYAO_CLASSIFIER__MODEL": "models/starter", "PIYAO_CLASSIFIER__WORKERS": "1", "PIYAO_MATCHING__DENSE": "false",
        "PIYAO_WEB__MAX_INTAKE_ITEMS": "5", "PIYAO_WEB__MAX_TEXT_CHARS": "300",
    })


@pytest.fixture(scope="module")
def starter_model() -> Any:
    from pipeline import Context, load_classifier

    return load_classifier(Context(load_settings(environ={"PIYAO_CLASSIFIER__MODEL": "models/starter",
                                                          "PIYAO_CLASSIFIER__WORKERS": "1"})))


@pytest.fixture
def api_app(app: Any, store: Store, seeded: dict[str, Any], starter_model: Any) -> Iterator[Any]:
    app.state.intake = IntakeService(app.state.settings, store, app.state.heavy.backend, classifier=starter_model)
    yield app
    api_fuzz.shutdown()


def identities(accounts: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {"partner": {"Authorization": f"Bearer {accounts['acme_token']}"},
            "editor": {"Authorization": f"Bearer {accounts['ed_token']}"},
            "anonymous": {}}


def test_api_conforms_to_its_schema_and_never_answers_5xx(api_app: Any, store: Store, accounts: dict[str, Any]) -> None:
    def claim_ids() -> list[int]:
        with store.session() as s:
            return list(s.scalars(select(Claim.id).order_by(Claim.id).limit(50)))

    def version_of(claim_id: int) -> int | None:
        with store.session() as s:
            claim = s.get(Claim, claim_id)
            return claim.version if claim is not None else None

    report = api_fuzz.run(api_app, identities(accounts), cases_per_run=CASES_PER_RUN, claim_ids=claim_ids,
                          version_of=version_of)
    summary = report.as_dict()
    assert summary["server_errors_5xx"] == 0, summary
    assert summary["unhandled_errors"] == 0, summary["distinct_errors"]
    assert summary["failures"] == 0, summary["failure_examples"]
    # Every operation ran, and the happy paths were reached, not only the refusals.
    assert len(report.per_operation) == 7 and min(report.per_operation.values()) >= CASES_PER_RUN
    assert summary["statuses"]["GET /api/v1/debunks"].get("200", 0) > 0
    assert summary["statuses"]["POST /api/v1/claims"].get("401", 0) > 0


# --------------------------------------------------------------------------- what the fuzzer found (regressions)
def test_validation_errors_have_the_documented_shape(client: Any, accounts: dict[str, Any]) -> None:
    """422 bodies list loc, msg and type (FastAPI's ValidationError in the schema; "type" was missing)."""
    r = client.get("/api/v1/claims/0", headers={"Authorization": f"Bearer {accounts['ed_token']}"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["path", "claim_id"] and error["msg"] and error["type"] == "greater_than_equal"


def test_a_body_that_is_not_utf8_is_a_documented_400(client: Any, accounts: dict[str, Any]) -> None:
    spec = client.get("/api/openapi.json").json()
    for path in ("/api/v1/claims", "/api/v1/claims/{claim_id}/review"):
        assert "400" in spec["paths"][path]["post"]["responses"], path
    r = client.post("/api/v1/claims", content=b'{"items": "\xff"}', headers={
        "Authorization": f"Bearer {accounts['acme_token']}", "Content-Type": "application/json"})
    assert r.status_code == 400 and isinstance(r.json()["detail"], str)


def test_a_review_refused_with_a_message_is_documented(client: Any) -> None:
    """A decision that cannot be recorded answers 422 with a message, not a field list: the schema says both."""
    spec = client.get("/api/openapi.json").json()
    schema = spec["paths"]["/api/v1/claims/{claim_id}/review"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/HTTPValidationError"} in schema["anyOf"]
    assert {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]} in schema["anyOf"]


def test_a_since_out_of_range_in_utc_is_a_422(client: Any, accounts: dict[str, Any]) -> None:
    """Found by bench/fuzz_api.py: converting such a time to UTC raised OverflowError (a 500)."""
    for path in ("/api/v1/claims", "/api/v1/reviews", "/api/v1/claimreview"):
        for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            r = client.get(path, params={"since": since}, headers={"Authorization": f"Bearer {accounts['ed_token']}"})
            assert r.status_code == 422, (path, since, r.text)
            assert r.json()["detail"][0]["loc"] == ["query", "since"]


def test_a_published_time_out_of_range_in_utc_is_a_422(client: Any, accounts: dict[str, Any]) -> None:
    """Found by bench/fuzz_api.py: the intake's published validator raised OverflowError (a 500)."""
    item = {"external_id": "p1", "text": "网传隔夜菜会致癌", "published": "0001-01-01T00:00:00+01:00"}
    r = client.post("/api/v1/claims", json={"items": [item]}, headers={"Authorization": f"Bearer {accounts['acme_token']}"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "items", 0, "published"]


def test_debunk_ids_past_the_integer_range_are_a_422(client: Any, store: Store, seeded: dict[str, Any],
                                                     accounts: dict[str, Any]) -> None:
    """Found by bench/fuzz_api.py: a debunk id past the database's integer range overflowed the driver (a 500)."""
    from tests.web.seed import claim_version

    cid = seeded["claims"][0]
    body = {"verdict": "rumor", "expected_version": claim_version(store, cid), "debunk_ids": [2**63 + 5]}
    r = client.post(f"/api/v1/claims/{cid}/review", json=body, headers={"Authorization": f"Bearer {accounts['ed_token']}"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "debunk_ids", 0]
    assert claim_version(store, cid) == body["expected_version"]  # nothing was written
