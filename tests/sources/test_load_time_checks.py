"""Source checks, defaults, renames and queryable names are refused when tally.yml loads, at their line."""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from tally.cli import app
from tally.errors import ConfigError
from tally.app import read_project
from tally.sources.regex import regex_problem

COLUMNS = {"order_id": "int64", "status": "text", "quantity": "int32", "amount": "decimal(12,2)",
           "ordered_on": "date", "updated_at": "timestamp", "paid": "boolean", "ratio": "float64"}
SOURCE = {"kind": "csv", "path": "data/*.csv", "table": "orders", "columns": COLUMNS}


def write(root: Path, source: dict | None = None, **top) -> Path:
    config = {"name": "checks", "warehouse": "duckdb:///warehouse.duckdb", **top}
    if source is not None:
        config["sources"] = {"orders": source}
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    (root / "tally.yml").write_text(text.replace("'!nan'", ".nan").replace("'!inf'", "-.inf"), encoding="utf-8")
    return root


def refused(root: Path, marker: str, after: str = "") -> str:
    """The ConfigError's reason; it must point at the line of tally.yml holding `marker` (the first one
    after the line holding `after`)."""
    with pytest.raises(ConfigError) as caught:
        read_project(root)
    lines = (root / "tally.yml").read_text(encoding="utf-8").splitlines()
    start = next(number for number, line in enumerate(lines, 1) if after in line)
    expected = next(number for number, line in enumerate(lines, 1) if marker in line and number >= start)
    assert (caught.value.file, caught.value.line) == (str(root / "tally.yml"), expected), caught.value.message
    assert "\n" not in caught.value.message
    return caught.value.reason


# -- regex: what Python's re reads but DuckDB's RE2 refuses -----------------------------------------

RE2_REFUSES = [r"[A-Z]+(?=-)", r"(?!x)\w+", r"(?<=#)\d+", r"(?<!-)\d+", r"(\w)\1", r"(?P<c>a)(?P=c)", r"\d++",
               r"\w*+", r"a?+", r"\d{2}+", r"(?>ab|a)c", r"\d+\Z", r"(?#note)\d+", r"(?x)\d + ", r"(?a)\w+",
               r"\u00e9+", r"\U0001F600", r"[\b]", r"[a\1]", r"a{1001}"]
RE2_TAKES = [r"(?i)[A-Z]{3}-\d{4}", r"^\S+@\S+$", r"[[:alpha:]]+", r"(?P<n>a)b", r"a+?b", r"[]a]+", r"\x41\0",
             r"(?s-i:a.)", r"\++", r"[+*]{1,1000}"]


@pytest.mark.parametrize("pattern", RE2_REFUSES)
def test_regex_duckdb_cannot_run_is_refused_at_load(tmp_path, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(duckdb.Error):   # independent: DuckDB itself refuses it
            duckdb.sql("SELECT regexp_full_match('ab', $p)", params={"p": pattern}).fetchall()
    root = write(tmp_path, {**SOURCE, "checks": [{"not_null": ["order_id"]}, {"regex": {"status": pattern}}]})
    reason = refused(tmp_path, "regex:")
    assert reason.startswith("source 'orders': checks.1: regex for 'status' uses ") and "RE2" in reason
    assert root


@pytest.mark.parametrize("pattern", RE2_TAKES)
def test_regex_duckdb_runs_loads(tmp_path, pattern):
    duckdb.sql("SELECT regexp_full_match('ab', $p)", params={"p": pattern}).fetchall()
    assert regex_problem(pattern) is None
    read_project(write(tmp_path, {**SOURCE, "checks": [{"regex": {"status": pattern}}]}))


def test_regex_with_a_different_meaning_in_re2_is_refused(tmp_path):
    write(tmp_path, {**SOURCE, "checks": [{"regex": {"status": "a{,3}"}}]})
    assert "RE2 reads it as text: write {0,3}" in refused(tmp_path, "regex:")


# -- timezone, min/max, rename -----------------------------------------------------------------------

def test_unknown_data_timezone(tmp_path):
    write(tmp_path, {**SOURCE, "data_timezone": "Mars/Olympus"})
    assert refused(tmp_path, "data_timezone:") == ("source 'orders': data_timezone: unknown timezone "
                                                   "'Mars/Olympus' (use an IANA name like Europe/Istanbul)")


@pytest.mark.parametrize("rule, bound", [("min", "!nan"), ("max", "!inf")])
def test_min_max_must_be_finite(tmp_path, rule, bound):
    write(tmp_path, {**SOURCE, "checks": [{rule: {"quantity": bound}}]})
    assert "must be a finite number" in refused(tmp_path, f"{rule}:")


def test_min_on_a_column_that_is_no_number(tmp_path):
    write(tmp_path, {**SOURCE, "checks": [{"min": {"ordered_on": 5}}]})
    assert refused(tmp_path, "min:") == ("source 'orders': min for 'ordered_on' needs a number column; "
                                         "ordered_on is date")


def test_rename_two_columns_to_one_name(tmp_path):
    write(tmp_path, {**SOURCE, "rename": {"OrderStatus": "status", "state": "status"}})
    assert refused(tmp_path, "rename:") == ("source 'orders': rename: 'OrderStatus' and 'state' are both renamed "
                                            "to 'status'")


def test_check_on_a_column_not_declared(tmp_path):
    write(tmp_path, {**SOURCE, "checks": [{"not_null": ["order_id", "statsu"]}]})
    assert "not_null names column 'statsu', which is not a declared column" in refused(tmp_path, "not_null:")


# -- check expressions typed with the declared columns ---------------------------------------------

@pytest.mark.parametrize("expression, says", [
    ("status > 5", "compares text with number"),
    ("quantity = 'a'", "compares number with text ('a') (numbers take no quotes)"),
    ("ordered_on > 5", "compares date with number"),
    ("not status", "status is text, not a condition"),
    ("status", "status is text, not a condition"),
    ("'1'", "is text, not a condition"),
    ("lower(quantity) = 'a'", "lower() takes text; quantity is number"),
    ("abs(status) > 1", "abs() takes number; status is text"),
    ("status + 1 > 1", "arithmetic on status, which is text"),
    ("quantity like '5%'", "LIKE takes text; quantity is number"),
    ("status in (1, 2)", "compares text with number"),
    ("coalesce(status, 1) = 'a'", "compares text with number"),
    ("case when quantity > 1 then 'a' else 1 end = 1", "compares number with text ('a')"),
    ("amount between 1 and 'x'", "compares number with text"),
    ("statsu = 'paid'", "statsu is not a declared column"),
])
def test_type_wrong_check_expressions(tmp_path, expression, says):
    write(tmp_path, {**SOURCE, "checks": [{"expression": expression}]})
    reason = refused(tmp_path, "expression:")
    assert reason.startswith(f"source 'orders': check {expression!r}: ") and says in reason, reason


@pytest.mark.parametrize("expression", [
    "quantity > 0 and amount >= 0", "status in ('paid', 'lost')", "quantity = '5'", "ordered_on >= '2024-01-01'",
    "updated_at >= ordered_on", "lower(status) like 'p%'", "coalesce(amount, 0) * quantity < 1000",
    "paid or status = 'free'", "paid = 1", "length(trim(status)) > 0", "ratio is null or abs(ratio) <= 1",
    "case when paid then amount > 0 else true end", "round(amount, 1) between 0 and 10",
])
def test_well_typed_check_expressions_load_and_run_in_duckdb(tmp_path, expression):
    read_project(write(tmp_path, {**SOURCE, "checks": [{"expression": expression}]}))
    duckdb.sql(f"""SELECT NOT COALESCE(({expression}), FALSE) FROM (SELECT 1::BIGINT order_id, 'paid' status,
               5::INTEGER quantity, 2.5::DECIMAL(12,2) amount, DATE '2024-01-01' ordered_on,
               TIMESTAMPTZ '2024-01-01 10:00:00+00' updated_at, true paid, 0.5::DOUBLE ratio)""").fetchall()


def test_expressions_are_not_typed_without_declared_columns(tmp_path):
    source = {key: value for key, value in SOURCE.items() if key != "columns"}
    read_project(write(tmp_path, {**source, "checks": [{"expression": "status > 5"}]}))


# -- defaults that do not fit the column's type -----------------------------------------------------

@pytest.mark.parametrize("column, value, says", [
    ("amount", "abc", "must be a number for a decimal(12,2) column"),
    ("amount", 1.005, "must fit decimal(12,2)"),
    ("quantity", 2.5, "must be a whole number that fits integer"),
    ("quantity", 2 ** 31, "must be a whole number that fits integer"),
    ("paid", "maybe", "must be true or false"),
    ("ordered_on", "soon", "must be a date"),
    ("updated_at", 5, "must be a timestamp"),
    ("status", False, "must be text for a text column (quote it)"),
    ("status", [1], "must be one value"),
    ("notes", "x", "which is not a declared column"),
])
def test_defaults_must_fit_the_declared_type(tmp_path, column, value, says):
    write(tmp_path, {**SOURCE, "defaults": {"status": "new", column: value}})
    reason = refused(tmp_path, f"{column}:", after="defaults:")
    assert reason.startswith(f"source 'orders': default for {column!r}") and says in reason, reason


def test_defaults_that_fit_load(tmp_path):
    read_project(write(tmp_path, {**SOURCE, "defaults": {
        "status": "new", "quantity": 1, "amount": 0.5, "paid": False, "ordered_on": "2024-01-01",
        "updated_at": "2024-01-01 10:00:00+00:00", "ratio": 1, "order_id": -2 ** 63}}))


# -- names the command line can query by ----------------------------------------------------------

def _model(dimensions=None, measures=None) -> dict:
    return {"orders": {"table": "orders", "dimensions": dimensions or {"status": "status"},
                       "measures": measures or {"revenue": {"sum": "amount"}}}}


@pytest.mark.parametrize("where, config, marker, says", [
    ("measure", {"models": _model(measures={"net revenue": {"sum": "amount"}})}, "net revenue:",
     "metric name 'net revenue' cannot be queried from the command line: use letters, digits and _ only"),
    ("measure", {"models": _model(measures={"-refunds": {"sum": "amount"}})}, "-refunds:", "metric name '-refunds'"),
    ("metric", {"models": _model(), "metrics": {"rev,2": "revenue * 2"}}, "rev,2:", "metric name 'rev,2'"),
    ("dimension", {"models": _model(dimensions={"shop name": "status"})}, "shop name:", "dimension name 'shop name'"),
    ("dimension", {"models": _model(dimensions={"case": "status"})}, "case:",
     "dimension name 'case' is an SQL word --where cannot filter by"),
    ("dimension", {"models": _model(dimensions={"grant": "status"})}, "grant:",   # sqlglot raises ValueError
     "dimension name 'grant' is an SQL word --where cannot filter by"),
    ("model", {"models": {"order-lines": _model()["orders"]}}, "order-lines:", "model name 'order-lines'"),
])
def test_names_the_cli_cannot_query_are_refused(tmp_path, where, config, marker, says):
    write(tmp_path, **config)
    assert says in refused(tmp_path, marker)


def test_the_cli_reports_a_load_time_check_in_one_line(tmp_path):
    write(tmp_path, {**SOURCE, "checks": [{"expression": "status > 5"}]})
    result = CliRunner().invoke(app, ["--project", str(tmp_path), "ingest"])
    assert result.exit_code == 2 and result.stdout == "", (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'tally.yml'}:"), result.stderr
    assert "check 'status > 5': status > 5 compares text with number" in lines[0]


def test_a_rename_onto_another_columns_name_fails_the_load_instead_of_dropping_one(tmp_path, session_warehouse_url):
    """Without declared columns the file's header is known only at ingest: a clash is found there."""
    from tally import Project
    from tally.sources import ingest

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "o.csv").write_text("id,state,status\n1,open,paid\n", encoding="utf-8")
    write(tmp_path, {"kind": "csv", "path": "data/*.csv", "table": "renamed_orders", "rename": {"state": "status"}},
          warehouse=session_warehouse_url)
    project = Project.load(tmp_path)
    try:
        result = ingest(project)[0]
    finally:
        project.close()
    assert result.status == "failed" and result.error == ("columns 'state' and 'status' would both load as 'status'; "
                                                          "rename one of them (rename:)"), result.error
