"""The child process of one schedule run: ``pipeline.run_once`` for one spider, then one JSON result line.

Started by ``scheduler.runs.Runner`` as ``python -m scheduler.child --config FILE --parent-pid PID SPIDER
[--start-url URL ...]``. A child of its own (not a thread) because Twisted's reactor starts only once per
process. It asks the kernel to kill it when the thread that started it dies (Linux ``PR_SET_PDEATHSIG``),
so a scheduler killed with SIGKILL leaves no crawl running. The last stdout line is
``{"piyao_run": 1, "spider", "run_key", "crawl": [...], "classified", "flagged", "indexed", "matched",
"queued", "error"}``; the exit status is 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
from typing import Any

log = logging.getLogger("scheduler.child")
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent's starting thread ends; exit at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError) as exc:  # not fatal: the scheduler's reaper still marks the run
            log.warning("cannot ask to die with the scheduler: %s", exc)
    if parent_pid and os.getppid() != parent_pid:
        sys.exit(3)  # the scheduler died before prctl took effect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler.child", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--start-url", action="append", default=[])
    parser.add_argument("spider")
    opts = parser.parse_args(argv)
    die_with_parent(opts.parent_pid)

    import pipeline
    from settings import ConfigError, load_settings

    run_key = os.environ.get("PIYAO_RUN_ID", "")
    result: dict[str, Any] = {"piyao_run": 1, "spider": opts.spider, "run_key": run_key, "crawl": [], "error": None}
    try:
        settings = load_settings(opts.config)
    except ConfigError as exc:
        result["error"] = f"config: {exc}"
        print(json.dumps(result, ensure_ascii=False), flush=True)
        return 1
    try:  # logging.format: text or JSON lines; the run id comes from PIYAO_RUN_ID
        from ops.logs import configure_logging

        configure_logging(settings)
    except ImportError:
        logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [%(name)s] %(levelname)s: [run {run_key}] %(message)s")
    log.info("schedule run: crawling %s, then classify, index, match and queue", opts.spider)
    ctx = pipeline.Context(settings)
    try:
        overrides = {opts.spider: list(opts.start_url)} if opts.start_url else None
        summary = pipeline.run_once(ctx, [opts.spider], overrides)
        result.update({k: v for k, v in summary.items() if k != "crawl"})
        result["crawl"] = summary["crawl"]
    except pipeline.UserError as exc:
        result["error"] = exc.format_message()
    except Exception as exc:  # noqa: BLE001 - reported to the scheduler in the result line
        log.exception("schedule run %s failed", run_key)
        result["error"] = f"{exc.__class__.__name__}: {exc}"
    finally:
        ctx.close()
    print(json.dumps(result, ensure_ascii=False, default=str), flush=True)
    return 1 if result["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
