"""parse_cn_datetime: full, relative and year-less Chinese dates, against a fixed ``now``."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from crawlers.extract import parse_cn_date, parse_cn_datetime

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2024, 3, 5, 12, 0, 0, tzinfo=SH)


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024年3月1日", at(2024, 3, 1)),
        ("2024年03月01日 10:31", at(2024, 3, 1, 10, 31)),
        ("2024-03-01 10:31:05", at(2024, 3, 1, 10, 31, 5)),
        ("2024/3/1", at(2024, 3, 1)),
        ("时间：2024-03-01", at(2024, 3, 1)),
        ("20240301", at(2024, 3, 1)),
        ("3天前", at(2024, 3, 2, 12, 0)),
        ("三天前", at(2024, 3, 2, 12, 0)),
        ("5分钟前", at(2024, 3, 5, 11, 55)),
        ("十五分钟前", at(2024, 3, 5, 11, 45)),
        ("2小时前", at(2024, 3, 5, 10, 0)),
        ("半小时前", at(2024, 3, 5, 11, 30)),
        ("30秒前", at(2024, 3, 5, 11, 59, 30)),
        ("2周前", at(2024, 2, 20, 12, 0)),
        ("1个月前", at(2024, 2, 5, 12, 0)),
        ("发布于 3天前", at(2024, 3, 2, 12, 0)),
        ("刚刚", NOW),
        ("昨天 10:32", at(2024, 3, 4, 10, 32)),
        ("前天 08:00", at(2024, 3, 3, 8, 0)),
        ("今天 09:15", at(2024, 3, 5, 9, 15)),
        ("昨天", at(2024, 3, 4)),
        ("10:32", at(2024, 3, 5, 10, 32)),
        ("03-01 10:32", at(2024, 3, 1, 10, 32)),  # this year
        ("03-06 10:32", at(2023, 3, 6, 10, 32)),  # this year would be in the future: last year
        ("03-05 12:30", at(2023, 3, 5, 12, 30)),  # later today counts as the future too
        ("3月1日", at(2024, 3, 1)),
        ("3月6日", at(2023, 3, 6)),
        ("12月31日 23:59", at(2023, 12, 31, 23, 59)),
        ("2024-03-01T02:00:00Z", at(2024, 3, 1, 10, 0)),  # ISO with a zone: converted
        ("2024-03-01T10:00:00+08:00", at(2024, 3, 1, 10, 0)),
        ("2024-03-01T02:00:00+0000", at(2024, 3, 1, 10, 0)),
        ("Fri, 01 Mar 2024 02:00:00 GMT", at(2024, 3, 1, 10, 0)),
        ("2024年3月1日前", at(2024, 3, 1)),  # "before 1 March", not "one day ago"
        ("没有日期", None),
        ("2024-13-45", None),
        ("No. 3-12", None),  # a bare "3-12" inside text is not a date
        ("", None),
        (None, None),
    ],
)
def test_parse_cn_datetime(raw: object, expected: dt.datetime | None) -> None:
    got = parse_cn_datetime(raw, now=NOW)
    assert got == expected
    if got is not None:
        assert got.tzinfo is not None and got.utcoffset() == dt.timedelta(hours=8)


def test_now_and_zone_handling() -> None:
    naive_now = dt.datetime(2024, 3, 5, 12, 0)  # taken to be Shanghai time
    assert parse_cn_datetime("2小时前", now=naive_now) == at(2024, 3, 5, 10, 0)
    utc_now = dt.datetime(2024, 3, 4, 20, 0, tzinfo=dt.timezone.utc)  # 04:00 on 5 March in Shanghai
    assert parse_cn_datetime("今天 09:15", now=utc_now) == at(2024, 3, 5, 9, 15)
    assert parse_cn_datetime("昨天 09:15", now=utc_now) == at(2024, 3, 4, 9, 15)
    assert parse_cn_datetime("2024-03-01 10:00", tz="UTC", now=NOW) == dt.datetime(2024, 3, 1, 10, 0, tzinfo=ZoneInfo("UTC"))
    # datetime and date objects
    assert parse_cn_datetime(dt.datetime(2024, 3, 1, 10, 0), now=NOW) == at(2024, 3, 1, 10, 0)
    assert parse_cn_datetime(dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.timezone.utc), now=NOW) == at(2024, 3, 1, 10, 0)
    assert parse_cn_datetime(dt.date(2024, 3, 1), now=NOW) == at(2024, 3, 1)
    # Without now: relative to the current time, in Shanghai.
    got = parse_cn_datetime("刚刚")
    assert got is not None and abs(got - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert got.utcoffset() == dt.timedelta(hours=8)


def test_leap_day_without_a_year_goes_back_to_a_leap_year() -> None:
    assert parse_cn_datetime("2月29日", now=at(2025, 3, 1)) == at(2024, 2, 29)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # What parse_cn_date handled before keeps its result (a written date is taken as written, zone or not).
        ("2025-07-17 10:31:05", dt.date(2025, 7, 17)),
        ("2025年7月17日", dt.date(2025, 7, 17)),
        ("/20250717/ef39a204545b491c8d12d4c1def14519/c.html", dt.date(2025, 7, 17)),
        ("2025-07-17T20:00:00Z", dt.date(2025, 7, 17)),
        ("2025-13-45", None),
        ("没有日期", None),
    ],
)
def test_parse_cn_date_stays_a_date_wrapper(raw: str, expected: dt.date | None) -> None:
    assert parse_cn_date(raw) == expected


def test_parse_cn_date_reads_relative_dates_too() -> None:
    today = dt.datetime.now(SH).date()
    assert parse_cn_date("3天前") == today - dt.timedelta(days=3)
    assert parse_cn_date("昨天 10:32") == today - dt.timedelta(days=1)
