"""Benchmark: a day's volume of claims through dedup → classify → index → match → queue.

Can piyao keep up with a day of monitored posts on one small machine? This feeds a
seeded stream of ``--claims`` sightings (default 300,000) through the functions the
nightly ``piyao run`` calls, in chunks, and reports wall time, sightings/s and where the
time goes. Target: the whole day in at most 60 minutes.

The stream
    Base texts: labelled posts from ``--claims-from`` (default ../shared/data/claims/*.jsonl:
    Weibo21, CED, CHECKED; field ``text`` or ``content``), de-duplicated by the store's own
    content hash. The base texts are shuffled (seeded), and the i-th gets a popularity
    proportional to 1 / i^s (Zipf, ``--zipf``, default s = 1.0: the classic rank-frequency
    law; with 12,000 bases the most popular rumor is seen about 30,000 times in a 300,000
    day, the 1,000th about 30 times and the tail a few times or not at all). Each sighting
    draws its base from that law; the first sighting of a base is its original text, every
    later one is either an exact repeat (a forward as is: the original, 60 %, or one of the
    variants seen so far) or, with probability ``--variant-rate`` (default 0.3), a new
    variant of one of them: one to three of the edits real forwards have — 转发/【】/hashtag/
    ``//@user:`` prefixes and "转发周知" suffixes, emoji and Weibo emoticons, punctuation
    changed or dropped, a few characters dropped or added, traditional characters, a short
    link or @mention appended, a preview cut with "…", extra whitespace. Some edits vanish
    under the store's normalization (emoji, traditional characters, links, widths): such a
    variant is stored as one more sighting of a text already seen, as in production.
    Sources are drawn i.i.d. (weibo, wechat, douyin, toutiao, kuaishou, zhihu, bilibili,
    xiaohongshu, weighted by rough share), each sighting has its own post id, and sighting
    times follow a diurnal curve over one Beijing day (``--day``). The stream is seeded
    (``--seed``): runs with the same arguments see the same sightings in the same order.
    Mix figures (bases used, exact repeats, variants, variants that normalize to a text
    already seen, expected new claims) are computed before the run and printed; the run
    checks that the store created exactly the expected number of claims.

The pipeline (the project's own code, fresh data dir, embedded backend)
    Setup, timed separately and not counted: ``store.importer.import_debunks`` of
    ``--debunks`` (default ../shared/data/debunks/*.csv, as ``piyao debunks import``), then
    ``pipeline.index_pending`` and the passages' e5 vectors through ``index.embedding.
    embed_pending`` with the on-disk cache ``--cache`` (default var/cache/e5.sqlite when it
    exists); the output says whether the cache was warm (no passage had to be encoded).
    Then per chunk of ``--chunk`` sightings: **store** — ``store.writes.add_claim`` for each
    sighting (exact dedup by content hash, clustering of near-duplicates, sighting rows),
    one transaction per ``--commit-every`` sightings; then what ``pipeline.run_once`` does
    after its crawl: **classify** (``classify_stored_claims``), **index**
    (``index_pending``), **embed** (``embed_passages``: nothing to do, claims have no
    passages), **match** (``index.matching.match_stored_claims`` with ``make_matcher``:
    flagged claims only), **queue** (``review.queue.enqueue_flagged``).
    The claims' e5 vectors go to a fresh cache in the data dir, not to ``--cache``: the
    shared cache holds the vectors of the very posts the stream is made of (the classifier
    was trained on them), which a real day's new posts would not find there.

Output: one JSON object on stdout and in ``--out`` (default var/bench/daily.json): per
stage seconds, items and items/s; totals (wall seconds, sightings/s, new claims, flagged,
matched, queued); whether the 60-minute target holds (for a shorter run: an estimate for
a 300,000-sighting day from the per-item rates and that day's mix); peak RSS; the load of
the machine before and after. A rich progress bar runs on stderr. ``--profile FILE``
writes cProfile statistics of the stream and prints the top functions.

    python bench/daily.py --claims 20000 --chunk 20000
    python bench/daily.py                      # the full day: 300,000 sightings
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DAY_SIGHTINGS = 300_000
TARGET_SECONDS = 3600.0
STAGES = ("store", "classify", "index", "embed", "match", "queue")

# Rough shares of where monitored rumors are seen.
SOURCES = {"weibo": 0.40, "wechat": 0.22, "douyin": 0.12, "toutiao": 0.10, "kuaishou": 0.06, "zhihu": 0.04,
           "bilibili": 0.03, "xiaohongshu": 0.03}
# Relative activity per Beijing hour (0-23): a night trough, a noon and an evening peak.
HOURLY = (2.0, 1.2, 0.8, 0.5, 0.4, 0.5, 1.0, 2.0, 3.2, 4.0, 4.4, 4.6, 5.0, 4.6, 4.4, 4.4, 4.4, 4.6, 5.0, 5.6, 6.2, 6.6, 6.0, 4.0)
BEIJING = dt.timezone(dt.timedelta(hours=8))
# Share of exact repeats that forward the original rather than one of its variants.
ORIGINAL_SHARE = 0.6

PREFIXES = ("转发：", "转：", "【转发】", "【扩散】", "【重要提醒】", "【紧急扩散】", "【健康提示】", "#辟谣求证# ", "#健康# ",
            "#养生# ", "#热点# ", "转给家人看看！", "震惊！", "紧急通知：", "收到朋友发来的：", "朋友圈看到的，", "[转发] ",
            "家族群里都在传：", "刚刚看到，", "重要的事情说三遍！")
MENTION_COMMENTS = ("真的假的", "转发", "求辟谣", "太可怕了", "大家注意", "看完吓一跳", "已转家人群", "收藏了", "有人知道吗", "")
NAMES = ("小王同学", "健康生活家", "老李说养生", "阳光明媚", "momo", "一只喵", "北京大妈", "科普君", "路人甲", "幸福一家人")
SUFFIXES = ("转发周知！", "！！！", "赶紧告诉家里人", "大家注意！", " 求辟谣", "是真的吗？", "（转）", " #热门话题#", "不转不是中国人！",
            "看到的都转一下吧", "。。。")
EMOJI = ("🙏", "😱", "❗", "⚠️", "👍", "🔥", "😭", "[泪]", "[微笑]", "[doge]", "[赞]", "💯")
FILLERS = "的了啊呀哦吧呢都就也"
PUNCT_SWAPS = (("，", ","), ("。", "！"), ("！", "!!"), ("？", "?"), ("：", ":"), ("，", " "), ("。", ""), ("、", "，"))
# Edit kinds and their weights; a variant gets one to three of them.
EDITS = {"prefix": 25, "suffix": 15, "emoji": 12, "punct": 12, "drop": 8, "add": 6, "traditional": 8, "link": 6,
         "truncate": 5, "space": 3}


def log(msg: str) -> None:
    from pipeline import console

    console.print(f"[daily {time.strftime('%H:%M:%S')}] {msg}", highlight=False, markup=False)


# -- the stream -------------------------------------------------------------------------------
def load_bases(paths: Sequence[Path], min_chars: int = 5) -> list[str]:
    """Distinct base texts (by the store's content hash) from JSONL files with ``text`` or ``content``."""
    from store.writes import content_hash

    seen: set[str] = set()
    out: list[str] = []
    for path in paths:
        with open(path, encoding="utf-8-sig") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                text = str(rec.get("text") or rec.get("content") or "").strip()
                if len(text) < min_chars:
                    continue
                h = content_hash(text)
                if h not in seen:
                    seen.add(h)
                    out.append(text)
    return out


class Editor:
    """The edits forwards make to a post (see the module doc), drawn from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        import opencc

        self.rng = rng
        self._s2t = opencc.OpenCC("s2t")
        self._kinds = list(EDITS)
        self._weights = list(EDITS.values())

    def variant(self, text: str) -> str:
        r = self.rng
        kinds: list[str] = []
        for _ in range(r.choice((1, 1, 2, 2, 3))):
            k = r.choices(self._kinds, self._weights)[0]
            if k not in kinds:
                kinds.append(k)
        for k in kinds:
            text = getattr(self, "_" + k)(text)
        return text

    def _prefix(self, t: str) -> str:
        r = self.rng
        if r.random() < 0.25:
            return f"//@{r.choice(NAMES)}:{r.choice(MENTION_COMMENTS)} " + t
        return r.choice(PREFIXES) + t

    def _suffix(self, t: str) -> str:
        return t + self.rng.choice(SUFFIXES)

    def _insert_some(self, t: str, pool: Sequence[str]) -> str:
        """One to three items of ``pool`` inserted at random places."""
        chars = list(t)
        for _ in range(self.rng.randint(1, 3)):
            chars.insert(self.rng.randint(0, len(chars)), self.rng.choice(pool))
        return "".join(chars)

    def _emoji(self, t: str) -> str:
        return self._insert_some(t, EMOJI)

    def _punct(self, t: str) -> str:
        present = [(a, b) for a, b in PUNCT_SWAPS if a in t]
        if not present:
            return t + self.rng.choice(("！", "。", "!!!"))
        a, b = self.rng.choice(present)
        return t.replace(a, b) if self.rng.random() < 0.5 else t.replace(a, b, 1)

    def _drop(self, t: str) -> str:
        chars = list(t)
        for _ in range(min(self.rng.randint(1, 3), max(0, len(chars) - 5))):
            del chars[self.rng.randrange(len(chars))]
        return "".join(chars)

    def _add(self, t: str) -> str:
        return self._insert_some(t, FILLERS)

    def _traditional(self, t: str) -> str:
        return str(self._s2t.convert(t))

    def _link(self, t: str) -> str:
        r = self.rng
        if r.random() < 0.6:
            return t + " http://t.cn/" + "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789") for _ in range(7))
        return t + f" @{r.choice(NAMES)}"

    def _truncate(self, t: str) -> str:
        if len(t) < 60:
            return t
        return t[: int(len(t) * self.rng.uniform(0.6, 0.9))] + "…"

    def _space(self, t: str) -> str:
        i = self.rng.randint(0, len(t))
        return t[:i] + self.rng.choice((" ", "\n", "  ", "\u3000")) + t[i:]


@dataclass
class Sighting:
    seen_at: dt.datetime  # naive UTC, as the store keeps times
    source: str
    external_id: str
    text: str


@dataclass
class Stream:
    sightings: list[Sighting]
    mix: dict[str, Any] = field(default_factory=dict)


def day_times(n: int, day: dt.date, rng: np.random.Generator) -> list[dt.datetime]:
    """``n`` sorted naive-UTC times over the Beijing day ``day``, following ``HOURLY``."""
    w = np.asarray(HOURLY, dtype=np.float64)
    hours = rng.choice(24, size=n, p=w / w.sum())
    seconds = np.sort(hours * 3600.0 + rng.random(n) * 3600.0)
    start = dt.datetime.combine(day, dt.time(), tzinfo=BEIJING).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return [start + dt.timedelta(seconds=float(s)) for s in seconds]


def make_stream(bases: Sequence[str], n: int, *, seed: int, zipf: float, variant_rate: float, day: dt.date,
                texts: bool = True) -> Stream:
    """The seeded day of ``n`` sightings over ``bases`` (see the module doc) and its mix figures.

    ``texts=False`` computes only the counts that need no text (for estimating another day size).
    """
    from store.writes import content_hash

    if not bases:
        raise SystemExit("daily: no base texts (check --claims-from)")
    nrng = np.random.default_rng(seed)
    rng = random.Random(seed)
    order = nrng.permutation(len(bases))  # which texts are popular is drawn, not the files' order
    weights = 1.0 / np.arange(1, len(bases) + 1, dtype=np.float64) ** zipf
    picks = order[nrng.choice(len(bases), size=n, p=weights / weights.sum())]
    times = day_times(n, day, nrng)
    names, shares = list(SOURCES), list(SOURCES.values())
    editor = Editor(rng)
    versions: dict[int, list[str]] = {}
    hashes: dict[str, str] = {}
    counts: Counter[str] = Counter()
    per_base: Counter[int] = Counter()
    per_source: Counter[str] = Counter()
    out: list[Sighting] = []
    seen_hashes: set[str] = set()
    for i, (b, at) in enumerate(zip(picks.tolist(), times)):
        per_base[b] += 1
        vs = versions.get(b)
        if vs is None:
            vs = versions[b] = [bases[b]]
            text, kind = vs[0], "original"
        elif rng.random() < variant_rate:
            parent = vs[0] if len(vs) == 1 or rng.random() < ORIGINAL_SHARE else rng.choice(vs[1:])
            text, kind = editor.variant(parent), "variant"
            vs.append(text)
        else:
            text = vs[0] if len(vs) == 1 or rng.random() < ORIGINAL_SHARE else rng.choice(vs[1:])
            kind = "exact_repeat"
        counts[kind] += 1
        source = rng.choices(names, shares)[0]
        per_source[source] += 1
        if not texts:
            continue
        h = hashes.get(text)
        if h is None:
            h = hashes[text] = content_hash(text)
        if kind == "variant" and h in seen_hashes:
            counts["variants_normalizing_to_seen_text"] += 1
        seen_hashes.add(h)
        out.append(Sighting(seen_at=at, source=source, external_id=f"{source}-{seed}-{i:07d}", text=text))
    top = sorted(per_base.values(), reverse=True)
    mix: dict[str, Any] = {
        "sightings": n,
        "bases_available": len(bases),
        "unique_bases_used": len(per_base),
        "originals": counts["original"],
        "exact_repeats": counts["exact_repeat"],
        "variants": counts["variant"],
        "zipf_exponent": zipf,
        "variant_rate": variant_rate,
        "top_base_sightings": top[:5],
        "bases_seen_once": sum(1 for c in top if c == 1),
        "sources": dict(per_source.most_common()),
    }
    if texts:
        mix["variants_normalizing_to_seen_text"] = counts["variants_normalizing_to_seen_text"]
        mix["expected_new_claims"] = len(seen_hashes)
        mix["distinct_raw_texts"] = len(hashes)
    return Stream(out, mix)


# -- the pipeline -----------------------------------------------------------------------------
@dataclass
class Stage:
    seconds: float = 0.0
    items: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"seconds": round(self.seconds, 2), "items": self.items,
                "per_second": round(self.items / self.seconds, 1) if self.seconds > 0 else None}  # type: ignore[dict-item]


def make_context(data_dir: Path, embedding_cache: Path) -> Any:
    """A pipeline Context on a fresh SQLite store and embedded index in ``data_dir``; config.yaml and
    PIYAO_* variables give everything else (PIYAO_MATCHING__DENSE=false: BM25-only matching)."""
    from pipeline import Context
    from settings import load_settings

    settings = load_settings(data_dir=data_dir)
    settings.store.url = ""
    settings.index.backend = "embedded"
    settings.index.path = ""
    settings.classifier.embedding_cache = str(embedding_cache)
    return Context(settings)


def setup_corpus(ctx: Any, debunk_files: Sequence[Path], passage_cache: Path | None) -> dict[str, Any]:
    """Import, index and embed the debunk corpus (what ``piyao debunks import`` and ``piyao embed`` do)."""
    from classifier.encoder import E5Encoder
    from index.embedding import embed_pending
    from pipeline import index_pending, progress_bar
    from store.importer import import_debunks

    imp = ctx.settings.imports
    t0 = time.perf_counter()
    with progress_bar(transient=True) as prog:
        task = prog.add_task("importing debunks", total=None)
        report = import_debunks(ctx.store, list(debunk_files), threshold=imp.near_duplicate_threshold,
                                num_perm=imp.minhash_permutations, min_text_chars=imp.min_text_chars,
                                max_text_chars=imp.max_text_chars, progress=lambda _p, n: prog.advance(task, n),
                                on_total=lambda n: prog.update(task, total=n))
    t1 = time.perf_counter()
    indexed = index_pending(ctx)
    t2 = time.perf_counter()
    kinds = ctx.settings.matching.embed_kinds
    embed: dict[str, Any] = {"dense": ctx.settings.matching.dense, "cache": str(passage_cache) if passage_cache else None}
    if ctx.settings.matching.dense and kinds:
        total, done = ctx.backend.vector_counts(kinds)
        encoder = E5Encoder(cache_path=passage_cache)
        try:
            with progress_bar(transient=True) as prog:
                task = prog.add_task("passage vectors", total=total - done)
                n = embed_pending(ctx.backend, encoder, kinds, progress=lambda k: prog.advance(task, k))
        finally:
            encoder.close()
        embed.update(passages=n, from_cache=encoder.hits, encoded=encoder.encoded, warm=encoder.encoded == 0)
    t3 = time.perf_counter()
    return {
        "files": len(debunk_files),
        "rows": report.rows,
        "debunks": report.imported,
        "rejected": dict(report.rejected),
        "indexed": indexed,
        "passage_vectors": embed,
        "seconds": {"import": round(t1 - t0, 1), "index": round(t2 - t1, 1), "embed": round(t3 - t2, 1)},
    }


def chunks(items: Sequence[Sighting], size: int) -> Iterator[Sequence[Sighting]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_stream(ctx: Any, stream: Stream, *, chunk: int, commit_every: int,
               on_chunk: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Each chunk: add_claim every sighting, then classify → index → embed → match → queue."""
    from index.matching import match_stored_claims
    from pipeline import classify_stored_claims, console, embed_passages, index_pending, make_matcher, progress_bar
    from review.queue import enqueue_flagged
    from store.clusters import DEFAULT_THRESHOLD, ClaimClusterer
    from store.records import ClaimIn
    from store.writes import add_claim

    stages = {name: Stage() for name in STAGES}
    totals: Counter[str] = Counter()
    per_chunk: list[dict[str, Any]] = []
    threshold = ctx.settings.claims.cluster_threshold or DEFAULT_THRESHOLD
    with ctx.store.session() as s:  # one clusterer for the day, as one crawl keeps one for its run
        clusterer = ClaimClusterer(s, threshold=threshold)
    total = len(stream.sightings)
    with progress_bar() as prog:
        task = prog.add_task("store", total=total)
        for n, part in enumerate(chunks(stream.sightings, chunk), 1):
            row: dict[str, Any] = {"chunk": n, "sightings": len(part)}

            def timed(name: str, fn: Callable[[], Any]) -> Any:
                prog.update(task, description=f"chunk {n}: {name}")
                if not console.is_terminal:  # no bar in a log file: say where the run is instead
                    log(f"chunk {n}: {name}")
                t = time.perf_counter()
                result = fn()
                stages[name].seconds += time.perf_counter() - t
                row[name + "_s"] = round(time.perf_counter() - t, 2)
                return result

            def store_part() -> int:
                created = 0
                for i in range(0, len(part), commit_every):
                    with ctx.store.session() as s:
                        for x in part[i : i + commit_every]:
                            _claim, new = add_claim(s, ClaimIn(source=x.source, text=x.text, external_id=x.external_id),
                                                    cluster_threshold=threshold, clusterer=clusterer, seen_at=x.seen_at)
                            created += new
                    prog.advance(task, len(part[i : i + commit_every]))
                return created

            created = timed("store", store_part)
            stages["store"].items += len(part)
            classified, flagged = timed("classify", lambda: classify_stored_claims(ctx))
            stages["classify"].items += classified
            indexed = timed("index", lambda: index_pending(ctx, show_progress=False))
            stages["index"].items += indexed
            embedded = timed("embed", lambda: embed_passages(ctx, show_progress=False))
            stages["embed"].items += embedded
            processed, matched = timed("match", lambda: match_stored_claims(ctx.store, ctx.backend, matcher=make_matcher(ctx),
                                                                        cluster_threshold=ctx.settings.claims.cluster_threshold))
            stages["match"].items += processed
            queued = timed("queue", lambda: enqueue_flagged(ctx.store))
            stages["queue"].items += queued
            figures = {"new_claims": created, "classified": classified, "flagged": flagged, "indexed": indexed,
                       "match_processed": processed, "matched": matched, "queued": queued}
            totals.update(figures)
            row.update(figures)
            per_chunk.append(row)
            if on_chunk is not None:
                on_chunk(row)
    return {"stages": {k: v.as_dict() for k, v in stages.items()}, "totals": dict(totals), "chunks": per_chunk}


def store_counts(ctx: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from store.models import Claim, ClaimCluster, ClaimMatch, Sighting as SightingRow

    with ctx.store.session() as s:
        def count(model: Any, *where: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "claims": count(Claim),
            "clusters": count(ClaimCluster),
            "sighting_rows": count(SightingRow),
            "sightings_counted": int(s.scalar(select(func.coalesce(func.sum(Claim.sightings), 0))) or 0),
            "flagged": count(Claim, Claim.flagged.is_(True)),
            "queued": count(Claim, Claim.status == "queued"),
            "matches_stored": count(ClaimMatch),
            "auto_matches": count(ClaimMatch, ClaimMatch.decision == "auto"),
            "suggested_matches": count(ClaimMatch, ClaimMatch.decision == "suggest"),
        }


def estimate_day(result: dict[str, Any], day_mix: dict[str, Any]) -> dict[str, Any]:
    """Seconds a ``DAY_SIGHTINGS`` day would take at this run's per-item rates.

    Store time scales with sightings, classify and index with new claims, match and queue with
    flagged claims (the flagged share of this run). Lookups in bigger tables cost a little more,
    so this is a lower bound more than a forecast.
    """
    st = result["stages"]
    tot = result["totals"]
    new = max(1, tot.get("new_claims", 0))
    day_new = day_mix["expected_new_claims"]
    flagged_share = tot.get("flagged", 0) / new
    per_new = lambda name: st[name]["seconds"] / max(1, st[name]["items"]) if st[name]["items"] else 0.0  # noqa: E731
    est = {
        "store": st["store"]["seconds"] / max(1, st["store"]["items"]) * DAY_SIGHTINGS,
        "classify": per_new("classify") * day_new,
        "index": per_new("index") * day_new,
        "embed": st["embed"]["seconds"] * (DAY_SIGHTINGS / max(1, st["store"]["items"])),
        "match": per_new("match") * day_new * flagged_share,
        "queue": per_new("queue") * day_new * flagged_share,
    }
    seconds = sum(est.values())
    return {"sightings": DAY_SIGHTINGS, "expected_new_claims": day_new, "flagged_share": round(flagged_share, 3),
            "stage_seconds": {k: round(v, 1) for k, v in est.items()}, "seconds": round(seconds, 1),
            "minutes": round(seconds / 60, 1), "within_target": seconds <= TARGET_SECONDS}


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--claims", type=int, default=DAY_SIGHTINGS, help="Sightings in the stream (default: a day, 300,000).")
    p.add_argument("--chunk", type=int, default=20_000, help="Sightings stored before each classify/index/match/queue pass.")
    p.add_argument("--commit-every", type=int, default=500, help="Sightings per store transaction.")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the base texts' popularity.")
    p.add_argument("--variant-rate", type=float, default=0.3, help="Share of repeat sightings that are edited variants.")
    p.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2024, 6, 1), help="The Beijing day of the sightings.")
    p.add_argument("--claims-from", nargs="+", type=Path, default=None,
                   help="JSONL files of base texts (default ../shared/data/claims/*.jsonl).")
    p.add_argument("--debunks", nargs="+", type=Path, default=None,
                   help="Debunk CSV/JSONL files to import first (default ../shared/data/debunks/*.csv).")
    default_cache = ROOT / "var" / "cache" / "e5.sqlite"
    p.add_argument("--cache", type=Path, default=default_cache if default_cache.exists() else None,
                   help="e5 cache holding the passage vectors (default var/cache/e5.sqlite when it exists).")
    p.add_argument("--data-dir", type=Path, default=None, help="Fresh data dir (default: a temporary one, removed after).")
    p.add_argument("--keep", action="store_true", help="Keep the temporary data dir.")
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "daily.json")
    p.add_argument("--profile", type=Path, default=None, help="Write cProfile statistics of the stream here.")
    args = p.parse_args(argv)
    if args.claims < 1 or args.chunk < 1 or args.commit_every < 1:
        p.error("--claims, --chunk and --commit-every must be at least 1")
    if not 0.0 <= args.variant_rate <= 1.0 or args.zipf < 0:
        p.error("--variant-rate must lie in [0, 1] and --zipf be at least 0")
    args.claims_from = args.claims_from or sorted((SHARED / "claims").glob("*.jsonl"))
    args.debunks = args.debunks or sorted((SHARED / "debunks").glob("*.csv"))
    for path in [*args.claims_from, *args.debunks]:
        if not path.is_file():
            p.error(f"{path}: no such file")
    if not args.claims_from or not args.debunks:
        p.error("no claim or debunk files (give --claims-from and --debunks, or provide ../shared/data)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: through the finally clauses that close the store and remove the data dir.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    tmp = None
    if args.data_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="piyao-daily-"))
        data_dir = tmp
    else:
        data_dir = args.data_dir
        if data_dir.exists() and any(data_dir.iterdir()):
            raise SystemExit(f"daily: {data_dir} is not empty: the benchmark needs a fresh data dir")
    try:
        t = time.perf_counter()
        bases = load_bases(args.claims_from)
        stream = make_stream(bases, args.claims, seed=args.seed, zipf=args.zipf, variant_rate=args.variant_rate, day=args.day)
        gen_s = time.perf_counter() - t
        mix = stream.mix | {"generation_seconds": round(gen_s, 1)}
        log("stream: " + json.dumps({k: v for k, v in mix.items() if k != "sources"}, ensure_ascii=False))

        # Setup: the debunk corpus with its passage vectors from the shared cache (not timed).
        setup_ctx = make_context(data_dir, args.cache or data_dir / "cache" / "e5.sqlite")
        try:
            corpus = setup_corpus(setup_ctx, args.debunks, args.cache)
        finally:
            setup_ctx.close()
        log("corpus: " + json.dumps(corpus, ensure_ascii=False))

        # The stream: claims' vectors in a fresh cache (see the module doc).
        ctx = make_context(data_dir, data_dir / "cache" / "e5-claims.sqlite")
        profiler = cProfile.Profile() if args.profile else None
        try:
            t0 = time.perf_counter()
            if profiler:
                profiler.enable()
            result = run_stream(ctx, stream, chunk=args.chunk, commit_every=args.commit_every,
                                on_chunk=lambda row: log(json.dumps(row, ensure_ascii=False)))
            if profiler:
                profiler.disable()
            wall = time.perf_counter() - t0
            counts = store_counts(ctx)
        finally:
            ctx.close()
        if profiler:
            args.profile.parent.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(args.profile))
            pstats.Stats(str(args.profile), stream=sys.stderr).sort_stats("cumulative").print_stats(30)

        tot = result["totals"]
        doc: dict[str, Any] = {
            "benchmark": "daily_volume",
            "command": "python bench/daily.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_before": [round(x, 2) for x in load_before],
                        "load_after": [round(x, 2) for x in os.getloadavg()]},
            "settings": {"chunk": args.chunk, "commit_every": args.commit_every, "seed": args.seed, "day": args.day.isoformat(),
                         "backend": "embedded", "dense": ctx.settings.matching.dense,
                         "classifier": str(ctx.settings.classifier.model)},
            "corpus": corpus,
            "stream": mix,
            "stages": result["stages"],
            "totals": {
                "wall_seconds": round(wall, 1),
                "sightings": len(stream.sightings),
                "sightings_per_second": round(len(stream.sightings) / wall, 1) if wall > 0 else None,
                **tot,
                "new_claims_as_expected": tot.get("new_claims") == mix["expected_new_claims"],
            },
            "store": counts,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "chunks": result["chunks"],
        }
        target: dict[str, Any] = {"seconds": TARGET_SECONDS}
        if len(stream.sightings) >= DAY_SIGHTINGS:
            target["met"] = wall <= TARGET_SECONDS
        else:
            day_mix = make_stream(bases, DAY_SIGHTINGS, seed=args.seed, zipf=args.zipf, variant_rate=args.variant_rate,
                                  day=args.day).mix
            target["met"] = None
            target["estimate_for_a_day"] = estimate_day(doc, day_mix)
        doc["target"] = target
        text = json.dumps(doc, ensure_ascii=False, indent=1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", "utf-8")
        print(text)
        return doc
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            log(f"data dir kept: {tmp}")


if __name__ == "__main__":
    main()
