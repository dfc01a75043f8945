"""The stats example end to end: its generator, the four category rollups with growth, profiles, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from tally import Project
from tally.demo import _generator, prepare
from tally.errors import ConfigError
from tally.app import read_project
from tally.rollups import build, verify
from tests.cli_helpers import invoke

ROWS, SEED = 3000, 11
MONEY = pa.decimal128(12, 2)
TS = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    "platform_users": [("user_id", pa.int64()), ("signed_up_at", TS), ("plan", pa.string()),
                       ("country", pa.string()), ("updated_at", TS)],
    "user_activity": [("activity_id", pa.int64()), ("user_id", pa.int64()), ("occurred_at", TS),
                      ("kind", pa.string()), ("updated_at", TS)],
    "businesses": [("business_id", pa.int64()), ("created_at", TS), ("category", pa.string()), ("updated_at", TS)],
    "transactions": [("txn_id", pa.int64()), ("business_id", pa.int64()), ("user_id", pa.int64()),
                     ("amount", MONEY), ("fee", MONEY), ("status", pa.string()), ("created_at", TS),
                     ("updated_at", TS)],
    "system_events": [("event_id", pa.int64()), ("occurred_at", TS), ("service", pa.string()),
                      ("kind", pa.string()), ("latency_ms", pa.int32()), ("updated_at", TS)],
}
CATEGORIES = {"user_statistics": ("user", "statistics_user"),
              "business_statistics": ("business", "statistics_business"),
              "system_statistics": ("system", "statistics_system"),
              "financial_statistics": ("financial", "statistics_financial")}


@pytest.fixture(scope="module")
def tables():
    return _generator("stats").generate(ROWS, seed=SEED)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The example in its development warehouse, every rollup built in full."""
    directory = tmp_path_factory.mktemp("stats")
    project, counts = prepare("stats", directory, ROWS, seed=SEED)
    results = build(project)
    yield directory, project, counts, results
    project.close()


@pytest.fixture(scope="module")
def stored(built):
    """Each rollup table's rows, by rollup name."""
    _, project, _, _ = built
    warehouse = project.warehouse
    return {name: warehouse.run(warehouse.compile(warehouse.table(table))).to_pylist()
            for name, (_, table) in CATEGORIES.items()}


def _raw(tables, sql: str) -> list[tuple]:
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con.execute(sql).fetchall()


# -- the generator -------------------------------------------------------------------------------


def test_generator_writes_the_five_tables_with_their_types(tables):
    assert {name: [(f.name, f.type) for f in t.schema] for name, t in tables.items()} == SCHEMAS
    assert tables["transactions"].num_rows == ROWS
    assert tables["user_activity"].num_rows == tables["system_events"].num_rows == 2 * ROWS


def test_generator_is_seeded(tables):
    generate = _generator("stats").generate
    assert all(generate(ROWS, seed=SEED)[name].equals(t) for name, t in tables.items())
    assert not generate(ROWS, seed=SEED + 1)["transactions"].equals(tables["transactions"])


def test_generator_keeps_times_in_range_and_references_in_order(tables):
    (lo, hi), = _raw(tables, """
        SELECT min(t), max(t) FROM (
          SELECT signed_up_at AS t FROM platform_users UNION ALL SELECT updated_at FROM platform_users
          UNION ALL SELECT occurred_at FROM user_activity UNION ALL SELECT updated_at FROM user_activity
          UNION ALL SELECT created_at FROM businesses UNION ALL SELECT updated_at FROM transactions
          UNION ALL SELECT occurred_at FROM system_events)""")
    utc = dt.timezone.utc
    assert dt.datetime(2024, 1, 1, tzinfo=utc) <= lo and hi < dt.datetime(2025, 1, 1, tzinfo=utc)
    (early,), = _raw(tables, """
        SELECT (SELECT count(*) FROM transactions t JOIN platform_users u USING (user_id)
                WHERE u.signed_up_at > t.created_at)
             + (SELECT count(*) FROM transactions t JOIN businesses b USING (business_id)
                WHERE b.created_at > t.created_at)
             + (SELECT count(*) FROM user_activity a JOIN platform_users u USING (user_id)
                WHERE u.signed_up_at > a.occurred_at)
             + (SELECT count(*) FROM transactions WHERE updated_at < created_at)""")
    assert early == 0


def test_generator_data_grows_and_has_weekly_seasonality_and_incidents(tables):
    first, last = _raw(tables, """
        SELECT count(*) FROM transactions WHERE month(created_at) IN (1, 2)
        UNION ALL SELECT count(*) FROM transactions WHERE month(created_at) IN (10, 11)""")
    assert last[0] > 1.5 * first[0]
    weekday, weekend = _raw(tables, """
        SELECT count(*) / 5 FROM businesses WHERE isodow(created_at) <= 5
        UNION ALL SELECT count(*) / 2 FROM businesses WHERE isodow(created_at) > 5""")
    assert weekday[0] > 2 * weekend[0]
    # incidents: at a volume where one shows in a day's numbers, the worst day fails far more than a usual one
    events = {"system_events": _generator("stats").generate(50_000, seed=SEED)["system_events"]}
    (median, worst), = _raw(events, """
        SELECT median(rate), max(rate) FROM (SELECT avg((kind = 'error')::int) AS rate FROM system_events
                                             GROUP BY CAST(occurred_at AS DATE))""")
    assert median < 0.01 and worst > 6 * median


# -- the rollups ---------------------------------------------------------------------------------


def test_each_category_has_its_rollup_table_and_grains(built, stored):
    _, project, counts, results = built
    assert counts == {name: rows for name, rows in zip(SCHEMAS, (ROWS // 4, 2 * ROWS, ROWS // 40, ROWS, 2 * ROWS))}
    assert {r.rollup: (r.table, r.mode) for r in results} == {n: (t, "full") for n, (_, t) in CATEGORIES.items()}
    for name, (category, table) in CATEGORIES.items():
        rollup = project.config.rollups[name]
        assert (rollup.category, rollup.table, rollup.growth) == (category, table, True)
        grains = {}
        for row in stored[name]:
            grains[row["grain"]] = grains.get(row["grain"], 0) + 1
        assert grains == {"day": 366, "week": 53, "month": 12}, name


def test_stored_statistics_equal_live_ones(built):
    """`tally verify` on an engine that can't answer from the rollups themselves, so live is really live."""
    directory, _, _, _ = built
    live = Project(read_project(directory), use_rollups=False)
    try:
        assert verify(live) == {name: [] for name in CATEGORIES}
    finally:
        live.close()


@pytest.mark.parametrize("name", CATEGORIES)
def test_growth_columns_compare_with_the_previous_stored_period(stored, name):
    rows = stored[name]
    metrics = [c.removesuffix("_previous") for c in rows[0] if c.endswith("_previous")]
    assert len(metrics) >= 3
    by_end = {(r["grain"], r["period_end"]): r for r in rows}
    checked = 0
    for row in rows:
        previous = by_end.get((row["grain"], row["period_start"]))
        for metric in metrics:
            value, before, pct = row[metric], row[f"{metric}_previous"], row[f"{metric}_change_pct"]
            if previous is None:
                assert before is None and pct is None, (row["period_start"], metric)
                continue
            assert before == previous[metric], (row["grain"], row["period_start"], metric)
            if before is None or value is None or before == 0:
                assert pct is None
            else:
                assert math.isclose(pct, (float(value) - float(before)) / float(before) * 100, rel_tol=1e-9,
                                    abs_tol=1e-9), (row["grain"], row["period_start"], metric)
                checked += 1
    assert checked > 300


def test_financial_months_match_the_raw_payments(tables, stored):
    raw = {month.date() if isinstance(month, dt.datetime) else month: (revenue, fees, count)
           for month, revenue, fees, count in _raw(tables, """
        SELECT CAST(date_trunc('month', created_at AT TIME ZONE 'UTC') AS DATE), sum(amount), sum(fee), count(*)
        FROM transactions WHERE status = 'completed' GROUP BY 1""")}
    months = {r["period_start"]: r for r in stored["financial_statistics"] if r["grain"] == "month"}
    assert set(months) == set(raw)
    for month, (revenue, fees, count) in raw.items():
        row = months[month]
        assert (row["revenue"], row["fees"], row["transactions"]) == (revenue, fees, count)
        assert row["net_revenue"] == revenue - fees
        assert math.isclose(row["avg_transaction_value"], float(revenue) / count, rel_tol=1e-9)


def test_user_and_system_weeks_match_the_raw_rows(tables, stored):
    users = {r["period_start"]: r for r in stored["user_statistics"] if r["grain"] == "week"}
    for week, active, activities in _raw(tables, """
            SELECT CAST(date_trunc('week', occurred_at AT TIME ZONE 'UTC') AS DATE),
                   count(DISTINCT user_id), count(*) FROM user_activity GROUP BY 1"""):
        assert (users[week]["active_users"], users[week]["activities"]) == (active, activities)
    system = {r["period_start"]: r for r in stored["system_statistics"] if r["grain"] == "week"}
    for week, requests, errors, latency in _raw(tables, """
            SELECT CAST(date_trunc('week', occurred_at AT TIME ZONE 'UTC') AS DATE), count(*),
                   count(*) FILTER (kind = 'error'), avg(latency_ms) FROM system_events GROUP BY 1"""):
        row = system[week]
        assert (row["requests"], row["errors"]) == (requests, errors)
        assert math.isclose(row["error_rate"], errors / requests, rel_tol=1e-9)
        assert math.isclose(row["avg_latency_ms"], latency, rel_tol=1e-9)  # a week's average, not of days


# -- profiles and the CLI ------------------------------------------------------------------------


def test_profiles_select_the_warehouse(built, monkeypatch):
    directory, _, _, _ = built
    assert Project.load(directory, profile="development").warehouse_url == "duckdb:///stats-development.duckdb"
    assert Project.load(directory, profile="staging").warehouse_url == "duckdb:///stats-staging.duckdb"
    for name in ("STATS_DB_USER", "STATS_DB_PASSWORD", "STATS_DB_HOST", "STATS_DB_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="STATS_DB_USER is not set"):
        Project.load(directory, profile="production")
    monkeypatch.setenv("STATS_DB_USER", "stats")
    monkeypatch.setenv("STATS_DB_PASSWORD", "s3cret")
    assert Project.load(directory, profile="production").warehouse_url == "mysql://stats:s3cret@localhost/statistics"
    monkeypatch.setenv("STATS_DB_HOST", "db.internal:3307")
    monkeypatch.setenv("STATS_DB_NAME", "stats_prod")
    assert Project.load(directory, profile="production").warehouse_url == \
        "mysql://stats:s3cret@db.internal:3307/stats_prod"


def test_cli_rebuilds_one_category_for_a_range_in_the_staging_warehouse(tmp_path, stored):
    staging = "duckdb:///stats-staging.duckdb"
    project, _ = prepare("stats", tmp_path, ROWS, seed=SEED, warehouse=staging)
    project.close()
    result = invoke("-p", tmp_path, "--profile", "staging", "rollup", "build", "--category", "financial",
                    "--from", "2024-01-01", "--to", "2024-02-01", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [(r["rollup"], r["table"], r["mode"]) for r in summary] == \
        [("financial_statistics", "statistics_financial", "range")]
    # days of January and the day after (its growth moves), 5 weeks + 1, January and February
    assert (summary[0]["periods"], summary[0]["rows"]) == (32 + 6 + 2, 40)
    assert not (tmp_path / "stats-development.duckdb").exists()

    staged = Project.load(tmp_path, profile="staging")
    try:
        warehouse = staged.warehouse
        assert not warehouse.has_table("statistics_user")
        rows = warehouse.run(warehouse.compile(warehouse.table("statistics_financial"))).to_pylist()
    finally:
        staged.close()
    full = {(r["grain"], r["period_start"]): r for r in stored["financial_statistics"]}
    january = [r for r in rows if r["period_start"] < dt.date(2024, 2, 1)]
    assert len(january) == 31 + 5 + 1
    for row in january:  # same seed, same numbers as the development warehouse's full build
        expected = full[(row["grain"], row["period_start"])]
        assert all(row[k] == expected[k] for k in ("revenue", "fees", "net_revenue", "transactions")), row
        if row["period_start"] != dt.date(2024, 1, 1):  # the first period has nothing before it either way
            assert row["revenue_previous"] == expected["revenue_previous"]


def test_cli_takes_the_profile_after_the_command_as_the_issue_writes_it(built):
    """`tally` (cli.main) hoists global options written after the command, as the issue writes them."""
    from tally.cli import hoist_global_options

    directory, _, _, _ = built
    result = invoke(*hoist_global_options([
        "-p", str(directory), "rollup", "build", "--category", "financial", "--from", "2024-01-01", "--to",
        "2024-02-01", "--profile", "development"]))
    assert result.exit_code == 0, result.output


def test_cli_names_an_unknown_category(built):
    directory, _, _, _ = built
    result = invoke("-p", directory, "rollup", "build", "--category", "marketing")
    assert result.exit_code == 2
    assert "no rollup in category 'marketing'" in result.output
    assert "financial" in result.output and "Traceback" not in result.output


def test_money_columns_stay_decimal(stored):
    row = next(r for r in stored["financial_statistics"]
               if r["grain"] == "month" and r["period_start"] == dt.date(2024, 2, 1))
    assert isinstance(row["revenue"], Decimal) and isinstance(row["revenue_previous"], Decimal)


# -- known gaps in src/rollups (strict xfail: they pass, and must be unmarked, once fixed) -------------


@pytest.fixture
def january_only(tmp_path):
    """A new warehouse whose financial rollup was built for January only (`--from/--to`), then closed."""
    project, _ = prepare("stats", tmp_path, ROWS, seed=SEED)
    build(project, category="financial", start="2024-01-01", end="2024-02-01")
    project.close()
    return tmp_path


def test_cli_range_build_in_a_new_process_computes_from_the_source(january_only):
    result = invoke("-p", january_only, "rollup", "build", "--category", "financial",
                    "--from", "2024-03-01", "--to", "2024-04-01", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["rows"] == 40


def test_a_range_build_does_not_pass_for_a_full_one(january_only):
    project = Project.load(january_only)
    try:
        march = project.query(["revenue"], grain="month", start="2024-03-01", end="2024-04-01").to_pylist()
        assert march[0]["revenue"] > 0
        assert [r.mode for r in build(project, category="financial")] != ["unchanged"]
    finally:
        project.close()
