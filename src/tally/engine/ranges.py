"""Relative ranges: `--last 30d|12w|6m|1y` and `--period 2026-10|2026-Q3|2026|2026-W05|2026-10-05`."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tally.engine.timegrid import FIRST_DATE, LAST_DATE, SUPPORTED
from tally.errors import QueryError

LAST = re.compile(r"(\d{1,6})([dwmy])")
UNITS = {"d": "days", "w": "weeks", "m": "months", "y": "years"}


def resolve(last: str | None, period: str | None, start, end, timezone: str, week_start: int,
            today: dt.date | None = None) -> tuple:
    """(start, end) as local ISO dates for `--last` / `--period`, or the `--from` / `--to` given."""
    if last is None and period is None:
        return start, end
    if last is not None and period is not None:
        raise QueryError("--last and --period both give the range: use one of them")
    if start is not None or end is not None:
        given = "--last" if last is not None else "--period"
        raise QueryError(f"{given} gives the whole range: drop --from/--to, or drop {given}")
    try:
        if today is None:
            today = dt.datetime.now(ZoneInfo(timezone)).date()
        lo, hi = last_range(last, today, week_start) if last is not None else period_range(period, week_start)
    except (ValueError, OverflowError, ZoneInfoNotFoundError):
        lo = hi = None
    if lo is None or not FIRST_DATE.date() <= lo < hi <= LAST_DATE.date():   # named here, not as --from/--to
        option, value = ("--last", last) if last is not None else ("--period", period)
        raise QueryError(f"{option} {value!r} is outside the calendar ({SUPPORTED})")
    return lo.isoformat(), hi.isoformat()


def last_range(text: str, today: dt.date, week_start: int) -> tuple[dt.date, dt.date]:
    """The current day/week/month/year and the N-1 before it, up to the end of today."""
    match = LAST.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise QueryError(f"--last {text!r}: write a count and a unit, like 30d, 12w, 6m or 1y "
                         "(days, weeks, months, years)")
    count, unit = int(match.group(1)) - 1, match.group(2)
    if unit == "d":
        first = today - dt.timedelta(days=count)
    elif unit == "w":
        first = today - dt.timedelta(days=(today.weekday() - week_start) % 7) - dt.timedelta(weeks=count)
    elif unit == "m":
        months = today.year * 12 + today.month - 1 - count
        first = dt.date(months // 12, months % 12 + 1, 1)
    else:
        first = dt.date(today.year - count, 1, 1)
    return first, today + dt.timedelta(days=1)


def period_range(text: str, week_start: int) -> tuple[dt.date, dt.date]:
    """One calendar period: a year, quarter, month, ISO week (starting on `week_start`) or day."""
    value = text.strip().upper()
    if re.fullmatch(r"\d{4}", value):
        year = int(value)
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
    if match := re.fullmatch(r"(\d{4})-Q([1-4])", value):
        year, quarter = int(match.group(1)), int(match.group(2))
        return _month(year, 3 * quarter - 2), _month(year, 3 * quarter + 1)
    if match := re.fullmatch(r"(\d{4})-(\d{2})", value):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise QueryError(f"--period {text!r}: month {month} is not 01 to 12")
        return _month(year, month), _month(year, month + 1)
    if match := re.fullmatch(r"(\d{4})-W(\d{2})", value):
        year, week = int(match.group(1)), int(match.group(2))
        try:
            monday = dt.date.fromisocalendar(year, week, 1)
        except ValueError:
            raise QueryError(f"--period {text!r}: {year} has no ISO week {week}") from None
        first = monday - dt.timedelta(days=(0 - week_start) % 7)   # the week_start day on or before Monday
        return first, first + dt.timedelta(weeks=1)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise QueryError(f"--period {text!r} is not a calendar date") from None
        return day, day + dt.timedelta(days=1)
    raise QueryError(f"--period {text!r}: write a year (2026), quarter (2026-Q3), month (2026-10), "
                     "ISO week (2026-W05) or day (2026-10-05)")


def _month(year: int, month: int) -> dt.date:
    """The first day of a month; month 13 is January of the next year."""
    return dt.date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
