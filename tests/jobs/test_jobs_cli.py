"""`tally run`, `tally jobs` and `tally scheduler` on the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from typer.testing import CliRunner

from tally.cli import app
from tests.jobs.conftest import plain_rows, write_orders, write_project


def tally(root, *args: str):
    return CliRunner().invoke(app, ["--project", str(root), *args])


def test_run_then_jobs_show_what_ran_and_failed(duck_url, tmp_path):
    count = write_orders(tmp_path, 12)
    root = write_project(tmp_path, duck_url)
    ran = tally(root, "run", "orders")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout.startswith(f"ingest:orders succeeded rows={count} ")
    (tmp_path / "data" / "orders.csv").unlink()
    failed = tally(root, "run", "ingest:orders", "--format", "json")
    assert failed.exit_code == 1
    record = json.loads(failed.stdout)[0]
    assert (record["job"], record["status"], record["trigger"]) == ("ingest:orders", "failed", "manual")
    assert "orders.csv" in record["error"] and "\n" not in record["error"]
    assert failed.stderr.startswith("error: ingest:orders failed: ")

    listed = json.loads(tally(root, "jobs", "-f", "json").stdout)
    assert [(r["job"], r["status"], r["rows"]) for r in listed] == [("ingest:orders", "failed", None),
                                                                  ("ingest:orders", "succeeded", count)]
    only_failed = tally(root, "jobs", "--failed", "--format", "csv").stdout.splitlines()
    assert only_failed[0] == "started_at,job,trigger,scheduled_for,status,rows,seconds,error"
    assert len(only_failed) == 2 and ",failed," in only_failed[1]
    assert len(json.loads(tally(root, "jobs", "--limit", "1", "-f", "json").stdout)) == 1
    table = tally(root, "jobs")
    assert table.exit_code == 0 and "ingest:orders" in table.stdout

    jobs = json.loads(tally(root, "jobs", "--list", "-f", "json").stdout)
    assert [(j["id"], j["schedule"], j["last_status"]) for j in jobs] == [("ingest:orders", None, "failed"),
                                                                         ("rollup:daily", None, None)]
    assert plain_rows(duck_url, 'SELECT count(*) FROM "_tally_job_runs"') == [(2,)]


def test_unknown_jobs_and_bad_options_exit_2(duck_url, tmp_path):
    write_orders(tmp_path, 3)
    root = write_project(tmp_path, duck_url)
    unknown = tally(root, "run", "ghost")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: unknown job 'ghost'")
    assert tally(root, "jobs", "--limit", "0").exit_code == 2
    empty = tally(root, "jobs")
    assert empty.exit_code == 0 and "no runs recorded yet" in empty.stdout
    idle = tally(root, "scheduler")   # nothing has a schedule: refused at once rather than waiting forever
    assert idle.exit_code == 2 and idle.stderr.startswith(f"error: {root / 'tally.yml'}: no job has a schedule")


def test_the_scheduler_runs_ticks_and_stops_cleanly_on_sigterm(duck_url, tmp_path):
    count = write_orders(tmp_path, 8)
    root = write_project(tmp_path, duck_url, source={"schedule": "every 1s"})
    with subprocess.Popen([sys.executable, "-m", "tally.cli", "--project", str(root), "scheduler"], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()) as process:
        try:
            line = process.stdout.readline()   # one line per run
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        errors = process.stderr.read()
    assert " ingest:orders succeeded " in line and " tick=" in line, (line, errors)
    assert code == 0, errors
    assert "Traceback" not in errors and "stopping" in errors
    rows = plain_rows(duck_url, 'SELECT "trigger", "status", "rows" FROM "_tally_job_runs" ORDER BY "started_at"')
    assert rows[0] == ("schedule", "succeeded", count) and all(status != "running" for _, status, _ in rows)


@pytest.mark.slow
def test_two_scheduler_processes_on_one_postgresql_warehouse_run_each_tick_once(postgres_db_url, tmp_path):
    count = write_orders(tmp_path, 8)
    root = write_project(tmp_path, postgres_db_url, source={"schedule": "every 1s"}, jobs={"lease": "5s"})
    command = [sys.executable, "-m", "tally.cli", "--project", str(root), "scheduler"]
    processes = [subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=os.environ.copy()) for _ in range(2)]
    try:
        for process in processes:   # both started (a loaded machine takes seconds to import and connect)
            while (line := process.stderr.readline()) and not line.startswith("scheduler: jobs"):
                pass
            assert "ingest:orders (next " in line
        time.sleep(4)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in outputs]
    lines = [line for out, _ in outputs for line in out.splitlines()]
    ticks = plain_rows(postgres_db_url, 'SELECT "scheduled_for", count(*) FROM "_tally_job_runs" '
                                        'GROUP BY "scheduled_for" ORDER BY "scheduled_for"')
    assert len(ticks) >= 2 and all(runs == 1 for _, runs in ticks)   # each tick ran once, by either process
    assert len(lines) == len(ticks)   # one line per run, from whichever process ran it
    loaded = plain_rows(postgres_db_url, 'SELECT "rows" FROM "_tally_job_runs" ORDER BY "started_at"')
    assert loaded[0] == (count,) and plain_rows(postgres_db_url, 'SELECT count(*) FROM "orders"') == [(count,)]


@pytest.mark.parametrize("width", [80, 100])
def test_the_runs_table_stays_readable_in_80_columns(monkeypatch, width):
    # at 80 columns the error column was 3 characters wide (one line per 3 letters, 60 lines a run) or
    # squeezed away while job ids and ticks were cut ("rollup:tx_dail", "12-07 02:25:3")
    import datetime as dt
    import io

    from rich.console import Console

    from tally import cli
    from tally.cli import SummaryFormat
    from tally.commands import jobs_cli

    error = ("cannot connect to postgresql://opsuser@127.0.0.1:1/operations?password=***: "
             "connection failed: Connection refused")
    when = dt.datetime(2026, 12, 7, 2, 23, 10, tzinfo=dt.timezone.utc)
    records = [{"started_at": when, "job": "rollup:monthly_by_country", "status": "failed", "rows": None,
                "seconds": 0.1, "scheduled_for": when, "error": error},
               {"started_at": when, "job": "ingest:tx", "status": "ok", "rows": 1, "seconds": 0.4,
                "scheduled_for": None, "error": None}]
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, width=width, soft_wrap=True))
    jobs_cli.show(records, jobs_cli.RUN_TABLE, SummaryFormat.table, "Job runs")
    text = buffer.getvalue()
    lines = [line for line in text.splitlines() if line.startswith("│")]
    assert all(len(line) <= width for line in lines) and len(lines) <= 6   # a few lines a run at most
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    first = [" ".join(row[i] for row in cells[:len(cells) - 1] if row[i]) for i in range(len(cells[0]))]
    assert first[0].replace(" ", "") == "12-0702:23:10" and first[1].replace(" ", "") == "rollup:monthly_by_country"
    assert f"12-07 02:23:10 rollup:monthly_by_country: {error}" in text   # whole, under the table


def test_the_jobs_list_keeps_its_schedule_column_in_80_columns(monkeypatch):
    import io

    from rich.console import Console

    from tally import cli
    from tally.cli import SummaryFormat
    from tally.commands import jobs_cli

    import datetime as dt

    when = dt.datetime(2026, 12, 7, 2, 25, 40, tzinfo=dt.timezone.utc)
    records = [{"id": "ingest:tx", "schedule": "every 20s", "timezone": "UTC", "next_run": when,
                "last_started_at": when, "last_status": "succeeded"},
               {"id": "rollup:monthly_by_country", "schedule": None, "timezone": None, "next_run": None,
                "last_started_at": None, "last_status": None}]
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, width=80, soft_wrap=True))
    jobs_cli.show(records, jobs_cli.JOB_TABLE, SummaryFormat.table, "Jobs")
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in buffer.getvalue().splitlines() if line.startswith("│")]
    assert " ".join(row[1] for row in cells).split()[:3] == ["every", "20s", "(UTC)"]
