"""Time in the query timezone: grains, half-open ranges, UTC offset segments, period labels."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from tally.errors import QueryError

UTC = dt.timezone.utc
# Dates a range may name: wide enough for any data, narrow enough that a year's shift, a zone's
# offset or a period's end stays inside Python's years 1..9999 (and MariaDB's DATETIME from 1000).
FIRST_DATE, LAST_DATE = dt.datetime(1000, 1, 1), dt.datetime(9000, 1, 1)
SUPPORTED = f"supported dates are {FIRST_DATE.date()} to {LAST_DATE.date()}"


class Grain(str, Enum):
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"
    quarter = "quarter"
    year = "year"

    @property
    def step(self) -> relativedelta:
        return _STEPS[self.value]


_STEPS = {"hour": relativedelta(hours=1), "day": relativedelta(days=1), "week": relativedelta(weeks=1),
          "month": relativedelta(months=1), "quarter": relativedelta(months=3), "year": relativedelta(years=1)}


def as_utc(value: dt.datetime) -> dt.datetime:
    """A time read from a warehouse as an aware instant: a naive one (MySQL) is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_grain(value: str | Grain | None) -> Grain | None:
    if value is None or isinstance(value, Grain):
        return value
    try:
        return Grain(str(value).lower())
    except ValueError:
        raise QueryError(f"unknown grain {value!r} (use one of: {', '.join(g.value for g in Grain)})") from None


def parse_local(value: str | dt.date | dt.datetime, tz: ZoneInfo, what: str) -> dt.datetime:
    """A date or timestamp in the query timezone (or with its own offset) as an aware datetime."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time())
    else:
        text = str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace(" ", "T") if len(text) > 10 else text)
        except ValueError:
            raise QueryError(f"{what} {value!r} is not a date (YYYY-MM-DD) or timestamp (YYYY-MM-DDTHH:MM)") from None
    if not FIRST_DATE <= parsed.replace(tzinfo=None) <= LAST_DATE:
        shown = value.isoformat() if isinstance(value, dt.date) else str(value)
        raise QueryError(f"{what} {shown!r} is out of range ({SUPPORTED})")
    aware = parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed
    # as a UTC instant: aware datetimes sharing a tzinfo compare by wall clock, which is wrong across DST
    return aware.astimezone(UTC)


def parse_date(value: str | dt.date, what: str) -> dt.date:
    """A local date (a rollup rebuild's --from/--to), read and checked as a query's range is."""
    if isinstance(value, dt.datetime) or (not isinstance(value, dt.date)
                                          and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value).strip())):
        raise QueryError(f"{what} {value!r} is not a date (YYYY-MM-DD)")
    return parse_local(value, UTC, what).date()


def in_supported_range(*instants: dt.datetime) -> bool:
    """Whether every instant lies within the supported dates (a day's margin for the zone's offset)."""
    low, high = FIRST_DATE - dt.timedelta(days=1), LAST_DATE + dt.timedelta(days=1)
    return all(low <= instant.astimezone(UTC).replace(tzinfo=None) <= high for instant in instants)


@lru_cache(maxsize=512)
def _year_transitions(zone: str, year: int) -> tuple[tuple[dt.datetime, int], ...]:
    """UTC instants within `year` where the zone's offset changes, with the offset after."""
    tz = ZoneInfo(zone)
    found = []
    day = dt.datetime(year, 1, 1, tzinfo=UTC)
    previous = _offset(tz, day)
    while day.year == year:
        nxt = day + dt.timedelta(days=1)
        offset = _offset(tz, nxt)
        if offset != previous:
            low, high = day, nxt  # offset(low) == previous, offset(high) == offset: bisect to the second
            while (high - low) > dt.timedelta(seconds=1):
                mid = low + (high - low) / 2
                low, high = (mid, high) if _offset(tz, mid) == previous else (low, mid)
            found.append((high.replace(microsecond=0), offset))
            previous = offset
        day = nxt
    return tuple(found)


def _offset(tz: ZoneInfo, instant: dt.datetime) -> int:
    return int(instant.astimezone(UTC).astimezone(tz).utcoffset().total_seconds())


FIXED_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "GMT", "Etc/GMT", "Zulu", "Etc/Zulu", "Universal"})


def offset_segments(zone: str, start: dt.datetime, end: dt.datetime) -> tuple[int, tuple[tuple[dt.datetime, int], ...]]:
    """The offset in force at `start` and each (instant, new offset) change before `end`."""
    tz = ZoneInfo(zone)
    if zone in FIXED_ZONES:   # no transitions to look for (a day-by-day scan of centuries takes seconds)
        return _offset(tz, start), ()
    changes = tuple((when, off) for year in range(start.year - 1, end.year + 1)
                    for when, off in _year_transitions(zone, year) if start < when < end)
    return _offset(tz, start), changes


def truncate(local: dt.datetime, grain: Grain, week_start: int) -> dt.datetime:
    """The start of the period holding a naive local wall-clock time."""
    if grain is Grain.hour:
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain is Grain.day:
        return day
    if grain is Grain.week:
        return day - dt.timedelta(days=(day.weekday() - week_start) % 7)
    if grain is Grain.month:
        return day.replace(day=1)
    if grain is Grain.quarter:
        return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    return day.replace(day=1, month=1)


MAX_PERIODS = 200_000   # periods one answer lists: 22 years of hours, 547 of days
_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365}   # each at its shortest


def check_period_count(grain: Grain, start: dt.datetime, end: dt.datetime) -> None:
    """Refuse a range holding more periods than an answer lists (a dense grid of them is built)."""
    count = (end - start).total_seconds() / 86400 / _DAYS[grain.value]
    if count > MAX_PERIODS:
        raise QueryError(f"{start.date()} to {end.date()} by {grain.value} is about {int(count):,} periods, more "
                         f"than the {MAX_PERIODS:,} an answer lists: narrow the range or use a coarser grain")


def period_labels(grain: Grain, start: dt.datetime, end: dt.datetime, zone: str, week_start: int) -> list:
    """Every period label (date, or naive local datetime for hours) touching [start, end)."""
    check_period_count(grain, start, end)
    tz = ZoneInfo(zone)
    if grain is Grain.hour:
        labels, instant = {}, start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while instant < end:
            labels[truncate(instant.astimezone(tz).replace(tzinfo=None), grain, week_start)] = None
            instant += dt.timedelta(minutes=30)  # half-hour zones: visit every local hour
        return [label for label in labels if _hour_overlaps(label, tz, start, end)]
    first = truncate(start.astimezone(tz).replace(tzinfo=None), grain, week_start)
    last = (end - dt.timedelta(microseconds=1)).astimezone(tz).replace(tzinfo=None)
    labels, current = [], first
    while current <= last:
        labels.append(current.date())
        current = current + grain.step
    return labels


def _hour_overlaps(label: dt.datetime, tz: ZoneInfo, start: dt.datetime, end: dt.datetime) -> bool:
    begin = label.replace(tzinfo=tz).astimezone(UTC)
    return begin < end.astimezone(UTC) and begin + dt.timedelta(hours=1) > start.astimezone(UTC)


def whole_months(start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> int | None:
    """How many months [start, end) spans if both ends are local month starts, else None."""
    a, b = start.astimezone(tz), end.astimezone(tz)
    if any((x.day, x.hour, x.minute, x.second, x.microsecond) != (1, 0, 0, 0, 0) for x in (a, b)):
        return None
    return (b.year - a.year) * 12 + b.month - a.month


def comparison_shift(kind: str, start: dt.datetime, end: dt.datetime, tz: ZoneInfo,
                     grain: Grain | None = None) -> relativedelta:
    """How far back, in local wall-clock time, the comparison range lies.

    previous_year: one year, or 52 weeks with --grain week (so weeks line up, each compared with the
    week 52 weeks before); previous_period: the range's own length (whole months, whole days, or
    its wall-clock length in the query timezone).
    """
    if kind == "previous_year":
        return relativedelta(weeks=52) if grain is Grain.week else relativedelta(years=1)
    if kind != "previous_period":
        raise QueryError(f"unknown comparison {kind!r} (use previous_period or previous_year)")
    months = whole_months(start, end, tz)
    if months:
        return relativedelta(months=months)
    a, b = start.astimezone(tz).replace(tzinfo=None), end.astimezone(tz).replace(tzinfo=None)
    length = b - a   # naive local times: the wall-clock length (12 h from 00:00 to 12:00, DST or not)
    return relativedelta(days=length.days, seconds=length.seconds, microseconds=length.microseconds)


def shift_local(instant: dt.datetime, delta: relativedelta | dt.timedelta, tz: ZoneInfo) -> dt.datetime:
    """Move an instant back by a calendar delta in local wall-clock terms, or by elapsed time."""
    if isinstance(delta, dt.timedelta):
        return instant.astimezone(UTC) - delta
    return read_local(instant.astimezone(tz).replace(tzinfo=None) - delta, tz)


def read_local(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """A naive wall-clock time as an instant: a repeated time is its first occurrence, and a time
    the clocks skipped is the instant they jumped (so earlier times never read later)."""
    instant = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local:
        return instant
    early = local.replace(tzinfo=tz, fold=1).astimezone(UTC)   # read with the offset after the jump
    for year in (early.year, instant.year):
        for when, _ in _year_transitions(tz.key, year):
            if early <= when <= instant:
                return when
    return instant


def previous_range(kind: str, start: dt.datetime, end: dt.datetime, tz: ZoneInfo,
                   grain: Grain | None = None) -> tuple[dt.datetime, dt.datetime, relativedelta]:
    """The comparison range of [start, end) and its shift; a previous period ends where the range begins."""
    delta = comparison_shift(kind, start, end, tz, grain)
    try:
        before_end = start if kind == "previous_period" else shift_local(end, delta, tz)
        before_start = shift_local(start, delta, tz)
    except (OverflowError, ValueError):   # before year 1
        before_start = None
    if before_start is None or not in_supported_range(before_start):
        raise QueryError(f"--compare {kind}: the range compared with would start before {FIRST_DATE.date()} "
                         f"({SUPPORTED}); choose a later --from")
    return before_start, before_end, delta


def period_pairs(kind: str, delta: relativedelta, now: list, before: list):
    """The previous period each current period label is compared with (None: nothing to pair).

    previous_year: the label one year (weeks: 52 weeks) earlier in local wall-clock time;
    previous_period: periods paired by position counted from the last (the last with the last).
    """
    if kind == "previous_year":
        return lambda label: label - delta
    return dict(zip(reversed(now), reversed(before))).get
