"""The CLI's side of the handoff finds the command and the project in any spelling of the options."""

from __future__ import annotations

import pytest

from tally.serve.client import command_and_project, without_project


@pytest.mark.parametrize("args, command, project, forwarded", [
    (["query", "revenue"], "query", ".", ["query", "revenue"]),
    (["--project", "shop", "query", "-p", "x"], "query", "shop", ["query", "-p", "x"]),
    (["-p", "shop", "--profile", "prod", "tables"], "tables", "shop", ["--profile", "prod", "tables"]),
    (["--project=shop/tally.yml", "--debug", "verify"], "verify", "shop/tally.yml", ["--debug", "verify"]),
    (["-pshop", "--profile", "query", "query"], "query", "shop", ["--profile", "query", "query"]),
    (["--debug"], None, ".", ["--debug"]),
])
def test_command_project_and_forwarded_args(args, command, project, forwarded):
    assert command_and_project(args) == (command, project)
    assert without_project(args) == forwarded
