"""The disk fills up during `piyao debunks import`: one clear error line, the SQLite store is not corrupted,
what committed before is intact, and once space returns the same import finishes and `piyao check` agrees.

Two ways to run out of space, each a parameter:

- ``tmpfs``: the data dir lives on a small tmpfs (``mount -t tmpfs -o size=…``, root only); a filler file
  takes all but a little of the space, and deleting it gives the space back. Where mounting is refused
  (not root, no CAP_SYS_ADMIN) this case falls back to the next.
- ``rlimit``: the import runs with RLIMIT_FSIZE just above the database's size (SIGXFSZ ignored, so a write
  past it fails with EFBIG, which SQLite reports as a full disk); the rerun has no limit.
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from sqlalchemy import select

from store.db import open_store
from store.models import Debunk
from tests.faults.tools import ROOT, assert_agree, env_for, integrity_ok, one_error_line, piyao

DISK_SIZE = 64 * 2**20
LEFT_FREE = 96 * 2**10  # what the filler leaves: far less than the import writes
HEADROOM = 64 * 2**10  # RLIMIT_FSIZE above the database's size
N_BIG = 150
CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"


@dataclass
class Disk:
    """Where the data dir lives and how space is taken away and given back."""

    mode: str  # tmpfs | rlimit
    data: Path
    limit: Callable[[], None] | None = None  # preexec_fn of the command that runs out of space

    def fill(self) -> None:
        if self.mode == "tmpfs":
            free = shutil.disk_usage(self.data).free
            with open(self.data.parent / "filler", "wb") as f:
                f.write(b"\0" * max(0, free - LEFT_FREE))
        else:
            cap = max(p.stat().st_size for p in self.data.iterdir() if p.is_file()) + HEADROOM

            def limit() -> None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

            self.limit = limit

    def free(self) -> None:
        (self.data.parent / "filler").unlink(missing_ok=True)
        self.limit = None


@pytest.fixture(params=["tmpfs", "rlimit"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    root = tmp_path / "disk"
    root.mkdir()
    mounted = False
    if request.param == "tmpfs":
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(root)], capture_output=True, text=True)
        mounted = res.returncode == 0
        if not mounted:
            print(f"mount refused ({res.stderr.strip()}): RLIMIT_FSIZE instead")
    (root / "data").mkdir()
    try:
        yield Disk("tmpfs" if mounted else "rlimit", root / "data")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=True)


def _synthetic(path: Path, n: int, chars: int) -> None:
    """``n`` debunks of ``chars`` random characters each: many megabytes that nothing de-duplicates."""
    rng = random.Random(5)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            text = "".join(rng.choice(CHARS) for _ in range(chars))
            f.write(json.dumps({"title": f"第{i}号辟谣：{text[:12]}", "url": f"https://example.org/full/{i}", "text": text,
                                "date": "2025-01-01", "source": "测试"}, ensure_ascii=False) + "\n")


def _stored(url: str) -> dict[str, str]:
    store = open_store(url, migrate=False)
    try:
        with store.session() as s:
            return {u: h for u, h in s.execute(select(Debunk.url, Debunk.content_hash))}
    finally:
        store.close()


def test_disk_full_during_an_import(disk: Disk, tmp_path: Path) -> None:
    env = env_for(disk.data)
    db = disk.data / "piyao.db"
    first = ROOT / "demo" / "debunks.jsonl"
    big = tmp_path / "big.jsonl"
    _synthetic(big, N_BIG, 2000)  # ≈ 0.9 MB of text in one import (one transaction: imports commit every 500 rows)
    res = piyao(env, "debunks", "import", str(first))
    assert res.returncode == 0, res.stderr
    before = _stored(f"sqlite:///{db}")
    assert len(before) > 100

    disk.fill()
    res = piyao(env, "debunks", "import", str(big), preexec_fn=disk.limit)
    line = one_error_line(res)
    # ENOSPC is SQLite's "database or disk is full"; EFBIG (the file size limit) its "disk I/O error".
    assert ("no space left" in line if disk.mode == "tmpfs" else "disk I/O error" in line) and "run the command again" in line, line
    integrity_ok(db)
    integrity_ok(disk.data / "index.sqlite")
    assert _stored(f"sqlite:///{db}") == before  # the earlier import intact, nothing of the failed one

    disk.free()
    res = piyao(env, "debunks", "import", str(big), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["imported"] == N_BIG
    after = _stored(f"sqlite:///{db}")
    assert len(after) == len(before) + N_BIG and all(after[u] == h for u, h in before.items())
    integrity_ok(db)
    report = assert_agree(env)
    assert report["store"]["debunk"]["count"] == len(after)
    print(f"{disk.mode}: {line}")
