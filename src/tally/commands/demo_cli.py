"""`tally demo`: generate an example's data, load it, show what it answers and serve it, registered on the CLI app."""

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
        no_serve: bool = typer.Option(False, "--no-serve", help="Prepare the project, then exit (do not serve it)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to serve on (as `tally serve --host`)."),
        port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to serve on (as `tally serve --port`)."),
        force: bool = typer.Option(False, "--force", help="Write into a folder holding a project the demo did not create."),
    ) -> None:
        """Generate an example's data, load it, show what it answers, then serve its API as `tally serve` does."""
        from contextlib import ExitStack

        from tally import demo as demos

        demos.preflight(example, directory, None if no_serve else host, port)
        with ExitStack() as upstream:   # an example's upstream API runs until the demo ends
            with cli.err.status(f"Generating {rows:,} rows for the {example} example in {directory} ..."):
                project, counts = upstream.enter_context(
                    demos.prepared(example, directory, rows, seed_value, force=force, live=not no_serve))
            show_loaded(project, example, directory, rows, counts)
            if no_serve:
                return
            code = demos.serve(project, example, host, port,
                               say=lambda line: cli.err.print(line, highlight=False, markup=False, soft_wrap=True),
                               show=lambda line: cli.out.print(line, highlight=False, markup=False))
        if code:
            raise typer.Exit(code)

    def show_loaded(project, example: str, directory: Path, rows: int, counts: dict) -> None:
        """What was loaded and built, and the example's metrics for its last 30 days."""
        from tally.delivery import terminal
        from tally.demo import last_30_days, showcase

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
