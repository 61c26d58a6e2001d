"""Benchmark: import the shared debunk collection into an empty data dir, then time searches.

Prints one JSON object: rows, stored, wall seconds for import and indexing,
rows/s, and p50/p95 search latency over a fixed set of queries.

    python bench/import_bench.py [../shared/data/debunks]
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.embedded import EmbeddedBackend  # noqa: E402
from index.outbox import drain  # noqa: E402
from store.db import open_store  # noqa: E402
from store.importer import import_debunks  # noqa: E402

QUERIES = ["隔夜菜 致癌", "喝醋 软化血管", "微波炉 辐射", "5G 基站 辐射", "疫苗 副作用", "转基因 食品", "手机 充电 爆炸", "量子 保健品", "地震 预测", "老人 保健品 诈骗"]


def main(src: Path) -> dict[str, object]:
    files = sorted(src.glob("*.csv"))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/piyao.db")
        backend = EmbeddedBackend(Path(tmp) / "index.sqlite")
        t0 = time.perf_counter()
        report = import_debunks(store, files)
        t1 = time.perf_counter()
        indexed = drain(store, backend)
        t2 = time.perf_counter()
        lat = []
        for _ in range(5):
            for q in QUERIES:
                s = time.perf_counter()
                backend.search(q, limit=10)
                lat.append((time.perf_counter() - s) * 1000)
        lat.sort()
        return {
            "benchmark": "import_and_search",
            "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
            "files": len(files),
            "rows": report.rows,
            "stored": report.imported,
            "rejected": report.rejected,
            "import_seconds": round(t1 - t0, 2),
            "index_seconds": round(t2 - t1, 2),
            "rows_per_second": round(report.rows / (t2 - t0), 1),
            "indexed": indexed,
            "search_queries": len(lat),
            "search_p50_ms": round(statistics.median(lat), 2),
            "search_p95_ms": round(lat[int(len(lat) * 0.95) - 1], 2),
        }


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "debunks"
    print(json.dumps(main(src), ensure_ascii=False))
