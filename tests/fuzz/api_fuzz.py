"""The REST API fuzzer shared by tests/fuzz/test_api_schema.py (a few cases per operation, every push) and
bench/fuzz_api.py (10,000 cases and more): schemathesis reads the app's own OpenAPI document
(/api/openapi.json), generates requests that fit it (positive) and requests that break it (negative),
sends them through the ASGI app as a partner token and as an editor's user token, and checks each
response: no 5xx, and the status code, content type and body the schema documents.

Failures are collected, not raised, so that one run reports every distinct problem with its count.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

SCHEMA_PATH = "/api/openapi.json"
# not_a_server_error: no 5xx. The conformance checks: every status code, content type and JSON body is one the
# schema documents (FastAPI's schema lists 422 for every operation; piyao's routes add 401, 403, 404, 409, 503).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class FuzzReport:
    """What a run did and found; ``as_dict`` is the JSON bench/fuzz_api.py prints."""

    cases: int = 0
    per_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, status code) → cases
    failures: Counter[str] = field(default_factory=Counter)  # "<operation> [<check>] <title>" → cases
    examples: dict[str, str] = field(default_factory=dict)  # the same key → one reproduction (curl)
    errors: Counter[str] = field(default_factory=Counter)  # exceptions out of the app or the transport
    server_errors: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "per_operation": dict(sorted(self.per_operation.items())),
            "statuses": {op: {code: n for (o, code), n in sorted(self.statuses.items()) if o == op}
                         for op in sorted(self.per_operation)},
            "failures": sum(self.failures.values()),
            "distinct_failures": dict(self.failures),
            "failure_examples": self.examples,
            "unhandled_errors": sum(self.errors.values()),
            "distinct_errors": dict(self.errors),
            "server_errors_5xx": self.server_errors,
            "seconds": round(self.seconds, 1),
        }


def load_schema(app: Any) -> Any:
    """The app's OpenAPI document as schemathesis sees it (read through the ASGI app itself)."""
    return schemathesis.openapi.from_asgi(SCHEMA_PATH, app)


def shutdown() -> None:
    """Stop the app lifespans schemathesis started (they would otherwise run until the process exits)."""
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()


def _strategy(operation: Any, mode: GenerationMode, claim_ids: Callable[[], list[int]]) -> st.SearchStrategy[Any]:
    """Cases of ``operation``; where the path names a claim, half of them name one that exists."""
    generated = operation.as_strategy(generation_mode=mode)
    if "{claim_id}" not in operation.path or not claim_ids():
        return generated
    known = st.sampled_from(claim_ids()).flatmap(
        lambda cid: operation.as_strategy(generation_mode=mode, path_parameters={"claim_id": cid}))
    return st.one_of(generated, known)


def run(app: Any, identities: dict[str, dict[str, str]], *, cases_per_run: int, claim_ids: Callable[[], list[int]],
        version_of: Callable[[int], int | None] | None = None, operations: Iterable[str] | None = None,
        modes: Iterable[GenerationMode] = MODES, progress: Callable[[str, int], None] | None = None,
        report: FuzzReport | None = None) -> FuzzReport:
    """Fuzz every operation (or those labelled in ``operations``, e.g. "GET /api/v1/claims") as every identity
    (name → headers) in every generation mode, ``cases_per_run`` cases each (fewer where the schema allows fewer).

    ``version_of``: a claim's current version; half the reviews of a known claim then send it as
    ``expected_version``, so that decisions get recorded (a random version is a 409 before anything runs).
    ``report``: a report to add this run to (bench/fuzz_api.py runs rounds until it reaches its total)."""
    schema = load_schema(app)
    report = report if report is not None else FuzzReport()
    started = time.perf_counter()
    wanted = set(operations) if operations is not None else None
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if wanted is not None and label not in wanted:
            continue
        for who, headers in identities.items():
            for mode in modes:
                _run_one(operation, label, who, headers, mode, cases_per_run, claim_ids, version_of, report)
                if progress:
                    progress(f"{label} as {who} ({mode.value})", report.cases)
    report.seconds += time.perf_counter() - started
    return report


def _run_one(operation: Any, label: str, who: str, headers: dict[str, str], mode: GenerationMode, n: int,
             claim_ids: Callable[[], list[int]], version_of: Callable[[int], int | None] | None, report: FuzzReport) -> None:
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=_strategy(operation, mode, claim_ids), current_version=st.booleans())
    def send(case: Any, current_version: bool) -> None:
        report.cases += 1
        report.per_operation[label] += 1
        claim_id = (case.path_parameters or {}).get("claim_id")
        if (current_version and version_of is not None and label.endswith("/review") and isinstance(case.body, dict)
                and isinstance(claim_id, int) and 1 <= claim_id < 2**31 and "expected_version" in case.body):
            version = version_of(claim_id)
            if version is not None:
                case.body = {**case.body, "expected_version": version}
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001 - an exception out of the app is a finding, not a stop
            report.errors[f"{label} {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]] += 1
            return
        report.statuses[(label, str(response.status_code))] += 1
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{label} as {who} ({mode.value}) [{failure.__class__.__name__}] {failure.title}"[:300]
                report.failures[key] += 1
                report.examples.setdefault(key, f"{response.status_code}: {case.as_curl_command(headers=headers)}"[:2000])

    send()
