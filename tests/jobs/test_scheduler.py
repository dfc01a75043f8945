"""The Scheduler: several on one server warehouse run each tick once; a tick missed while none ran
runs once at start (or is skipped with `missed: skip`)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tally import Project
from tally.jobs import KINDS, JobKind, Scheduler, jobs_of, run_job
from tally.jobs.triggers import last_tick, trigger_for
from tally.project.schedules import Schedule
from tests.jobs.conftest import plain_rows, write_orders, write_project

UTC = dt.timezone.utc


def beat_kind(monkeypatch, schedule: str, seconds: float = 0.2) -> list:
    """A job kind `beat` with one job `beat:x` on `schedule` that takes `seconds`; returns its calls."""
    calls = []

    def run(project, name):
        calls.append(time.monotonic())
        time.sleep(seconds)
        return 1
    every = Schedule.model_validate(schedule)
    monkeypatch.setitem(KINDS, "beat", JobKind("beat", "sources", lambda project: {"x": every}, run))
    return calls


@pytest.mark.parametrize("any_url", ["postgres", "mariadb"], indirect=True)
def test_two_schedulers_on_one_warehouse_run_each_tick_once(any_url, tmp_path, monkeypatch):
    calls = beat_kind(monkeypatch, "every 1s")
    write_orders(tmp_path, 3)
    root = write_project(tmp_path, any_url, jobs={"lease": "5s"})
    projects = [Project.load(root), Project.load(root)]   # two connections, two leases' holders
    schedulers = [Scheduler(project) for project in projects]
    for scheduler in schedulers:
        scheduler.start()
    time.sleep(4.5)
    for scheduler in schedulers:
        scheduler.shutdown(wait=True)
    for project in projects:
        project.close()
    ticks = plain_rows(any_url, 'SELECT "scheduled_for", count(*), min("status") FROM "_tally_job_runs" '
                                'WHERE "job" = \'beat:x\' GROUP BY "scheduled_for" ORDER BY "scheduled_for"')
    assert [count for _, count, _ in ticks] == [1] * len(ticks)   # no tick ran twice
    assert {status for _, _, status in ticks} == {"succeeded"}
    assert len(ticks) >= 3 and len(calls) == len(ticks)
    times = [tick if tick.tzinfo else tick.replace(tzinfo=UTC) for tick, _, _ in ticks]
    assert all(b - a == dt.timedelta(seconds=1) for a, b in zip(times, times[1:]))   # and none was lost
    holders = plain_rows(any_url, 'SELECT count(DISTINCT "holder") FROM "_tally_job_runs"')[0][0]
    assert holders == len(ticks)   # one lease taken per tick


def earlier_run(project, monkeypatch, hours: float) -> None:
    """Record a scheduled run of beat:x that started `hours` ago."""
    import tally.jobs.run as runs

    past = dt.datetime.now(UTC) - dt.timedelta(hours=hours)
    with monkeypatch.context() as patch:
        patch.setattr(runs, "now", lambda: past)
        assert run_job(project, "beat:x", scheduled_for=past, trigger="schedule").status == "succeeded"


@pytest.mark.parametrize("missed, runs", [("run_once", 1), ("skip", 0)])
def test_a_missed_tick_runs_once_at_start_unless_skipped(duck_url, tmp_path, monkeypatch, missed, runs):
    calls = beat_kind(monkeypatch, "0 * * * *", seconds=0)   # hourly: the last tick passed while nothing ran
    write_orders(tmp_path, 3)
    project = Project.load(write_project(tmp_path, duck_url, jobs={"missed": missed}))
    earlier_run(project, monkeypatch, hours=3)
    calls.clear()
    scheduler = Scheduler(project)
    scheduler.start()
    deadline = time.monotonic() + 3
    while len(calls) < runs and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    scheduler.shutdown(wait=True)
    tick = last_tick(trigger_for(project, jobs_of(project)["beat:x"]), dt.datetime.now(UTC))
    project.close()
    assert len(calls) == runs
    ran = plain_rows(duck_url, 'SELECT "scheduled_for" FROM "_tally_job_runs" ORDER BY "started_at"')
    assert len(ran) == 1 + runs
    if runs:
        assert ran[-1][0] == tick   # the latest missed tick (only that one, though three passed)


def test_a_job_that_never_ran_does_not_run_at_start(duck_url, tmp_path, monkeypatch):
    calls = beat_kind(monkeypatch, "0 * * * *", seconds=0)
    write_orders(tmp_path, 3)
    project = Project.load(write_project(tmp_path, duck_url))
    scheduler = Scheduler(project)
    scheduler.start()
    upcoming = scheduler.next_runs()["beat:x"]
    time.sleep(0.5)
    scheduler.shutdown()
    project.close()
    assert calls == [] and upcoming > dt.datetime.now(UTC) and upcoming.minute == 0


def test_shutdown_lets_the_running_job_finish_and_record_its_outcome(duck_url, tmp_path, monkeypatch):
    calls = beat_kind(monkeypatch, "every 1s", seconds=1.5)
    write_orders(tmp_path, 3)
    project = Project.load(write_project(tmp_path, duck_url))
    seen = []
    scheduler = Scheduler(project, on_run=seen.append)
    scheduler.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls, "the job never started"
    scheduler.shutdown(wait=True)   # mid-run: waits for it
    finished = time.monotonic()
    project.close()
    assert finished - calls[0] >= 1.4
    assert [(run.status, run.rows) for run in seen] == [("succeeded", 1)]
    rows = plain_rows(duck_url, 'SELECT "status" FROM "_tally_job_runs"')
    assert rows == [("succeeded",)]


def test_an_interval_keeps_its_ticks_after_a_missed_run_at_start(duck_url, tmp_path, monkeypatch):
    # the missed run moved the job's next_run_time to "now", and APScheduler counts an interval from
    # the previous fire: every later tick fell at start + k * interval (`every 12s` ran up to 12 s late)
    calls = beat_kind(monkeypatch, "every 1h", seconds=0)
    write_orders(tmp_path, 3)
    project = Project.load(write_project(tmp_path, duck_url))
    earlier_run(project, monkeypatch, hours=3)
    calls.clear()
    scheduler = Scheduler(project)
    scheduler.start()
    deadline = time.monotonic() + 3
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    upcoming = scheduler.next_runs()["beat:x"]
    scheduler.shutdown(wait=True)
    trigger = trigger_for(project, jobs_of(project)["beat:x"])
    project.close()
    assert len(calls) == 1   # the missed tick ran once
    assert dt.datetime.now(UTC) < upcoming <= dt.datetime.now(UTC) + dt.timedelta(hours=1)
    assert upcoming.astimezone(trigger.timezone).time() == dt.time(upcoming.astimezone(trigger.timezone).hour)
