"""Run every benchmark, one after another, and write one JSON summary.

    .venv/bin/python bench/run_all.py [--es URL] [--only NAME,...] [--skip NAME,...] [--quick]
                                      [--update] [--out var/bench/summary.json]

Each benchmark runs as its own process (as a user would run it; see each script's docstring for
what it measures and the data it reads from ../shared/data), one at a time so they do not compete
for the two cores; its last JSON line on stdout is its result, and the JSON lines it printed
before (per backend, per model, per configuration) are kept as its details. ``--quick`` runs the
smaller sizes (for a smoke run; the published figures in docs/benchmarks.md come from full runs).
A benchmark that fails is recorded with its exit status and the tail of its stderr, and the others
still run. The GPU fine-tuning benchmark runs only with ``--gpu`` (it needs a CUDA device).
``--update`` starts from the summary already at ``--out`` and replaces only the benchmarks run now
(so one benchmark can be run again without repeating the hours of the others); each entry says
when and at which commit it ran.

The summary: {"machine": {...}, "started": ISO time, "benchmarks": {name: {"argv", "started",
"commit", "seconds", "exit_status", "status", "result", "details" | "error"}}}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def plan(es: str, quick: bool, gpu: bool) -> dict[str, list[str]]:
    """name → arguments, in the order they run (cheap first)."""
    p: dict[str, list[str]] = {
        "import": [],
        "index": ["--es", es] + (["--claims", "2000", "--searches", "200"] if quick else []),
        "backend_agreement": ["--es", es] + (["--n", "100"] if quick else []),
        "classify": ["--n", "600"] if quick else [],
        "crawl": ["--pages", "1000"] if quick else [],
        "match": (["--sizes", "6000", "--queries", "50"] if quick else []) + ["--es", es],
        "load": ["--es", es] + (["--users", "10", "--seconds", "15"] if quick else []),
        "daily": ["--claims", "20000"] if quick else [],
        "fuzz_api": ["--cases", "500"] if quick else ["--cases", "10000"],
    }
    if gpu:
        p["gpu_finetune"] = []
    return p


SCRIPTS = {"import": "import_bench.py", "index": "index_bench.py", "backend_agreement": "backend_agreement.py",
           "classify": "classify_bench.py", "crawl": "crawl_bench.py", "match": "match_bench.py", "load": "load.py",
           "daily": "daily.py", "fuzz_api": "fuzz_api.py", "gpu_finetune": "gpu_finetune.py"}


def json_lines(stdout: str) -> list[Any]:
    """The JSON objects printed on stdout, in order: one per line, or indented over several lines (a
    document starts with "{" at the start of a line); other lines are progress or prose."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    pos = 0
    while pos < len(stdout):
        end = stdout.find("\n", pos)
        end = len(stdout) if end < 0 else end
        if stdout.startswith("{", pos):
            try:
                obj, stop = decoder.raw_decode(stdout, pos)
            except json.JSONDecodeError:
                pass
            else:
                found.append(obj)
                nl = stdout.find("\n", stop)
                pos = len(stdout) if nl < 0 else nl + 1
                continue
        pos = end + 1
    return found


def commit() -> str:
    """The checked-out commit, with "+changes" when tracked files differ from it ("unknown" outside git)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+changes" if dirty else "")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--es", default=os.environ.get("PIYAO_TEST_ES_URL", "http://127.0.0.1:9200"))
    ap.add_argument("--only", default="", help="Comma-separated names to run (default: all).")
    ap.add_argument("--skip", default="", help="Comma-separated names to leave out.")
    ap.add_argument("--quick", action="store_true", help="Smaller sizes, for a smoke run.")
    ap.add_argument("--gpu", action="store_true", help="Also run the GPU fine-tuning benchmark.")
    ap.add_argument("--update", action="store_true", help="Keep the other benchmarks' entries of the summary at --out.")
    ap.add_argument("--out", default=str(ROOT / "var" / "bench" / "summary.json"))
    ap.add_argument("--bench-dir", default=str(ROOT / "bench"), help=argparse.SUPPRESS)  # tests run stand-in scripts
    args = ap.parse_args()
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(SCRIPTS)
    if unknown:
        print(f"run_all: error: unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "started": now(), "quick": args.quick, "benchmarks": {}}
    if args.update and out.exists():
        try:
            previous = json.loads(out.read_text("utf-8"))
            summary["benchmarks"] = dict(previous["benchmarks"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"run_all: error: --update: {out} is not a summary this script wrote ({exc})", file=sys.stderr)
            return 2
        summary["started"] = previous.get("started", summary["started"])
        summary["updated"] = now()
    out.parent.mkdir(parents=True, exist_ok=True)
    rev = commit()
    for name, extra in plan(args.es, args.quick, args.gpu).items():
        if (only and name not in only) or name in skip:
            continue
        script = Path(args.bench_dir) / SCRIPTS[name]
        if not script.exists():
            summary["benchmarks"][name] = {"status": "missing", "error": f"{script.name} not found"}
            continue
        argv = [sys.executable, str(script), *extra]
        print(f"run_all: {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else script.name
        entry: dict[str, Any] = {"argv": [shown, *extra], "started": now(), "commit": rev}
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate()
        except BaseException:  # Ctrl-C or SIGTERM: the benchmark is stopped the same way, so it cleans up
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            entry |= {"seconds": round(time.monotonic() - t0, 1), "exit_status": proc.returncode, "status": "stopped"}
            summary["benchmarks"][name] = entry
            summary["stopped"] = now()
            out.write_text(json.dumps(summary, ensure_ascii=False, indent=1))
            print(f"run_all: stopped during {name}; the summary so far is in {out}", file=sys.stderr, flush=True)
            raise
        entry |= {"seconds": round(time.monotonic() - t0, 1), "exit_status": proc.returncode}
        printed = json_lines(stdout)
        if proc.returncode == 0 and printed:
            entry |= {"status": "ok", "result": printed[-1]}
            if len(printed) > 1:
                entry["details"] = printed[:-1]
        else:
            entry |= {"status": "failed", "error": stderr.strip()[-2000:]}
        summary["benchmarks"][name] = entry
        out.write_text(json.dumps(summary, ensure_ascii=False, indent=1))  # kept after each, so nothing is lost
        print(f"run_all: {name}: {entry['status']} in {entry['seconds']} s", file=sys.stderr, flush=True)
    summary["finished"] = now()
    out.write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if all(b.get("status") == "ok" for b in summary["benchmarks"].values()) else 1


if __name__ == "__main__":
    # SIGTERM stops the run like Ctrl-C: the running benchmark is stopped and the summary so far is kept.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
