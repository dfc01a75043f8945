"""Running the `tally` command line from tests: in-process (Typer's CliRunner) or as a new process.

    from tests.cli_helpers import invoke, ok, printed, refused, tally_process

    invoke("-p", root, "query", "revenue")      # the Result, whatever the exit code
    ok("-p", root, "ingest")                    # the Result; fails the test unless the exit code is 0
    printed("-p", root, "tables")               # the same, but just what it printed (stdout)
    refused("-p", root, "query", "nope")        # the one `error: ...` line of a command that must fail
    tally_process("--version").stdout           # the same through `python -m tally.cli` in a new process

Arguments may be paths or numbers: each is passed as `str(arg)`. (Not named `tally(...)`: test
modules `import tally`, which such a function would shadow.)
"""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import Result
from typer.testing import CliRunner

__all__ = ["invoke", "ok", "one_error_line", "printed", "refused", "tally_process"]


def invoke(*args) -> Result:
    """Run `tally ARGS...` in this process; the outcome whatever its exit code."""
    from tally.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args) -> Result:
    """Run `tally ARGS...`, which must succeed (exit code 0); its outcome."""
    result = invoke(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def printed(*args) -> str:
    """Run `tally ARGS...`, which must succeed; what it printed on stdout."""
    return ok(*args).stdout


def refused(*args, code: int = 2) -> str:
    """Run `tally ARGS...`, which must fail with exit `code` and one `error: ` line; that line."""
    return one_error_line(invoke(*args), code)


def one_error_line(result: Result, code: int = 2) -> str:
    """The single `error: ` line of a run that exited with `code`, printed nothing else and no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def tally_process(*args, env: dict | None = None, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m tally.cli ARGS...` in a new process (the environment plus `env`); its outcome."""
    return subprocess.run([sys.executable, "-m", "tally.cli", *(str(a) for a in args)], capture_output=True,
                          text=True, env=dict(os.environ, **(env or {})), cwd=cwd, timeout=timeout)
