"""Shared knobs of the fuzz tests."""

from __future__ import annotations

import os


def examples(n: int) -> int:
    """``n`` examples scaled by PIYAO_FUZZ_SCALE (default 1): CI runs the default on every push, a deeper
    run sets PIYAO_FUZZ_SCALE=20 (say) without editing a test."""
    return max(1, int(n * float(os.environ.get("PIYAO_FUZZ_SCALE", "1") or "1")))
