"""bench/run_all.py with stand-in benchmark scripts: every JSON line kept, failures recorded, --update merges.

The stand-ins are real scripts run as run_all runs the real ones (a subprocess each, the summary written
after each); the real benchmarks need ../shared and take hours.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_all(bench: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(ROOT / "bench" / "run_all.py"), "--bench-dir", str(bench), "--out", str(out), *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def script(bench: Path, name: str, body: str) -> None:
    bench.mkdir(exist_ok=True)
    (bench / name).write_text("import json, sys\n" + body, encoding="utf-8")


def test_details_failures_and_update(tmp_path: Path) -> None:
    bench, out = tmp_path / "bench", tmp_path / "summary.json"
    script(bench, "import_bench.py", 'print("warming up")\nprint(json.dumps({"backend": "a", "p95_ms": 3}))\n'
                                     'print(json.dumps({"backend": "b", "p95_ms": 5}))\nprint(json.dumps({"summary": 1}))\n')
    script(bench, "crawl_bench.py", 'print("broken pipe somewhere", file=sys.stderr)\nsys.exit(3)\n')
    proc = run_all(bench, out, "--only", "import,crawl")
    assert proc.returncode == 1, proc.stderr  # one benchmark failed
    summary = json.loads(out.read_text("utf-8"))
    assert list(summary["benchmarks"]) == ["import", "crawl"]
    imp, crawl = summary["benchmarks"]["import"], summary["benchmarks"]["crawl"]
    assert imp["status"] == "ok" and imp["result"] == {"summary": 1}
    assert imp["details"] == [{"backend": "a", "p95_ms": 3}, {"backend": "b", "p95_ms": 5}]
    assert imp["commit"] and imp["started"] and imp["exit_status"] == 0
    assert crawl["status"] == "failed" and crawl["exit_status"] == 3 and "broken pipe somewhere" in crawl["error"]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == summary

    # The crawl benchmark mended and run again alone: the import entry is kept as it was.
    script(bench, "crawl_bench.py", 'print(json.dumps({"summary": "crawl", "pages_per_s": 9}))\n')
    proc = run_all(bench, out, "--only", "crawl", "--update")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(out.read_text("utf-8"))
    assert again["benchmarks"]["import"] == imp
    assert again["benchmarks"]["crawl"]["result"] == {"summary": "crawl", "pages_per_s": 9}
    assert "details" not in again["benchmarks"]["crawl"]
    assert again["started"] == summary["started"] and again["updated"]

    # A result printed as one indented document over many lines (bench/match_bench.py and bench/daily.py do).
    script(bench, "match_bench.py", 'print("cell 1 done")\nprint(json.dumps({"bench": "match", "cells": [{"p95_ms": 40}]}, indent=1))\n')
    proc = run_all(bench, out, "--only", "match", "--update")
    assert proc.returncode == 0, proc.stderr
    match = json.loads(out.read_text("utf-8"))["benchmarks"]["match"]
    assert match["status"] == "ok" and match["result"] == {"bench": "match", "cells": [{"p95_ms": 40}]}

    # Without --update the summary holds only what ran now.
    proc = run_all(bench, out, "--only", "crawl")
    assert proc.returncode == 0 and list(json.loads(out.read_text("utf-8"))["benchmarks"]) == ["crawl"]


def test_clear_errors(tmp_path: Path) -> None:
    proc = run_all(tmp_path, tmp_path / "s.json", "--only", "imprt")
    assert proc.returncode == 2 and "unknown benchmark(s) imprt" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("not json", encoding="utf-8")
    proc = run_all(tmp_path, bad, "--only", "import", "--update")
    assert proc.returncode == 2 and "is not a summary this script wrote" in proc.stderr and "Traceback" not in proc.stderr
    assert bad.read_text("utf-8") == "not json"  # nothing lost
    proc = run_all(tmp_path, tmp_path / "s.json", "--only", "import")  # no import_bench.py in tmp_path
    assert proc.returncode == 1 and json.loads((tmp_path / "s.json").read_text("utf-8"))["benchmarks"]["import"]["status"] == "missing"


def test_sigterm_stops_the_running_benchmark_and_keeps_the_summary(tmp_path: Path) -> None:
    bench, out = tmp_path / "bench", tmp_path / "summary.json"
    script(bench, "import_bench.py", 'print(json.dumps({"summary": "import"}))\n')
    # A benchmark that cleans up when stopped as a user would stop it (SIGTERM), as the real ones do.
    script(bench, "index_bench.py", f'''import pathlib, signal, time
def stopped(*_):
    pathlib.Path({str(tmp_path / "cleaned")!r}).write_text("yes")
    sys.exit(143)
signal.signal(signal.SIGTERM, stopped)
pathlib.Path({str(tmp_path / "running")!r}).write_text("yes")
time.sleep(60)
''')
    argv = [sys.executable, str(ROOT / "bench" / "run_all.py"), "--bench-dir", str(bench), "--out", str(out), "--only", "import,index,crawl"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if (tmp_path / "running").exists():
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert (tmp_path / "cleaned").read_text() == "yes"  # the benchmark was stopped, not orphaned
    summary = json.loads(out.read_text("utf-8"))
    assert summary["benchmarks"]["import"]["result"] == {"summary": "import"}
    assert summary["benchmarks"]["index"]["status"] == "stopped" and summary["benchmarks"]["index"]["exit_status"] == 143
    assert "crawl" not in summary["benchmarks"] and summary["stopped"]
    assert "Traceback" not in err and "stopped during index" in err
