"""Coverage-guided fuzzing of crawlers/extract.py with atheris (libFuzzer), for a bounded number of runs.

The hypothesis tests in tests/fuzz/ generate inputs from grammars; atheris mutates real pages instead
(the crawler fixtures in tests/fixtures/sites seed the corpus) and follows the branches it reaches.
Each input goes to one of html_to_text, clean_text, detect_encoding, parse_cn_datetime or
parse_feed_datetime; any exception, or a result that breaks their contract (a date outside 1900-2100,
an encoding that does not decode what it claims to), is a crash that libFuzzer saves and reports.

atheris is not in the dev extra (it has wheels for Linux x86-64 only): ``pip install atheris``.

    python bench/atheris_extract.py [--runs 200000] [--seconds 0]

Prints one JSON object: runs, inputs per target, seconds. Crashing inputs are written to the
artifacts folder it names (a temporary folder unless --artifacts).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:  # pragma: no cover - an optional tool
    sys.exit("atheris is not installed: pip install atheris (Linux x86-64 wheels; elsewhere it builds with clang)")

with atheris.instrument_imports(include=["crawlers.extract"]):
    from crawlers import extract

NOW = dt.datetime(2025, 6, 1, 12, 0)
DECLARED = [None, "utf-8", "gbk", "gb2312", "big5", "iso-8859-1", "windows-1252", "utf-16", "x-unknown"]
counts: Counter[str] = Counter()
# Set by main(): libFuzzer ends a run with C exit(), past Python's atexit, so the harness stops itself.
STOP = {"runs": 0, "deadline": 0.0, "seen": 0}
REPORT: list[object] = []


def _sane(value: dt.date | None) -> bool:
    if value is None:
        return True
    day = value.date() if isinstance(value, dt.datetime) else value
    return dt.date(1900, 1, 1) <= day <= dt.date(2100, 12, 31)


def one_input(data: bytes) -> None:
    """One fuzz input: the first byte picks the target, the rest is its argument."""
    STOP["seen"] += 1
    if STOP["seen"] > STOP["runs"] or (STOP["deadline"] and time.monotonic() > STOP["deadline"]):
        REPORT[0]()  # type: ignore[operator]
        os._exit(0)
    if not data:
        return
    target, body = data[0] % 6, data[1:]
    text = body.decode("utf-8", "replace")
    if target == 0:
        counts["html_to_text(str)"] += 1
        out = extract.html_to_text(text)
        assert isinstance(out, str)
    elif target == 1:
        counts["html_to_text(bytes)"] += 1
        assert isinstance(extract.html_to_text(body), str)  # type: ignore[arg-type]
    elif target == 2:
        counts["clean_text"] += 1
        out = extract.clean_text(text)
        assert all(line == line.strip() and line for line in out.split("\n")) or out == ""
    elif target == 3:
        counts["detect_encoding"] += 1
        declared = DECLARED[body[0] % len(DECLARED)] if body else None
        choice = extract.detect_encoding(body[1:], declared)
        if choice.clean:
            body[1:].decode(choice.encoding)  # "clean" means it decodes without errors
    elif target == 4:
        counts["parse_cn_datetime"] += 1
        got = extract.parse_cn_datetime(text, now=NOW)
        assert _sane(got), (text, got)
        assert _sane(extract.parse_cn_date(text))
    else:
        counts["parse_feed_datetime"] += 1
        assert _sane(extract.parse_feed_datetime(text))


def seed_corpus(folder: Path) -> int:
    """The crawler fixtures (real pages of the sites piyao crawls) for each target that reads HTML, text or bytes,
    and date strings for the date parsers."""
    n = 0
    for page in sorted((ROOT / "tests" / "fixtures" / "sites").rglob("*")):
        if page.is_file() and page.stat().st_size < 200_000:
            raw = page.read_bytes()
            for target in (0, 1, 2, 3):
                (folder / f"{target}-{n}").write_bytes(bytes([target]) + (raw if target != 3 else b"\x01" + raw))
            n += 1
    for i, date in enumerate(["2024年3月1日", "3天前", "昨天 10:32", "03-01 10:32", "Mon, 01 Jan 2024 10:00:00 +0800",
                              "2024-03-01T10:00:00Z", "三天前", "半小时前", "20240301"]):
        (folder / f"date-{i}").write_bytes(bytes([4]) + date.encode())
        (folder / f"feed-{i}").write_bytes(bytes([5]) + date.encode())
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200_000, help="inputs to try (libFuzzer -runs)")
    parser.add_argument("--seconds", type=int, default=0, help="stop after this long as well (0: no limit)")
    parser.add_argument("--artifacts", default="", help="folder for crashing inputs (default: a temporary folder)")
    args = parser.parse_args()

    corpus = Path(tempfile.mkdtemp(prefix="piyao-atheris-corpus-"))
    artifacts = Path(args.artifacts or tempfile.mkdtemp(prefix="piyao-atheris-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    pages = seed_corpus(corpus)
    started = time.perf_counter()

    def report() -> None:
        print(json.dumps({"command": "python bench/atheris_extract.py " + " ".join(sys.argv[1:]), "seed_pages": pages,
                          "runs": sum(counts.values()), "per_target": dict(sorted(counts.items())),
                          "seconds": round(time.perf_counter() - started, 1), "artifacts": str(artifacts),
                          "crashes": sorted(p.name for p in artifacts.iterdir())}, ensure_ascii=False), flush=True)

    atexit.register(report)  # a crash ends the run through Python: the report comes out then too
    REPORT.append(report)
    STOP["runs"] = args.runs
    STOP["deadline"] = time.monotonic() + args.seconds if args.seconds else 0.0
    flags = [sys.argv[0], str(corpus), f"-artifact_prefix={artifacts}/", "-max_len=65536", "-rss_limit_mb=4096"]
    atheris.Setup(flags, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
