"""The embedded backend (SQLite FTS5) passes the conformance suite."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from index.embedded import EmbeddedBackend
from tests.index.conformance import BackendConformance


class TestEmbeddedConformance(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[EmbeddedBackend]:
        b = EmbeddedBackend(tmp_path / "index.sqlite")
        yield b
        b.close()
