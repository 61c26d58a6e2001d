"""Load test: 50 concurrent users for 60 s on debunk search, the review queue and partner intake,
against a real `piyao serve` on loopback — once with the embedded backend, once with Elasticsearch.

    .venv/bin/pip install -e ".[bench]"          # locust
    .venv/bin/python bench/load.py [--users 50] [--seconds 60] [--backends embedded,elasticsearch]
                                   [--workers N] [--intake-mix stream|new] [--es URL] [--debunks FILE ...]
                                   [--keep DIR] [--out var/bench/load.json]

Set-up (not timed): a fresh data dir; the debunks imported with `piyao debunks import` (default: the
12 CSVs of ../shared/data/debunks when present, else demo/debunks.jsonl) and their passages' e5
vectors (`piyao embed`, from the shared vector cache var/cache/e5.sqlite when it exists; the server
itself starts with an empty cache, so the claims' vectors are computed live); an editor and a viewer
account, a partner with a token; `piyao serve --workers N` (default: one per core); 300 claims pushed
through the intake API so that the queue holds flagged claims (this also loads the models).

Partner traffic (--intake-mix):
* stream (default): bench/daily.py's seeded day of 300,000 sightings (../shared/data/claims, else
  tests/fixtures/claims_sample.jsonl), from its 150,000th sighting on: mid-day. The texts of that
  window which the day saw earlier are pushed in the set-up, as a server running since midnight would
  hold them; so about a quarter of the posts sent are new texts and the rest repeats and variants;
* new: every post a new text (a sample post with noise and a random number): the worst case.

Then locust (as a library, one process) runs three kinds of users, started 10 per second up to
--users, each waiting 0.5–1.5 s between requests (a person's pace, not a flood):

* SearchUser (weight 2): `GET /api/v1/debunks?q=…` with a viewer token, and the search page
  `GET /debunks?q=…` with a viewer session, queries drawn from the claim texts' jieba words;
* EditorUser (weight 2): logs in, `GET /queue` (filters and pages drawn at random), opens a claim;
* PartnerUser (weight 1): `POST /api/v1/claims` with one or two posts: stored, classified, indexed and
  matched in the same request.

Prints one JSON object: per backend, per request name and in total: requests, failures (any non-2xx
or a transport error), p50 / p95 / p99 in ms, requests/s; the cores the server and the load generator
kept busy; the server's memory; the claims the load added and how many of them were forwarded variants
of an earlier claim (matched with its e5 vector, docs/matching.md); and the machine. Targets: 0 errors,
p95 ≤ 200 ms.
"""

from __future__ import annotations

# locust monkey-patches the standard library with gevent: import it before anything else.
from locust import HttpUser, between, events, task  # isort: skip
from locust.env import Environment  # isort: skip

import argparse
import glob
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PASSWORD = "load-test-password"
SAMPLE = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"
NOISE = ["转发", "！！", "【重要】", "家人们", "速看", "刚刚", "紧急通知", "请转给父母", "据说", "千万注意"]

STATE: dict[str, Any] = {}


def _texts() -> list[str]:
    return [json.loads(line)["text"] for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]


def _queries(texts: list[str]) -> list[str]:
    from classifier.text import tokenize

    words = sorted({w for t in texts for w in tokenize(t) if len(w) >= 2})
    rnd = random.Random(3)
    return [" ".join(rnd.sample(words, k=rnd.choice([1, 2]))) for _ in range(500)] + ["隔夜菜", "致癌", "疫苗", "量子"]


def _variant(rnd: random.Random, text: str) -> str:
    return f"{rnd.choice(NOISE)}{text}{rnd.choice(NOISE)}{rnd.randrange(10**6)}"


class SearchUser(HttpUser):
    weight = 2
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.rnd = random.Random()
        self.client.headers["Authorization"] = f"Bearer {STATE['viewer_token']}"

    @task(3)
    def api_search(self) -> None:
        q = self.rnd.choice(STATE["queries"])
        self.client.get("/api/v1/debunks", params={"q": q, "limit": 10}, name="GET /api/v1/debunks?q")

    @task(1)
    def page_search(self) -> None:
        q = self.rnd.choice(STATE["queries"])
        self.client.get("/debunks", params={"q": q}, name="GET /debunks?q (page)")


class EditorUser(HttpUser):
    weight = 2
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.rnd = random.Random()
        page = self.client.get("/login", name="GET /login").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page)
        self.client.post("/login", data={"username": "ed", "password": PASSWORD, "csrf_token": token.group(1) if token else "",
                                         "next": "/queue"}, name="POST /login", allow_redirects=False)

    @task(3)
    def queue(self) -> None:
        params = self.rnd.choice([{}, {"order": "uncertainty"}, {"page": 2}, {"status": "all"}, {"topic": "health_wellness"}])
        r = self.client.get("/queue", params=params, name="GET /queue")
        ids = re.findall(r'data-claim-id="(\d+)"', r.text)
        if ids and self.rnd.random() < 0.5:
            self.client.get(f"/claims/{self.rnd.choice(ids)}", name="GET /claims/{id}")


class PartnerUser(HttpUser):
    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.rnd = random.Random()
        self.client.headers["Authorization"] = f"Bearer {STATE['partner_token']}"

    @task
    def intake(self) -> None:
        n = self.rnd.choice([1, 1, 2])
        if STATE["intake_mix"] == "stream":
            # The next sightings of the day's stream (shared by all partner users, in stream order).
            items = [STATE["window"].pop() for _ in range(n) if STATE["window"]]
        else:
            items = [{"external_id": f"load-{self.rnd.randrange(10**12)}", "text": _variant(self.rnd, self.rnd.choice(STATE["texts"]))}
                     for _ in range(n)]
        STATE["intake_items"] += len(items)
        self.client.post("/api/v1/claims", json={"items": items}, name="POST /api/v1/claims")


def day_window(claim_files: list[Path], size: int) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, Any]]:
    """Mid-day partner traffic from bench/daily.py's seeded day of 300,000 sightings.

    The window is the ``size`` sightings from the day's 150,000th on. The texts of the window that the
    day saw before it (forwards of a rumor already circulating) are pushed in the set-up, as a server
    running since midnight would have stored them; so in the window, as in the middle of a real day,
    about a quarter of the posts are new texts and the rest are repeats and variants already seen.
    Returns (window items in order, set-up items, mix figures).
    """
    import datetime as dt

    import daily  # bench/daily.py
    from store.writes import content_hash

    bases = daily.load_bases(claim_files)
    stream = daily.make_stream(bases, daily.DAY_SIGHTINGS, seed=7, zipf=1.0, variant_rate=0.3, day=dt.date(2024, 6, 1))
    start = daily.DAY_SIGHTINGS // 2
    before: dict[str, str] = {}
    for sg in stream.sightings[:start]:
        before.setdefault(content_hash(sg.text), sg.text)
    window = stream.sightings[start : start + size]
    setup: dict[str, str] = {}
    new: set[str] = set()
    for sg in window:
        h = content_hash(sg.text)
        if h in before:
            setup.setdefault(h, before[h])
        else:
            new.add(h)
    items = [{"external_id": sg.external_id, "text": sg.text} for sg in window]
    setup_items = [{"external_id": f"earlier-{i}", "text": t} for i, t in enumerate(setup.values())]
    mix = {"base_texts": len(bases), "window_start": start, "window_sightings": len(window),
           "window_new_texts": len(new), "texts_seen_earlier": len(setup_items)}
    return items, setup_items, mix


def _post_items(url: str, items: list[dict[str, str]], batch: int = 25) -> None:
    for i in range(0, len(items), batch):
        req = urllib.request.Request(url + "/api/v1/claims", data=json.dumps({"items": items[i : i + batch]}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {STATE['partner_token']}", "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=600).read()


def _tree(pid: int) -> list[Any]:
    """A process and its child processes (the server's workers), as psutil sees them now."""
    import psutil

    p = psutil.Process(pid)
    return [p, *p.children(recursive=True)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of a process and its child processes. Children that exited are
    not counted: read before the server stops."""
    return sum(t.user + t.system for t in (q.cpu_times() for q in _tree(pid)))


def _rss_bytes(pid: int) -> int:
    """Resident memory of a process and its child processes."""
    return sum(q.memory_info().rss for q in _tree(pid))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data: Path, backend: str, es: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env |= {"PIYAO_WEB__SECRET_KEY": "load-test-secret-0123456789", "PIYAO_INDEX__BACKEND": backend}
    if backend == "elasticsearch":
        env |= {"PIYAO_INDEX__ELASTICSEARCH__HOSTS": json.dumps([es]), "PIYAO_INDEX__ELASTICSEARCH__ALIAS": f"piyaoload{os.getpid()}"}
    return env


def _drop_es_indices(es: str) -> list[str]:
    """Delete this run's Elasticsearch indices (claims and passages, every generation); their names."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch([es])
    try:
        names = sorted(client.indices.get(index=f"piyaoload{os.getpid()}*", expand_wildcards="all", ignore_unavailable=True))
        for name in names:
            client.options(ignore_status=404).indices.delete(index=name)
        return names
    finally:
        client.close()


def _piyao(data: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-c", "import pipeline; pipeline.main()", "--data-dir", str(data), *args],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def prepare(data: Path, backend: str, es: str | None, debunk_files: list[str], workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    from review.accounts import create_partner, create_token, create_user
    from settings import load_settings
    from store.db import open_store

    env = _env(data, backend, es)
    _piyao(data, env, "debunks", "import", *debunk_files)
    # The passages' e5 vectors, as `piyao run` leaves them (the dense half of matching); from the shared
    # vector cache when there is one (var/cache/e5.sqlite: debunk passages are encoded once, ever).
    # The server then starts with an empty cache of its own: the claims' vectors are computed live.
    shared_cache = ROOT / "var" / "cache" / "e5.sqlite"
    _piyao(data, env | ({"PIYAO_CLASSIFIER__EMBEDDING_CACHE": str(shared_cache)} if shared_cache.exists() else {}), "embed")
    settings = load_settings(data_dir=data, environ=env)
    store = open_store(settings.store_url)
    create_user(store, "ed", PASSWORD, "editor")
    create_user(store, "vic", PASSWORD, "viewer")
    create_partner(store, "loadpartner")
    STATE["partner_token"] = create_token(store, partner="loadpartner")[1]
    STATE["viewer_token"] = create_token(store, user="vic")[1]
    store.close()
    port = _free_port()
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "import pipeline; pipeline.main()", "--data-dir", str(data), "serve",
                             "--port", str(port), "--workers", str(workers)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/login", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"piyao serve did not start: {(data / 'server.log').read_text(errors='replace')[-2000:]}")
        # Fill the queue through the API itself (and warm the models): 300 claims, 10 per call; then the
        # texts the day saw before the load's window (--intake-mix stream).
        rnd = random.Random(11)
        _post_items(url, [{"external_id": f"warm-{i}", "text": _variant(rnd, rnd.choice(STATE["texts"]))} for i in range(300)], batch=10)
        if STATE["intake_mix"] == "stream":
            _post_items(url, STATE["setup_items"])
            STATE["window"] = list(reversed(STATE["window_items"]))  # pop() takes them in stream order
    except BaseException:  # a failed set-up or SIGTERM: the server must not outlive the run
        proc.terminate()
        proc.wait(timeout=30)
        raise
    STATE["intake_items"] = 0
    return proc, url


def _claims_after(data: Path, backend: str, es: str | None, after_id: int | None) -> dict[str, Any]:
    """The highest claim id (``after_id`` None); or how many claims the load added after ``after_id`` and
    how many of them are forwarded variants of an earlier claim (matched with its vector, no encode)."""
    from sqlalchemy import func, select

    from index.matching import stand_in_texts
    from settings import load_settings
    from store.db import open_store
    from store.models import Claim

    settings = load_settings(data_dir=data, environ=_env(data, backend, es))
    store = open_store(settings.store_url)
    try:
        with store.session() as s:
            if after_id is None:
                return {"max_id": s.scalar(select(func.max(Claim.id))) or 0}
            new = s.scalars(select(Claim).where(Claim.id > after_id)).all()
            variants = sum(t is not None for t in stand_in_texts(s, new, settings.claims.cluster_threshold))
            return {"new_claims": len(new), "variants_of_earlier_claims": variants}
    finally:
        store.close()


def run_load(url: str, users: int, seconds: float) -> dict[str, Any]:
    import gevent

    env = Environment(user_classes=[SearchUser, EditorUser, PartnerUser], events=events, host=url)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=10)
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    out: dict[str, Any] = {}

    def summary(entry: Any) -> dict[str, Any]:
        return {"requests": entry.num_requests, "failures": entry.num_failures,
                "p50_ms": entry.get_response_time_percentile(0.50), "p95_ms": entry.get_response_time_percentile(0.95),
                "p99_ms": entry.get_response_time_percentile(0.99), "rps": round(entry.total_rps, 1)}

    for (name, method), entry in sorted(env.stats.entries.items()):
        out[name] = summary(entry)
    out["total"] = summary(env.stats.total)
    out["errors"] = {f"{e.method} {e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--backends", default="embedded,elasticsearch")
    ap.add_argument("--es", default=os.environ.get("PIYAO_TEST_ES_URL", "http://127.0.0.1:9200"))
    ap.add_argument("--debunks", nargs="*", default=None)
    ap.add_argument("--intake-mix", choices=("stream", "new"), default="stream",
                    help="stream: partner posts from bench/daily.py's day (mid-day: about a quarter new texts); "
                         "new: every post a new text (the worst case)")
    ap.add_argument("--claims-from", nargs="*", default=None,
                    help="JSONL posts for the stream (default ../shared/data/claims/*.jsonl, else tests/fixtures)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="piyao serve --workers (default: one per core)")
    ap.add_argument("--keep", metavar="DIR", help="set up and keep the data dirs under DIR (one per backend) instead of a temporary dir")
    ap.add_argument("--out", default=str(ROOT / "var" / "bench" / "load.json"))
    args = ap.parse_args()
    # SIGTERM ends the run like Ctrl-C: through the finally clauses that stop the server and delete the run's
    # data dir and Elasticsearch indices.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    STATE["intake_mix"] = args.intake_mix
    files = args.debunks or sorted(glob.glob(str(ROOT.parent / "shared" / "data" / "debunks" / "*.csv"))) or [str(ROOT / "demo" / "debunks.jsonl")]
    STATE["texts"] = _texts()
    STATE["queries"] = _queries(STATE["texts"])
    mix: dict[str, Any] = {"kind": "new"}
    if args.intake_mix == "stream":
        claim_files = [Path(p) for p in (args.claims_from or sorted(glob.glob(str(ROOT.parent / "shared" / "data" / "claims" / "*.jsonl"))) or [str(SAMPLE)])]
        STATE["window_items"], STATE["setup_items"], mix = day_window(claim_files, 4000)
        mix = {"kind": "stream"} | mix
    result: dict[str, Any] = {"users": args.users, "seconds": args.seconds, "server_workers": args.workers, "debunk_files": len(files), "intake_mix": mix,
                              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                              "backends": {}}
    for backend in [b for b in args.backends.split(",") if b]:
        with tempfile.TemporaryDirectory(prefix="piyao-load-") as tmp:
            data = Path(args.keep) / backend if args.keep else Path(tmp) / "data"
            if args.keep:
                shutil.rmtree(data, ignore_errors=True)
            try:
                t0 = time.monotonic()
                proc, url = prepare(data, backend, args.es, files, args.workers)
                setup_s = time.monotonic() - t0
                before = _claims_after(data, backend, args.es, None)["max_id"]
                cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
                own0 = os.times()
                try:
                    stats = run_load(url, args.users, args.seconds)
                    own1 = os.times()
                    wall = time.monotonic() - wall0
                    stats["cpu"] = {"cores": os.cpu_count(), "wall_seconds": round(wall, 1),
                                    "server_cores_busy": round((_cpu_seconds(proc.pid) - cpu0) / wall, 2),
                                    "load_generator_cores_busy": round((own1.user + own1.system - own0.user - own0.system) / wall, 2)}
                    stats["server_rss_mb"] = round(_rss_bytes(proc.pid) / 2**20)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                stats["setup_seconds"] = round(setup_s, 1)
                stats["intake_items_sent"] = STATE["intake_items"]
                stats["intake_claims"] = _claims_after(data, backend, args.es, before)
            finally:
                if backend == "elasticsearch" and not args.keep:  # a kept data dir still needs its indices
                    _drop_es_indices(args.es)
            result["backends"][backend] = stats
            print(f"load: {backend}: {stats['total']}", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
