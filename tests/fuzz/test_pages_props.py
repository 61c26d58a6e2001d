"""Property tests over the filter fields of the HTML pages (queue, audit log, statistics, debunk library,
claim page): any value a browser can send gives the page or a Chinese error page, never a 5xx.

Found here first: days at the ends of the calendar ("0001-01-01", "9999-12-31") made the queue, audit
and statistics pages compute a bound past datetime's range (OverflowError, a 500); ids past the database's
integer range in a URL or a form (/claims/9223372036854775813, debunk_ids) overflowed the driver (a 500).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.support import examples

days = st.one_of(
    st.just(""), st.dates().map(lambda d: d.isoformat()), st.text(max_size=12),
    st.sampled_from(["0001-01-01", "9999-12-31", "0001-01-05", "1899-12-31", "2100-12-31", "2024-02-30", "2024-13-01",
                     "20240101", "2024/01/01", "２０２４-０１-０１", "-0001-01-01", "2024-1-1"]),
)
texts = st.one_of(st.text(max_size=30), st.sampled_from(["", "rumor", "food_safety", "queued", "all", "newest", "'\"<>",
                                                        "\x00", "隔夜菜", "%", "_", "*", "999999999999", "2147483648"]))
ids = st.one_of(st.integers(min_value=-5, max_value=2**70), st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**63, 2**64]))
pages = st.one_of(st.integers(-2, 5).map(str), st.sampled_from(["1000000", "1000001", "1e3", "x", ""]))
months = st.one_of(st.text(max_size=8), st.sampled_from(["", "2026-11", "0001-01", "9999-12", "2026-13", "2026-1"]))


def test_filter_pages_answer_any_input(app: Any, seeded: dict[str, Any], login_as: Any) -> None:
    admin, _ = login_as("admin")
    admin.headers["Accept"] = "text/html,application/xhtml+xml,*/*;q=0.8"  # as a browser: errors come as pages
    claim = seeded["claims"][0]

    @settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(date_from=days, date_to=days, text=texts, page=pages, month=months)
    @example(date_from="0001-01-01", date_to="9999-12-31", text="", page="1", month="0001-01")
    @example(date_from="", date_to="0001-01-05", text="", page="1", month="9999-12")
    def check(date_from: str, date_to: str, text: str, page: str, month: str) -> None:
        for path, params in [
            ("/queue", {"date_from": date_from, "date_to": date_to, "topic": text, "label": text, "order": text,
                        "status": text, "source": text, "page": page}),
            ("/audit", {"date_from": date_from, "date_to": date_to, "actor": text, "action": text, "object_type": text,
                        "object_id": text, "page": page}),
            ("/audit/export", {"date_from": date_from, "date_to": date_to, "format": text}),
            ("/stats", {"date_from": date_from, "date_to": date_to}),
            ("/stats/monthly", {"month": month, "format": text}),
            ("/debunks", {"q": text, "date_from": date_from, "date_to": date_to, "source": text, "verdict": text, "page": page}),
            (f"/claims/{claim}", {"order": text}),
        ]:
            r = admin.get(path, params=params)
            assert r.status_code < 500, (path, params, r.status_code)
            if r.status_code >= 400:
                assert "text/html" in r.headers["content-type"], (path, params, r.headers["content-type"])

    check()


def test_ids_in_urls_and_forms_answer_any_number(app: Any, store: Any, seeded: dict[str, Any], login_as: Any) -> None:
    from tests.web.seed import claim_version

    editor, csrf = login_as("editor")
    editor.headers["Accept"] = "text/html,application/xhtml+xml,*/*;q=0.8"
    claim = seeded["claims"][1]

    @settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(some_id=ids, links=st.lists(ids, max_size=3), current=st.booleans())
    @example(some_id=2**63 + 5, links=[2**63 + 5], current=True)
    def check(some_id: int, links: list[int], current: bool) -> None:
        for path in (f"/claims/{some_id}", f"/debunks/{some_id}", f"/debunks/{some_id}/edit"):
            r = editor.get(path)
            assert r.status_code < 500, (path, r.status_code)
        version = claim_version(store, claim) if current else some_id
        for target in (claim, some_id):
            r = editor.post(f"/claims/{target}/confirm", data={"csrf_token": csrf, "version": str(version), "verdict": "rumor",
                                                                "debunk_ids": [str(x) for x in links]})
            assert r.status_code < 500, (target, links, r.status_code)
            r = editor.post(f"/claims/{target}/urgent", data={"csrf_token": csrf, "version": str(version)})
            assert r.status_code < 500, (target, r.status_code)

    check()
