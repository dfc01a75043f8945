"""The SQL period start rollups use (`warehouse.sqltext.period_start_sql`, run where rollups run it)
and the warehouse's own week buckets (a week query) both equal `engine.timegrid.truncate`, for
every day of several years (leap days, year ends) and week starts, on every warehouse."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow as pa
import pytest

import tally
from tally.engine.timegrid import Grain, truncate
from tally.warehouse.sqltext import period_start_sql, scratch_connection

FIRST, DAYS = dt.date(2023, 11, 20), 1200     # into 2027: 2024's leap day, three year ends
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _days() -> list[dt.date]:
    return [FIRST + dt.timedelta(days=i) for i in range(DAYS)]


def _start(day: dt.date, grain: Grain, week_start: int) -> dt.date:
    return truncate(dt.datetime.combine(day, dt.time()), grain, week_start).date()


def _project(tmp_path, url: str, week_start: str, table: str):
    (tmp_path / "tally.yml").write_text(
        f"name: weeks\ntimezone: UTC\nweek_start: {week_start}\nwarehouse: \"{url}\"\n"
        f"models:\n  m:\n    table: {table}\n    time: t\n    measures:\n      rows: {{count: '*'}}\n")
    return tally.Project.load(tmp_path)


def test_period_start_sql_equals_timegrid(tmp_path, session_warehouse_url):
    """Rollups turn day rows into week..year starts in a scratch DuckDB connection (the warehouse's
    own database on DuckDB, an in-memory one beside PostgreSQL and MariaDB)."""
    project = _project(tmp_path, session_warehouse_url, "monday", "k1_week_days")
    days = _days()
    con = scratch_connection(project.warehouse)
    try:
        con.register("days", pa.table({"period": pa.array(days, pa.date32())}))
        for week_start in range(7):
            for grain in (Grain.week, Grain.month, Grain.quarter, Grain.year):
                if grain is not Grain.week and week_start:
                    continue
                got = con.execute(f"SELECT period, {period_start_sql(grain, week_start)} FROM days "
                                  f"ORDER BY period").fetchall()
                wrong = [(d, s) for d, s in got if s != _start(d, grain, week_start)]
                assert not wrong, (grain, week_start, wrong[:3])
    finally:
        con.close()
        project.close()


@pytest.mark.parametrize("week_start", ["monday", "wednesday", "sunday"])
def test_warehouse_week_buckets_equal_timegrid(tmp_path, session_warehouse_url, week_start):
    """The warehouse's own week start (a live query by week) for a row on every day."""
    table = f"k1_week_rows_{week_start}"
    project = _project(tmp_path, session_warehouse_url, week_start, table)
    days = _days()
    try:
        project.warehouse.write_table(table, pa.table({"t": pa.array(days, pa.date32())}))
        rows = project.query(["rows"], grain="week", start=FIRST.isoformat(),
                             end=(FIRST + dt.timedelta(days=DAYS)).isoformat()).to_pylist()
    finally:
        project.close()
    index = WEEKDAYS.index(week_start)
    expected = Counter(_start(d, Grain.week, index) for d in days)
    got = {r["period"]: r["rows"] for r in rows if r["rows"]}
    assert got == dict(expected)
