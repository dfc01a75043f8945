"""`tally serve`: the HTTP API and the scheduler in one process that owns the project."""

import typer


def register(app: typer.Typer) -> None:
    """Add `tally serve` to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import reports_errors

    @app.command("serve")
    @reports_errors
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
        port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
        scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler",
                                       help="Run the scheduled jobs in this process too."),
    ) -> None:
        """Serve the HTTP API (and run the scheduler); CLI commands on this project then run here."""
        from tally.serve.runner import serve as run_server

        project = cli.load_project()
        code = run_server(project, host=host, port=port, scheduler=scheduler, profile=cli.state.profile,
                          say=lambda line: cli.err.print(line, highlight=False, markup=False, soft_wrap=True))
        if code:
            raise typer.Exit(code)
