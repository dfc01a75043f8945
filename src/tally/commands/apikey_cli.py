"""`tally apikey create NAME [--scope read|admin]`: a new API key, printed once, and its tally.yml line."""

from __future__ import annotations

import re
from enum import Enum

import typer


class Scope(str, Enum):
    read = "read"
    admin = "admin"


NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def register(app: typer.Typer) -> None:
    """Add `tally apikey create` to `app`."""
    from tally.cli import out, reports_errors

    apikey_app = typer.Typer(help="API keys for `tally serve`: create one, paste its hash into tally.yml.",
                             no_args_is_help=True)
    app.add_typer(apikey_app, name="apikey")

    @apikey_app.command("create")
    @reports_errors
    def create(
        name: str = typer.Argument(..., help="A name for the key (who or what uses it)."),
        scope: Scope = typer.Option(Scope.read, "--scope", help="read: query and list; admin: also run jobs."),
    ) -> None:
        """Print a new API key once, and the line to paste under `api: keys:` in tally.yml (only its hash)."""
        from tally.api.security import hash_key, new_key
        from tally.errors import ConfigError

        if not NAME.fullmatch(name):
            raise ConfigError(f"key name {name!r}: use letters, digits, _ . - (starting with a letter)")
        key = new_key()
        scopes = "[read, admin]" if scope is Scope.admin else "[read]"
        out.print(f"API key (shown once; Tally keeps only its hash):\n\n  {key}\n", highlight=False, markup=False)
        out.print("Paste under `api:` -> `keys:` in tally.yml:\n", highlight=False, markup=False)
        out.print(f"    {name}: {{hash: \"{hash_key(key)}\", scopes: {scopes}}}", highlight=False, markup=False)
