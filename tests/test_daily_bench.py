"""bench/daily.py on a tiny corpus: the seeded stream, and a 300-sighting day whose JSON adds up.

The run uses the project's demo corpus (demo/debunks.jsonl) and the claim sample of the test
fixtures, so it needs no ../shared; BM25-only matching (PIYAO_MATCHING__DENSE=false) keeps it short.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import bench_script

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "tests" / "fixtures" / "claims_sample.jsonl"
DEBUNKS = ROOT / "demo" / "debunks.jsonl"
STAGES = ("store", "classify", "index", "embed", "match", "queue")


@pytest.fixture(scope="module")
def daily() -> Iterator[Any]:
    with bench_script("daily.py", "daily_bench") as module:
        yield module


def test_the_stream_is_seeded_and_realistic(daily: Any) -> None:
    from store.writes import content_hash

    bases = daily.load_bases([CLAIMS])
    assert len(bases) > 200 and len({content_hash(b) for b in bases}) == len(bases)
    day = dt.date(2024, 6, 1)
    one = daily.make_stream(bases, 2000, seed=3, zipf=1.0, variant_rate=0.3, day=day)
    again = daily.make_stream(bases, 2000, seed=3, zipf=1.0, variant_rate=0.3, day=day)
    other = daily.make_stream(bases, 2000, seed=4, zipf=1.0, variant_rate=0.3, day=day)
    assert one.sightings == again.sightings and one.mix == again.mix
    assert [s.text for s in one.sightings] != [s.text for s in other.sightings]
    mix = one.mix
    assert mix["originals"] + mix["exact_repeats"] + mix["variants"] == 2000
    assert mix["unique_bases_used"] == mix["originals"] and sum(mix["sources"].values()) == 2000
    # Zipf: a few bases take many sightings, many are seen once.
    assert mix["top_base_sightings"][0] > 100 and mix["bases_seen_once"] > 20
    assert 0.2 < mix["variants"] / (mix["variants"] + mix["exact_repeats"]) < 0.4
    hashes = {content_hash(s.text) for s in one.sightings}
    assert mix["expected_new_claims"] == len(hashes) < 2000
    assert 0 < mix["variants_normalizing_to_seen_text"] < mix["variants"]
    # Every sighting falls on the Beijing day, in time order, each with its own post id.
    start = dt.datetime(2024, 5, 31, 16, 0)
    times = [s.seen_at for s in one.sightings]
    assert times == sorted(times) and start <= times[0] and times[-1] < start + dt.timedelta(days=1)
    assert len({s.external_id for s in one.sightings}) == 2000
    # Variants are edits of a base text: new texts, most of them close to one.
    texts = {s.text for s in one.sightings}
    assert len(texts) > mix["unique_bases_used"] and texts - set(bases)


def test_a_tiny_day_runs_and_its_figures_add_up(tmp_path: Path) -> None:
    out = tmp_path / "daily.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIYAO_")}
    env["PIYAO_MATCHING__DENSE"] = "false"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "daily.py"), "--claims", "300", "--chunk", "100", "--claims-from", str(CLAIMS),
         "--debunks", str(DEBUNKS), "--cache", str(tmp_path / "e5.sqlite"), "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert json.loads(out.read_text("utf-8")) == doc

    mix, tot, store, stages = doc["stream"], doc["totals"], doc["store"], doc["stages"]
    assert mix["sightings"] == tot["sightings"] == 300
    assert mix["originals"] + mix["exact_repeats"] + mix["variants"] == 300
    assert set(stages) == set(STAGES)
    for name in STAGES:
        assert stages[name]["seconds"] >= 0 and isinstance(stages[name]["items"], int)
    assert stages["store"]["items"] == 300 and stages["store"]["per_second"] > 0
    # Every distinct normalized text became one claim; every sighting was counted once.
    assert tot["new_claims"] == mix["expected_new_claims"] == store["claims"] and tot["new_claims_as_expected"]
    assert store["sighting_rows"] == store["sightings_counted"] == 300
    assert 0 < store["clusters"] <= store["claims"]
    # Each new claim was classified and indexed; the flagged ones were matched and queued.
    assert stages["classify"]["items"] == stages["index"]["items"] == tot["classified"] == tot["new_claims"]
    assert 0 < tot["flagged"] == store["flagged"] == tot["queued"] == store["queued"] < tot["new_claims"]
    assert stages["match"]["items"] == tot["match_processed"] == tot["flagged"] == stages["queue"]["items"]
    assert 0 < store["matches_stored"] <= 5 * tot["flagged"]
    assert tot["matched"] <= tot["flagged"]
    assert tot["wall_seconds"] > 0 and tot["sightings_per_second"] > 0
    assert doc["settings"]["dense"] is False and doc["corpus"]["debunks"] > 200
    # Three chunks of 100, whose figures sum to the totals.
    chunks = doc["chunks"]
    assert [c["sightings"] for c in chunks] == [100, 100, 100]
    for key in ("new_claims", "classified", "flagged", "match_processed", "queued"):
        assert sum(c[key] for c in chunks) == tot[key]
    # A run shorter than a day is not judged; a day's time is estimated from its rates.
    est = doc["target"]["estimate_for_a_day"]
    assert doc["target"]["met"] is None and est["sightings"] == 300_000
    assert set(est["stage_seconds"]) == set(STAGES) and est["seconds"] > 0 and isinstance(est["within_target"], bool)
    assert doc["peak_rss_mb"] > 0
