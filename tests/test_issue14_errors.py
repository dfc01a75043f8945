"""Issue 14: every mistake is one line (exit 2/1), the API raises only TallyError, the Lambda handler never raises."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tally.cli import app
from tally.demo import prepare
from tally.sources.seeds import read_seed

from tests.engine import reference

START, END = "2026-03-01", "2026-05-01"


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("errors") / "shop"
    project, _ = prepare("ecommerce", directory, 2000, seed=5)
    project.close()
    return directory


def refused(*args, code: int = 2) -> str:
    """Run a command that must fail; return its one `error:` line."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def ok(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


# -- 1. --limit on a total ---------------------------------------------------------------------

def test_limit_on_a_total_keeps_the_one_row(ecommerce):
    project, tables = ecommerce
    seeds = project.config.seeds
    lookups = {file: read_seed(project.root, name, seeds[name]) for file, name in
               (("costs", "product_costs"), ("desi", "product_desi"), ("shipping_rates", "shipping_rates"))}
    wanted = reference.kpis(reference.in_range(reference.lines(tables, lookups), START, END),
                            reference.in_range(reference.refunds(tables), START, END))
    rows = project.query(["revenue", "orders"], start=START, end=END, limit=5).to_pylist()
    assert len(rows) == 1
    assert rows[0]["orders"] == wanted["orders"]
    assert round(float(rows[0]["revenue"]), 2) == round(float(wanted["revenue"]), 2)
    compared = project.query(["revenue"], start=START, end=END, limit=1, compare="previous_period").to_pylist()
    assert len(compared) == 1 and compared[0]["revenue"] == rows[0]["revenue"]


def test_cli_limit_without_order(shop_dir):
    result = ok("-p", shop_dir, "query", "revenue", "--limit", "5", "--format", "json")
    assert result.stdout.count("revenue") == 1 and result.stderr == ""


# -- 2. a wrong time: / updated: column ---------------------------------------------------------

def _broken_copy(project, tmp_path, old: str, new: str):
    from tally import Project

    text = (project.root / "tally.yml").read_text()
    assert old in text
    (tmp_path / "tally.yml").write_text(text.replace(old, new, 1))
    return Project.load(tmp_path, warehouse=project.warehouse_url)


@pytest.mark.parametrize("old, new, role", [("time: ordered_at", "time: orderd_at", "time"),
                                            ("updated: updated_at", "updated: updatd_at", "updated")])
def test_wrong_model_column_is_one_config_error(ecommerce, tmp_path, old, new, role):
    from tally.errors import ConfigError
    from tally.rollups import build

    project, _ = ecommerce
    broken = _broken_copy(project, tmp_path, old, new)
    try:
        with pytest.raises(ConfigError) as caught:
            if role == "time":
                broken.query(["revenue"], grain="day", start=START, end=END)
            else:
                build(broken, ["shop_reports"])
    finally:
        broken.close()
    message = caught.value.message
    wrong, right = new.split(": ")[1], old.split(": ")[1]
    assert f"model 'orders': {role} column '{wrong}' is not a column" in message
    assert f"did you mean '{right}'?" in message and "columns: order_id, line_no" in message
    assert "\n" not in message


def test_cli_wrong_time_column(shop_dir, tmp_path):
    text = (shop_dir / "tally.yml").read_text().replace("time: ordered_at", "time: ordered", 1)
    (tmp_path / "tally.yml").write_text(text.replace("duckdb:///warehouse.duckdb", f"duckdb:///{shop_dir}/warehouse.duckdb"))
    line = refused("-p", tmp_path, "query", "revenue", "--grain", "month")
    assert "time column 'ordered' is not a column of its table (did you mean 'ordered_at'?)" in line
