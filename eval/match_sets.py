"""Materialize the claim-matching evaluation sets into JSONL files `piyao eval-match` reads.

    python eval/match_sets.py [--shared ../shared/data] [--out var/eval]

* ``match_weibo.ids.jsonl`` (in the repository): real Weibo posts that were judged false
  (Weibo21, CED, CHECKED), identified by the SHA-1 of their text, with the debunk URLs
  that answer them (an empty list: no debunk among the 5,952 shared articles does). The
  posts' texts are the datasets' (research use only) and are not redistributed here:
  this script joins them back from ``../shared/data/claims``.
* ``match_rewritten.jsonl`` (in the repository, our own texts): rumors rewritten as they
  circulate, with gold URLs; copied as is.

Each set is written whole and split in two by the ``split`` field: ``*_dev.jsonl`` (fit the
calibration and thresholds: ``python -m index.calibrate``) and ``*_test.jsonl`` (report).
How the sets were made: eval/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"weibo21_train": "content", "weibo21_val": "content", "ced_weibo": "text", "checked_covid": "text"}


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--out", default="var/eval")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    for name, field in FILES.items():
        path = Path(args.shared) / "claims" / f"{name}.jsonl"
        if not path.exists():
            raise SystemExit(f"error: {path} not found (pass --shared DIR holding claims/*.jsonl)")
        for line in path.read_text("utf-8").split("\n"):
            if line.strip():
                t = json.loads(line).get(field) or ""
                texts[sha1(t)] = t
    sets = {"match_weibo": [], "match_rewritten": []}
    for line in (HERE / "match_weibo.ids.jsonl").read_text("utf-8").splitlines():
        d = json.loads(line)
        if d["sha1"] not in texts:
            raise SystemExit(f"error: post {d['id']} not found in {args.shared}/claims")
        sets["match_weibo"].append({"id": d["id"], "text": texts[d["sha1"]], "gold": d["gold"], "split": d["split"]})
    rewritten = HERE / "match_rewritten.jsonl"
    for line in rewritten.read_text("utf-8").splitlines() if rewritten.exists() else []:
        if line.strip():
            sets["match_rewritten"].append(json.loads(line))
    for name, items in sets.items():
        for split in ("all", "dev", "test"):
            chosen = [d for d in items if split == "all" or d["split"] == split]
            suffix = "" if split == "all" else f"_{split}"
            with open(out / f"{name}{suffix}.jsonl", "w", encoding="utf-8") as fh:
                for d in chosen:
                    fh.write(json.dumps({"id": d["id"], "text": d["text"], "gold": d["gold"]}, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)} claims, {sum(bool(d['gold']) for d in items)} with gold -> {out}/{name}{{,_dev,_test}}.jsonl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
