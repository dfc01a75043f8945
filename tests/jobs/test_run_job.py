"""run_job: a run is recorded with the rows it wrote, a failure with a one-line redacted error, a
second run of a job that is running is skipped, a tick runs once, and a killed run is recovered."""

from __future__ import annotations

import csv
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tally import Project
from tally.errors import ConfigError, NotFoundError, QueryError
from tally.jobs import KINDS, JobKind, Scheduler, recent_runs, run_job
from tests.jobs.conftest import plain_rows, write_orders, write_project

UTC = dt.timezone.utc
RUNS = 'SELECT "job", "kind", "name", "trigger", "status", "rows", "error", "scheduled_for" FROM "_tally_job_runs"'


def csv_count(root) -> tuple[int, int]:
    """(rows, distinct days) of data/orders.csv, read with the csv module."""
    with open(root / "data" / "orders.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return len(rows), len({row["ordered_at"][:10] for row in rows})


def test_run_job_records_the_rows_each_job_wrote(any_url, tmp_path):
    write_orders(tmp_path, 37)
    project = Project.load(write_project(tmp_path, any_url))
    ingest = run_job(project, "ingest:orders")
    build = run_job(project, "daily")   # a bare name: only the rollup is called daily
    project.close()
    count, days = csv_count(tmp_path)
    assert (ingest.status, ingest.rows, ingest.error) == ("succeeded", count, None)
    assert (build.status, build.rows) == ("succeeded", days)
    rows = sorted(plain_rows(any_url, RUNS))
    assert rows == [("ingest:orders", "ingest", "orders", "manual", "succeeded", count, None, None),
                    ("rollup:daily", "rollup", "daily", "manual", "succeeded", days, None, None)]
    assert plain_rows(any_url, 'SELECT count(*) FROM "orders"') == [(count,)]
    leases = plain_rows(any_url, 'SELECT "job", "expires_at" FROM "_tally_job_leases" ORDER BY "job"')
    assert [job for job, _ in leases] == ["ingest:orders", "rollup:daily"]
    assert all(expires.year == 2000 for _, expires in leases)   # released when the run ended


def slow_kind(monkeypatch, started: threading.Event, release: threading.Event, name: str = "slow") -> None:
    def run(project, target):
        started.set()
        assert release.wait(20)
        return 5
    monkeypatch.setitem(KINDS, name, JobKind(name, "sources", lambda project: {"x": None}, run))


def test_a_failure_is_recorded_as_one_line_with_secrets_masked(duck_url, tmp_path, monkeypatch):
    def boom(project, target):
        raise RuntimeError("posting to https://bot:hunter22@hooks.example/x failed with tok-SECRET-123\n  at line 2")
    monkeypatch.setitem(KINDS, "boom", JobKind("boom", "sources", lambda project: {"x": None}, boom))
    write_orders(tmp_path, 3)
    channels = {"channels": {"ops": {"kind": "webhook", "url": "https://hooks.example/x", "api_token": "tok-SECRET-123"}}}
    project = Project.load(write_project(tmp_path, duck_url, extra=channels))
    run = run_job(project, "boom:x")
    project.close()
    assert run.status == "failed"
    assert run.error == "RuntimeError: posting to https://bot:***@hooks.example/x failed with ***"
    assert plain_rows(duck_url, RUNS) == [("boom:x", "boom", "x", "manual", "failed", None, run.error, None)]


@pytest.mark.parametrize("any_url", ["duckdb", "postgres"], indirect=True)
def test_a_second_run_while_one_runs_is_skipped(any_url, tmp_path, monkeypatch):
    started, release = threading.Event(), threading.Event()
    slow_kind(monkeypatch, started, release)
    write_orders(tmp_path, 3)
    root = write_project(tmp_path, any_url, jobs={"lease": "1s"})
    first, second = Project.load(root), Project.load(root)
    results = []
    worker = threading.Thread(target=lambda: results.append(run_job(first, "slow:x")))
    worker.start()
    try:
        assert started.wait(20)
        time.sleep(1.5)   # past the 1s lease: the running job renews it
        by_hand = run_job(second, "slow:x")
        tick = run_job(second, "slow:x", scheduled_for=dt.datetime(2026, 1, 1, tzinfo=UTC), trigger="schedule")
    finally:
        release.set()
        worker.join()
    assert (by_hand.status, tick.status) == ("skipped", "skipped")
    assert "running elsewhere" in by_hand.error
    assert (results[0].status, results[0].rows) == ("succeeded", 5)
    again = run_job(second, "slow:x")   # the lease was released: it runs
    first.close(), second.close()
    assert again.status == "succeeded"
    rows = sorted(row[4] for row in plain_rows(any_url, RUNS))
    assert rows == ["skipped", "succeeded", "succeeded"]   # the refused tick is not a run: no row


def test_a_tick_runs_once(duck_url, tmp_path):
    write_orders(tmp_path, 5)
    project = Project.load(write_project(tmp_path, duck_url))
    tick = dt.datetime(2026, 12, 1, 6, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    first = run_job(project, "orders", scheduled_for=tick, trigger="schedule")
    second = run_job(project, "orders", scheduled_for=tick.astimezone(UTC), trigger="schedule")
    project.close()
    assert (first.status, second.status, second.error) == ("succeeded", "skipped", "this tick was run already")
    assert [row[7] for row in plain_rows(duck_url, RUNS)] == [dt.datetime(2026, 12, 1, 3, tzinfo=UTC)]


def test_bad_arguments_are_errors(duck_url, tmp_path):
    write_orders(tmp_path, 3)
    write_project(tmp_path, duck_url, rollup={"table": "daily_rollup"},
                  extra={"rollups": {"orders": {"metrics": ["revenue"], "grains": ["day"], "table": "orders_daily"}}})
    project = Project.load(tmp_path)
    with pytest.raises(ConfigError, match="job 'orders' is ambiguous: say ingest:orders or rollup:orders"):
        run_job(project, "orders")
    with pytest.raises(NotFoundError, match=r"unknown job 'ghost' \(jobs: ingest:orders, rollup:orders\)"):
        run_job(project, "ghost")
    with pytest.raises(ConfigError, match="trigger must be one of manual, schedule"):
        run_job(project, "ingest:orders", trigger="cron")
    with pytest.raises(QueryError, match="limit must be"):
        recent_runs(project, limit=0)
    project.close()


CHILD = textwrap.dedent("""
    import pathlib, sys, time
    from tally import Project
    from tally.jobs import JobKind, register_kind, run_job

    def slow(project, name):
        pathlib.Path(sys.argv[2]).write_text("started")
        time.sleep(60)
        return 0

    register_kind(JobKind("slow", "sources", lambda project: {"x": None}, slow))
    run_job(Project.load(sys.argv[1]), "slow:x")
""")


def killed_mid_job(tmp_path, url: str, lease: str, monkeypatch):
    """A project whose `slow:x` job a child process started and was killed (-9) in: its root."""
    started, release = threading.Event(), threading.Event()
    release.set()
    slow_kind(monkeypatch, started, release)
    write_orders(tmp_path, 3)
    root = write_project(tmp_path, url, jobs={"lease": lease})
    marker = tmp_path / "started"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(marker)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the child never started its job"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return root


@pytest.mark.parametrize("any_url", ["duckdb", "postgres", "mariadb"], indirect=True)
def test_a_run_whose_process_was_killed_is_marked_abandoned(any_url, tmp_path, monkeypatch):
    root = killed_mid_job(tmp_path, any_url, "1s", monkeypatch)
    assert [row[4] for row in plain_rows(any_url, RUNS)] == ["running"]
    time.sleep(1.2)   # the dead holder's lease (1s, renewed every third of it) has expired
    project = Project.load(root)
    scheduler = Scheduler(project)
    scheduler.start()   # marks the run abandoned and frees its lease
    scheduler.shutdown()
    project.close()
    assert [row[4] for row in plain_rows(any_url, RUNS)] == ["abandoned"]
    ended = plain_rows(any_url, 'SELECT "ended_at" FROM "_tally_job_runs"')[0][0]
    assert ended is not None
    project = Project.load(root)
    after = run_job(project, "slow:x")   # the lease is free again
    project.close()
    assert after.status == "succeeded"
    assert sorted(row[4] for row in plain_rows(any_url, RUNS)) == ["abandoned", "succeeded"]


def test_a_sole_writer_frees_a_dead_processs_lease_at_once(duck_url, tmp_path, monkeypatch):
    """On an embedded file no other live process can hold a lease: a restart after kill -9 does not
    wait for the dead holder's lease (60 s here) to run out."""
    root = killed_mid_job(tmp_path, duck_url, "60s", monkeypatch)
    project = Project.load(root)
    scheduler = Scheduler(project)
    scheduler.start()   # frees the dead holder's lease and marks its run abandoned, without waiting
    scheduler.shutdown()
    after = run_job(project, "slow:x")
    project.close()
    assert after.status == "succeeded"
    assert sorted(row[4] for row in plain_rows(duck_url, RUNS)) == ["abandoned", "succeeded"]


def test_a_job_runs_table_made_by_an_earlier_tally_gains_its_columns(duck_url, tmp_path):
    """Earlier builds created `_tally_job_runs` with (run_id, kind, name, started_at, ended_at, status, detail)."""
    import duckdb

    con = duckdb.connect(duck_url.split(":///", 1)[1])
    con.execute('CREATE TABLE "_tally_job_runs" (run_id VARCHAR, kind VARCHAR, name VARCHAR, started_at TIMESTAMPTZ, '
                'ended_at TIMESTAMPTZ, status VARCHAR, detail VARCHAR)')
    con.close()
    count = write_orders(tmp_path, 4)
    project = Project.load(write_project(tmp_path, duck_url))
    run = run_job(project, "orders")
    listed = recent_runs(project)
    project.close()
    assert (run.status, run.rows) == ("succeeded", count)
    assert [(r.job, r.status, r.rows) for r in listed] == [("ingest:orders", "succeeded", count)]
    assert plain_rows(duck_url, RUNS) == [("ingest:orders", "ingest", "orders", "manual", "succeeded", count, None, None)]


def test_recent_runs_and_list_jobs_read_every_warehouse(any_url, tmp_path):
    from tally.jobs import list_jobs

    write_orders(tmp_path, 6)
    count, days = csv_count(tmp_path)
    project = Project.load(write_project(tmp_path, any_url))
    made = [run_job(project, "orders"), run_job(project, "daily")]
    (tmp_path / "data" / "orders.csv").unlink()
    made.append(run_job(project, "orders"))
    runs = recent_runs(project)
    failed = recent_runs(project, failed=True)
    page = recent_runs(project, limit=1, offset=1)
    jobs = {job.id: job for job in list_jobs(project)}
    project.close()
    assert [run.run_id for run in runs] == [run.run_id for run in reversed(made)]
    assert [(run.status, run.rows) for run in runs] == [("failed", None), ("succeeded", days), ("succeeded", count)]
    assert all(run.started_at.tzinfo is not None and run.ended_at >= run.started_at for run in runs)
    assert [run.run_id for run in failed] == [made[2].run_id] and "orders.csv" in failed[0].error
    assert [run.run_id for run in page] == [made[1].run_id]
    assert (jobs["ingest:orders"].last_run.run_id, jobs["rollup:daily"].last_run.run_id) == (made[2].run_id,
                                                                                          made[1].run_id)
    stored = plain_rows(any_url, 'SELECT "run_id", "status" FROM "_tally_job_runs"')
    assert sorted(stored) == sorted((run.run_id, run.status) for run in made)


def test_column_names_stay_readable_in_errors(duck_url, tmp_path):
    """`primary_key: [order_id]` names a column, not a secret, though `key` is a secret-looking word."""
    from tally.jobs.run import error_line

    write_orders(tmp_path, 3)
    project = Project.load(write_project(tmp_path, duck_url))
    line = error_line(project, RuntimeError("column order_id of orders is missing"))
    project.close()
    assert line == "RuntimeError: column order_id of orders is missing"
