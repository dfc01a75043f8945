"""`tally init`: create a project folder, registered on the CLI app."""

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add `init` to `app` (called by cli.py once its helpers exist)."""
    from tally import cli
    from tally.cli import reports_errors

    @app.command()
    @reports_errors
    def init(
        directory: Path = typer.Argument(Path("."), help="Folder to create the project in."),
        from_csv: Optional[Path] = typer.Option(None, "--from-csv", help="Draft sources and models from this CSV."),
    ) -> None:
        """Create a project folder: a commented tally.yml with sample data, or a draft from your CSV."""
        from tally.commands.init import init_project

        cli.out.print(init_project(directory, from_csv), highlight=False)
