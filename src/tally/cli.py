"""The `tally` command line: thin Typer commands over the core."""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tally.errors import TallyError, internal_error

app = typer.Typer(help="Tally: define sources and metrics once, get the same numbers everywhere.",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)
out = Console(soft_wrap=True)
err = Console(stderr=True)


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class SummaryFormat(str, Enum):
    """Job summaries (ingest, rollup build, verify): a table for people, JSON or CSV for scripts."""

    table = "table"
    json = "json"
    csv = "csv"


def print_records(records: list[dict], names: list[str] | None = None) -> None:
    from tally.delivery.tabular import records_to_csv

    sys.stdout.write(records_to_csv(records, names))


class State:
    project_path: Path = Path(".")
    profile: Optional[str] = None
    debug: bool = False
    opened: list = []   # projects a command loaded: closed when it ends (PostgreSQL warns of open connections)


state = State()


def reports_errors(fn):
    """Print a TallyError as one clear line and exit with its code (2: bad input/config, 1: failed job)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # TallyError: its line; anything else is a bug, still one line
            if state.debug:
                raise
            exc = exc if isinstance(exc, TallyError) else internal_error(exc, f"tally {fn.__name__}")
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        finally:
            while state.opened:
                state.opened.pop().close()
    return wrapper


def load_project(read_only: bool = False):
    """The project, with every part of tally.yml checked (sources too) before any command runs;
    `read_only` for commands that only read (an embedded DuckDB then serves several at once)."""
    from tally import Project

    project = Project.load(state.project_path, profile=state.profile)
    project.read_only = read_only
    state.opened.append(project)
    return project


@app.callback()
def main_options(
    project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder (holding tally.yml)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile from tally.yml to apply."),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces on errors."),
    version: bool = typer.Option(False, "--version", help="Print Tally's version and exit.", is_eager=True,
                                 callback=lambda given: _print_version() if given else None),
) -> None:
    state.project_path, state.profile, state.debug = project, profile, debug


def _complete_metrics(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of metric names from the project's tally.yml (nothing when it can't be read)."""
    try:
        from tally.engine.catalog import Catalog
        from tally.project.loader import load_config

        root = (ctx.parent.params if ctx.parent else {}).get("project") or Path(".")
        names = Catalog(load_config(root, (ctx.parent.params if ctx.parent else {}).get("profile")).config).names
    except Exception:   # completion must never print an error into the user's shell
        return []
    return [name for name in names if name.startswith(incomplete)]


def _print_version() -> None:
    from tally import __version__

    out.print(f"tally {__version__}", highlight=False)
    raise typer.Exit(0)


@app.command()
@reports_errors
def init(
    directory: Path = typer.Argument(Path("."), help="Folder to create the project in."),
    from_csv: Optional[Path] = typer.Option(None, "--from-csv", help="Draft sources and models from this CSV."),
) -> None:
    """Create a project folder: a commented tally.yml with sample data, or a draft from your CSV."""
    from tally.commands.init import init_project

    out.print(init_project(directory, from_csv), highlight=False)


@app.command()
@reports_errors
def query(
    metrics: List[str] = typer.Argument(..., help="Metrics to compute (see `tally metrics`).",
                                        autocompletion=lambda ctx, incomplete: _complete_metrics(ctx, incomplete)),
    by: List[str] = typer.Option([], "--by", "-b", help="Dimension to break down by (repeatable)."),
    grain: Optional[str] = typer.Option(None, "--grain", "-g", help="hour, day, week, month, quarter or year."),
    start: Optional[str] = typer.Option(None, "--from", help="Start, inclusive: YYYY-MM-DD or timestamp."),
    end: Optional[str] = typer.Option(None, "--to", help="End, exclusive: YYYY-MM-DD or timestamp."),
    where: Optional[str] = typer.Option(None, "--where", "-w", help="Filter on dimensions: \"status = 'paid'\"."),
    compare: Optional[str] = typer.Option(None, "--compare", help="previous_period or previous_year."),
    order: List[str] = typer.Option([], "--order", "-o", help="Sort: `-revenue` or `revenue desc`."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Keep the first N rows (top-N)."),
    timezone: Optional[str] = typer.Option(None, "--timezone", help="Override the project timezone."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    last: Optional[str] = typer.Option(None, "--last", help="Range: this day/week/month/year and the ones "
                                       "before, up to today: 30d, 12w, 6m, 1y."),
    period: Optional[str] = typer.Option(None, "--period", help="Range: one period: 2026, 2026-Q3, 2026-10, "
                                         "2026-W05, 2026-10-05."),
    live: bool = typer.Option(False, "--live", help="Answer from the source tables, never from a rollup."),
    with_meta: bool = typer.Option(False, "--meta", help="With --format json: {\"rows\": [...], \"meta\": {...}}."),
) -> None:
    """Compute metrics for a date range (from a fresh rollup when one holds the answer)."""
    from tally.delivery.answer import run_query

    project = load_project(read_only=True)
    run_query(out, project, metrics, fmt=fmt.value, with_meta=with_meta, live=live, last=last, period=period,
              start=start, end=end, timezone=timezone, by=by, grain=grain, where=where, compare=compare,
              order_by=order, limit=limit)


@app.command()
@reports_errors
def metrics(fmt: Format = typer.Option(Format.table, "--format", "-f")) -> None:
    """List the metrics the project defines, with their dimensions."""
    import pyarrow as pa

    project = load_project()
    catalog = project.catalog
    rows = [catalog.info(name) for name in catalog.names]
    table = pa.Table.from_pylist([{"metric": i.name, "kind": i.kind, "model": i.model, "format": i.format,
                                   "dimensions": ", ".join(i.dimensions), "definition": i.definition}
                                  for i in rows])
    print_rows(table, fmt, project, title="Metrics")


@app.command()
@reports_errors
def seed(names: List[str] = typer.Argument(None, help="Seeds to load (default: all).")) -> None:
    """Load the project's lookup files (seeds) into the warehouse."""
    project = load_project()
    _refuse_empty(project, "seeds", "seed")
    for name, count in project.load_seeds(names or None).items():
        out.print(f"seed {name}: {count:,} rows loaded")


@app.command()
@reports_errors
def ingest(
    sources: List[str] = typer.Argument(None, help="Sources to load (default: all)."),
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Ignore watermarks; replace the tables."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and check, report, write nothing."),
    fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Summary format."),
) -> None:
    """Load sources into the warehouse: rows read / loaded / rejected per source."""
    import json

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tally.sources import ingest as run_ingest

    project = load_project()
    _refuse_empty(project, "sources", "ingest")
    columns = [TextColumn("{task.description:<18}"), BarColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True, disable=fmt is not SummaryFormat.table or not err.is_terminal) as bar:
        tasks: dict = {}

        def progress(source: str, fraction, note: str) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(source, total=1.0, note="")
            bar.update(tasks[source], completed=fraction if fraction is not None else None, note=note)

        results = run_ingest(project, sources or None, full_refresh=full_refresh, dry_run=dry_run,
                             progress=progress)
    if fmt is SummaryFormat.json:
        sys.stdout.write(json.dumps([r.as_dict() for r in results], indent=2, default=str) + "\n")
    elif fmt is SummaryFormat.csv:
        print_records([r.as_dict() for r in results])
    else:
        view = Table(title="Dry run: nothing written" if dry_run else "Ingest", title_justify="left")
        for header in ("source", "status", "read", "loaded", "rejected", "skipped", "watermark", "seconds"):
            view.add_column(header, justify="right" if header in ("read", "loaded", "rejected", "skipped",
                                                                   "seconds") else "left")
        for r in results:
            view.add_row(r.source, "[green]ok[/]" if r.status == "ok" else "[red]failed[/]", f"{r.rows_read:,}",
                         f"{r.rows_loaded:,}", f"{r.rows_rejected:,}", f"{r.rows_skipped:,}",
                         r.watermark_after or "—", f"{r.seconds:.2f}")
        out.print(view)
        for r in results:
            if r.error:
                err.print(f"[bold red]error:[/] source {r.source}: {escape(r.error)}", highlight=False)
            if r.inferred_types:
                typed = ", ".join(f"{column} {kind}" for column, kind in r.inferred_types.items())
                err.print(f"[yellow]note:[/] source {r.source}: inferred {escape(typed)}", highlight=False)
            if r.new_columns:
                err.print(f"[yellow]note:[/] source {r.source} has undeclared column(s): {', '.join(r.new_columns)}",
                          highlight=False)
            for warning in r.warnings:
                err.print(f"[yellow]warning:[/] source {r.source}: {escape(warning)}", highlight=False)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(1)


rollup_app = typer.Typer(help="Stored period reports: build and refresh.", no_args_is_help=True)
app.add_typer(rollup_app, name="rollup")


@rollup_app.command("build")
@reports_errors
def rollup_build(
    names: List[str] = typer.Argument(None, help="Rollups to build (default: all)."),
    full: bool = typer.Option(False, "--full", help="Recompute everything instead of only what changed."),
    start: Optional[str] = typer.Option(None, "--from", help="Rebuild the periods from this local date."),
    end: Optional[str] = typer.Option(None, "--to", help="... up to this local date (exclusive)."),
    category: Optional[str] = typer.Option(None, "--category", help="Only rollups of this category."),
    fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Summary format."),
    last: Optional[str] = typer.Option(None, "--last", help="Rebuild the last 30d, 12w, 6m, 1y (up to today)."),
    period: Optional[str] = typer.Option(None, "--period", help="Rebuild one period: 2026, 2026-Q3, 2026-10, 2026-W05."),
) -> None:
    """Build rollups, or refresh only the periods touched since the last build."""
    import json

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tally.engine.ranges import resolve
    from tally.rollups import build

    project = load_project()
    start, end = resolve(last, period, start, end, project.config.timezone, project.config.week_start_index)
    columns = [TextColumn("{task.description:<18}"), BarColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True, disable=fmt is not SummaryFormat.table or not err.is_terminal) as bar:
        tasks: dict = {}

        def progress(name: str, fraction, note: str) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=1.0, note="")
            bar.update(tasks[name], completed=fraction, note=note)

        results = build(project, names or None, full=full, start=start, end=end, category=category,
                        progress=progress)
    if fmt is SummaryFormat.json:
        sys.stdout.write(json.dumps([r.as_dict() for r in results], indent=2, default=str) + "\n")
        return
    if fmt is SummaryFormat.csv:
        print_records([r.as_dict() for r in results])
        return
    view = Table(title="Rollups", title_justify="left")
    for header in ("rollup", "table", "mode", "periods", "rows", "seconds"):
        view.add_column(header, justify="right" if header in ("periods", "rows", "seconds") else "left")
    for r in results:
        view.add_row(r.rollup, r.table, r.mode, f"{r.periods:,}", f"{r.rows:,}", f"{r.seconds:.2f}")
    out.print(view)


@app.command()
@reports_errors
def verify(
    names: List[str] = typer.Argument(None, help="Rollups to check (default: all)."),
    repair: bool = typer.Option(False, "--repair", help="Rewrite the periods that differ."),
    category: Optional[str] = typer.Option(None, "--category", help="Only rollups of this category."),
    fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Summary format."),
) -> None:
    """Recompute stored rollups live and report any difference (exit 1 if one is found)."""
    import json

    from tally.rollups import verify as run_verify

    project = load_project(read_only=not repair)
    report = run_verify(project, names or None, repair=repair, category=category)
    found = [m for ms in report.values() for m in ms]
    if fmt is SummaryFormat.json:
        sys.stdout.write(json.dumps({k: [m.as_dict() for m in ms] for k, ms in report.items()}, indent=2,
                                    default=str) + "\n")
    elif fmt is SummaryFormat.csv:   # one line per mismatch: only the header when every rollup matches
        from dataclasses import fields

        from tally.rollups.verify import Mismatch

        print_records([m.as_dict() for ms in report.values() for m in ms], [f.name for f in fields(Mismatch)])
    else:
        for name, ms in report.items():
            status = "[green]ok[/]" if not ms else f"[red]{len(ms)} mismatch(es)[/]"
            out.print(f"{name}: {status}" + (" (repaired)" if ms and repair else ""))
            view = Table(show_header=True) if ms else None
            if view is not None:
                for header in ("grain", "period", "key", "metric", "stored", "live"):
                    view.add_column(header)
                for m in ms[:50]:
                    view.add_row(m.grain, m.period_start, escape(str(m.key)), m.metric, escape(str(m.stored)),
                                 escape(str(m.live)))
                out.print(view)
                if len(ms) > 50:
                    out.print(f"... and {len(ms) - 50} more")
    if found and not repair:
        raise typer.Exit(1)


@app.command()
@reports_errors
def demo(
    example: str = typer.Option("ecommerce", "--example", "-e", help="Example to run."),
    rows: int = typer.Option(200_000, "--rows", help="Rows to generate (order lines for ecommerce)."),
    directory: Path = typer.Option(Path("demo"), "--dir", help="Folder to write the example project into."),
    seed_value: int = typer.Option(42, "--seed", help="Random seed for the generated data."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Prepare the project, then exit."),
    force: bool = typer.Option(False, "--force", help="Write into a folder holding a project the demo did not create."),
) -> None:
    """Generate an example's data, load it, and show what it answers."""
    from tally.demo import prepare

    with err.status(f"Generating {rows:,} rows for the {example} example in {directory} ..."):
        project, counts = prepare(example, directory, rows, seed_value, force=force)
    for table_name, count in counts.items():
        out.print(f"  {table_name:<28} {count:>14,}" if isinstance(count, int) else f"  {table_name:<28} {count:>14}")
    if project.config.rollups:
        from tally.rollups import build

        with err.status("Building rollups ..."):
            built = build(project)
        for r in built:
            out.print(f"  rollup {r.rollup:<13} {r.rows:>12,} rows in {r.seconds:.1f}s ({r.mode})")
    from tally.delivery import terminal

    showcase = DEMO_QUERIES[example]
    result = project.query_result(showcase["metrics"], compare="previous_period",
                                  **_last_30_days(project, showcase["metrics"][0]))
    print_rows(result.table, Format.table, project, title=terminal.title_text(result.meta))
    out.print(f"\nReady: try `tally -p {directory} {showcase['try']}`")
    if not no_serve:
        out.print("(`tally serve`, the dashboard and HTTP API, is coming (issue 16); nothing to serve yet.)")


def _refuse_empty(project, section: str, command: str) -> None:
    """A command over a section tally.yml does not have is a usage error, not a silent success."""
    if not getattr(project.config, section):
        from tally.errors import ConfigError

        raise ConfigError(f"no {section} configured: `tally {command}` has nothing to do "
                          f"(add a `{section}:` section to tally.yml)", file=project.loaded.file)


DEMO_QUERIES = {
    "ecommerce": {"metrics": ["revenue", "orders", "aov", "net_revenue", "profit", "margin"],
                  "try": "query revenue orders --grain week --by shop --limit 10"},
    "retail": {"metrics": ["total_sales", "total_transactions", "avg_transaction_value", "total_customers",
                           "new_customers", "units_sold", "profit"],
               "try": "query units_sold revenue stock_level --by category --grain month"},
    "stats": {"metrics": ["new_users", "active_users", "transactions", "revenue", "error_rate"],
              "try": "rollup build --category financial --from 2024-01-01 --to 2024-02-01"},
}


def _last_30_days(project, metric: str) -> dict:
    """The 30 whole days before the data's last day, in the project timezone."""
    import datetime as dt

    bounds = project.query_result([metric], grain="day", fill=False, order_by=["-period"], limit=1)
    last = bounds.table["period"][0].as_py() if bounds.table.num_rows else dt.date.today()
    return {"start": (last - dt.timedelta(days=29)).isoformat(), "end": (last + dt.timedelta(days=1)).isoformat()}


def print_rows(table, fmt: Format, project, title: str = "", notes=(), partial=frozenset()) -> None:
    from tally.delivery import tabular, terminal

    if fmt is Format.json:
        sys.stdout.write(tabular.to_json(table) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(tabular.to_csv(table))
    else:
        terminal.print_rows(out, table, project, title=title, notes=notes, partial=partial)


from tally.commands import inspect_cli  # noqa: E402  (tables, describe, rejects, preview)

inspect_cli.register(app)
from tally.commands import jobs_cli; jobs_cli.register(app)  # noqa: E402,E702  (scheduler, jobs, run)

GLOBAL_OPTIONS = {"--project": 1, "-p": 1, "--profile": 1, "--debug": 0, "--version": 0}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Accept --project/--profile/--debug after the command too (`tally rollup build --profile staging`)."""
    front, rest, index = [], [], 0
    while index < len(argv):
        arg = argv[index]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS and index > 0 and not arg.startswith("--help"):
            takes = GLOBAL_OPTIONS[name] if "=" not in arg else 0
            front.extend(argv[index:index + 1 + takes])
            index += 1 + takes
            continue
        rest.append(arg)
        index += 1
    return front + rest


def main() -> None:
    # Start-up (see `python -m bench cli`): pydantic looks for plugins in every installed package's
    # metadata (~20 ms), and numpy (loaded by pyarrow) starts a BLAS thread per core (~50 ms). The
    # config needs no plugin, no command does linear algebra.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(run(hoist_global_options(sys.argv[1:])))


def run(args: list[str]) -> int:
    """The CLI's exit code for `args`; a usage error (an unknown option, a value of the wrong type) is
    one line on stderr, like every other error, rather than click's framed usage box."""
    # typer runs its own copy of click: its exceptions are the ones raised here
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
    from typer.exceptions import Abort

    try:
        code = app(args=args, prog_name="tally", standalone_mode=False)
    except NoArgsIsHelpError as exc:   # `tally rollup`: the group's help, as click shows it
        out.print(exc.ctx.get_help(), highlight=False, markup=False)
        return 2
    except UsageError as exc:
        message = " ".join(exc.format_message().split())
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(message)}{escape(where)}", highlight=False, soft_wrap=True)
        return 2
    except Abort:
        err.print("aborted", highlight=False)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
