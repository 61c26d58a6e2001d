"""Structured logs: JSON lines with the run id (context or PIYAO_RUN_ID), the text layout, and a real crawl in JSON mode."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ops.logs import QUIET_LOGGERS, RUN_ID_ENV, configure_logging, current_run_id, run_context
from settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Scrapy's layout (tests/crawlers/test_hostile.py parses crawl logs with it).
TEXT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \[(?P<logger>[^\]]+)\] (?P<level>[A-Z]+): (?P<rest>.*)$")


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave the root logger as it was: the handler installed here must not log into later tests."""
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def make(fmt: str = "json", level: str = "INFO") -> Settings:
        return load_settings(data_dir=tmp_path / "data", environ={"PIYAO_LOGGING__FORMAT": fmt, "PIYAO_LOGGING__LEVEL": level})

    return make


def _lines(buf: io.StringIO) -> list[str]:
    return [ln for ln in buf.getvalue().split("\n") if ln]


def test_a_json_line_carries_the_run_id_of_its_context(settings_for: Callable[..., Settings]) -> None:
    buf = io.StringIO()
    configure_logging(settings_for("json"), stream=buf)
    log = logging.getLogger("piyao.test.logs")
    log.info("before the run")
    with run_context("run-7f3a") as rid:
        assert rid == current_run_id() == "run-7f3a"
        log.warning("crawl of %s done: %d items", "piyao_org_cn", 42, extra={"items": 42, "spider": "piyao_org_cn"})
    log.info("after the run")
    before, during, after = (json.loads(ln) for ln in _lines(buf))
    assert before["run_id"] is None and after["run_id"] is None
    assert during["run_id"] == "run-7f3a"
    assert during["message"] == "crawl of piyao_org_cn done: 42 items"
    assert during["level"] == "WARNING" and during["logger"] == "piyao.test.logs"
    assert TIME.match(during["time"])
    assert during["items"] == 42 and during["spider"] == "piyao_org_cn"  # extra fields
    assert set(before) == {"time", "level", "logger", "message", "run_id"}


def test_the_run_id_comes_from_the_environment_outside_a_context(settings_for: Callable[..., Settings],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "child-9")
    buf = io.StringIO()
    configure_logging(settings_for("json"), stream=buf)
    log = logging.getLogger("piyao.test.logs")
    log.info("in the child process")
    with run_context("inner"):
        log.info("inside a context")
    log.info("own", extra={"run_id": "given"})
    assert [json.loads(ln)["run_id"] for ln in _lines(buf)] == ["child-9", "inner", "given"]


def test_an_exception_stays_on_one_json_line(settings_for: Callable[..., Settings]) -> None:
    buf = io.StringIO()
    configure_logging(settings_for("json"), stream=buf)
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("piyao.test.logs").exception("it broke\non two lines")
    (line,) = _lines(buf)
    doc = json.loads(line)
    assert doc["message"] == "it broke\non two lines" and doc["level"] == "ERROR"
    assert "Traceback" in doc["exception"] and "ZeroDivisionError" in doc["exception"]


def test_text_lines_keep_scrapys_layout_and_show_the_run(settings_for: Callable[..., Settings]) -> None:
    buf = io.StringIO()
    configure_logging(settings_for("text"), stream=buf)
    log = logging.getLogger("piyao.test.logs")
    log.info("plain")
    with run_context("r-1"):
        log.error("inside")
    first, second = (TEXT.match(ln) for ln in _lines(buf))
    assert first and second
    assert (first["logger"], first["level"], first["rest"]) == ("piyao.test.logs", "INFO", "plain")
    assert (second["level"], second["rest"]) == ("ERROR", "[run r-1] inside")


def test_level_and_reconfiguring(settings_for: Callable[..., Settings]) -> None:
    buf1, buf2 = io.StringIO(), io.StringIO()
    configure_logging(settings_for("json"), stream=buf1)
    configure_logging(settings_for("json", "WARNING"), stream=buf2)  # replaces the first handler
    log = logging.getLogger("piyao.test.logs")
    log.info("dropped")
    log.warning("kept")
    assert _lines(buf1) == []
    assert [json.loads(ln)["message"] for ln in _lines(buf2)] == ["kept"]
    assert sum(1 for h in logging.getLogger().handlers if getattr(h, "_piyao", False)) == 1
    logging.getLogger("httpx").info("HTTP Request: POST ...")  # a client library stays at WARNING
    assert len(_lines(buf2)) == 1


def test_a_json_crawl_logs_only_json_lines_with_the_run_id(tmp_path: Path) -> None:
    """The CLI configures logging; Scrapy's own handler is muted, so its records come as JSON too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")} | {
        "PIYAO_DATA_DIR": str(tmp_path / "data"),
        "PIYAO_CRAWL__RETRY_TIMES": "0",
        "PIYAO_CRAWL__DOWNLOAD_DELAY": "0.01",
        "PIYAO_LOGGING__FORMAT": "json",
        RUN_ID_ENV: "sched-0042",
    }
    res = subprocess.run([sys.executable, "-c", "import pipeline; pipeline.main()", "crawl", "piyao_org_cn",
                          "--start-url", "http://127.0.0.1:9/ld.htm"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    records: list[dict[str, Any]] = []
    for line in res.stderr.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        else:
            assert not TEXT.match(line), f"a log record in text layout: {line}"
    assert records and all(r["run_id"] == "sched-0042" for r in records)
    errors = [r for r in records if "Error downloading <GET http://127.0.0.1:9/ld.htm>" in r["message"]]
    assert errors and {r["level"] for r in errors} == {"ERROR"}
    assert any(r["logger"] == "crawlers.run" and "piyao_org_cn: finished" in r["message"] for r in records)
    assert "Traceback" not in res.stderr
