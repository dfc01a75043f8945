"""Usage errors (an unknown option or command, a value of the wrong type, a missing argument) are one
line on stderr and exit 2, as every other error is; help and --version still print as before."""

from __future__ import annotations

import subprocess

import pytest

from tests.cli_helpers import tally_process


def tally(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return tally_process(*args, env={"COLUMNS": "100"}, cwd=cwd)


@pytest.mark.parametrize("args, says", [
    (["query", "revenue", "--limit", "abc"], "Invalid value for '--limit'"),
    (["query", "--lmit", "5", "revenue"], "No such option: --lmit"),
    (["nope"], "No such command 'nope'"),
    (["query"], "Missing argument 'metrics'"),
    (["query", "revenue", "--format", "xml"], "Invalid value for '--format'"),
    (["rollup", "build", "--ful"], "No such option: --ful"),
])
def test_a_usage_error_is_one_line(tmp_path, args, says):
    """Once: click's framed box of six lines or more."""
    done = tally(*args, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and done.stdout == "", done
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert "--help`)" in lines[0]


def test_help_and_version_are_unchanged(tmp_path):
    done = tally("query", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "--where" in done.stdout and done.stderr == ""
    group = tally("rollup", cwd=tmp_path)   # a group without its command: its help, exit 2 as click does
    assert group.returncode == 2 and "build" in group.stdout
    version = tally("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("tally ")
