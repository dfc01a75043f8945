"""Schedules: text and mapping forms, timezones, cron fields read as crontab reads them (Sunday = 0),
interval ticks every scheduler agrees on, and bad schedules refused at their line when tally.yml loads."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tally import Project
from tally.errors import ConfigError
from tally.jobs import jobs_of, list_jobs
from tally.jobs.triggers import last_tick, next_tick, trigger_for
from tally.project.schedules import Schedule, cron_fields
from tests.jobs.conftest import write_orders, write_project

UTC = dt.timezone.utc


def line_of(root, text: str) -> int:
    lines = (root / "tally.yml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def load(tmp_path, **kwargs) -> Project:
    write_orders(tmp_path, 3)
    return Project.load(write_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", **kwargs))


def trigger(tmp_path, schedule, **kwargs):
    project = load(tmp_path, rollup={"schedule": schedule}, **kwargs)
    job = jobs_of(project)["rollup:daily"]
    return job, trigger_for(project, job)


@pytest.mark.parametrize("text, every, cron", [("every 12s", "12s", None), ("every 6 hours", "6 hours", None),
                                               ("0 */6 * * *", None, "0 */6 * * *"),
                                               ({"every": "15m", "timezone": "UTC"}, "15m", None)])
def test_text_and_mapping_forms(text, every, cron):
    schedule = Schedule.model_validate(text)
    assert (schedule.every, schedule.cron) == (every, cron)


@pytest.mark.parametrize("text, message", [
    ("every fortnight", "neither `every N(s|m|h|d)` nor a 5-field cron"),
    ("0 */6 * *", "nor a 5-field cron expression"),
    ("61 * * * *", "minute '61' is not a number from 0 to 59"),
    ("0 24 * * *", "hour '24' is not a number from 0 to 23"),
    ("0 0 0 * *", "day '0' is not a number from 1 to 31"),
    ("0 0 * 13 *", "month '13' is not a name or a number from 1 to 12"),
    ("0 0 * * 8", "day of week '8'"),
    ("0 0 * * funday", "day of week 'funday'"),
    ("*/0 * * * *", "minute step '0' is not a whole number above 0"),
    ("0 5-2 * * *", "hour range '5-2' runs backwards"),
    ("0 0 30 feb *", "never runs: no month it names has day 30"),
    ("0 0 31 4,6 *", "never runs"),
    ({"every": "0s"}, "longer than 0s"),
    ({"every": "12s", "cron": "* * * * *"}, "exactly one of `every`"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"cron": "* * * * *", "zone": "UTC"}, "Extra inputs are not permitted"),
])
def test_bad_schedules_say_what_is_wrong(text, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        Schedule.model_validate(text)


def test_a_bad_rollup_cron_is_a_config_error_at_its_line(tmp_path):
    write_orders(tmp_path, 3)
    root = write_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", rollup={"schedule": "0 25 * * *"})
    with pytest.raises(ConfigError) as caught:
        Project.load(root)
    assert caught.value.line == line_of(root, "schedule:")
    assert "rollups.daily.schedule" in caught.value.message and "hour '25'" in caught.value.message


def test_a_bad_timezone_of_a_source_schedule_is_refused_at_its_line(tmp_path):
    write_orders(tmp_path, 3)
    root = write_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb",
                         source={"schedule": {"every": "12s", "timezone": "Nowhere/Land"}})
    with pytest.raises(ConfigError, match="unknown timezone 'Nowhere/Land'") as caught:
        Project.load(root)
    assert caught.value.line == line_of(root, "timezone: Nowhere/Land")


@pytest.mark.parametrize("jobs, message", [({"missed": "sometimes"}, "jobs.missed: Input should be 'run_once' or 'skip'"),
                                            ({"lease": "0s"}, "lease '0s' must be at least 1s")])
def test_a_bad_jobs_section_is_refused_at_its_line(tmp_path, jobs, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, jobs=jobs)
    assert caught.value.line == line_of(tmp_path, f"{next(iter(jobs))}:")


@pytest.mark.parametrize("day_field, weekday", [("1", 0), ("0", 6), ("7", 6), ("sat", 5), ("5", 4)])
def test_cron_weekdays_count_from_sunday_as_crontab_does(tmp_path, day_field, weekday):
    """APScheduler 3 counts weekday 0 as Monday; crontab (and Tally) as Sunday."""
    job, cron = trigger(tmp_path, f"0 9 * * {day_field}")
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)   # a Sunday
    tick = next_tick(cron, start).astimezone(ZoneInfo("Europe/Istanbul"))
    assert (tick.weekday(), tick.hour, tick.minute) == (weekday, 9, 0)
    assert tick - start.astimezone(tick.tzinfo) < dt.timedelta(days=7)


def test_cron_ranges_steps_and_lists_expand_as_crontab_does():
    assert cron_fields("*/20 9-17/4 1,15 jan-mar */2") == {
        "minute": "0,20,40", "hour": "9,13,17", "day": "1,15", "month": "1,2,3", "day_of_week": "sun,tue,thu,sat"}
    assert cron_fields("* * * * 0-7")["day_of_week"] == "sun,mon,tue,wed,thu,fri,sat"


def test_a_cron_schedule_is_read_in_its_own_timezone_across_dst(tmp_path):
    """12:00 in New York is 17:00 UTC in winter and 16:00 UTC in summer."""
    job, cron = trigger(tmp_path, {"cron": "0 12 * * *", "timezone": "America/New_York"})
    assert job.timezone == "America/New_York"
    winter = next_tick(cron, dt.datetime(2026, 1, 10, 0, 0, tzinfo=UTC)).astimezone(UTC)
    summer = next_tick(cron, dt.datetime(2026, 7, 10, 0, 0, tzinfo=UTC)).astimezone(UTC)
    assert (winter.hour, summer.hour) == (17, 16)


def test_the_rollup_timezone_then_the_project_timezone_are_the_defaults(tmp_path):
    project = load(tmp_path, rollup={"schedule": "0 2 * * *", "timezone": "Asia/Tokyo"},
                   source={"schedule": "every 6h"})
    jobs = jobs_of(project)
    assert (jobs["rollup:daily"].timezone, jobs["ingest:orders"].timezone) == ("Asia/Tokyo", "Europe/Istanbul")
    tick = next_tick(trigger_for(project, jobs["rollup:daily"]), dt.datetime(2026, 5, 1, 12, tzinfo=UTC))
    assert tick.astimezone(UTC) == dt.datetime(2026, 5, 1, 17, tzinfo=UTC)   # 02:00 in Tokyo (UTC+9)


def test_interval_ticks_fall_on_local_midnight_multiples(tmp_path):
    """`every 6h` in Istanbul (UTC+3): 00, 06, 12, 18 local = 21, 03, 09, 15 UTC, whenever the trigger was made."""
    project = load(tmp_path, source={"schedule": "every 6h"})
    job = jobs_of(project)["ingest:orders"]
    first, second = trigger_for(project, job), trigger_for(project, job)
    at = dt.datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    ticks = []
    for _ in range(4):
        at = next_tick(first, at)
        ticks.append(at.astimezone(UTC).hour)
        assert next_tick(second, at - dt.timedelta(seconds=1)) == at
    assert ticks == [15, 21, 3, 9]


@pytest.mark.parametrize("schedule", ["every 12s", "every 7m", "*/5 * * * *", "0 9 * * 1-5", "30 1 1 * *"])
def test_the_last_tick_is_a_tick_at_or_before_now_and_the_next_follows_it(tmp_path, schedule):
    job, made = trigger(tmp_path, schedule)
    now = dt.datetime(2026, 6, 17, 13, 41, 27, 500000, tzinfo=UTC)
    last = last_tick(made, now)
    assert last <= now
    assert next_tick(made, last - dt.timedelta(microseconds=1)) == last   # it is a tick
    assert next_tick(made, now) > now and next_tick(made, last) == next_tick(made, now)   # none in between


def test_list_jobs_shows_every_job_with_its_schedule_and_next_tick(tmp_path):
    project = load(tmp_path, source={"schedule": "every 12s"})
    jobs = {job.id: job for job in list_jobs(project)}
    assert set(jobs) == {"ingest:orders", "rollup:daily"}
    assert jobs["rollup:daily"].schedule is None and jobs["rollup:daily"].next_run is None
    upcoming = jobs["ingest:orders"].next_run
    assert jobs["ingest:orders"].schedule == "every 12s" and upcoming.second % 12 == 0
    assert dt.timedelta(0) < upcoming - dt.datetime.now(UTC) <= dt.timedelta(seconds=12)
    assert jobs["ingest:orders"].last_run is None
    project.close()


def _field(low: int, high: int, names=()):
    """Strategy: one cron field as people write them (*, N, A-B, */S, A-B/S, N/S, lists, names)."""
    from hypothesis import strategies as st

    number = st.integers(low, high).map(str)
    if names:
        number = st.one_of(number, st.sampled_from(names))
    pair = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda t: f"{min(t)}-{max(t)}")
    step = st.integers(1, high - low + 1).map(str)
    part = st.one_of(st.just("*"), number, pair, st.tuples(st.sampled_from(["*"]), step).map("/".join),
                     st.tuples(pair, step).map("/".join), st.tuples(st.integers(low, high).map(str), step).map("/".join))
    return st.lists(part, min_size=1, max_size=3).map(",".join)


def test_every_cron_expression_tally_accepts_apscheduler_accepts_too():
    """tally.yml is checked without loading APScheduler: what passes must build a trigger that has ticks."""
    from apscheduler.triggers.cron import CronTrigger
    from hypothesis import given, settings
    from hypothesis import strategies as st

    expressions = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12, ("jan", "JUN", "dec")),
                            _field(0, 7, ("sun", "Mon", "sat"))).map(" ".join)

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(expressions)
    def check(expression):
        Schedule.model_validate(expression)
        made = CronTrigger(**cron_fields(expression), timezone=ZoneInfo("Europe/Istanbul"))
        assert next_tick(made, dt.datetime(2026, 1, 1, tzinfo=UTC)) is not None

    check()
