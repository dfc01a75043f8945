"""`schedule:` values (on sources and rollups) and the `jobs:` section, checked at load.

A schedule is `every N(s|m|h|d)` or a 5-field cron expression, as text or as a mapping with its own
`timezone:`. Cron fields are checked here (no scheduler library is loaded to read tally.yml) and
handed to APScheduler as explicit value lists, weekdays by name: APScheduler 3 counts weekday 0 as
Monday, cron as Sunday.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

_DURATION = re.compile(r"^(\d+)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"^every\s+(\d+\s*(?:s|sec|seconds?|m|min|minutes?|h|hours?|d|days?))$")
MONTHS = {name: i + 1 for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                               "oct", "nov", "dec"))}
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)   # the most each month can have
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")   # cron's numbering: 0 (and 7) is Sunday
# (APScheduler's keyword, low, high, names) for each cron field, in cron's order
CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day", 1, 31, {}), ("month", 1, 12, MONTHS),
               ("day_of_week", 0, 7, {name: i for i, name in enumerate(WEEKDAYS)}))


def parse_duration(text) -> int:
    """`30m`, `1h`, `2 days` -> seconds; ValueError naming the accepted forms."""
    match = _DURATION.match(str(text).strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration (write N followed by s, m, h or d: `1h`, `2d`, `0s`; "
                         "or `none` for no limit)")
    return int(match.group(1)) * _SECONDS[match.group(2)[0]]


def _cron_number(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    value = names.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ValueError(f"{field} {text!r} is not {'a name or ' if names else ''}a number from {low} to {high}")
    return value


def cron_values(text: str, field: str, low: int, high: int, names: dict[str, int]) -> list[int]:
    """The values one cron field stands for (`*`, `N`, `A-B`, `*/S`, `A-B/S`, `N/S`, lists of those)."""
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{field} step {step_text!r} is not a whole number above 0")
        step = int(step_text) if slash else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (_cron_number(t, low, high, names, field) for t in base.split("-", 1))
            if first > last:
                raise ValueError(f"{field} range {base!r} runs backwards")
        else:
            first = _cron_number(base, low, high, names, field)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return sorted(values)


def cron_fields(expression: str) -> dict[str, str]:
    """A 5-field cron expression as APScheduler's CronTrigger keywords (explicit lists; weekdays by name).
    ValueError naming the field that is wrong."""
    parts = str(expression).split()
    if len(parts) != 5:
        raise ValueError(f"cron {expression!r} has {len(parts)} fields; write 5: minute hour day month weekday")
    kwargs, found = {}, {}
    for text, (field, low, high, names) in zip(parts, CRON_FIELDS):
        values = found[field] = cron_values(text, field.replace("_", " "), low, high, names)
        if field == "day_of_week":
            days = sorted({v % 7 for v in values})
            kwargs[field] = "*" if text == "*" else ",".join(WEEKDAYS[d] for d in days)
        else:
            kwargs[field] = "*" if text == "*" else ",".join(map(str, values))
    if min(found["day"]) > max(MONTH_DAYS[month - 1] for month in found["month"]):
        raise ValueError(f"cron {expression!r} never runs: no month it names has day {min(found['day'])}")
    return kwargs


def _zone(value: str | None) -> str | None:
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):   # OSError: a folder (America) or a name too long
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Istanbul)") from None
    return value


class Schedule(BaseModel):
    """When a job runs: `every` (an interval) or `cron`, in `timezone` (default: the owner's zone).
    Written as text (`every 12s`, `0 */6 * * *`) or as a mapping with these keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: str | None = None
    cron: str | None = None
    timezone: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        text = data.strip()
        match = _EVERY.match(text.lower())
        if match:
            return {"every": match.group(1)}
        if len(text.split()) != 5:
            raise ValueError(f"schedule {text!r} is neither `every N(s|m|h|d)` nor a 5-field cron expression")
        return {"cron": text}

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of `every` (an interval) or `cron`")
        if self.every is not None:
            try:
                seconds = parse_duration(self.every)
            except ValueError:
                raise ValueError(f"every {self.every!r} is not an interval (write N followed by s, m, h or d: "
                                 "12s, 15m, 6h, 1d)") from None
            if seconds <= 0:
                raise ValueError(f"every {self.every!r}: an interval must be longer than 0s")
        if self.cron is not None:
            cron_fields(self.cron)
        return self

    _check_zone = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))

    @property
    def seconds(self) -> int | None:
        """The interval in seconds; None for a cron schedule."""
        return parse_duration(self.every) if self.every is not None else None

    @property
    def text(self) -> str:
        """The schedule as a person writes it (`every 12s`, `0 */6 * * *`)."""
        return f"every {self.every}" if self.every is not None else str(self.cron)

    def zone(self, default: str) -> str:
        """Its own timezone, else `default` (the rollup's or the project's)."""
        return self.timezone or default


def parse_schedule(text) -> dict:
    """`every 12s` / `every 6h` -> interval seconds; otherwise a 5-field cron expression (checked)."""
    schedule = Schedule.model_validate(str(text).strip())
    if schedule.every is not None:
        return {"kind": "interval", "seconds": schedule.seconds}
    return {"kind": "cron", "expression": schedule.cron}


class Jobs(BaseModel):
    """The `jobs:` section: what the scheduler does with ticks it missed, and how long a lease holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    missed: Literal["run_once", "skip"] = "run_once"
    lease: str = "60s"

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: str) -> str:
        if parse_duration(value) < 1:
            raise ValueError(f"lease {value!r} must be at least 1s")
        return value

    @property
    def lease_seconds(self) -> int:
        return parse_duration(self.lease)
