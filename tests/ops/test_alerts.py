"""Alerts over a real store, delivered to real HTTP receivers on loopback in each robot's format.

The signatures are recomputed here from the vendors' published recipes (not with ops.alerts'
own helpers), so a wrong recipe fails the test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from typing import Any, Callable

import pytest
from sqlalchemy import func, select

from ops.alerts import check_run, check_surges, fingerprint
from settings import Settings
from store.db import Store
from store.models import Alert, Claim, ClaimCluster, ClaimMatch, Debunk, ScheduleRun, Sighting, utcnow
from tests.ops.conftest import Receiver

T0 = dt.datetime(2026, 11, 30, 2, 0, 0)  # naive UTC, like every stored time


def add_run(store: Store, schedule: str = "nightly", *, status: str = "finished", items: int = 100,
            started: dt.datetime = T0, message: str | None = None, **kw: Any) -> int:
    with store.session() as s:
        run = ScheduleRun(run_key=str(uuid.uuid4()), schedule_id=schedule, spider=kw.pop("spider", "piyao_org_cn"),
                          trigger="schedule", started_at=started, finished_at=started + dt.timedelta(minutes=20),
                          status=status, items=items, pages=items + 3, errors=kw.pop("errors", 0), message=message, **kw)
        s.add(run)
        s.flush()
        return run.id


def alerts(store: Store) -> list[Alert]:
    with store.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


# --------------------------------------------------------------------------- formats and signatures
def test_one_alert_reaches_every_robot_in_its_own_format_signed(store: Store, make_settings: Callable[..., Settings],
                                                                receiver: Callable[..., Receiver]) -> None:
    ding = receiver(answer={"errcode": 0, "errmsg": "ok"})
    wecom = receiver(answer={"errcode": 0, "errmsg": "ok"})
    feishu = receiver(answer={"code": 0, "msg": "success", "data": {}})
    generic = receiver(answer={"ok": True})
    settings = make_settings(webhooks=[
        {"name": "ding", "format": "dingtalk", "url": f"{ding.url}/robot/send?access_token=TOKEN1", "secret": "SECding"},
        {"name": "wecom", "format": "wecom", "url": f"{wecom.url}/cgi-bin/webhook/send?key=K2"},
        {"name": "lark", "format": "feishu", "url": f"{feishu.url}/open-apis/bot/v2/hook/abc", "secret": "feishu-secret"},
        {"name": "ops", "format": "generic", "url": f"{generic.url}/hook", "secret": "generic-secret"},
    ])
    run_id = add_run(store, status="timeout", items=3, message="stopped after 180 minutes")
    before = time.time()
    (alert,) = check_run(store, settings, run_id)
    after = time.time()

    assert alert.rule == "failure" and alert.subject == "schedule:nightly" and alert.status == "sent"
    assert [(d["name"], d["ok"], d["status"]) for d in alert.deliveries] == [
        ("ding", True, 200), ("wecom", True, 200), ("lark", True, 200), ("ops", True, 200)]
    assert alert.fingerprint == hashlib.sha256(b"failure:schedule:nightly").hexdigest()

    # DingTalk: markdown; timestamp (ms) and sign in the query, sign = base64(HMAC-SHA256(secret, "ts\nsecret")).
    (r,) = ding.requests
    assert r.path == "/robot/send" and r.query["access_token"] == ["TOKEN1"]
    ts = r.query["timestamp"][0]
    assert before * 1000 - 1 <= int(ts) <= after * 1000 + 1
    expected = base64.b64encode(hmac.new(b"SECding", f"{ts}\nSECding".encode(), hashlib.sha256).digest()).decode()
    assert r.query["sign"] == [expected]  # parse_qs decoded the URL-encoding
    body = r.json()
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert "nightly" in body["markdown"]["title"] and "piyao" in body["markdown"]["title"]
    assert "超时" in body["markdown"]["text"] and "stopped after 180 minutes" in body["markdown"]["text"]
    assert r.headers["content-type"].startswith("application/json")

    # WeCom: markdown content, nothing signed.
    (r,) = wecom.requests
    assert r.query == {"key": ["K2"]}
    body = r.json()
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    assert "nightly" in body["markdown"]["content"]

    # Feishu: post rich text; timestamp (s) and sign in the body, sign = base64(HMAC-SHA256(key="ts\nsecret", msg="")).
    (r,) = feishu.requests
    body = r.json()
    ts = body["timestamp"]
    assert int(before) - 1 <= int(ts) <= int(after) + 1
    expected = base64.b64encode(hmac.new(f"{ts}\nfeishu-secret".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert "nightly" in post["title"]
    texts = [el["text"] for row in post["content"] for el in row]
    assert any("stopped after 180 minutes" in t for t in texts)
    assert all(el["tag"] in ("text", "a") for row in post["content"] for el in row)

    # Generic JSON: the documented keys, X-Piyao-Signature = sha256=<hex HMAC(secret, body)>.
    (r,) = generic.requests
    body = r.json()
    assert set(body) == {"rule", "subject", "title", "text", "payload", "created_at"}
    assert body["rule"] == "failure" and body["subject"] == "schedule:nightly"
    assert body["payload"]["status"] == "timeout" and body["payload"]["schedule_run_id"] == run_id
    assert body["created_at"].endswith("Z")
    mac = hmac.new(b"generic-secret", r.body, hashlib.sha256).hexdigest()
    assert r.headers["x-piyao-signature"] == f"sha256={mac}"
    assert r.headers["x-piyao-event"] == "alert.failure"


def test_unsigned_hooks_carry_no_signature(store: Store, make_settings: Callable[..., Settings],
                                           receiver: Callable[..., Receiver]) -> None:
    ding, generic, feishu = receiver(answer={"errcode": 0}), receiver(), receiver(answer={"code": 0})
    settings = make_settings(webhooks=[
        {"name": "ding", "format": "dingtalk", "url": f"{ding.url}/robot/send?access_token=T"},
        {"name": "lark", "format": "feishu", "url": f"{feishu.url}/hook"},
        {"name": "ops", "format": "generic", "url": f"{generic.url}/hook"},
    ])
    (alert,) = check_run(store, settings, add_run(store, status="failed"))
    assert alert.status == "sent"
    assert ding.requests[0].query == {"access_token": ["T"]}
    assert "sign" not in feishu.requests[0].json() and "timestamp" not in feishu.requests[0].json()
    assert "x-piyao-signature" not in generic.requests[0].headers


# --------------------------------------------------------------------------- run rules
@pytest.mark.parametrize("status", ["failed", "timeout", "interrupted", "missed"])
def test_every_failed_status_alerts(store: Store, make_settings: Callable[..., Settings], status: str) -> None:
    settings = make_settings()
    (alert,) = check_run(store, settings, add_run(store, status=status, items=0))
    assert alert.rule == "failure" and alert.status == "logged"  # no webhook configured: stored and logged
    assert alert.payload["status"] == status
    assert [a.id for a in alerts(store)] == [alert.id]


def test_failure_alerts_can_be_switched_off_and_quiet_runs_raise_nothing(store: Store, make_settings: Callable[..., Settings]) -> None:
    assert check_run(store, make_settings(on_failure=False), add_run(store, status="failed")) == []
    assert check_run(store, make_settings(), add_run(store, status="running", items=0)) == []
    assert check_run(store, make_settings(), add_run(store, status="skipped", items=0)) == []
    assert check_run(store, make_settings(), add_run(store, status="finished", items=50)) == []
    assert check_run(store, make_settings(), 999_999) == []  # no such run: nothing, no exception
    assert alerts(store) == []


def test_a_finished_run_without_items_alerts(store: Store, make_settings: Callable[..., Settings]) -> None:
    (alert,) = check_run(store, make_settings(), add_run(store, items=0))
    assert alert.rule == "zero_items" and alert.subject == "schedule:nightly" and alert.payload["items"] == 0
    assert check_run(store, make_settings(on_zero_items=False), add_run(store, "other", items=0)) == []


def test_a_drop_below_the_baseline_median_alerts(store: Store, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(drop_ratio=0.5, baseline_runs=5, dedup_hours=0)
    day = dt.timedelta(days=1)
    for i, n in enumerate([100, 120, 80, 110, 90]):  # median 100
        add_run(store, items=n, started=T0 + i * day)
    add_run(store, status="failed", items=1, started=T0 + 5 * day)  # not a finished run: not in the baseline
    add_run(store, "elsewhere", items=1000, started=T0 + 5 * day)  # another schedule: not in the baseline
    later = add_run(store, items=10, started=T0 + 30 * day)  # after the run checked: not in its baseline

    (alert,) = check_run(store, settings, add_run(store, items=49, started=T0 + 6 * day))
    assert alert.rule == "drop" and alert.payload["baseline_median"] == 100
    assert sorted(alert.payload["baseline"]) == [80, 90, 100, 110, 120]
    assert any("中位数 100" in line for line in alert.payload["lines"])
    # Baseline 49, 90, 110, 80, 120: median 90, and 45 is exactly half of it: not below, no alert.
    assert check_run(store, settings, add_run(store, items=45, started=T0 + 7 * day)) == []
    # The later run's baseline: the five newest finished runs of its schedule before it.
    (late,) = check_run(store, settings, later)
    assert late.rule == "drop" and sorted(late.payload["baseline"]) == [45, 49, 80, 90, 110]


def test_no_drop_alert_without_enough_earlier_runs(store: Store, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(baseline_runs=5)
    for i, n in enumerate([100, 100, 100, 100]):
        add_run(store, items=n, started=T0 + dt.timedelta(days=i))
    assert check_run(store, settings, add_run(store, items=1, started=T0 + dt.timedelta(days=9))) == []


# --------------------------------------------------------------------------- surges
def _claim(s: Any, text: str, cluster: ClaimCluster | None, n: int) -> Claim:
    c = Claim(source="weibo", external_id=f"x{n}-{uuid.uuid4().hex[:6]}", text=text, content_hash=hashlib.sha256(text.encode()).hexdigest(),
              first_seen=T0, last_seen=T0, sightings=1, cluster_id=cluster.id if cluster else None, flagged=True)
    s.add(c)
    s.flush()
    return c


def _cluster(s: Any, texts: list[str], total: int) -> tuple[ClaimCluster, list[Claim]]:
    cl = ClaimCluster(size=len(texts), sightings=total, sources=2, source_names=["weibo", "douyin"], first_seen=T0, last_seen=T0)
    s.add(cl)
    s.flush()
    claims = [_claim(s, t, cl, i) for i, t in enumerate(texts)]
    cl.representative_claim_id = claims[0].id
    return cl, claims


def _sightings(s: Any, claim: Claim, when: dt.datetime, count: int) -> None:
    for i in range(count):
        s.add(Sighting(claim_id=claim.id, cluster_id=claim.cluster_id, seen_at=when + dt.timedelta(seconds=i), count=1))


def test_a_surging_rumor_alerts_with_its_claim_counts_answer_and_link(store: Store, make_settings: Callable[..., Settings],
                                                                      receiver: Callable[..., Receiver]) -> None:
    hook = receiver()
    settings = make_settings(surge_window_hours=6, surge_factor=3.0, surge_min_sightings=20,
                             webhooks=[{"name": "ops", "format": "generic", "url": f"{hook.url}/hook"}])
    now = T0 + dt.timedelta(hours=12)
    recent, previous = now - dt.timedelta(hours=3), now - dt.timedelta(hours=9)
    with store.session() as s:
        hot, (hot1, hot2) = _cluster(s, ["碘盐能防核辐射，赶紧抢购", "吃碘盐可以防辐射"], total=40)
        steady, (st1,) = _cluster(s, ["隔夜菜会致癌"], total=60)
        small, (sm1,) = _cluster(s, ["喝醋软化血管"], total=6)
        answered, (an1,) = _cluster(s, ["5G 基站传播病毒"], total=30)
        lone = _claim(s, "手机辐射致癌", None, 99)
        old = _claim(s, "很久以前的谣言", None, 98)
        _sightings(s, hot1, recent, 15)
        _sightings(s, hot2, recent, 10)  # the cluster: 25 recent
        _sightings(s, hot1, previous, 2)  # 25 / (2 + 1) ≥ 3
        _sightings(s, st1, recent, 25)
        _sightings(s, st1, previous, 20)  # 25 / 21: steady
        _sightings(s, sm1, recent, 5)  # fast but under surge_min_sightings
        _sightings(s, an1, recent, 30)  # 30 / 1
        _sightings(s, lone, recent, 21)  # a claim without a cluster surges on its own
        _sightings(s, old, now - dt.timedelta(hours=20), 50)  # before both windows
        _sightings(s, st1, now + dt.timedelta(hours=1), 100)  # after now: not counted
        d = Debunk(url="https://www.piyao.org.cn/5g.html", title="5G 不会传播病毒", source="piyao.org.cn", text="…",
                   content_hash="d" * 64)
        s.add(d)
        s.flush()
        s.add(ClaimMatch(claim_id=an1.id, debunk_id=d.id, rank=1, score=0.9, decision="auto"))
        ids = {"hot": hot.id, "hot1": hot1.id, "answered": answered.id, "an1": an1.id, "lone": lone.id}

    found = check_surges(store, settings, now=now)
    by_subject = {a.subject: a for a in found}
    assert set(by_subject) == {f"cluster:{ids['hot']}", f"cluster:{ids['answered']}", f"claim:{ids['lone']}"}
    hot_alert = by_subject[f"cluster:{ids['hot']}"]
    assert hot_alert.rule == "surge" and hot_alert.status == "sent"
    p = hot_alert.payload
    assert (p["recent_sightings"], p["previous_sightings"], p["sightings"]) == (25, 2, 40)
    assert p["claim_id"] == ids["hot1"] and p["claim_text"] == "碘盐能防核辐射，赶紧抢购"
    assert p["answered"] is False and p["debunk"] is None
    assert p["link"].endswith(f"/claims/{ids['hot1']}") and p["link"].startswith("http://127.0.0.1:8080")
    assert any("尚无辟谣" in line for line in p["lines"])
    ans = by_subject[f"cluster:{ids['answered']}"].payload
    assert ans["answered"] is True and ans["debunk"]["title"] == "5G 不会传播病毒"
    assert any("5G 不会传播病毒" in line for line in ans["lines"])
    assert by_subject[f"claim:{ids['lone']}"].payload["cluster_id"] is None

    sent = [r.json() for r in hook.requests]
    assert len(sent) == 3 and {b["rule"] for b in sent} == {"surge"}
    hot_body = next(b for b in sent if b["subject"] == f"cluster:{ids['hot']}")
    assert "碘盐能防核辐射" in hot_body["title"] and f"/claims/{ids['hot1']}" in hot_body["text"]
    assert "25" in hot_body["text"] and "应急科普" in hot_body["title"]

    # The same surge checked again within alerts.dedup_hours: stored as suppressed, nothing sent.
    again = check_surges(store, settings, now=now + dt.timedelta(minutes=1))
    assert {a.status for a in again} == {"suppressed"} and len(again) == 3
    assert len(hook.requests) == 3


def test_a_hostile_claim_cannot_put_markup_into_the_chat(store: Store, make_settings: Callable[..., Settings],
                                                         receiver: Callable[..., Receiver]) -> None:
    ding, lark = receiver(answer={"errcode": 0}), receiver(answer={"code": 0})
    settings = make_settings(surge_min_sightings=3, webhooks=[
        {"name": "ding", "format": "dingtalk", "url": f"{ding.url}/robot/send?access_token=T"},
        {"name": "lark", "format": "feishu", "url": f"{lark.url}/hook"}])
    evil = "[点我领奖](javascript:alert(1)) <script>alert(1)</script> ![x](http://evil.example/t.png) **紧急** http://evil.example"
    now = T0 + dt.timedelta(hours=12)
    with store.session() as s:
        _, (c,) = _cluster(s, [evil], total=5)
        _sightings(s, c, now - dt.timedelta(hours=1), 5)
    (alert,) = check_surges(store, settings, now=now)
    assert alert.payload["claim_text"] == evil  # the data keeps the text as it is
    md = ding.requests[0].json()["markdown"]["text"]
    ours = f"[在 piyao 中查看]({alert.payload['link']})"
    assert md.count(ours) == 1
    md = md.replace(ours, "")
    for bad in ("](", "<script", "![", "**紧急", "http://evil", "javascript:alert(1))"):
        assert bad not in md, bad
    assert "点我领奖" in md  # still readable
    post = lark.requests[0].json()["content"]["post"]["zh_cn"]
    links = [el for row in post["content"] for el in row if el["tag"] == "a"]
    assert [el["href"] for el in links] == [alert.payload["link"]]  # the only link is ours


# --------------------------------------------------------------------------- de-duplication
def test_the_same_alert_within_the_window_is_suppressed_and_sent_again_after_it(
        store: Store, make_settings: Callable[..., Settings], receiver: Callable[..., Receiver]) -> None:
    hook = receiver()
    settings = make_settings(dedup_hours=12, webhooks=[{"name": "ops", "format": "generic", "url": f"{hook.url}/h"}])
    first = check_run(store, settings, add_run(store, status="failed"), now=T0)
    second = check_run(store, settings, add_run(store, status="failed"), now=T0 + dt.timedelta(hours=11))
    other = check_run(store, settings, add_run(store, "weekly", status="failed"), now=T0 + dt.timedelta(hours=11))
    third = check_run(store, settings, add_run(store, status="failed"), now=T0 + dt.timedelta(hours=12, minutes=1))
    assert [a.status for a in first + second + other + third] == ["sent", "suppressed", "sent", "sent"]
    assert second[0].fingerprint == first[0].fingerprint == fingerprint("failure", "schedule:nightly")
    assert second[0].deliveries == []
    assert [r.json()["subject"] for r in hook.requests] == ["schedule:nightly", "schedule:weekly", "schedule:nightly"]
    # A suppressed alert does not extend the window: 12 h after the first sent one, it is sent again.
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 4


def test_dedup_zero_sends_every_time(store: Store, make_settings: Callable[..., Settings], receiver: Callable[..., Receiver]) -> None:
    hook = receiver()
    settings = make_settings(dedup_hours=0, webhooks=[{"name": "ops", "format": "generic", "url": f"{hook.url}/h"}])
    for _ in range(2):
        check_run(store, settings, add_run(store, status="failed"), now=T0)
    assert len(hook.requests) == 2


# --------------------------------------------------------------------------- failing webhooks
def test_failing_webhooks_are_recorded_never_raised(store: Store, make_settings: Callable[..., Settings],
                                                    receiver: Callable[..., Receiver], closed_port: int) -> None:
    broken = receiver(status=500, answer={"error": "boom"})
    refusing_robot = receiver(answer={"errcode": 310000, "errmsg": "sign not match"})
    slow = receiver(delay=3.0)
    settings = make_settings(timeout_seconds=0.5, webhooks=[
        {"name": "broken", "format": "generic", "url": f"{broken.url}/h"},
        {"name": "gone", "format": "wecom", "url": f"http://127.0.0.1:{closed_port}/cgi-bin/webhook/send?key=SECRETKEY"},
        {"name": "robot", "format": "dingtalk", "url": f"{refusing_robot.url}/robot/send?access_token=T", "secret": "S"},
        {"name": "slow", "format": "generic", "url": f"{slow.url}/h"},
    ])
    started = time.monotonic()
    (alert,) = check_run(store, settings, add_run(store, status="failed"))
    assert time.monotonic() - started < 10
    assert alert.status == "failed"
    got = {d["name"]: d for d in alert.deliveries}
    assert got["broken"]["ok"] is False and got["broken"]["status"] == 500 and got["broken"]["error"] == "HTTP 500"
    assert got["gone"]["ok"] is False and got["gone"]["status"] is None and "Connect" in got["gone"]["error"]
    assert got["robot"]["ok"] is False and got["robot"]["status"] == 200 and "310000" in got["robot"]["error"]
    assert got["slow"]["ok"] is False and "Timeout" in got["slow"]["error"]
    assert "SECRETKEY" not in json.dumps(alert.deliveries)  # webhook URLs hold tokens: never stored
    (stored,) = alerts(store)
    assert stored.status == "failed" and stored.deliveries == alert.deliveries
    assert len(broken.requests) == 1  # no retry storm


def test_one_working_webhook_is_enough_to_count_as_sent(store: Store, make_settings: Callable[..., Settings],
                                                        receiver: Callable[..., Receiver], closed_port: int) -> None:
    ok = receiver()
    settings = make_settings(webhooks=[{"name": "gone", "format": "generic", "url": f"http://127.0.0.1:{closed_port}/h"},
                                       {"name": "ok", "format": "generic", "url": f"{ok.url}/h"}])
    (alert,) = check_run(store, settings, add_run(store, items=0))
    assert alert.status == "sent" and [d["ok"] for d in alert.deliveries] == [False, True]
    assert alert.created_at <= utcnow()
