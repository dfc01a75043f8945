"""Compiled queries with parameters: times and dates written inline on DuckDB (its plans then skip
blocks outside a range), text left a parameter, the same rows either way; text parameters on
every warehouse through the state reads."""

from __future__ import annotations

import datetime as dt
import threading

import ibis
import pyarrow as pa

from tally.warehouse.base import UTC_TS, Warehouse
from tally.warehouse.internal import ensure_internal_tables, read_state, write_state

UTC = dt.timezone.utc


def events(tmp_path) -> Warehouse:
    warehouse = Warehouse("duckdb:///w.duckdb", tmp_path)
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    warehouse.write_table("events", pa.table({
        "at": pa.array([start + dt.timedelta(hours=h) for h in range(72)], pa.timestamp("us", tz="UTC")),
        "kind": pa.array(["a", "b", "c"] * 24),
        "day": pa.array([(start + dt.timedelta(hours=h)).date() for h in range(72)], pa.date32()),
    }))
    return warehouse


def test_times_and_dates_are_inlined_and_text_stays_a_parameter(tmp_path):
    warehouse = events(tmp_path)
    table = warehouse.table("events")
    lo, hi, kind, day = ibis.param(UTC_TS), ibis.param(UTC_TS), ibis.param("string"), ibis.param("date")
    expr = table.filter(table.at >= lo, table.at < hi, table.kind == kind, table.day != day).count()
    query = warehouse.compile(expr, {"lo": lo, "hi": hi, "kind": kind, "day": day})
    values = {"lo": dt.datetime(2026, 1, 1, 12, tzinfo=UTC), "hi": dt.datetime(2026, 1, 2, 12, tzinfo=UTC),
              "kind": "b", "day": dt.date(2026, 1, 2)}
    sql, left = query.inline(values)
    assert "CAST('2026-01-01T12:00:00+00:00' AS TIMESTAMPTZ)" in sql and "CAST('2026-01-02' AS DATE)" in sql
    assert left == {"kind": "b"} and "$kind" in sql and "$lo" not in sql
    # 12:00 on Jan 1 .. 12:00 on Jan 2, every third hour, not on Jan 2: hours 13..23 of Jan 1 -> 4 rows
    assert warehouse.run(query, values).column(0).to_pylist() == [4]
    # a naive time counts as UTC, as DuckDB's UTC session reads a bound one
    naive = dict(values, lo=values["lo"].replace(tzinfo=None), hi=values["hi"].replace(tzinfo=None))
    assert warehouse.run(query, naive).column(0).to_pylist() == [4]
    # the SQL as compiled (placeholders) gives the same answer when DuckDB binds the values itself
    assert warehouse.cursor().execute(query.sql, values).fetchone()[0] == 4


def test_text_that_looks_like_a_token_is_not_replaced(tmp_path):
    warehouse = events(tmp_path)
    table = warehouse.table("events")
    lo = ibis.param(UTC_TS)
    expr = table.filter(table.at >= lo, table.kind != "$lo").count()
    query = warehouse.compile(expr, {"lo": lo})
    sql, _ = query.inline({"lo": dt.datetime(2026, 1, 3, tzinfo=UTC)})
    assert "'$lo'" in sql
    assert warehouse.run(query, {"lo": dt.datetime(2026, 1, 3, tzinfo=UTC)}).column(0).to_pylist() == [24]


def test_state_reads_take_the_key_as_a_parameter_and_threads_may_share_the_warehouse(tmp_path):
    warehouse = events(tmp_path)
    ensure_internal_tables(warehouse)
    with warehouse.transaction() as tx:
        for i in range(5):
            write_state(tx, f"key'{i}", f"value {i}")
    assert read_state(warehouse, "key'3") == "value 3" and read_state(warehouse, "nothing") is None
    errors, seen = [], {}

    def reader(i: int) -> None:
        try:
            for _ in range(20):
                warehouse.forget("events")
                assert warehouse.has_table("events")
                assert list(warehouse.table("events").columns) == ["at", "kind", "day"]
                seen[i] = read_state(warehouse, f"key'{i}")
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and seen == {i: f"value {i}" for i in range(5)}


def test_has_table_sees_the_tables_and_views_of_the_current_schema(tmp_path):
    warehouse = Warehouse("duckdb:///w.duckdb", tmp_path)
    con = warehouse.cursor()
    con.execute("CREATE TABLE kept (x INT)")
    con.execute("CREATE VIEW shown AS SELECT 1 AS x")
    con.execute("CREATE SCHEMA other")
    con.execute("CREATE TABLE other.elsewhere (x INT)")
    found = {name: warehouse.has_table(name) for name in ["kept", "shown", "elsewhere", "missing", "KEPT"]}
    listed = set(warehouse.backend.list_tables())
    assert found == {name: name in listed for name in found}   # as Ibis's list_tables says
    assert found == {"kept": True, "shown": True, "elsewhere": False, "missing": False, "KEPT": False}
    warehouse.close()


def test_reading_the_warehouse_leaves_no_transaction_open(tmp_path):
    """A result left unread holds its transaction: a later write then can't be checkpointed."""
    warehouse = Warehouse("duckdb:///w.duckdb", tmp_path)
    con = warehouse.cursor()
    con.execute("CREATE TABLE kept (x INT)")
    con.execute("INSERT INTO kept VALUES (1)")
    assert warehouse.has_table("kept")
    with warehouse.memory_budget("build_memory_limit"):
        pass
    con.execute("UPDATE kept SET x = 2")
    con.execute("CHECKPOINT")   # refused while another connection's transaction is open
    warehouse.close()
