"""Test-suite wide settings.

With PIYAO_NO_SKIPS=1 (set by .ci/run) a skipped test fails the run: a skip in
CI hides a broken feature.
"""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("PIYAO_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"PIYAO_NO_SKIPS: {skipped} test(s) were skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.testscollected == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
