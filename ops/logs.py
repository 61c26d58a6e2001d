"""Structured logs: one handler on the root logger, text or JSON lines, each carrying the run id.

``configure_logging(settings)`` (called by the ``piyao`` command line) installs it per
logging.format:

* ``text``: ``2026-11-30 10:30:00 [logger] LEVEL: [run <id>] message`` (Scrapy's layout, the run
  part only when there is a run id);
* ``json``: one JSON object per line: ``time`` (UTC, ISO 8601 with milliseconds), ``level``,
  ``logger``, ``message``, ``run_id`` (null outside a run), the fields passed with ``extra=``,
  and ``exception`` (the formatted traceback) when there is one.

The **run id** comes from ``run_context(run_id)`` (a context variable: the scheduler wraps each
run in it) or else the environment variable ``PIYAO_RUN_ID`` (the scheduler starts crawl child
processes with it). A record can also carry its own ``run_id`` (``extra={"run_id": ...}``).

The handler writes to whatever ``sys.stderr`` is when a record is emitted, so Rich's progress
bars (which redirect stderr while they draw) keep their place, and Click's test runner captures
the lines. Scrapy installs a root handler of its own during crawls: in ``text`` mode the crawl's
records are left to it (its layout, at crawl.log_level, exactly as before); in ``json`` mode
Scrapy's handler is muted so that every line is JSON, and logging.level applies to Scrapy's records
too. Chatty libraries (httpx, httpcore, urllib3, alembic) are kept at WARNING, elastic_transport at
ERROR (its warnings about an unreachable node repeat what piyao says in one line), unless logging.level
is DEBUG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, TextIO

__all__ = ["RUN_ID_ENV", "configure_logging", "current_run_id", "run_context", "JsonFormatter", "TextFormatter",
           "RunIdFilter"]

RUN_ID_ENV = "PIYAO_RUN_ID"
# Chatty below WARNING: client libraries (a line per request) and Alembic (a line per plugin and migration step).
QUIET_LOGGERS = ("httpx", "httpcore", "elastic_transport", "urllib3", "alembic")
# These report a failure that piyao reports itself, in one line (an unreachable Elasticsearch node): ERROR only.
ERROR_ONLY_LOGGERS = ("elastic_transport",)
_run_id: ContextVar[str | None] = ContextVar("piyao_run_id", default=None)
# The attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "run_id", "taskName"}


def current_run_id() -> str | None:
    """The run id of the current context, else PIYAO_RUN_ID, else None."""
    return _run_id.get() or os.environ.get(RUN_ID_ENV) or None


@contextmanager
def run_context(run_id: str | None) -> Iterator[str | None]:
    """Log records emitted inside carry ``run_id`` (threads and tasks started inside inherit it only if they copy the context)."""
    token = _run_id.set(run_id)
    try:
        yield run_id
    finally:
        _run_id.reset(token)


class RunIdFilter(logging.Filter):
    """Sets ``record.run_id`` (unless the record brought its own) from the context or the environment."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = current_run_id()
        return True


def _plain(key: str, value: Any) -> Any:
    """An ``extra`` value as JSON can hold it: Scrapy's spider and crawler objects by their spider's name."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if key == "crawler":
        value = getattr(value, "spidercls", value)
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside strings are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        at = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        doc: dict[str, Any] = {
            "time": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = _plain(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Scrapy's layout, with ``[run <id>]`` before the message inside a run."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(name)s] %(levelname)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        run_id = getattr(record, "run_id", None)
        if run_id:
            head = f"[{record.name}] {record.levelname}: "
            text = text.replace(head, f"{head}[run {run_id}] ", 1)
        return text


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler bound to the current ``sys.stderr`` at each record (or to a fixed stream)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        pass  # StreamHandler.__init__ assigns it; the property decides


def _scrapy_root_handler() -> logging.Handler | None:
    """Scrapy's root handler while it is installed (during and after a crawl in this process)."""
    mod = sys.modules.get("scrapy.utils.log")
    handler = getattr(mod, "_scrapy_root_handler", None) if mod is not None else None
    return handler if handler is not None and handler in logging.root.handlers else None


def _drop_all(record: logging.LogRecord) -> bool:
    return False


class _ScrapyAware(logging.Filter):
    """Text: leave records to Scrapy's handler while it is installed. JSON: mute Scrapy's handler instead."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt

    def filter(self, record: logging.LogRecord) -> bool:
        other = _scrapy_root_handler()
        if other is None:
            return True
        if self.fmt == "text":
            return False
        if _drop_all not in other.filters:
            other.addFilter(_drop_all)
        return True


def configure_logging(settings: Any, *, stream: TextIO | None = None) -> logging.Handler:
    """Install the root handler for ``settings.logging`` (replacing one installed before); returns it.

    ``stream``: write there instead of the current ``sys.stderr``.
    """
    fmt, level_name = settings.logging.format, settings.logging.level
    level = logging.getLevelName(level_name)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_piyao", False):
            root.removeHandler(old)
    handler = _StderrHandler(stream)
    handler._piyao = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RunIdFilter())
    handler.addFilter(_ScrapyAware(fmt))
    root.addHandler(handler)
    if root.level > level:
        root.setLevel(level)
    if level > logging.DEBUG:
        for name in QUIET_LOGGERS:
            lg = logging.getLogger(name)
            floor = logging.ERROR if name in ERROR_ONLY_LOGGERS else logging.WARNING
            if lg.level == logging.NOTSET or lg.level < floor:
                lg.setLevel(floor)
    return handler
