"""Issue 14: a table never cuts a number, at any terminal width; a percentage's change reads in points."""

from __future__ import annotations

import json

import pytest

from tally import Project
from tally.delivery import tabular
from tally.delivery.terminal import metric_formats
from tally.demo import prepare
from tests.cli_helpers import tally_process

WIDE = ["query", "revenue", "orders", "margin", "--grain", "week", "--by", "shop", "--compare", "previous_period",
        "--from", "2026-09-01", "--to", "2026-10-01"]


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wide") / "shop"
    project, _ = prepare("ecommerce", directory, 3000, seed=3)
    project.close()
    return directory


def run(shop_dir, *args: str, columns: int = 80) -> str:
    done = tally_process("-p", shop_dir, *args, env={"COLUMNS": str(columns)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def cells_of(shop_dir, args) -> list[str]:
    """Each number of the JSON answer as the table must print it."""
    rows = json.loads(run(shop_dir, *args, "--format", "json"))
    project = Project.load(shop_dir)
    try:
        formats = metric_formats(project, list(rows[0]))
        symbol = project.config.currency.symbol
    finally:
        project.close()
    return [tabular.cell_text(k, v, formats, symbol) for row in rows for k, v in row.items()
            if k not in ("period", "shop") and v is not None]


@pytest.mark.parametrize("columns", [200, 80, 40])
@pytest.mark.parametrize("args", [WIDE, ["query", "revenue", "orders", "aov", "margin", "net_revenue", "--compare",
                                         "previous_period", "--from", "2026-09-01", "--to", "2026-10-01"]],
                         ids=["breakdown", "totals"])
def test_every_number_is_whole(shop_dir, args, columns):
    """Once `$1…`: a --compare breakdown at 80 columns cut every money cell."""
    text = run(shop_dir, *args, columns=columns)
    assert "…" not in text
    lines = text.splitlines()
    assert all(len(line) <= columns for line in lines if any(box in line for box in "│┃┏┡└")), text
    for cell in cells_of(shop_dir, args):
        if cell:
            assert any(cell in line for line in lines), (cell, text)


def test_a_percentage_changes_in_points(shop_dir):
    rows = json.loads(run(shop_dir, *WIDE, "--format", "json"))
    changed = next(r for r in rows if r["margin_change"] not in (None, 0))
    text = run(shop_dir, *WIDE, columns=200)
    points = f"{changed['margin_change'] * 100:+.1f} pp"
    assert points in text
    percent_of_percent = f"{changed['margin_change_pct']:+.1f}%"
    margin_lines = [line for line in text.splitlines() if points in line]
    assert all(percent_of_percent not in line.split(points)[1] for line in margin_lines)


def test_points_and_formats_unit():
    assert tabular.cell_text("margin_change", -0.005, {"margin": "percent"}, "$") == "-0.5 pp"
    assert tabular.cell_text("margin_change_pct", 12.0, {"margin": "percent"}, "$") == ""
    assert tabular.cell_text("revenue_change_pct", 12.0, {"revenue": "money"}, "$") == "+12.0%"


def test_headers_are_not_folded_letter_by_letter(tmp_path):
    """Once: at 80 columns two compared metrics with long names, by a breakdown, folded their headers
    one letter per line; splitting the metrics over two tables keeps each header readable."""
    root = tmp_path / "p"
    tally_process("init", root).check_returncode()
    config = root / "tally.yml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "\nmetrics:\n", "\nmetrics:\n  total_amount_in_euro: {formula: revenue, format: money}\n"
                        "  count_of_the_orders: {formula: orders, format: integer}\n", 1), encoding="utf-8")
    run(root, "ingest")
    text = run(root, "query", "total_amount_in_euro", "count_of_the_orders", "--by", "customer", "--compare",
               "previous_period", "--grain", "month", "--last", "3m", columns=80)
    for line in text.splitlines():
        if line.startswith("┃"):
            cells = [cell.strip() for cell in line.strip("┃").split("┃")]
            assert all(len(cell) != 1 or cell in "%" for cell in cells), text
    assert text.count("┏") == 2, text   # one metric's columns, then the other's
