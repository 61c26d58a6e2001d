"""A small, real working set for the web tests: debunks from the demo corpus (real titles and URLs,
short excerpts; demo/README.md), claims flagged in the queue with their matched debunks, one of them
carrying a hostile payload as a crawled page would, all written through the store's own writers and
indexed by the real backend.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from index.backend import SearchFilters
from index.outbox import drain
from store.db import Store
from store.models import Claim, ClaimMatch
from store.records import ClaimIn, DebunkIn
from store.writes import DebunkWriter, add_claim

ROOT = Path(__file__).resolve().parents[2]

# A crawled page that tries everything: a script, an event attribute, a javascript: link, a CSS trick.
XSS_TEXT = ('网传喝板蓝根能预防一切病毒<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
            '<a href="javascript:window.__pwned=3">点此查看</a><style>body{display:none}</style>')
XSS_URL = "javascript:window.__pwned=4"

CLAIMS: list[dict[str, Any]] = [
    {"text": "隔夜菜千万不能吃，吃了会致癌，赶紧转给家里人！", "source": "weibo", "score": 0.93, "label": "rumor",
     "topic": "food_safety", "sightings": 12, "query": "隔夜菜 致癌"},
    {"text": "经常吃腐乳会致癌，腐乳里面全是霉菌", "source": "wechat", "score": 0.88, "label": "rumor",
     "topic": "food_safety", "sightings": 5, "query": "腐乳 致癌"},
    {"text": "吃味精会导致脱发，还会致癌", "source": "douyin", "score": 0.81, "label": "rumor",
     "topic": "food_safety", "sightings": 3, "query": "味精"},
    {"text": XSS_TEXT, "source": "hostile-forum", "score": 0.77, "label": "rumor", "topic": "disease_medicine",
     "sightings": 2, "query": "板蓝根", "url": XSS_URL},
    {"text": "量子水杯能治百病，老年人每天喝可以延年益寿", "source": "wechat", "score": 0.62, "label": "pseudoscience",
     "topic": "elderly_scams", "sightings": 1, "query": "量子"},
]


def demo_debunks(limit: int = 120) -> list[dict[str, Any]]:
    rows = []
    with open(ROOT / "demo" / "debunks.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def seed(store: Store, backend: Any, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Debunks, queued claims with matches, indexed. Returns {"claims": [ids in CLAIMS order], "debunks": n}."""
    now = now or dt.datetime(2026, 11, 28, 2, 0, 0)
    with store.session() as s:
        writer = DebunkWriter(s)
        for i, row in enumerate(demo_debunks()):
            published = dt.date.fromisoformat(row["date"]) if row.get("date") else None
            writer.add(DebunkIn(url=row["url"], title=row["title"], text=row["text"], source=row["source"],
                                published=published, verdict=row.get("verdict")))
    drain(store, backend)
    ids: list[int] = []
    with store.session() as s:
        for i, spec in enumerate(CLAIMS):
            seen = now - dt.timedelta(hours=i)
            claim, _ = add_claim(s, ClaimIn(source=spec["source"], text=spec["text"], external_id=f"seed-{i}",
                                            url=spec.get("url", f"https://example.org/post/{i}")), seen_at=seen)
            for k in range(spec["sightings"] - 1):
                add_claim(s, ClaimIn(source=spec["source"], text=spec["text"], external_id=f"seed-{i}"),
                          seen_at=seen + dt.timedelta(minutes=k + 1))
            claim.score, claim.label, claim.topic = spec["score"], spec["label"], spec["topic"]
            claim.flagged, claim.status = True, "queued"
            claim.model_version = "seed"
            claim.classified_at = claim.matched_at = seen
            claim.explanation = {"kind": "terms", "terms": spec["query"].split()}
            s.flush()
            ids.append(claim.id)
    for cid, spec in zip(ids, CLAIMS):
        hits = backend.search(spec["query"], limit=3, filters=SearchFilters(kind="debunk"))
        with store.session() as s:
            for rank, h in enumerate(hits, start=1):
                did = int(h.key.split(":")[1])
                s.add(ClaimMatch(claim_id=cid, debunk_id=did, rank=rank, score=round(0.95 - 0.2 * rank, 3),
                                 snippet=h.snippet, decision="auto" if rank == 1 else "suggest",
                                 evidence_kind="title", evidence=h.title))
    drain(store, backend)
    return {"claims": ids, "debunks": len(demo_debunks())}


def claim_version(store: Store, claim_id: int) -> int:
    with store.session() as s:
        c = s.get(Claim, claim_id)
        assert c is not None
        return c.version
