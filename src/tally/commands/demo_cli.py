"""`tally demo`: generate an example's data, load it and show what it answers, registered on the CLI app."""

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `demo` to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import Format, reports_errors

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
        from tally.delivery import terminal
        from tally.demo import last_30_days, prepare, showcase

        with cli.err.status(f"Generating {rows:,} rows for the {example} example in {directory} ..."):
            project, counts = prepare(example, directory, rows, seed_value, force=force)
        for table_name, count in counts.items():
            cli.out.print(f"  {table_name:<28} {count:>14,}" if isinstance(count, int) else f"  {table_name:<28} {count:>14}")
        if project.config.rollups:
            from tally.rollups import build

            with cli.err.status("Building rollups ..."):
                built = build(project)
            for r in built:
                cli.out.print(f"  rollup {r.rollup:<13} {r.rows:>12,} rows in {r.seconds:.1f}s ({r.mode})")
        shown = showcase(example)
        result = project.query_result(shown["metrics"], compare="previous_period",
                                      **last_30_days(project, shown["metrics"][0]))
        cli.print_rows(result.table, Format.table, project, title=terminal.title_text(result.meta))
        cli.out.print(f"\nReady: try `tally -p {directory} {shown['try']}`")
        if not no_serve:
            cli.out.print("(`tally serve`, the dashboard and HTTP API, is coming (issue 16); nothing to serve yet.)")
