"""Elasticsearch goes down mid-run: nothing is lost, and `piyao index` catches up when it returns.

This test stops and restarts the real node that `make test` started (scripts/elasticsearch.sh),
so it runs against the node at PIYAO_TEST_ES_URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "conformance_corpus.jsonl"


def _env(es_url: str, data: Path, alias: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    return env | {
        "PIYAO_DATA_DIR": str(data),
        "PIYAO_INDEX__BACKEND": "elasticsearch",
        "PIYAO_INDEX__ELASTICSEARCH__HOSTS": json.dumps([es_url]),
        "PIYAO_INDEX__ELASTICSEARCH__ALIAS": alias,
        "PIYAO_INDEX__ELASTICSEARCH__REQUEST_TIMEOUT": "3",
        "PIYAO_INDEX__ELASTICSEARCH__MAX_RETRIES": "0",
    }


def piyao(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import pipeline; pipeline.main()", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def node(es_url: str, action: str) -> None:
    env = dict(os.environ) | {"PIYAO_ES_PORT": str(urlsplit(es_url).port or 9200)}
    res = subprocess.run(["bash", str(ROOT / "scripts" / "elasticsearch.sh"), action], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture
def corpus_parts(tmp_path: Path) -> tuple[Path, Path]:
    lines = CORPUS.read_text("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    a, b = tmp_path / "part1.jsonl", tmp_path / "part2.jsonl"
    a.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:40]), "utf-8")
    b.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[40:]), "utf-8")
    return a, b


def _drop(es_url: str, alias: str) -> None:
    """Delete the test's indices: the documents' and the passages' (index.elastic)."""
    from elasticsearch import Elasticsearch

    es = Elasticsearch([es_url])
    try:
        # Deleting by wildcard is refused (action.destructive_requires_name): resolve the names first.
        names = list(es.options(ignore_status=404).indices.get(index=f"{alias}-*,{alias}_passages-*"))
        for name in names:
            es.options(ignore_status=404).indices.delete(index=name)
    finally:
        es.close()


def test_outage_loses_nothing(es_url: str, tmp_path: Path, corpus_parts: tuple[Path, Path]) -> None:
    alias = f"piyao-outage-{uuid.uuid4().hex[:8]}"
    try:
        _outage(es_url, tmp_path, corpus_parts, alias)
    finally:
        _drop(es_url, alias)


def _outage(es_url: str, tmp_path: Path, corpus_parts: tuple[Path, Path], alias: str) -> None:
    env = _env(es_url, tmp_path / "data", alias)
    part1, part2 = corpus_parts
    res = piyao(env, "debunks", "import", str(part1))
    assert res.returncode == 0, res.stderr
    node(es_url, "stop")
    try:
        res = piyao(env, "debunks", "import", str(part2))
        # Stored, but not indexed: one clear line, non-zero exit, the changes wait in the outbox.
        assert res.returncode == 2, res.stderr
        assert "imported 39" in " ".join(res.stdout.split())
        err = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith("piyao: error:") and "outbox" in err[0], res.stderr
        assert "Traceback" not in res.stderr
        res = piyao(env, "status", "--json")
        assert res.returncode == 2 and "Traceback" not in res.stderr
    finally:
        node(es_url, "start")
    res = piyao(env, "index")
    assert res.returncode == 0, res.stderr
    status = json.loads(piyao(env, "status", "--json").stdout)
    assert status["debunks"] == 79
    assert status["outbox_backlog"] == 0
    assert status["index_documents"] == status["debunks"]


def test_reindex_swaps_the_alias_and_search_agrees(es_url: str, tmp_path: Path, corpus_parts: tuple[Path, Path]) -> None:
    from index.elastic import ElasticBackend

    alias = f"piyao-reindex-{uuid.uuid4().hex[:8]}"
    env = _env(es_url, tmp_path / "data", alias)
    part1, part2 = corpus_parts
    assert piyao(env, "debunks", "import", str(part1), str(part2)).returncode == 0
    b = ElasticBackend([es_url], alias=alias)
    try:
        before = b.current_index()
        res = piyao(env, "reindex")
        assert res.returncode == 0, res.stderr
        assert "79 documents" in res.stdout
        after = b.current_index()
        assert after != before and not b.es.indices.exists(index=before)
        hits = [json.loads(line) for line in piyao(env, "search", "碘钾片", "防辐射", "--json").stdout.splitlines()]
        assert hits and "碘钾片" in hits[0]["title"]
    finally:
        b.close()
        _drop(es_url, alias)


def test_wrong_url_is_one_clear_error(tmp_path: Path) -> None:
    env = _env("http://127.0.0.1:9", tmp_path / "data", "piyao")
    res = piyao(env, "search", "隔夜菜")
    assert res.returncode == 2
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "cannot reach Elasticsearch at http://127.0.0.1:9" in err[0], res.stderr
