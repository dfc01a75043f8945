"""Issue 14: expression types, depth and `--where` messages, on every warehouse.

Type clashes (`status > 1`, `sum: status`, ...) are refused with one line naming the expression and
where it is: tally.yml's file:line when the config declares the column types, or when a query first
reads a table typed only in the warehouse; `--where` for the command line. Expected row counts are
computed here from the rows written, not by Tally.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pyarrow as pa
import pytest

import tally
from tally.errors import ConfigError, ExpressionError, QueryError, TallyError
from tests.cli_helpers import invoke, refused

ROWS = [  # day, shop, status, amount, enabled
    (dt.date(2026, 1, 1), 1, "paid", "10.50", True),
    (dt.date(2026, 1, 1), 2, "shipped", "20.25", False),
    (dt.date(2026, 1, 2), 3, "paid", "1.00", True),
    (dt.date(2026, 1, 3), 7, "cancelled", "4.00", False),
]
TABLE = "j1_typed"

PROJECT = """\
name: typed
warehouse: "{url}"
models:
  orders:
    table: {table}
    time: day
    dimensions: {{shop: shop, status: status, enabled: enabled}}
    measures:
      rows: {{count: "*"}}
      revenue: {{sum: amount}}
{extra}
"""


def _data() -> pa.Table:
    from decimal import Decimal

    return pa.table({
        "day": pa.array([r[0] for r in ROWS], pa.date32()),
        "shop": pa.array([r[1] for r in ROWS], pa.int64()),
        "status": pa.array([r[2] for r in ROWS], pa.string()),
        "amount": pa.array([Decimal(r[3]) for r in ROWS], pa.decimal128(12, 2)),
        "enabled": pa.array([r[4] for r in ROWS], pa.bool_()),
    })


def _write(directory, url, extra="", table=TABLE):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tally.yml").write_text(PROJECT.format(url=url, table=table, extra=extra))
    return directory


@pytest.fixture(scope="module")
def typed(tmp_path_factory, session_warehouse_url):
    """A project whose table is typed only in the warehouse (no `columns:` declared anywhere)."""
    directory = tmp_path_factory.mktemp("typed")
    # the session's DuckDB file is held open by other fixtures: this project gets its own
    url = f"duckdb:///{directory}/w.duckdb" if session_warehouse_url.startswith("duckdb") else session_warehouse_url
    _write(directory, url)
    project = tally.Project.load(directory)
    project.warehouse.write_table(TABLE, _data())
    project.close()
    return directory, url


def _rows(predicate) -> int:
    return sum(1 for r in ROWS if predicate(dict(zip(("day", "shop", "status", "amount", "enabled"), r))))


DEEP = "(" * 60 + "shop = 1" + ")" * 60

REFUSED_WHERE = [   # --where text, what the one line says (shop: int64, status: text, enabled: boolean)
    ("status > 1", "--where: status > 1 compares text (status) with a whole number (1) "
                   "(text values take single quotes: '1')"),
    ("lower(shop) = 'a'", "--where: LOWER(shop): lower() takes text, and shop is a whole number"),
    ("not status", "--where: NOT status: NOT takes a true/false condition, and status is text"),
    ("shop % status = 1", "% takes numbers, and status is text"),
    ("'1'", "--where: '1' is text, not a true/false condition"),
    ("shop", "--where: shop is a whole number, not a true/false condition"),
    ("enabled and status", "AND takes true/false conditions, and status is text"),
    ("shop in (1, 'a')", "compares a whole number (shop) with text ('a')"),
    ("coalesce(status, shop) = 1", "the arguments of coalesce() mix text (status) and a whole number (shop)"),
    ("case when shop = 1 then 'a' else 2 end = 'a'", "the results of CASE mix text ('a') and a whole number (2)"),
    ("status like 1", "LIKE matches text, and 1 is a whole number"),
    ("round(shop, 'a') = 1", "round(): the number of places must be a whole number"),
    ("round(shop, shop) = 1", "round(): the number of places must be a whole number"),
    ("shop = 9223372036854775808", "past the largest whole number (64 bits: 9223372036854775807)"),
    ("shop = 99999999999999999999999999999999999999999", "past the largest whole number"),
    ("status = 'paid", "--where: cannot parse \"status = 'paid\": a ' quote is not closed"),
    ("status = 'paid' or status = \"paid", "a \" quote is not closed"),
    ("-> 1e5", "--where: cannot parse '-> 1e5': it is not a valid expression"),
    (DEEP, "the expression nests deeper than 32 levels"),
    ("not " * 300 + "enabled", "the expression nests deeper than 32 levels"),
    (" + ".join(["shop"] * 40) + " > 1", "the expression nests deeper than 32 levels"),
    ("status = \"US\"", "--where: \"US\" in double quotes is a name, and no dimension is called so; "
                        "text values take single quotes: 'US'"),
    ("amount > 100", "--where: 'amount' is a column of table 'j1_typed' but not a dimension of model 'orders'; "
                     "to filter or group by it, declare it in tally.yml: "
                     "`models: {orders: {dimensions: {amount: amount}}}`"),
]


@pytest.mark.parametrize("where, message", REFUSED_WHERE, ids=[w[:30] for w, _ in REFUSED_WHERE])
def test_where_is_refused_with_one_line(typed, where, message):
    directory, _ = typed
    line = refused("-p", directory, "query", "rows", "--where", where)
    assert message in line
    with _opened(directory) as project:
        with pytest.raises((ExpressionError, QueryError)) as caught:
            project.query(["rows"], where=where)
        assert message in caught.value.message


class _opened:
    """A project closed after use."""

    def __init__(self, directory):
        self.project = tally.Project.load(directory)

    def __enter__(self):
        return self.project

    def __exit__(self, *exc):
        self.project.close()


ANSWERED_WHERE = [   # --where text, the rows it keeps (computed in Python)
    ("status = 'paid'", lambda r: r["status"] == "paid"),
    ("shop % 0 = 1", lambda r: False),                      # x % 0 is NULL: no row matches
    ("enabled", lambda r: r["enabled"]),
    ("not enabled", lambda r: not r["enabled"]),
    ("enabled = true and shop > 1", lambda r: r["enabled"] and r["shop"] > 1),
    ("shop between 2 and 7 and status in ('paid', 'cancelled')",
     lambda r: 2 <= r["shop"] <= 7 and r["status"] in ("paid", "cancelled")),
    ("coalesce(shop, 0) + 1.5 > 3", lambda r: r["shop"] + 1.5 > 3),
    ("length(upper(status)) = 4 or status is null", lambda r: len(r["status"]) == 4),
    (" or ".join(f"shop = {i}" for i in range(500)), lambda r: r["shop"] < 500),
    (" and ".join(f"shop <> {i}" for i in range(2, 502)), lambda r: not 2 <= r["shop"] < 502),
    ("(" * 30 + "shop = 1" + ")" * 30, lambda r: r["shop"] == 1),
    (" + ".join(["shop"] * 31) + " > 60", lambda r: r["shop"] * 31 > 60),
]


@pytest.mark.parametrize("where, keep", ANSWERED_WHERE, ids=[w[:30] for w, _ in ANSWERED_WHERE])
def test_valid_where_still_answers(typed, where, keep):
    directory, _ = typed
    with _opened(directory) as project:
        assert project.query(["rows"], where=where).to_pylist() == [{"rows": _rows(keep)}]


def test_long_or_chain_answers_on_the_command_line(typed):
    directory, _ = typed
    where = " or ".join(f"status = 'x{i}'" for i in range(499)) + " or status = 'paid'"
    result = invoke("-p", directory, "query", "rows", "--where", where, "--format", "json")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert json.loads(result.stdout) == [{"rows": _rows(lambda r: r["status"] == "paid")}]


# -- tables typed only in the warehouse: refused before the query compiles, at tally.yml's line ------

WAREHOUSE_TYPED = [   # measure line, what the one line says
    ("bad: {sum: status}", "measure 'bad' of model 'orders': sum takes numbers, and 'status' is text"),
    ("bad: {avg: enabled = 1 or status}", "OR takes true/false conditions, and status is text"),
    ("bad: {count: \"*\", where: amount}", "amount is a number, not a true/false condition"),
    ("bad: {count: \"*\", where: status > 1}", "status > 1 compares text (status) with a whole number (1)"),
    ("bad: {max: lower(shop)}", "lower() takes text, and shop is a whole number"),
]


@pytest.mark.parametrize("measure, message", WAREHOUSE_TYPED, ids=[m for m, _ in WAREHOUSE_TYPED])
def test_warehouse_typed_measure_is_refused_at_its_line(typed, tmp_path, measure, message):
    _, url = typed
    directory = _write(tmp_path / "p", url, extra=f"      {measure}")
    line = refused("-p", directory, "query", "bad")
    assert "tally.yml:11: " in line and message in line, line
    with _opened(directory) as project:
        with pytest.raises(ConfigError) as caught:
            project.query(["bad"])
        assert caught.value.line == 11 and message in caught.value.message
        assert project.query(["rows"]).to_pylist() == [{"rows": len(ROWS)}]   # other metrics still answer


def test_warehouse_typed_rollup_filter_is_refused_at_its_line(typed, tmp_path):
    _, url = typed
    rollup = "rollups:\n  r: {metrics: [rows], by: [status], where: \"shop = 'a'\", table: j1_rollup}"
    directory = _write(tmp_path / "p", url, extra=rollup)
    message = "tally.yml:12: rollup 'r' (where: \"shop = 'a'\"): shop = 'a' compares a whole number (shop) with text ('a')"
    assert message in refused("-p", directory, "rollup", "build", "r")
    assert message in refused("-p", directory, "query", "rows")


# -- declared column types: refused when the config loads ----------------------------------------

DECLARED = """\
name: declared
warehouse: "duckdb:///w.duckdb"
seeds:
  orders: {{path: orders.csv, columns: {{day: date, shop: int64, status: string, amount: "decimal(12,2)"}}}}
models:
  orders:
    table: orders
    time: day
    dimensions: {{shop: shop, status: status}}
    measures:
      rows: {{count: "*"}}
      {measure}
{extra}"""

DECLARED_CASES = [   # tally.yml lines, the line refused, what it says
    ("bad: {sum: status}", "", 12, "measure 'bad' of model 'orders': sum takes numbers, and 'status' is text"),
    ("bad: {sum: shop, where: not status}", "", 12, "NOT takes a true/false condition, and status is text"),
    ("bad: {sum: shop % status}", "", 12, "% takes numbers, and status is text"),
    ("bad: {count: \"*\", where: \"'1'\"}", "", 12, "'1' is text, not a true/false condition"),
    ("bad: {sum: \"round(shop, 'a')\"}", "", 12, "round(): the number of places must be a whole number"),
    ("bad: {sum: \"round(shop, shop)\"}", "", 12, "round(): the number of places must be a whole number"),
    ("bad: {sum: shop + 99999999999999999999}", "", 12, "past the largest whole number"),
    ("top: {max: status}", "metrics:\n  plus: top + rows\n", 14, "metric 'plus' ('top + rows'): top + rows: + takes "
                                                                 "numbers, and top is text"),
    ("n: {sum: shop}", "rollups:\n  r: {metrics: [n], by: [shop], where: \"shop = 'a'\"}\n", 14,
     "rollup 'r' (where: \"shop = 'a'\"): shop = 'a' compares a whole number (shop) with text ('a')"),
    (f"bad: {{sum: shop, where: \"{DEEP}\"}}", "", 12, "nests deeper than 32 levels"),
]


@pytest.mark.parametrize("measure, extra, line, message", DECLARED_CASES, ids=[c[0][:30] for c in DECLARED_CASES])
def test_declared_types_are_checked_when_the_config_loads(tmp_path, measure, extra, line, message):
    (tmp_path / "tally.yml").write_text(DECLARED.format(measure=measure, extra=extra))
    with pytest.raises(ConfigError) as caught:
        tally.Project.load(tmp_path)
    assert caught.value.line == line and message in caught.value.message, caught.value.message
    result = refused("-p", tmp_path, "metrics")
    assert f"tally.yml:{line}:" in result and message in result


def test_declared_types_accept_valid_expressions(tmp_path):
    measure = ("ok: {sum: \"case when status = 'paid' then shop * 1.5 else 0 end\", "
               "where: \"day >= '2026-01-01' and shop between 1 and 9 and lower(status) like 'p%'\"}")
    extra = ("metrics:\n  share: ok / rows\n"
             "rollups:\n  r: {metrics: [ok], by: [status], where: \"status in ('paid', 'shipped') or shop > 2\"}\n")
    (tmp_path / "tally.yml").write_text(DECLARED.format(measure=measure, extra=extra))
    tally.Project.load(tmp_path).close()


# -- item 4: --order names a metric or dimension the query does not hold ---------------------------

@pytest.mark.parametrize("order, message", [
    ("-revenue", "cannot order by 'revenue': it is not in the query; add it to the metrics "
                 "(`tally query rows revenue --order ...`)"),
    ("status", "cannot order by 'status': the query is not broken down by it; add `--by status`"),
])
def test_order_by_something_not_queried_says_to_add_it(typed, order, message):
    directory, _ = typed
    assert message in refused("-p", directory, "query", "rows", "--by", "shop", "--order", order)


def test_by_a_column_that_is_no_dimension_says_how_to_declare_it(typed):
    directory, _ = typed
    line = refused("-p", directory, "query", "rows", "--by", "amount")
    assert ("--by: 'amount' is a column of table 'j1_typed' but not a dimension of model 'orders'; to filter or "
            "group by it, declare it in tally.yml: `models: {orders: {dimensions: {amount: amount}}}`") in line


def test_errors_are_tally_errors():
    assert issubclass(ExpressionError, TallyError) and issubclass(ConfigError, TallyError)
