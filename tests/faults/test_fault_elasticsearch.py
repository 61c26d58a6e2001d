"""Elasticsearch unreachable: writes go on into the store, the outbox keeps them, and after recovery
`piyao index` + `piyao check` agree; a half-written document in Elasticsearch is found and repaired.

The outage is simulated by pointing the backend at a closed loopback port, then back at the live test node
(fixture ``es_url``): the shared node is never stopped. The test's indices live behind their own alias.
(tests/index/test_elastic_outage.py stops the node itself during an import; this test adds the API intake,
the check, and the repair.)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from fastapi.testclient import TestClient
from sqlalchemy import select

from review.accounts import create_partner, create_token
from settings import load_settings
from store.db import open_store
from store.models import Claim, IndexOutbox, PartnerSubmission
from tests.faults.tools import ROOT, assert_agree, check, env_for, free_port, one_error_line, piyao

CORPUS = ROOT / "tests" / "fixtures" / "conformance_corpus.jsonl"


def _es_env(data: Path, host: str, alias: str) -> dict[str, str]:
    return env_for(data, PIYAO_INDEX__BACKEND="elasticsearch", PIYAO_INDEX__ELASTICSEARCH__HOSTS=json.dumps([host]),
                   PIYAO_INDEX__ELASTICSEARCH__ALIAS=alias, PIYAO_INDEX__ELASTICSEARCH__REQUEST_TIMEOUT="3",
                   PIYAO_INDEX__ELASTICSEARCH__MAX_RETRIES="0")


def _drop(es_url: str, alias: str) -> None:
    from elasticsearch import Elasticsearch

    es = Elasticsearch([es_url])
    try:
        for name in list(es.options(ignore_status=404).indices.get(index=f"{alias}-*,{alias}_passages-*")):
            es.options(ignore_status=404).indices.delete(index=name)
    finally:
        es.close()


@dataclass
class Outage:
    """One test's data dir and alias: ``live`` points at the test node, ``down`` at a closed port."""

    data: Path
    alias: str
    live: dict[str, str]
    down: dict[str, str]
    part1: Path
    part2: Path


@pytest.fixture
def outage(es_url: str, tmp_path: Path) -> Iterator[Outage]:
    alias = f"piyao-faults-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "data"
    rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()]
    part1, part2 = tmp_path / "part1.jsonl", tmp_path / "part2.jsonl"
    part1.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:40]), "utf-8")
    part2.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[40:]), "utf-8")
    o = Outage(data, alias, _es_env(data, es_url, alias), _es_env(data, f"http://127.0.0.1:{free_port()}", alias), part1, part2)
    res = piyao(o.live, "debunks", "import", str(part1))
    assert res.returncode == 0, res.stderr
    try:
        yield o
    finally:
        _drop(es_url, alias)


def test_commands_during_the_outage_fail_with_one_line(outage: Outage) -> None:
    line = one_error_line(piyao(outage.down, "debunks", "import", str(outage.part2)))
    assert "cannot reach Elasticsearch" in line and "39 change(s) wait in the outbox" in line
    assert "cannot reach Elasticsearch" in one_error_line(piyao(outage.down, "check"))
    assert "cannot reach Elasticsearch" in one_error_line(piyao(outage.down, "index"))


def test_the_backlog_is_pending_then_indexed_and_a_half_written_document_is_repaired(outage: Outage, es_url: str) -> None:
    rc, report = check(outage.live)
    assert rc == 0 and report["agree"] and report["index"]["debunk"]["count"] == 40, report
    res = piyao(outage.down, "debunks", "import", str(outage.part2))
    assert res.returncode == 2 and "imported 39" in " ".join(res.stdout.split()), res.stdout + res.stderr
    # Back: the backlog is pending, not a difference; `piyao index` writes it.
    rc, report = check(outage.live)
    assert rc == 0 and report["agree"] and report["pending"] == 39, report
    assert report["store"]["debunk"]["count"] == 79 and report["index"]["debunk"]["count"] == 40
    report = assert_agree(outage.live)
    assert report["index"]["debunk"]["count"] == 79

    # A half-written document (a passage lost, as a bulk request cut between chunks leaves it), a stale one,
    # and one the store does not have.
    from index.elastic import ElasticBackend

    b = ElasticBackend([es_url], alias=outage.alias)
    try:
        hits = b.es.search(index=b.passages_alias, query={"term": {"doc_key": "debunk:3"}}, size=100)["hits"]["hits"]
        assert hits
        b.es.delete(index=b.passages_alias, id=hits[-1]["_id"], refresh=True)
        b.es.update(index=b.alias, id="debunk:5", doc={"title": "旧版本的标题"}, refresh=True)
        b.es.index(index=b.alias, id="debunk:9999", refresh=True, document={
            "key": "debunk:9999", "kind": "debunk", "source": "s", "title": "t", "text": "t", "title_tokens": "t", "text_tokens": "t"})
    finally:
        b.close()
    res = piyao(outage.live, "check")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "stale in the index (other content): 2 (debunk:3, debunk:5)" in res.stdout
    assert "only in the index: 1 (debunk:9999)" in res.stdout
    res = piyao(outage.live, "check", "--repair")
    assert res.returncode == 0 and "repaired: 3 document(s)" in res.stdout, res.stdout + res.stderr
    assert_agree(outage.live)


def test_api_intake_during_the_outage_is_kept_and_answered_503(outage: Outage) -> None:
    """The partner's post is stored with its outbox row; the answer is a 503 to retry (never a 500), and the
    retry after recovery finishes the same claim."""
    from review.web import create_app

    post = {"items": [{"external_id": "p-1", "text": "网传吃碘钾片可以防辐射，赶紧囤货"}]}
    settings = load_settings(data_dir=outage.data, environ=outage.down)
    store = open_store(settings.store_url)
    try:
        create_partner(store, "acme")
        _, token = create_token(store, partner="acme")
        app = create_app(settings, store=store)
        with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
            r = client.post("/api/v1/claims", headers={"Authorization": f"Bearer {token}"}, json=post)
        app.state.heavy.close()
        assert r.status_code == 503, r.text
        assert "不会丢失" in r.json()["detail"]
        with store.session() as s:
            claim_id = s.scalar(select(PartnerSubmission.claim_id).where(PartnerSubmission.external_id == "p-1"))
            assert claim_id is not None and s.get(Claim, claim_id) is not None
            assert s.scalar(select(IndexOutbox.id).where(IndexOutbox.doc_kind == "claim", IndexOutbox.doc_id == claim_id))
    finally:
        store.close()
    rc, report = check(outage.live)
    assert rc == 0 and report["agree"] and report["pending"] == 1, report
    # Recovered: the same call again finishes the stored claim.
    settings = load_settings(data_dir=outage.data, environ=outage.live)
    store = open_store(settings.store_url)
    try:
        app = create_app(settings, store=store)
        with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
            r = client.post("/api/v1/claims", headers={"Authorization": f"Bearer {token}"}, json=post)
        app.state.heavy.close()
        assert r.status_code == 200, r.text
        assert r.json()["items"][0]["claim_id"] == claim_id and r.json()["items"][0]["score"] is not None
    finally:
        store.close()
    report = assert_agree(outage.live)
    assert report["index"]["claim"]["count"] == 1
