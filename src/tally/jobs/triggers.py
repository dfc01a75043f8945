"""APScheduler triggers for schedules, and the ticks around a moment (the one a run is for, the next).

Intervals count from midnight of 2026-01-05 (a Monday) in the schedule's zone, so every scheduler of a project
has the same ticks (`every 6h`: 00:00, 06:00, 12:00, 18:00) and a tick is one row in `_tally_job_runs`
whichever scheduler ran it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from tally.jobs.registry import KINDS, Job
from tally.project.schedules import cron_fields

ANCHOR = dt.datetime(2026, 1, 5)   # a Monday: intervals of a day or a week fall on midnight and Mondays
LOOKBACK = dt.timedelta(days=400 * 4)   # past this, a cron expression is taken to have no earlier tick


def trigger_for(project, job: Job):
    """The APScheduler trigger of a scheduled job; ConfigError at the schedule's line if APScheduler refuses it."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    schedule, zone = job.schedule, ZoneInfo(job.timezone)
    try:
        if schedule.every is not None:
            return IntervalTrigger(seconds=schedule.seconds, start_date=ANCHOR.replace(tzinfo=zone), timezone=zone)
        return CronTrigger(**cron_fields(schedule.cron), timezone=zone)
    except ValueError as exc:
        raise project.loaded.error(f"{job.id}: schedule {schedule.text!r}: {exc}",
                                   KINDS[job.kind].section, job.name, "schedule") from None


def next_tick(trigger, now: dt.datetime) -> dt.datetime | None:
    """The first tick after `now`."""
    return trigger.get_next_fire_time(None, now + dt.timedelta(microseconds=1))


def last_tick(trigger, now: dt.datetime) -> dt.datetime | None:
    """The latest tick at or before `now` (None when there is none): the tick a run starting now is for.
    Ticks come back in UTC; `now` must carry a zone."""
    from apscheduler.triggers.interval import IntervalTrigger

    if isinstance(trigger, IntervalTrigger):
        start = trigger.start_date.timestamp()   # absolute seconds, as APScheduler counts intervals
        if now.timestamp() < start:
            return None
        count = (now.timestamp() - start) // trigger.interval_length
        return dt.datetime.fromtimestamp(start + count * trigger.interval_length, dt.timezone.utc)
    span = dt.timedelta(minutes=1)
    while span <= LOOKBACK:   # widen the window back until it holds a tick, then walk forward to the last
        tick = trigger.get_next_fire_time(None, now - span)
        if tick is not None and tick <= now:
            while (following := next_tick(trigger, tick)) is not None and following <= now:
                tick = following
            return tick.astimezone(dt.timezone.utc)
        span *= 2
    return None
