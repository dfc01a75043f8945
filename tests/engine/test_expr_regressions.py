"""Issue 13 items 1, 2, 14, 15, 16 on every warehouse: `IS` with a value, dropped arguments, DATE and
text time columns, decimal arithmetic types, exact decimals in JSON / CSV / table output.

Each expected number is computed here in plain Python from the rows written, not by Tally.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from decimal import Context, Decimal, localcontext

import pyarrow as pa
import pytest

import tally
from tally.errors import ConfigError, ExpressionError, TallyError
from tally.project.expr import parse_row_expr

D = Decimal
UTC = dt.timezone.utc

ROWS = [  # day, status, price, discount, qty, f
    (dt.date(2026, 1, 1), "shipped", D("90071992547409.93"), D("0.15"), 3, 1.1),
    (dt.date(2026, 1, 1), "paid", D("1.25"), D("0.33"), 5, 2.2),
    (dt.date(2026, 1, 2), "pappa", D("3.10"), D("1.00"), -2, 3.3),
    (dt.date(2026, 1, 3), "  spaced ", D("4.44"), D("0.50"), 7, 0.25),
    (dt.date(2026, 1, 4), None, D("5.05"), D("0.10"), 0, -1.5),
    (dt.date(2026, 1, 5), "sss", D("0.01"), D("0.01"), 1, 10.0),
]

PROJECT = """
name: regress
timezone: {zone}
warehouse: "{url}"
models:
  m:
    table: {table}
    time: {time}
    dimensions: {{status: status, qty: qty{dims}}}
    measures:
      rows: {{count: "*"}}
      revenue: {{sum: price * discount, format: money}}
      scaled: {{sum: price * 1.5}}
      mixed: {{sum: f * price}}
      amount: {{sum: price, format: money}}
      plain: {{sum: price}}
{extra}
"""


def _table(time_type=pa.date32()) -> pa.Table:
    days = [r[0] for r in ROWS]
    if pa.types.is_timestamp(time_type):
        days = [dt.datetime.combine(d, dt.time(12), tzinfo=UTC if time_type.tz else None) for d in days]
    elif pa.types.is_string(time_type):
        days = [d.isoformat() for d in days]
    return pa.table({
        "day": pa.array(days, time_type),
        "status": pa.array([r[1] for r in ROWS], pa.string()),
        "price": pa.array([r[2] for r in ROWS], pa.decimal128(18, 2)),
        "discount": pa.array([r[3] for r in ROWS], pa.decimal128(15, 2)),
        "qty": pa.array([r[4] for r in ROWS], pa.int32()),
        "f": pa.array([r[5] for r in ROWS], pa.float64()),
    })


def _project(tmp_path, url, name, *, time_type=pa.date32(), zone="America/New_York", extra="", data=None, dims=""):
    table = f"h1_{name}"
    (tmp_path / "tally.yml").write_text(PROJECT.format(zone=zone, url=url, table=table, time="day", extra=extra,
                                                       dims=dims))
    project = tally.Project.load(tmp_path)
    project.warehouse.write_table(table, data if data is not None else _table(time_type))
    return project


@pytest.fixture
def project(tmp_path, session_warehouse_url):
    project = _project(tmp_path, session_warehouse_url, "main")
    yield project
    project.close()


def _rows(predicate) -> int:
    return sum(1 for r in ROWS if predicate(dict(zip(("day", "status", "price", "discount", "qty", "f"), r))))


# -- item 1: IS with a value --------------------------------------------------

@pytest.mark.parametrize("text", ["status is 'shipped'", "status is not 'paid'", "qty is 3", "status is status"])
def test_is_with_a_value_is_refused(text):
    with pytest.raises(ExpressionError, match="IS. takes NULL, TRUE or FALSE"):
        parse_row_expr(text)


def test_is_with_a_value_is_refused_in_a_measure_filter(tmp_path):
    (tmp_path / "tally.yml").write_text(PROJECT.format(
        zone="UTC", url="duckdb:///w.duckdb", table="t", time="day", dims="",
        extra="      kept: {sum: price, where: \"status is not 'cancelled'\"}"))
    with pytest.raises(ConfigError, match="IS. takes NULL, TRUE or FALSE"):
        tally.Project.load(tmp_path)


def test_is_with_a_value_is_refused_in_where(project):
    with pytest.raises(ExpressionError):
        project.query(["rows"], where="status is 'shipped'")


@pytest.mark.parametrize("where, expected", [
    ("status is null", lambda r: r["status"] is None),
    ("status is not null", lambda r: r["status"] is not None),
    ("(qty > 0) is true", lambda r: r["qty"] > 0),
    ("(qty > 0) is not true", lambda r: not r["qty"] > 0),
    ("status = 'shipped'", lambda r: r["status"] == "shipped"),
])
def test_is_null_and_booleans_keep_their_meaning(project, where, expected):
    assert project.query(["rows"], where=where).to_pylist() == [{"rows": _rows(expected)}]


# -- item 2: every argument kept, or refused -----------------------------------

def _py_trim(value, chars=" ", left=True, right=True):
    if value is None:
        return None
    if left:
        value = value.lstrip(chars)
    if right:
        value = value.rstrip(chars)
    return value


@pytest.mark.parametrize("dimension, reference", [
    ("trim(status, 'p')", lambda s: _py_trim(s, "p")),
    ("ltrim(status, 'p')", lambda s: _py_trim(s, "p", right=False)),
    ("rtrim(status, 'a')", lambda s: _py_trim(s, "a", left=False)),
    ("trim(both 's' from status)", lambda s: _py_trim(s, "s")),
    ("trim(leading 's' from status)", lambda s: _py_trim(s, "s", right=False)),
    ("trim(trailing 'd' from status)", lambda s: _py_trim(s, "d", left=False)),
    ("trim(status)", lambda s: _py_trim(s)),
    ("ltrim(status)", lambda s: _py_trim(s, right=False)),
])
def test_trim_keeps_its_characters(tmp_path, session_warehouse_url, dimension, reference):
    project = _project(tmp_path, session_warehouse_url, "trim", dims=f", trimmed: \"{dimension}\"")
    try:
        got = project.query(["rows"], by=["trimmed"]).to_pylist()
    finally:
        project.close()
    expected: dict = {}
    for row in ROWS:
        expected[reference(row[1])] = expected.get(reference(row[1]), 0) + 1
    assert {r["trimmed"]: r["rows"] for r in got} == expected


@pytest.mark.parametrize("where, expected", [
    ("qty between symmetric 5 and 1", lambda r: 1 <= r["qty"] <= 5),
    ("qty not between symmetric 5 and 1", lambda r: not 1 <= r["qty"] <= 5),
    ("qty between 5 and 1", lambda r: False),
    ("qty between symmetric -2 and 0", lambda r: -2 <= r["qty"] <= 0),
])
def test_between_symmetric(project, where, expected):
    assert project.query(["rows"], where=where).to_pylist() == [{"rows": _rows(expected)}]


@pytest.mark.parametrize("text, problem", [
    ("length(status, 'x') > 1", "more arguments"),
    ("round(qty, 2, 1) > 1", "more arguments"),
    ("round(qty, qty) > 1", "whole number"),
    ("trim(status, 'ab') = 'x'", "one character"),
    ("trim(both 'ab' from status) = 'x'", "one character"),
    ("trim(status, status) = 'x'", "one character"),
])
def test_arguments_that_would_be_dropped_are_refused(text, problem):
    with pytest.raises(ExpressionError, match=problem):
        parse_row_expr(text)


def test_greatest_skips_nulls_on_every_warehouse(project):
    # greatest(NULL, x) is x, as in PostgreSQL and DuckDB (MySQL alone would answer NULL)
    rows = project.query(["rows"], where="greatest(nullif(qty, 3), 4) = 4").to_pylist()
    assert rows == [{"rows": _rows(lambda r: max(q for q in (None if r["qty"] == 3 else r["qty"], 4)
                                                  if q is not None) == 4)}]


# -- item 14: time column types ----------------------------------------------

def test_date_time_column_answers_open_ranges(project):
    total = project.query(["rows", "plain"]).to_pylist()
    assert total == [{"rows": len(ROWS), "plain": sum(r[2] for r in ROWS)}]


def test_date_time_column_counts_on_its_own_date_in_any_zone(tmp_path, session_warehouse_url):
    for zone in ("America/Los_Angeles", "Asia/Kolkata", "Pacific/Honolulu"):
        project = _project(tmp_path, session_warehouse_url, "zones", zone=zone)
        try:
            got = project.query(["rows"], grain="day").to_pylist()
            days = project.query(["rows"], start="2026-01-02", end="2026-01-04").to_pylist()
        finally:
            project.close()
        expected = {}
        for row in ROWS:
            expected[row[0]] = expected.get(row[0], 0) + 1
        assert {r["period"]: r["rows"] for r in got} == expected, zone
        assert days == [{"rows": _rows(lambda r: dt.date(2026, 1, 2) <= r["day"] < dt.date(2026, 1, 4))}]


@pytest.mark.parametrize("time_type", [pa.timestamp("us"), pa.timestamp("us", tz="UTC")], ids=["timestamp", "tz"])
def test_timestamp_time_columns(tmp_path, session_warehouse_url, time_type):
    project = _project(tmp_path, session_warehouse_url, "ts", time_type=time_type, zone="UTC")
    try:
        assert project.query(["rows"], grain="day").to_pylist()[0] == {"period": dt.date(2026, 1, 1), "rows": 2}
        assert project.query(["rows"]).to_pylist() == [{"rows": len(ROWS)}]
    finally:
        project.close()


def test_text_time_column_is_refused_with_one_line(tmp_path, session_warehouse_url):
    project = _project(tmp_path, session_warehouse_url, "text", time_type=pa.string())
    try:
        with pytest.raises(ConfigError) as caught:
            project.query(["rows"])
        message = str(caught.value)
        assert "\n" not in message
        assert "'m'" in message and "'day'" in message and "text" in message
        assert "DATE, TIMESTAMP or TIMESTAMPTZ" in message
    finally:
        project.close()


# -- item 15: decimal arithmetic ---------------------------------------------

def test_decimal_product_is_exact_over_a_range(project):
    got = project.query(["revenue", "scaled", "mixed"], start="2026-01-01", end="2026-01-06").to_pylist()[0]
    assert got["revenue"] == sum(r[2] * r[3] for r in ROWS)
    assert isinstance(got["revenue"], Decimal) and got["revenue"].as_tuple().exponent == -4
    assert got["scaled"] == sum(r[2] * D("1.5") for r in ROWS)
    assert got["scaled"].as_tuple().exponent == -3
    # a float times a decimal is a float: never rounded to the decimal's two places
    assert isinstance(got["mixed"], float)
    assert got["mixed"] == pytest.approx(sum(float(r[2]) * r[5] for r in ROWS), rel=1e-12)


def test_float_times_decimal_keeps_its_fraction(tmp_path, session_warehouse_url):
    data = pa.table({"day": pa.array([dt.date(2026, 1, 1)] * 2, pa.date32()), "status": ["a", "b"],
                     "price": pa.array([D("5580475.40"), D("1.00")], pa.decimal128(18, 2)),
                     "discount": pa.array([D("1"), D("1")], pa.decimal128(15, 2)),
                     "qty": pa.array([1, 1], pa.int32()), "f": [1.0, 0.0027]})
    project = _project(tmp_path, session_warehouse_url, "frac", data=data)
    try:
        got = project.query(["mixed"]).to_pylist()[0]["mixed"]
    finally:
        project.close()
    assert got == pytest.approx(5580475.4027, abs=1e-6)


@pytest.mark.parametrize("measure, reference", [
    ("qty % 0", lambda r: None),
    ("qty / 0", lambda r: None),
    ("qty * 2", lambda r: r["qty"] * 2),
    ("qty / 2", lambda r: r["qty"] / 2),
    ("price - discount", lambda r: r["price"] - r["discount"]),
    ("price % 1", lambda r: r["price"] % 1),
    ("qty + 1e3", lambda r: r["qty"] + 1000.0),
])
def test_arithmetic_types(tmp_path, session_warehouse_url, measure, reference):
    extra = f"      probe: {{sum: \"{measure}\"}}"
    project = _project(tmp_path, session_warehouse_url, "arith", extra=extra)
    try:
        got = project.query(["probe"]).to_pylist()[0]["probe"]
    finally:
        project.close()
    values = [reference(dict(zip(("day", "status", "price", "discount", "qty", "f"), r))) for r in ROWS]
    values = [v for v in values if v is not None]
    expected = sum(values) if values else (0.0 if "/" in measure else 0)
    if isinstance(expected, float):
        assert got == pytest.approx(expected)
    else:
        assert got == expected and type(got) is type(expected)


def test_formula_types(tmp_path, session_warehouse_url):
    extra = ("metrics:\n  product: {formula: amount * amount}\n  ratio: {formula: amount / rows}\n"
             "  tax: {formula: amount * 0.18}\n  net: {formula: amount - plain}\n")
    project = _project(tmp_path, session_warehouse_url, "formula", extra=extra)
    try:
        got = project.query(["product", "ratio", "tax", "net"]).to_pylist()[0]
    finally:
        project.close()
    amount = sum(r[2] for r in ROWS)
    with localcontext(Context(prec=80)):
        assert got["product"] == amount * amount and got["product"].as_tuple().exponent == -4
    assert got["tax"] == amount * D("0.18")
    assert got["net"] == 0
    assert got["ratio"] == pytest.approx(float(amount) / len(ROWS))


# -- item 16: exact decimals out of the CLI ----------------------------------

def _cli(tmp_path, *args):
    """`tally query` in its own process (the CLI leaves its warehouse connection to the process's end)."""
    result = subprocess.run([sys.executable, "-c", "from tally.cli import app; app()", "-p", str(tmp_path),
                             "query", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_json_csv_and_table_keep_every_digit(tmp_path, session_warehouse_url):
    data = pa.table({"day": pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 2)], pa.date32()), "status": ["a", "b"],
                     "price": pa.array([D("90071992547409.93"), D("1234567890123456.78")], pa.decimal128(18, 2)),
                     "discount": pa.array([D("1"), D("1")], pa.decimal128(15, 2)),
                     "qty": pa.array([1, 1], pa.int32()), "f": [1.0, 1.0]})
    # the session's DuckDB file is held open by other fixtures of this process: the CLI gets its own
    url = f"duckdb:///{tmp_path}/cli.duckdb" if session_warehouse_url.startswith("duckdb") else session_warehouse_url
    _project(tmp_path, url, "digits", data=data).close()
    rows = json.loads(_cli(tmp_path, "plain", "--by", "status", "--format", "json"), parse_float=Decimal)
    assert {r["status"]: r["plain"] for r in rows} == {"a": D("90071992547409.93"), "b": D("1234567890123456.78")}
    text = _cli(tmp_path, "plain", "--by", "status", "--format", "csv")
    assert {r["status"]: r["plain"] for r in csv.DictReader(io.StringIO(text))} == {
        "a": "90071992547409.93", "b": "1234567890123456.78"}
    table = _cli(tmp_path, "amount", "--by", "status")
    assert "90,071,992,547,409.93" in table and "1,234,567,890,123,456.78" in table
    assert re.search(r"1,234,567,890,123,456\.78", table)


def test_errors_are_tally_errors():
    assert issubclass(ExpressionError, TallyError)
