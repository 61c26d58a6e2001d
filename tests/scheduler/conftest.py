"""Fixtures for the scheduler tests: a real store (SQLite file and PostgreSQL), the real job store in it,
loopback sites (the piyao.org.cn mirror, a server that never answers), and a controlled clock.

The clock: ``time_machine.travel(when, tick=True)`` moves every thread's wall clock (APScheduler's
"now", the store's timestamps) to ``when`` and lets it run on from there; waits stay in real time, so
a scheduler started inside sees the job store exactly as it would after days of downtime, with no sleep.
Crawl child processes run in real time (they are other processes); nothing here depends on their clock.
"""

from __future__ import annotations

import functools
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from settings import load_settings
from store.db import Store
from tests.scheduler.helpers import REPO, env_for

SITE = REPO / "tests" / "fixtures" / "sites" / "piyao_org_cn"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """A private copy of the piyao.org.cn fixture site on a free loopback port; its list page's URL."""
    root = tmp_path / "site"
    shutil.copytree(SITE, root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ld.htm"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_site() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a crawl of it hangs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/ld.htm"
    sock.close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    return load_settings(data_dir=tmp_path / "data", environ=env_for(db_url))


@pytest.fixture
def make_scheduler(settings: Any, store: Store) -> Iterator[Callable[..., Any]]:
    """``make_scheduler(**kw)`` → a PiyaoScheduler on the test store (not started); all are shut down at the end."""
    from scheduler import PiyaoScheduler

    made: list[Any] = []

    def make(**kw: Any) -> Any:
        sched = PiyaoScheduler(kw.pop("settings", settings), store, **kw)
        made.append(sched)
        return sched

    yield make
    for sched in made:
        sched.shutdown(wait=30)


