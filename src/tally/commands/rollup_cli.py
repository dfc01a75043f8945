"""`tally rollup build | verify`: build stored period reports and check them, registered on the CLI app."""

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the `rollup` group (with `build`) and `verify` to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import SummaryFormat, reports_errors

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
        from tally.delivery.progress import progress_bars
        from tally.delivery.summaries import show_rollup_build
        from tally.engine.ranges import resolve
        from tally.rollups import build

        project = cli.load_project()
        start, end = resolve(last, period, start, end, project.config.timezone, project.config.week_start_index)
        with progress_bars(cli.err, show=fmt is SummaryFormat.table) as progress:
            results = build(project, names or None, full=full, start=start, end=end, category=category,
                            progress=progress)
        show_rollup_build(cli.out, results, fmt.value)

    @app.command()
    @reports_errors
    def verify(
        names: List[str] = typer.Argument(None, help="Rollups to check (default: all)."),
        repair: bool = typer.Option(False, "--repair", help="Rewrite the periods that differ."),
        category: Optional[str] = typer.Option(None, "--category", help="Only rollups of this category."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Summary format."),
    ) -> None:
        """Recompute stored rollups live and report any difference (exit 1 if one is found)."""
        from tally.delivery.summaries import show_verify
        from tally.rollups import verify as run_verify

        project = cli.load_project(read_only=not repair)
        report = run_verify(project, names or None, repair=repair, category=category)
        show_verify(cli.out, report, fmt.value, repaired=repair)
        if any(report.values()) and not repair:
            raise typer.Exit(1)
