"""timegrid: UTC offset segments across DST, period labels in the query zone, comparison ranges, user dates."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta

from tally.engine.timegrid import (Grain, comparison_shift, offset_segments, parse_grain, parse_local,
                                   period_labels, period_pairs, previous_range, read_local, shift_local, truncate,
                                   whole_months)
from tally.errors import QueryError

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY, SUNDAY = 0, 6


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(text: str, zone: str = "Europe/Berlin") -> dt.datetime:
    """A range end as the engine reads what the user typed."""
    return parse_local(text, ZoneInfo(zone), "--from")


def hours(labels) -> list[int]:
    return [label.hour for label in labels]


# -- offset segments -------------------------------------------------------------------------------------

@pytest.mark.parametrize("zone, start, end, expected", [
    ("Europe/Berlin", "2025-03-29", "2025-04-01", (3600, ((utc(2025, 3, 30, 1), 7200),))),
    ("Europe/Berlin", "2025-10-25", "2025-10-28", (7200, ((utc(2025, 10, 26, 1), 3600),))),
    ("Europe/Berlin", "2025-01-01", "2026-01-01", (3600, ((utc(2025, 3, 30, 1), 7200), (utc(2025, 10, 26, 1), 3600)))),
    ("Europe/Berlin", "2024-10-01", "2025-04-01", (7200, ((utc(2024, 10, 27, 1), 3600), (utc(2025, 3, 30, 1), 7200)))),
    ("Europe/Berlin", "2025-03-01", "2025-03-29", (3600, ())),
    ("America/New_York", "2025-03-01", "2025-04-01", (-18000, ((utc(2025, 3, 9, 7), -14400),))),
    ("America/New_York", "2025-11-01", "2025-11-03", (-14400, ((utc(2025, 11, 2, 6), -18000),))),
    ("Australia/Lord_Howe", "2025-04-01", "2025-11-01",  # a half-hour change each way
     (39600, ((utc(2025, 4, 5, 15), 37800), (utc(2025, 10, 4, 15, 30), 39600)))),
    ("Europe/Istanbul", "2025-01-01", "2026-01-01", (10800, ())),
    ("Asia/Kolkata", "2025-01-01", "2026-01-01", (19800, ())),
    ("UTC", "2025-01-01", "2026-01-01", (0, ())),
])
def test_offset_segments_name_each_change_at_its_exact_instant(zone, start, end, expected):
    assert offset_segments(zone, local(start, zone), local(end, zone)) == expected


def test_offset_segments_ends_are_half_open():
    change = utc(2025, 3, 30, 1)
    assert offset_segments("Europe/Berlin", change, utc(2025, 4, 1)) == (7200, ())
    assert offset_segments("Europe/Berlin", utc(2025, 3, 29), change) == (3600, ())


def test_offset_segments_from_a_start_in_the_spring_gap():
    # 02:30 never shows on Berlin clocks that night: it reads as 01:30Z, already summer time
    assert offset_segments("Europe/Berlin", local("2025-03-30T02:30"), local("2025-04-01")) == (7200, ())


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Europe/Istanbul",
                                  "Asia/Kolkata"])
def test_offset_segments_agree_with_zoneinfo_every_quarter_hour(zone):
    start, end = utc(2024, 12, 20), utc(2026, 1, 10)
    first, changes = offset_segments(zone, start, end)
    instant = start
    while instant < end:
        offset = first
        for when, after in changes:
            if instant >= when:
                offset = after
        assert offset == instant.astimezone(ZoneInfo(zone)).utcoffset().total_seconds(), instant
        instant += dt.timedelta(minutes=15)


# -- period labels ---------------------------------------------------------------------------------------

def test_hours_of_the_spring_forward_day():
    labels = period_labels(Grain.hour, local("2025-03-30"), local("2025-03-31"), "Europe/Berlin", MONDAY)
    assert len(labels) == 23
    assert hours(labels) == [0, 1, *range(3, 24)]
    assert all(label.date() == dt.date(2025, 3, 30) and label.tzinfo is None for label in labels)


def test_hours_of_the_fall_back_day_show_the_repeated_hour_once():
    labels = period_labels(Grain.hour, local("2025-10-26"), local("2025-10-27"), "Europe/Berlin", MONDAY)
    assert hours(labels) == list(range(24))  # 25 hours elapse; 02:00 is one local label


@pytest.mark.parametrize("day, after", [("2025-04-06", "2025-04-07"), ("2025-10-05", "2025-10-06")])
def test_hours_of_half_hour_changes_keep_every_local_hour(day, after):
    # Lord Howe's clocks move by half an hour: 01:30-02:00 repeats in April, 02:00-02:30 is skipped in October
    zone = "Australia/Lord_Howe"
    labels = period_labels(Grain.hour, local(day, zone), local(after, zone), zone, MONDAY)
    assert hours(labels) == list(range(24))


def test_hours_touching_a_part_hour_range_in_a_half_hour_zone():
    labels = period_labels(Grain.hour, local("2025-03-10T10:30", "Asia/Kolkata"),
                           local("2025-03-10T12:15", "Asia/Kolkata"), "Asia/Kolkata", MONDAY)
    assert labels == [dt.datetime(2025, 3, 10, h) for h in (10, 11, 12)]


def test_hours_up_to_an_end_in_the_spring_gap():
    # --to 02:30 does not exist that night: it is 03:30 summer time, so the 03:00 hour is in the range
    labels = period_labels(Grain.hour, local("2025-03-30"), local("2025-03-30T02:30"), "Europe/Berlin", MONDAY)
    assert hours(labels) == [0, 1, 3]


def test_days_across_dst_changes():
    assert period_labels(Grain.day, local("2025-03-29"), local("2025-04-01"), "Europe/Berlin", MONDAY) == [
        dt.date(2025, 3, 29), dt.date(2025, 3, 30), dt.date(2025, 3, 31)]
    assert period_labels(Grain.day, local("2025-10-26T12:00"), local("2025-10-27T00:30"), "Europe/Berlin",
                         MONDAY) == [dt.date(2025, 10, 26), dt.date(2025, 10, 27)]


@pytest.mark.parametrize("week_start, first", [(MONDAY, dt.date(2025, 2, 24)), (SUNDAY, dt.date(2025, 2, 23))])
def test_week_labels_start_on_the_week_start(week_start, first):
    labels = period_labels(Grain.week, local("2025-03-01"), local("2025-04-01"), "Europe/Berlin", week_start)
    assert labels == [first + dt.timedelta(weeks=n) for n in range(6)]
    assert {label.weekday() for label in labels} == {week_start}


@pytest.mark.parametrize("grain, expected", [
    (Grain.month, [dt.date(2024, 11, 1), dt.date(2024, 12, 1), dt.date(2025, 1, 1)]),
    (Grain.quarter, [dt.date(2024, 10, 1), dt.date(2025, 1, 1)]),
    (Grain.year, [dt.date(2024, 1, 1), dt.date(2025, 1, 1)]),
])
def test_calendar_labels_touching_the_range(grain, expected):
    # --to 2025-02-01 is exclusive: February is not touched
    assert period_labels(grain, local("2024-11-15"), local("2025-02-01"), "Europe/Berlin", MONDAY) == expected


def test_labels_follow_the_zone_not_utc():
    # 2025-03-31T22:30Z is already April in Berlin
    assert period_labels(Grain.month, utc(2025, 3, 31, 22, 30), utc(2025, 3, 31, 23), "Europe/Berlin",
                         MONDAY) == [dt.date(2025, 4, 1)]


@pytest.mark.parametrize("grain, week_start, expected", [
    (Grain.hour, MONDAY, dt.datetime(2025, 3, 30, 2)),
    (Grain.day, MONDAY, dt.datetime(2025, 3, 30)),
    (Grain.week, MONDAY, dt.datetime(2025, 3, 24)),
    (Grain.week, SUNDAY, dt.datetime(2025, 3, 30)),
    (Grain.month, MONDAY, dt.datetime(2025, 3, 1)),
    (Grain.quarter, MONDAY, dt.datetime(2025, 1, 1)),
    (Grain.year, MONDAY, dt.datetime(2025, 1, 1)),
])
def test_truncate_a_local_time(grain, week_start, expected):
    assert truncate(dt.datetime(2025, 3, 30, 2, 45, 10, 5), grain, week_start) == expected  # a Sunday


# -- comparison ranges -----------------------------------------------------------------------------------

@pytest.mark.parametrize("start, end, months", [
    (local("2025-01-01"), local("2025-04-01"), 3),
    (local("2025-03-01"), local("2025-04-01"), 1),                    # across the spring change
    (utc(2025, 2, 28, 23), utc(2025, 3, 31, 22), 1),                  # the same, as UTC instants
    (local("2024-12-01"), local("2026-01-01"), 13),
    (local("2025-01-15"), local("2025-02-15"), None),
    (local("2025-01-01T00:30"), local("2025-02-01"), None),
    (utc(2025, 3, 1), utc(2025, 4, 1), None),                          # UTC midnights are 01:00 and 02:00 here
])
def test_whole_months(start, end, months):
    assert whole_months(start, end, BERLIN) == months


def test_previous_year_is_a_calendar_year():
    assert comparison_shift("previous_year", local("2025-03-01"), local("2025-04-01"), BERLIN) == relativedelta(years=1)


def test_previous_period_of_whole_months_is_as_many_months():
    start, end = local("2025-03-01"), local("2025-05-01")
    delta = comparison_shift("previous_period", start, end, BERLIN)
    assert delta == relativedelta(months=2)
    assert shift_local(start, delta, BERLIN) == local("2025-01-01")
    assert shift_local(end, delta, BERLIN) == start


def test_previous_period_of_whole_days_is_calendar_days_across_dst():
    start, end = local("2025-03-30"), local("2025-03-31")  # 23 hours long
    delta = comparison_shift("previous_period", start, end, BERLIN)
    assert shift_local(start, delta, BERLIN) == utc(2025, 3, 28, 23)  # 2025-03-29 00:00, a 24-hour day
    assert shift_local(end, delta, BERLIN) == start


def test_previous_period_of_part_days_is_the_same_wall_clock_length():
    """Issue 13 item 13: 00:00-12:00 on the spring-forward day (11 h elapse) compares with the 12
    wall-clock hours before it, 12:00-24:00 the day before (the code once moved back 11 h)."""
    start, end = local("2025-03-30T00:00"), local("2025-03-30T12:00")
    delta = comparison_shift("previous_period", start, end, BERLIN)
    assert shift_local(start, delta, BERLIN) == local("2025-03-29T12:00") == start - dt.timedelta(hours=12)
    assert previous_range("previous_period", start, end, BERLIN)[:2] == (local("2025-03-29T12:00"), start)


def test_previous_period_ends_where_the_range_starts_in_a_repeated_hour():
    """From 02:30 the second time (fold) to 04:00: the previous range still ends at the same instant."""
    start = utc(2025, 10, 26, 1, 30)   # 02:30 CET, after the clocks went back at 03:00 CEST
    end = local("2025-10-26T04:00")
    lo, hi, _ = previous_range("previous_period", start, end, BERLIN)
    assert hi == start and lo < hi


def test_previous_year_of_weeks_is_52_weeks():
    start, end = local("2026-03-02"), local("2026-03-16")
    assert comparison_shift("previous_year", start, end, BERLIN, Grain.week) == relativedelta(weeks=52)
    assert previous_range("previous_year", start, end, BERLIN, Grain.week)[:2] == (local("2025-03-03"),
                                                                                 local("2025-03-17"))


def test_period_pairs():
    day = dt.date
    months = [day(2026, 3, 1), day(2026, 4, 1)]
    before = [day(2026, 1, 1), day(2026, 2, 1), day(2026, 3, 1)]   # Jan 27-31, February, March 1-14
    pair = period_pairs("previous_period", relativedelta(days=47), months, before)
    assert (pair(day(2026, 4, 1)), pair(day(2026, 3, 1))) == (day(2026, 3, 1), day(2026, 2, 1))
    hours = period_pairs("previous_year", relativedelta(years=1), [], [])
    assert hours(dt.datetime(2026, 3, 29, 3)) == dt.datetime(2025, 3, 29, 3)
    assert hours(day(2028, 2, 29)) == day(2027, 2, 28)


def test_unknown_comparison_is_a_query_error():
    with pytest.raises(QueryError, match="previous_period or previous_year"):
        comparison_shift("previous_week", local("2025-03-01"), local("2025-04-01"), BERLIN)


# -- what the user typed ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, instant", [
    ("2025-03-30", utc(2025, 3, 29, 23)),
    ("2025-03-30T03:15", utc(2025, 3, 30, 1, 15)),
    ("2025-03-30 03:15", utc(2025, 3, 30, 1, 15)),
    ("  2025-03-30T03:15  ", utc(2025, 3, 30, 1, 15)),
    ("2025-03-30T02:30", utc(2025, 3, 30, 1, 30)),        # in the spring gap: 03:30 summer time
    ("2025-10-26T02:30", utc(2025, 10, 26, 0, 30)),       # in the repeated hour: its first occurrence
    ("2025-03-30T12:00+05:30", utc(2025, 3, 30, 6, 30)),  # its own offset wins over the zone
    (dt.date(2025, 7, 1), utc(2025, 6, 30, 22)),
    (dt.datetime(2025, 7, 1, 9), utc(2025, 7, 1, 7)),
    (utc(2025, 7, 1, 9), utc(2025, 7, 1, 9)),
])
def test_parse_local_reads_the_query_zone(value, instant):
    parsed = parse_local(value, BERLIN, "--from")
    assert parsed.tzinfo is not None
    assert parsed == instant


@pytest.mark.parametrize("value", ["2025-13-01", "2025-02-30", "yesterday", "30/03/2025", "2025-03-30T25:00", ""])
def test_parse_local_rejects_what_is_not_a_date(value):
    with pytest.raises(QueryError) as raised:
        parse_local(value, BERLIN, "--to")
    assert "--to" in raised.value.message and repr(value) in raised.value.message
    assert "YYYY-MM-DD" in raised.value.message


def test_parse_grain():
    assert parse_grain("Month") is Grain.month
    assert parse_grain(None) is None
    assert parse_grain(Grain.week) is Grain.week
    with pytest.raises(QueryError, match="hour, day, week, month, quarter, year"):
        parse_grain("fortnight")


def test_a_skipped_wall_clock_time_reads_as_the_jump():
    """Lord Howe skips 02:00-02:30 on 2025-10-05: the 15 wall-clock minutes before 02:30 never
    showed, so the previous period of 02:30-02:45 is empty, not one that starts after it ends."""
    howe = ZoneInfo("Australia/Lord_Howe")
    jump = utc(2025, 10, 4, 15, 30)
    assert read_local(dt.datetime(2025, 10, 5, 2, 15), howe) == jump
    start, end = jump, utc(2025, 10, 4, 15, 45)
    assert previous_range("previous_period", start, end, howe)[:2] == (jump, jump)
