"""Build demo/debunks.jsonl from the shared debunk CSVs: titles, URLs, dates and short excerpts only.

The full articles are the publishers' copyright and stay out of the repository;
the demo keeps at most EXCERPT_CHARS characters of each cleaned text.

    python scripts/make_demo_corpus.py ../shared/data/debunks demo/debunks.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crawlers.extract import clean_text, parse_cn_date  # noqa: E402
from store.importer import read_file  # noqa: E402

EXCERPT_CHARS = 200
PER_SOURCE = 12
# Topics the demo claim feed touches, so the demo shows matches.
TOPICS = ["隔夜菜", "醋", "软化血管", "香蕉", "微波炉", "手机", "充电", "致癌", "辐射"]


def main(src: Path, dest: Path) -> None:
    rng = random.Random(7)
    out = []
    for path in sorted(src.glob("*.csv")):
        rows = [r for r in read_file(path) if isinstance(r, dict) and r["url"].strip() and r["title"].strip()]
        topical = [r for r in rows if any(t in r["title"] for t in TOPICS)][:8]
        rest = [r for r in rows if r not in topical]
        for r in topical + rng.sample(rest, min(PER_SOURCE, len(rest))):
            text = clean_text(r["text"])
            date = parse_cn_date(r.get("date"))
            out.append(
                {
                    "title": " ".join(r["title"].split()),
                    "url": r["url"].strip(),
                    "date": date.isoformat() if date else None,
                    "source": path.stem,
                    "text": text[:EXCERPT_CHARS],
                }
            )
    dest.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out), "utf-8")
    print(f"wrote {len(out)} debunk excerpts to {dest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
