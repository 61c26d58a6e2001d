"""Fuzz the REST API with schemathesis for 10,000 cases (or ``--cases``) and print one JSON object.

The same checks as tests/fuzz/test_api_schema.py (tests/fuzz/api_fuzz.py), at length: every operation
of the app's OpenAPI document, as a partner token, an editor's user token and no token, with requests
that fit the schema and requests that break it. The app runs on SQLite in a temporary directory with
the seeded working set of the web tests (tests/web/seed.py: 120 demo debunks indexed, five queued
claims with their matches, one hostile), the starter model behind the intake and BM25 matching.

Prints: cases run, cases and status codes per operation, failures (0 expected; each distinct one with
a curl command that reproduces it), unhandled errors, the 5xx count and the seconds taken. Exits 1 when
anything was found.

    python bench/fuzz_api.py [--cases 10000] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_app(workdir: Path) -> tuple[Any, Any, dict[str, dict[str, str]]]:
    """The seeded app on SQLite in ``workdir``, its store, and the identities' headers."""
    from pipeline import Context, load_classifier
    from review.accounts import create_partner, create_token, create_user
    from review.intake import IntakeService
    from review.web import create_app
    from settings import load_settings
    from store.db import open_store
    from tests.web.seed import seed

    url = f"sqlite:///{workdir / 'piyao.db'}"
    settings = load_settings(data_dir=workdir / "data", environ={
        "PIYAO_STORE__URL": url, "PIYAO_WEB__SECRET_KEY": "fuzz-secret-key-0123456789", "PIYAO_WEB__WEBHOOK_INTERVAL": "0",
        "PIYAO_CLASSIFIER__MODEL": "models/starter", "PIYAO_CLASSIFIER__WORKERS": "1", "PIYAO_MATCHING__DENSE": "false",
        "PIYAO_WEB__MAX_INTAKE_ITEMS": "5", "PIYAO_WEB__MAX_TEXT_CHARS": "300",
    })
    store = open_store(url)
    app = create_app(settings, store=store)
    create_user(store, "ed", "correct horse battery", "editor")
    create_partner(store, "acme", webhook_url="http://127.0.0.1:9/hook")
    _, partner_token = create_token(store, partner="acme")
    _, editor_token = create_token(store, user="ed")
    seed(store, app.state.heavy.backend())
    app.state.intake = IntakeService(settings, store, app.state.heavy.backend, classifier=load_classifier(Context(settings)))
    identities = {"partner": {"Authorization": f"Bearer {partner_token}"},
                  "editor": {"Authorization": f"Bearer {editor_token}"}, "anonymous": {}}
    return app, store, identities


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="cases to run at least (default 10000)")
    parser.add_argument("--seed", type=int, default=None, help="seed Python's random generator (hypothesis draws from it)")
    args = parser.parse_args(argv)
    if args.seed is not None:
        random.seed(args.seed)

    from sqlalchemy import select

    from store.models import Claim
    from tests.fuzz import api_fuzz

    with tempfile.TemporaryDirectory(prefix="piyao-fuzz-") as tmp:
        started = time.perf_counter()
        app, store, identities = build_app(Path(tmp))
        setup = time.perf_counter() - started

        def claim_ids() -> list[int]:
            with store.session() as s:
                return list(s.scalars(select(Claim.id).order_by(Claim.id.desc()).limit(200)))

        def version_of(claim_id: int) -> int | None:
            with store.session() as s:
                claim = s.get(Claim, claim_id)
                return claim.version if claim is not None else None

        runs = 7 * len(identities) * len(api_fuzz.MODES)
        per_run = max(1, math.ceil(args.cases / runs))
        report = api_fuzz.FuzzReport()
        rounds = 0
        while report.cases < args.cases:
            rounds += 1
            api_fuzz.run(app, identities, cases_per_run=per_run, claim_ids=claim_ids, version_of=version_of, report=report,
                         progress=lambda what, n: print(f"\r{n:>6} cases  {what:<70}", end="", file=sys.stderr))
            per_run = max(1, math.ceil((args.cases - report.cases) / runs))
        print(file=sys.stderr)
        api_fuzz.shutdown()
        app.state.heavy.close()
        store.close()
    out = {"command": "python bench/fuzz_api.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "database": "sqlite", "identities": list(identities), "modes": [m.value for m in api_fuzz.MODES],
           "rounds": rounds, "setup_seconds": round(setup, 1), **report.as_dict()}
    print(json.dumps(out, ensure_ascii=False))
    found = out["failures"] or out["unhandled_errors"] or out["server_errors_5xx"]
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
