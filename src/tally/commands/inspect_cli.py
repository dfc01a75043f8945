"""`tally tables | describe | rejects | preview`: the inspection commands, registered on the CLI app."""


import sys
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the four commands to `app` (called by cli.py once its helpers exist).

    (Long: it holds the four command definitions, which typer reads from their signatures.)"""
    from tally import cli
    from tally.cli import SummaryFormat, reports_errors

    def sources(project) -> dict:
        return project.sources

    @app.command("tables")
    @reports_errors
    def tables(fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Output format.")) -> None:
        """List the warehouse's tables with row counts and what uses them (internal: Tally's own)."""
        from tally.commands import inspect

        project = cli.load_project(read_only=True)
        rows = inspect.tables(project, sources(project))
        if fmt is SummaryFormat.json:
            sys.stdout.write(inspect.as_json(rows) + "\n")
            return
        show(rows, ["table", "rows", "used_by"], title="Tables", numbers={"rows"})

    @app.command("describe")
    @reports_errors
    def describe(
        name: str = typer.Argument(..., help="A table in the warehouse, or a model of tally.yml."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Show a table's columns and types, or a model's table, time column, measures, dimensions and joins."""
        from tally.commands import inspect

        project = cli.load_project(read_only=True)
        info = inspect.describe(project, name, sources(project))
        if fmt is SummaryFormat.json:
            sys.stdout.write(inspect.as_json(info) + "\n")
            return
        if "model" in info:
            cli.out.print(f"model {info['model']}: table {info['table']}, time {info['time'] or '—'}, "
                          f"updated {info['updated'] or '—'}, primary key {', '.join(info['primary_key']) or '—'}",
                          highlight=False, markup=False)
            show(info["measures"], ["measure", "kind", "expression", "where", "format"], title="Measures")
            show(info["dimensions"], ["dimension", "expression"], title="Dimensions")
            show(info["joins"], ["join", "model", "on"], title="Joins")
            show(info["formulas"], ["metric", "formula"], title="Formulas using it")
            if not info["columns"]:
                cli.out.print(f"table {info['table']} is not in the warehouse yet", highlight=False, markup=False)
        else:
            cli.out.print(f"table {info['table']}: {info['rows']:,} rows ({info['used_by']})",
                          highlight=False, markup=False)
        show(info["columns"], ["column", "type", "nullable"], title="Columns")

    @app.command("rejects")
    @reports_errors
    def rejects(
        source: Optional[str] = typer.Argument(None, help="Only this source's rejected rows."),
        limit: int = typer.Option(50, "--limit", "-n", help="Show at most N rows."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Rows ingest rejected, newest load first: raw row, rule, file and line."""
        from tally.commands import inspect

        project = cli.load_project(read_only=True)
        rows = inspect.rejects(project, source, limit, sources(project))
        if fmt is SummaryFormat.json:
            sys.stdout.write(inspect.as_json(rows) + "\n")
            return
        if not rows:
            cli.out.print("no rejected rows" + (f" for source {source}" if source else ""), highlight=False,
                          markup=False)
            return
        show(rows, ["source", "file", "line", "rule", "raw"], title="Rejected rows (newest load first)")

    @app.command("preview")
    @reports_errors
    def preview(
        source: str = typer.Argument(..., help="The source to read."),
        rows: int = typer.Option(10, "--rows", "-n", help="Sample rows (and rejects) to show."),
        full_refresh: bool = typer.Option(False, "--full-refresh", help="Read every row, as `ingest --full-refresh`."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Read a source as ingest would and show its types, sample rows and rejects; write nothing."""
        from tally.commands import inspect

        project = cli.load_project()
        info = inspect.preview(project, source, rows, sources(project), full_refresh=full_refresh)
        if fmt is SummaryFormat.json:
            sys.stdout.write(inspect.as_json(info) + "\n")
            return
        cli.out.print(f"source {info['source']} ({info['kind']} → table {info['table']}): read {info['read']:,}, "
                      f"would load {info['would_load']:,}, reject {info['rejected']:,}, skip {info['skipped']:,}; "
                      "nothing written", highlight=False, markup=False)
        if info["skipped"] and not full_refresh:
            cli.out.print("(skipped: rows at or before the watermark of the last load; --full-refresh reads them all)",
                          highlight=False, markup=False)
        show([{"column": c, "type": t} for c, t in info["types"].items()], ["column", "type"],
             title=f"Types ({info['types_from']})")
        if info["rows"]:
            show(info["rows"], list(info["rows"][0]), title="Sample rows")
        show(info["rejects"], ["file", "line", "rule", "raw"], title="Would be rejected")
        for warning in info["warnings"]:
            cli.err.print(f"warning: {warning}", highlight=False, markup=False)


def show(rows: list, columns: list, title: str, numbers: frozenset = frozenset()) -> None:
    """Rows as a table on stdout (nothing when there are none)."""
    from rich.table import Table
    from rich.text import Text

    from tally import cli

    if not rows:
        return
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, justify="right" if column in numbers else "left", overflow="fold")
    for row in rows:
        view.add_row(*[Text(_cell(row.get(column), column in numbers)) for column in columns])
    cli.out.print(view)


def _cell(value, count: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and count:   # a row count; ids and line numbers stay as written
        return f"{value:,}"
    return str(value)
