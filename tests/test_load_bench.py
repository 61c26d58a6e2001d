"""bench/load.py at a tiny size against the real Elasticsearch test node: it runs end to end, and it leaves
no index and no data dir behind, also when stopped with SIGTERM mid-run.

The script runs as users run it, in a subprocess: locust (in the dev extra) patches the interpreter with
gevent on import, so the tests never import it. The demo
corpus and the claim sample of the test fixtures stand in for ../shared/data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBUNKS = ROOT / "demo" / "debunks.jsonl"
CLAIMS = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"

def _indices(es_url: str) -> set[str]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch([es_url])
    try:
        return set(client.indices.get(index="piyaoload*", expand_wildcards="all", ignore_unavailable=True))
    finally:
        client.close()


def _argv(es_url: str, out: Path, seconds: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "load.py"), "--backends", "elasticsearch", "--es", es_url,
            "--users", "4", "--seconds", seconds, "--workers", "1", "--intake-mix", "new",
            "--debunks", str(DEBUNKS), "--claims-from", str(CLAIMS), "--out", str(out)]


def _env(tmp_path: Path) -> dict[str, str]:
    # TMPDIR: the run's temporary data dir is created here, so the test sees whether it is removed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    return env | {"TMPDIR": str(tmp_path), "PIYAO_MODEL_CACHE": os.environ.get("PIYAO_MODEL_CACHE", str(Path.home() / ".cache" / "piyao"))}


@pytest.mark.timeout(600)
def test_a_short_run_reports_and_cleans_up(es_url: str, tmp_path: Path) -> None:
    before = _indices(es_url)
    out = tmp_path / "load.json"
    proc = subprocess.run(_argv(es_url, out, "4"), cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == json.loads(out.read_text("utf-8"))
    stats = result["backends"]["elasticsearch"]
    assert stats["total"]["requests"] > 0 and stats["total"]["failures"] == 0, stats["errors"]
    assert {"GET /queue", "POST /api/v1/claims", "GET /api/v1/debunks?q"} <= set(stats)
    assert stats["intake_claims"]["new_claims"] > 0
    assert _indices(es_url) == before  # the run's claims and passages indices are deleted
    assert not list(tmp_path.glob("piyao-load-*"))


@pytest.mark.timeout(600)
def test_sigterm_mid_run_stops_the_server_and_cleans_up(es_url: str, tmp_path: Path) -> None:
    before = _indices(es_url)
    proc = subprocess.Popen(_argv(es_url, tmp_path / "load.json", "300"), cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 420
        while not (_indices(es_url) - before) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        assert _indices(es_url) - before, "the run never created its indices"
        time.sleep(3)  # into the set-up (import, embed, the server starting)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    assert _indices(es_url) == before
    assert not list(tmp_path.glob("piyao-load-*"))
    assert not (tmp_path / "load.json").exists()  # no result was claimed
