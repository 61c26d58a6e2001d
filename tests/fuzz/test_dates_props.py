"""Property tests over Chinese date parsing (crawlers/extract.py): garbage gives None or a sane date,
never an exception; every form a Chinese page writes round-trips.

Date strings come from crawled pages and partner feeds, so they are hostile too: a parse error must
never cost the item (or the feed page) it came with.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fuzz.support import examples

from crawlers.extract import parse_cn_date, parse_cn_datetime, parse_feed_datetime

TZ = ZoneInfo("Asia/Shanghai")
DIGITS = "零一二三四五六七八九"

# What date strings are made of: digits (ASCII and full-width), separators, Chinese units and day words,
# numerals, zones, month names, plus anything else.
PIECES = ["0", "1", "2", "9", "12", "29", "31", "60", "99", "2024", "1999", "0001", "9999", "99999999999999", "-", "/", ".",
          ":", "：", "·", " ", "T", "Z", "z", "+08:00", "-1200", "+14:00", "年", "月", "日", "号", "时", "分", "秒", "前",
          "之前", "个", "天", "小时", "分钟", "周", "星期", "礼拜", "半", "十", "百", "两", "三", "〇", "刚刚", "昨天", "前天",
          "大前天", "今天", "今日", "just now", "Mon,", "Jan", "Feb", "GMT", "２０２４", "３", "时间：", "发布于",
          "Mon, 01 Jan 2024 10:00:00 ", "+0666666666666666666666", "-99999999999999999999"]
date_garbage = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
nows = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2035, 12, 31))


def sane(value: dt.date | dt.datetime, now: dt.datetime) -> bool:
    return dt.date(1900, 1, 1) <= (value.date() if isinstance(value, dt.datetime) else value) <= dt.date(2100, 12, 31)


@settings(max_examples=examples(500), deadline=None)
@given(date_garbage, nows)
@example("99999年前", dt.datetime(2025, 1, 1))
@example("9999999999999天前", dt.datetime(2025, 1, 1))
@example("5000年前", dt.datetime(2025, 1, 1))
@example("0001-01-01T00:00:00+14:00", dt.datetime(2025, 1, 1))
@example("9999-12-31T23:00:00-12:00", dt.datetime(2025, 1, 1))
@example("0001-01-01T00:00:00Z", dt.datetime(2025, 1, 1))
@example("Mon, 01 Jan 2024 10:00:00 +0" + "6" * 90 + "800", dt.datetime(2025, 1, 1))  # found by bench/atheris_extract.py
def test_garbage_gives_none_or_a_sane_datetime(raw: str, now: dt.datetime) -> None:
    got = parse_cn_datetime(raw, now=now)
    assert got is None or (got.tzinfo is not None and sane(got, now)), got
    day = parse_cn_date(raw)
    assert day is None or (type(day) is dt.date and sane(day, now)), day
    feed = parse_feed_datetime(raw)
    assert feed is None or (feed.tzinfo is None and sane(feed, now)), feed


@settings(max_examples=examples(200), deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0)),
       st.sampled_from(["{y}年{m}月{d}日", "{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}.{m:02d}.{d:02d}", "{y}·{m:02d}·{d:02d}",
                        "时间：{y}-{m:02d}-{d:02d}", "{y}{m:02d}{d:02d}", "发布于 {y} 年 {m} 月 {d} 日"]))
def test_written_dates_round_trip(when: dt.datetime, form: str) -> None:
    raw = form.format(y=when.year, m=when.month, d=when.day)
    assert parse_cn_date(raw) == when.date()
    stamp = f"{when:%Y-%m-%d %H:%M:%S}"
    assert parse_cn_datetime(stamp) == when.replace(tzinfo=TZ)
    assert parse_feed_datetime(stamp) == when


def cn_numeral(n: int) -> str:
    """1..99 written in Chinese: 三, 十, 十五, 二十, 二十三."""
    tens, ones = divmod(n, 10)
    if not tens:
        return DIGITS[ones]
    return ("" if tens == 1 else DIGITS[tens]) + "十" + (DIGITS[ones] if ones else "")


@settings(max_examples=examples(200), deadline=None)
@given(nows, st.integers(min_value=1, max_value=99), st.booleans(),
       st.sampled_from([("天", 86400), ("小时", 3600), ("分钟", 60), ("秒", 1), ("周", 7 * 86400), ("星期", 7 * 86400)]))
def test_relative_times_round_trip(now: dt.datetime, n: int, chinese: bool, unit: tuple[str, int]) -> None:
    word, seconds = unit
    raw = f"{cn_numeral(n) if chinese else n}{word}前"
    assert parse_cn_datetime(raw, now=now) == now.replace(tzinfo=TZ) - dt.timedelta(seconds=n * seconds), raw


@settings(max_examples=examples(200), deadline=None)
@given(nows, st.sampled_from([("今天", 0), ("昨天", 1), ("昨日", 1), ("前天", 2), ("大前天", 3)]),
       st.times().map(lambda t: t.replace(second=0, microsecond=0)), st.sampled_from([":", "："]))
def test_day_words_round_trip(now: dt.datetime, word: tuple[str, int], clock: dt.time, colon: str) -> None:
    raw = f"{word[0]} {clock.hour}{colon}{clock.minute:02d}"
    expected = dt.datetime.combine(now.date() - dt.timedelta(days=word[1]), clock, tzinfo=TZ)
    assert parse_cn_datetime(raw, now=now) == expected


def latest_before(now: dt.datetime, month: int, day: int, clock: dt.time) -> dt.datetime | None:
    """The last (month, day, clock) at or before ``now``, this year or up to 7 years back (02-29)."""
    aware = now.replace(tzinfo=TZ)
    for year in range(now.year, now.year - 8, -1):
        try:
            candidate = dt.datetime.combine(dt.date(year, month, day), clock, tzinfo=TZ)
        except ValueError:
            continue
        if candidate <= aware:
            return candidate
    return None


@settings(max_examples=examples(300), deadline=None)
@given(nows, st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=31),
       st.times().map(lambda t: t.replace(second=0, microsecond=0)))
@example(dt.datetime(2025, 3, 1), 2, 29, dt.time(10, 32))
@example(dt.datetime(2024, 3, 1, 10, 31), 3, 1, dt.time(10, 32))
def test_yearless_dates_round_trip(now: dt.datetime, month: int, day: int, clock: dt.time) -> None:
    with_time = f"{month:02d}-{day:02d} {clock.hour:02d}:{clock.minute:02d}"
    assert parse_cn_datetime(with_time, now=now) == latest_before(now, month, day, clock), with_time
    chinese = f"{month}月{day}日"
    assert parse_cn_datetime(chinese, now=now) == latest_before(now, month, day, dt.time(0, 0)), chinese


@settings(max_examples=examples(100), deadline=None)
@given(nows, st.times().map(lambda t: t.replace(microsecond=0)))
def test_bare_time_is_today(now: dt.datetime, clock: dt.time) -> None:
    raw = f"{clock.hour}:{clock.minute:02d}:{clock.second:02d}"
    assert parse_cn_datetime(raw, now=now) == dt.datetime.combine(now.date(), clock, tzinfo=TZ)


@settings(max_examples=examples(200), deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2099, 12, 30),
                    timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=8)),
                                               dt.timezone(dt.timedelta(hours=-5, minutes=-30))])).map(
           lambda d: d.replace(microsecond=0)),
       st.booleans())
def test_feed_timestamps_with_a_zone_round_trip(when: dt.datetime, rfc822: bool) -> None:
    from email.utils import format_datetime

    raw = format_datetime(when) if rfc822 else when.isoformat()
    utc = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    assert parse_feed_datetime(raw) == utc, raw
    assert parse_cn_datetime(raw) == when.astimezone(TZ), raw
