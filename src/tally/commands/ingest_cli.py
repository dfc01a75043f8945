"""`tally seed | ingest`: load lookup files and sources into the warehouse, registered on the CLI app."""

from typing import List

import typer


def register(app: typer.Typer) -> None:
    """Add `seed` and `ingest` to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import SummaryFormat, reports_errors

    @app.command()
    @reports_errors
    def seed(names: List[str] = typer.Argument(None, help="Seeds to load (default: all).")) -> None:
        """Load the project's lookup files (seeds) into the warehouse."""
        project = cli.load_project()
        refuse_empty(project, "seeds", "seed")
        for name, count in project.load_seeds(names or None).items():
            cli.out.print(f"seed {name}: {count:,} rows loaded")

    @app.command()
    @reports_errors
    def ingest(
        sources: List[str] = typer.Argument(None, help="Sources to load (default: all)."),
        full_refresh: bool = typer.Option(False, "--full-refresh", help="Ignore watermarks; replace the tables."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Read and check, report, write nothing."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Summary format."),
    ) -> None:
        """Load sources into the warehouse: rows read / loaded / rejected per source."""
        from tally.delivery.progress import progress_bars
        from tally.delivery.summaries import show_ingest
        from tally.sources import ingest as run_ingest

        project = cli.load_project()
        refuse_empty(project, "sources", "ingest")
        with progress_bars(cli.err, show=fmt is SummaryFormat.table, time_left=True) as progress:
            results = run_ingest(project, sources or None, full_refresh=full_refresh, dry_run=dry_run,
                                 progress=progress)
        show_ingest(cli.out, cli.err, results, fmt.value, dry_run=dry_run)
        if any(r.status != "ok" for r in results):
            raise typer.Exit(1)


def refuse_empty(project, section: str, command: str) -> None:
    """A command over a section tally.yml does not have is a usage error, not a silent success."""
    if not getattr(project.config, section):
        from tally.errors import ConfigError

        raise ConfigError(f"no {section} configured: `tally {command}` has nothing to do "
                          f"(add a `{section}:` section to tally.yml)", file=project.loaded.file)
