"""A source that cannot be reached is a counted failure and one log line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unreachable_site_logs_one_line_per_failure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")} | {
        "PIYAO_DATA_DIR": str(tmp_path / "data"),
        "PIYAO_CRAWL__RETRY_TIMES": "0",
        "PIYAO_CRAWL__DOWNLOAD_DELAY": "0.01",
    }
    cmd = [sys.executable, "-c", "import pipeline; pipeline.main()"]
    res = subprocess.run([*cmd, "crawl", "piyao_org_cn", "--start-url", "http://127.0.0.1:9/ld.htm"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "Error downloading <GET http://127.0.0.1:9/ld.htm>" in res.stderr
    runs = [json.loads(line) for line in subprocess.run([*cmd, "runs", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60).stdout.splitlines()]
    assert runs and runs[0]["errors"] >= 1 and runs[0]["status"] == "finished"
