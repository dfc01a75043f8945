"""The CLI's pieces (issue 15): demo queries in each example's folder, one progress helper, a start
that loads no data library, and `python -m tally.cli` running the one `tally.cli` module."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import yaml
from rich.console import Console

from tally.delivery.progress import progress_bars
from tally.demo import EXAMPLES, examples_dir, showcase


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_keeps_its_demo_queries_in_its_folder(name):
    """demo.yml names metrics its own tally.yml defines (read here as plain YAML) and a command to try."""
    shown = showcase(name)
    assert set(shown) == {"metrics", "try"} and shown["metrics"], shown
    config = yaml.safe_load((examples_dir() / name / "tally.yml").read_text(encoding="utf-8"))
    defined = set(config.get("metrics") or {})
    for model in (config.get("models") or {}).values():
        defined |= set(model.get("measures") or {})
    assert set(shown["metrics"]) <= defined, set(shown["metrics"]) - defined
    assert shown["try"].split()[0] in {"query", "rollup", "metrics", "verify"}, shown["try"]


def test_progress_draws_one_bar_per_name_on_a_terminal_only():
    drawn = io.StringIO()
    console = Console(file=drawn, force_terminal=True, width=100)
    with progress_bars(console, time_left=True) as progress:
        progress("orders", 0.5, "reading")
        progress("orders", None, "merging")   # ingest reports steps without a fraction
        progress("refunds", 1.0, "done")
    assert "orders" in drawn.getvalue() and "refunds" in drawn.getvalue()

    for console, show in ((Console(file=io.StringIO(), force_terminal=True), False),   # --format json
                          (Console(file=io.StringIO()), True)):                        # not a terminal
        with progress_bars(console, show=show) as progress:
            progress("orders", 0.5, "reading")
        assert console.file.getvalue() == ""


def test_the_cli_starts_without_data_libraries():
    """`tally --help` must stay fast: cli.py and the command modules import those inside functions."""
    heavy = ("pyarrow", "pandas", "ibis", "duckdb", "numpy", "yaml", "pydantic", "rich.table", "rich.progress")
    done = subprocess.run([sys.executable, "-c", f"import sys, tally.cli; print([m for m in {heavy!r} "
                           "if m in sys.modules])"], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


def test_python_m_tally_cli_passes_the_project_to_every_command(tmp_path):
    """Once the commands of tally/commands/ read the project folder from a second copy of tally.cli."""
    env = dict(os.environ, COLUMNS="100")

    def tally(*args):
        return subprocess.run([sys.executable, "-m", "tally.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    assert tally("init", "shop").returncode == 0
    for args in (["tables"], ["describe", "orders"], ["metrics"]):
        done = tally("-p", "shop", *args, "--format", "json")
        assert done.returncode == 0, (args, done.stderr)
    used = {row["table"]: row["used_by"] for row in json.loads(tally("-p", "shop", "tables", "--format", "json").stdout)}
    assert used["orders"].startswith("source orders, model orders"), used
