"""`tally query | metrics`: compute metrics and list them, registered on the CLI app."""

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add `query` and `metrics` to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import Format, reports_errors

    @app.command()
    @reports_errors
    def query(
        metrics: List[str] = typer.Argument(..., help="Metrics to compute (see `tally metrics`).",
                                            autocompletion=lambda ctx, incomplete: complete_metrics(ctx, incomplete)),
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

        project = cli.load_project(read_only=True)
        run_query(cli.out, project, metrics, fmt=fmt.value, with_meta=with_meta, live=live, last=last, period=period,
                  start=start, end=end, timezone=timezone, by=by, grain=grain, where=where, compare=compare,
                  order_by=order, limit=limit)

    @app.command()
    @reports_errors
    def metrics(fmt: Format = typer.Option(Format.table, "--format", "-f")) -> None:
        """List the metrics the project defines, with their dimensions."""
        import pyarrow as pa

        project = cli.load_project()
        catalog = project.catalog
        rows = [catalog.info(name) for name in catalog.names]
        table = pa.Table.from_pylist([{"metric": i.name, "kind": i.kind, "model": i.model, "format": i.format,
                                       "dimensions": ", ".join(i.dimensions), "definition": i.definition}
                                      for i in rows])
        cli.print_rows(table, fmt, project, title="Metrics")


def complete_metrics(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of metric names from the project's tally.yml (nothing when it can't be read)."""
    try:
        from tally.engine.catalog import Catalog
        from tally.project.loader import load_config

        root = (ctx.parent.params if ctx.parent else {}).get("project") or Path(".")
        names = Catalog(load_config(root, (ctx.parent.params if ctx.parent else {}).get("profile")).config).names
    except Exception:   # completion must never print an error into the user's shell
        return []
    return [name for name in names if name.startswith(incomplete)]
