"""`tally scheduler | jobs | run`: the scheduler without HTTP, recent job runs, one job now."""

import sys
from contextlib import contextmanager

import typer

RUN_COLUMNS = ["started_at", "job", "trigger", "scheduled_for", "status", "rows", "seconds", "error"]
HEADERS = {"started_at": "started", "scheduled_for": "tick", "next_run": "next", "last_started_at": "last run",
           "last_status": "last status", "last_rows": "rows", "last_error": "error"}
# a table fits 80 columns: the trigger shows as the tick (none: by hand), the timezone beside the schedule
RUN_TABLE = ["started_at", "job", "status", "rows", "seconds", "scheduled_for", "error"]
WIDE = 120   # a terminal this wide shows a run's error in its row
JOB_TABLE = ["id", "schedule", "next_run", "last_started_at", "last_status"]
JOB_COLUMNS = ["id", "schedule", "timezone", "next_run", "last_started_at", "last_status", "last_rows", "last_error"]


def register(app: typer.Typer) -> None:
    """Add the three commands to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import SummaryFormat, reports_errors

    @app.command("scheduler")
    @reports_errors
    def scheduler() -> None:
        """Run the scheduled jobs (sources and rollups with a schedule:) until Ctrl-C or SIGTERM."""
        run_scheduler(cli.load_project())

    @app.command("jobs")
    @reports_errors
    def jobs(
        failed: bool = typer.Option(False, "--failed", help="Only runs that failed."),
        limit: int = typer.Option(20, "--limit", "-n", min=1, max=10_000, help="How many runs, newest first."),
        listing: bool = typer.Option(False, "--list", help="The jobs with their schedules, next and last run."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Recent job runs and their outcomes (or, with --list, every job and its schedule)."""
        from tally.jobs import list_jobs, recent_runs

        project = cli.load_project(read_only=True)
        if listing:
            records = [job.as_dict() for job in list_jobs(project)]
            show(records, JOB_TABLE if fmt is SummaryFormat.table else JOB_COLUMNS, fmt, "Jobs")
            return
        records = [{**run.as_dict(), "seconds": run.seconds} for run in recent_runs(project, failed=failed, limit=limit)]
        show(records, RUN_TABLE if fmt is SummaryFormat.table else RUN_COLUMNS, fmt,
             "Failed job runs" if failed else "Job runs")

    @app.command("run")
    @reports_errors
    def run(
        job: str = typer.Argument(..., help="The job: kind:name (ingest:orders, rollup:daily) or a bare name."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Run one job now (exit 1 when it fails or is already running elsewhere)."""
        from tally.jobs import describe_run, run_job

        project = cli.load_project()
        result = run_job(project, job)
        if fmt is SummaryFormat.table:
            cli.out.print(describe_run(result), highlight=False, markup=False)
        else:
            show([{**result.as_dict(), "seconds": result.seconds}], RUN_COLUMNS + ["run_id"], fmt, "")
        if result.status != "succeeded":
            cli.err.print(f"error: {result.job} {result.status}: {result.error}", highlight=False, markup=False)
            raise typer.Exit(1)


def run_scheduler(project) -> None:
    """The scheduler in the foreground: one line per run on stdout, until Ctrl-C or SIGTERM."""
    from tally import cli
    from tally.errors import ConfigError
    from tally.jobs import Scheduler, describe_run
    from tally.jobs.scheduler import scheduled_jobs

    if not scheduled_jobs(project):
        raise ConfigError("no job has a schedule: `tally scheduler` has nothing to do (add `schedule:` to a "
                          "source or a rollup; `tally run JOB` runs one by hand)", file=project.loaded.file)

    def on_run(run) -> None:
        cli.out.print(f"{_time(run.ended_at)} {describe_run(run)}", highlight=False, markup=False)

    runner = Scheduler(project, on_run=on_run)
    with stop_signals() as stop:   # from before the first tick: a SIGTERM always lets runs finish
        runner.start()
        try:
            listed = ", ".join(f"{job} (next {_time(at)})" for job, at in runner.next_runs().items())
            cli.err.print(f"scheduler: jobs {listed}; Ctrl-C or SIGTERM stops it", highlight=False, markup=False)
            while not stop.wait(0.5):   # a timed wait: Ctrl-C reaches the main thread between waits
                pass
        except KeyboardInterrupt:
            pass
        finally:
            cli.err.print("scheduler: stopping, letting running jobs finish", highlight=False, markup=False)
            runner.shutdown(wait=True)


def show(records: list[dict], columns: list[str], fmt, title: str) -> None:
    """Records as JSON, CSV or a table of `columns` (times in UTC)."""
    import json

    from rich.table import Table

    from tally import cli
    from tally.cli import SummaryFormat

    if fmt is SummaryFormat.json:
        sys.stdout.write(json.dumps(records, indent=2, default=_json_value) + "\n")
        return
    if fmt is SummaryFormat.csv:
        cli.print_records([{c: _text(r.get(c)) for c in columns} for r in records], columns)
        return
    # under WIDE columns the error gets no room beside the other cells (rich squeezed it to 3 characters
    # a line, or to nothing): it is printed under the table, one line per failed run
    below = "error" in columns and cli.out.width < WIDE
    shown = [column for column in columns if not (below and column == "error")]
    view = Table(title=f"{title} (times: UTC)", title_justify="left")
    for column in shown:
        view.add_column(HEADERS.get(column, column), overflow="fold",
                        justify="right" if column in ("rows", "seconds", "last_rows") else "left",
                        no_wrap=column in ("status", "rows", "seconds", "last_status"),
                        min_width=10 if column == "schedule" else None)
    for record in records:
        if record.get("schedule") and record.get("timezone"):
            record = {**record, "schedule": f"{record['schedule']} ({record['timezone']})"}
        view.add_row(*(_text(record.get(column), short=True) or "—" for column in shown))
    cli.out.print(view)
    if not records:
        cli.out.print("(no runs recorded yet)" if "job" in columns else "(no jobs)", highlight=False)
    for record in records if below else []:
        if record.get("error"):
            cli.out.print(f"{_text(record.get('started_at'), short=True)} {record.get('job')}: {record['error']}",
                          highlight=False, markup=False)


@contextmanager
def stop_signals():
    """An Event set by SIGTERM while inside (the previous handler is put back after)."""
    import signal
    import threading

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *args: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _time(value) -> str:
    """A time as UTC ISO text (`2026-12-07T01:00:00Z`)."""
    import datetime as dt

    return f"{value.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}" if value is not None else "—"


def _text(value, short: bool = False) -> str:
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return f"{value.astimezone(dt.timezone.utc):%m-%d %H:%M:%S}" if short else _time(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _json_value(value):
    import datetime as dt

    return value.isoformat() if isinstance(value, dt.datetime) else str(value)
