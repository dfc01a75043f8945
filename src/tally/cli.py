"""The `tally` command line: the app, its global options, one-line errors and the helpers the commands
share; each command's body is in a module of tally/commands/ (`register(app)`), its output in delivery/."""

from __future__ import annotations

if __name__ == "__main__":   # `python -m tally.cli`: run the module the command modules import, not a copy of it
    from tally.cli import main

    main()

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

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
    """Records as CSV on stdout (`names`: the header when there may be no record)."""
    from tally.delivery.summaries import write_csv

    write_csv(records, names)


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


def _print_version() -> None:
    from tally import __version__

    out.print(f"tally {__version__}", highlight=False)
    raise typer.Exit(0)


def print_rows(table, fmt: Format, project, title: str = "", notes=(), partial=frozenset()) -> None:
    from tally.delivery import tabular, terminal

    if fmt is Format.json:
        sys.stdout.write(tabular.to_json(table) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(tabular.to_csv(table))
    else:
        terminal.print_rows(out, table, project, title=title, notes=notes, partial=partial)


# The commands, in the order `tally --help` lists them (groups, as `rollup`, come last): each module
# of tally/commands/ adds its own with one `register(app)` line here.
from tally.commands import demo_cli, ingest_cli, init_cli, query_cli, rollup_cli  # noqa: E402

init_cli.register(app)      # init
query_cli.register(app)     # query, metrics
ingest_cli.register(app)    # seed, ingest
rollup_cli.register(app)    # rollup build, verify
demo_cli.register(app)      # demo

from tally.commands import inspect_cli, jobs_cli, ledger_cli  # noqa: E402  (tables, describe, rejects, preview; scheduler, jobs, run; ledger)

inspect_cli.register(app)
ledger_cli.register(app)     # ledger show, list, refresh
jobs_cli.register(app)       # scheduler, jobs, run
from tally.commands import apikey_cli; apikey_cli.register(app)  # noqa: E402,E702  (tally apikey create)
from tally.commands import serve_cli; serve_cli.register(app)  # noqa: E402,E702  (serve)

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
    args = hoist_global_options(sys.argv[1:])
    from tally.serve.client import handed_off   # standard library only: `tally serve` may own the project

    code = handed_off(args)
    sys.exit(run(args) if code is None else code)


COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def run(args: list[str]) -> int:
    """The CLI's exit code for `args`; a usage error (an unknown option, a value of the wrong type) is
    one line on stderr, like every other error, rather than click's framed usage box."""
    # typer runs its own copy of click: its exceptions are the ones raised here
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
    from typer.exceptions import Abort

    if len(args) == 2 and args[0] == "--show-completion" and args[1] in COMPLETION_SHELLS:
        # typer's flag takes no value and asks the parent process which shell it is: named, it
        # works from scripts and CI too (where no shell is found above the process)
        from typer._completion_shared import get_completion_script

        out.print(get_completion_script(prog_name="tally", complete_var="_TALLY_COMPLETE", shell=args[1]),
                  highlight=False, markup=False, soft_wrap=True)
        return 0
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

