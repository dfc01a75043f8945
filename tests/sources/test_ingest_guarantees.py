"""Ingestion's promise on dirty data: every row read is loaded or rejected with a reason, a load is
all-or-nothing, and running it again changes nothing.

Property tests draw dirty CSV orders (`tests.sources.dirty`) and check, on DuckDB, that the counts
add up, that the loaded table is what a plain-Python reading of the same rules keeps, that a second
run leaves every table as the first left it, and that loading in two halves equals loading whole.
The same properties then run with fixed seeds on PostgreSQL and MariaDB. The remaining tests pin
`--dry-run`, `--full-refresh`, missing and new columns, failed runs and the watermark.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlglot.expressions as sge
from hypothesis import HealthCheck, given, settings

from tally import Project
from tally.sources import ingest
from tests.sources import dirty

UTC = dt.timezone.utc
PROPERTIES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IN_MEMORY = "duckdb:///:memory:"     # the property runs: same code path as a DuckDB file, less I/O
STATE_TABLES = ("orders", "_tally_rejects", "_tally_state")
KINDS = ["duckdb", pytest.param("postgres", marks=pytest.mark.servers),
         pytest.param("mariadb", marks=pytest.mark.servers)]
SEEDS = [11, 12, 13]      # 11: a rerun that once failed on DuckDB (a stored malformed line cast to JSON)


@pytest.fixture(params=KINDS)
def warehouse_url(request, tmp_path) -> str:
    """A fresh warehouse of each kind (a new database on the test servers)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    return request.getfixturevalue(f"{request.param}_db_url")


@contextmanager
def opened(root: Path, sources: dict | None = None, warehouse: str | None = None):
    """A project over `root` (written first when sources are given), closed afterwards."""
    if sources is not None:
        dirty.write_project(root, sources)
    project = Project.load(root, warehouse=warehouse)
    try:
        yield project
    finally:
        project.close()


@contextmanager
def scratch():
    with tempfile.TemporaryDirectory(prefix="tally-dirty-") as name:
        yield Path(name)


def run(project, *names: str, **options):
    """Ingest and check the invariant every run must keep, whatever it did."""
    results = ingest(project, list(names) or None, **options)
    for result in results:
        assert result.rows_read == result.rows_loaded + result.rows_rejected, result
        assert min(result.rows_read, result.rows_loaded, result.rows_rejected, result.rows_skipped) >= 0
    return results[0] if len(results) == 1 else results


def loads(project) -> list[dict]:
    """The _tally_loads records, oldest first."""
    rows = project.warehouse.backend.table("_tally_loads").to_pyarrow().to_pylist()
    return sorted(rows, key=lambda row: row["started_at"])


def everything(project) -> dict:
    """What a rerun must leave as it was: the tables there are, and the content of the ones a load writes."""
    found = {"tables": sorted(project.warehouse.backend.list_tables()), **dirty.snapshot(project, *STATE_TABLES)}
    # the table's load stamp (what the load wrote, for rollups) moves when a cursor re-reads rows at
    # the watermark: the table itself is as it was
    found["_tally_state"] = [r for r in found["_tally_state"] if "'table:" not in r]
    return found


def watermark(rows: dict[int, dict]) -> str | None:
    latest = max((row["updated_at"] for row in rows.values()), default=None)
    return latest.astimezone(UTC).isoformat() if latest else None


def assert_matches_reference(project, result, batch: dirty.Batch) -> None:
    """The load kept what the rules keep, typed the same, and recorded why it left the rest."""
    expected = dirty.reference(batch.records)
    assert (result.status, result.error) == ("ok", None)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected, result.rows_skipped) == (
        expected.read, len(expected.rows), len(expected.rejects), 0)
    assert dirty.loaded_orders(project) == expected.rows
    assert dirty.stored_rejects(project, load_id=result.load_id) == expected.rejects
    assert result.watermark_after == watermark(expected.rows)
    assert [(r["status"], r["rows_read"], r["rows_loaded"], r["rows_rejected"], r["watermark_after"])
            for r in loads(project) if r["load_id"] == result.load_id] == [
        ("ok", result.rows_read, result.rows_loaded, result.rows_rejected, result.watermark_after)]


def check_twice(root: Path, batch: dirty.Batch, url: str | None = None) -> None:
    batch.write(root / "data" / "orders.csv")
    with opened(root, {"orders": dirty.SOURCE}, url) as project:
        first = run(project)
        assert_matches_reference(project, first, batch)
        once = everything(project)
        second = run(project)
        assert second.status == "ok"
        assert everything(project) == once
        # the second run reads only rows at or past the watermark (and rows without a valid cursor)
        again = dirty.reference(batch.records, dt.datetime.fromisoformat(first.watermark_after)
                                if first.watermark_after else None)
        assert (second.rows_read, second.rows_skipped, second.rows_rejected) == (
            again.read, again.skipped, len(again.rejects))
        assert second.watermark_before == second.watermark_after == first.watermark_after


def check_halves(root: Path, batch: dirty.Batch, url: str | None = None) -> None:
    """Two sources over the same records: one file loaded once, and the records split in two files."""
    earlier, later = batch.halves()
    batch.write(root / "whole" / "orders.csv")
    batch.write(root / "halves" / "a.csv", earlier)
    sources = {"whole": {**dirty.SOURCE, "path": "whole/*.csv", "table": "orders_whole"},
               "halves": {**dirty.SOURCE, "path": "halves/*.csv", "table": "orders_halves"}}
    with opened(root, sources, url) as project:
        assert run(project, "whole").status == "ok"
        assert run(project, "halves").status == "ok"
        batch.write(root / "halves" / "b.csv", later)      # the second file arrives later
        second = run(project, "halves")
        assert second.status == "ok"
        whole = dirty.loaded_orders(project, "orders_whole")
        assert dirty.loaded_orders(project, "orders_halves") == whole
        assert whole == dirty.reference(batch.records).rows
        assert second.watermark_after == watermark(whole)


# -- properties on DuckDB -----------------------------------------------------------------------------

@settings(PROPERTIES, max_examples=20)
@given(batch=dirty.batches())
def test_rows_read_are_loaded_or_rejected_as_the_reference_rules_say(batch):
    with scratch() as root:
        batch.write(root / "data" / "orders.csv")
        with opened(root, {"orders": dirty.SOURCE}, IN_MEMORY) as project:
            assert_matches_reference(project, run(project), batch)


@PROPERTIES
@given(batch=dirty.batches())
def test_loading_the_same_input_twice_changes_nothing(batch):
    with scratch() as root:
        check_twice(root, batch, IN_MEMORY)


@PROPERTIES
@given(batch=dirty.batches())
def test_loading_in_two_halves_equals_loading_whole(batch):
    with scratch() as root:
        check_halves(root, batch, IN_MEMORY)


# -- the same properties on every warehouse, with fixed seeds -------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_rerun_changes_nothing_on_every_warehouse(tmp_path, warehouse_url, seed):
    check_twice(tmp_path, dirty.generate(random.Random(seed), 80), warehouse_url)


@pytest.mark.parametrize("seed", SEEDS)
def test_halves_equal_whole_on_every_warehouse(tmp_path, warehouse_url, seed):
    check_halves(tmp_path, dirty.generate(random.Random(seed), 80), warehouse_url)


# -- options and failures -----------------------------------------------------------------------------

def orders_file(root: Path, rows: list[tuple], name: str = "orders.csv", header=dirty.HEADER) -> Path:
    """A clean orders file from (order_id, quantity, updated_at) rows, with the columns of `header`."""
    lines = [",".join(header)]
    for order_id, quantity, stamp in rows:
        values = {"order_id": order_id, "status": "paid", "quantity": quantity, "amount": "10.00",
                  "ordered_on": "2024-01-05", "updated_at": stamp, "note": f"r{order_id}", "coupon": f"C{order_id}"}
        lines.append(",".join(str(values[column]) for column in header))
    path = root / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FIRST = [(1, 2, "2024-01-01 10:00:00"), (2, 0, "2024-01-02 10:00:00"), (3, 5, "2024-01-03 10:00:00")]
LATER = [(3, 7, "2024-01-04 10:00:00"), (4, 1, "2024-01-05 10:00:00")]
W_FIRST, W_LATER = "2024-01-03T10:00:00+00:00", "2024-01-05T10:00:00+00:00"
ALL_TABLES = ("orders", "_tally_rejects", "_tally_state", "_tally_loads")
WITHOUT = {column: [c for c in dirty.HEADER if c != column] for column in dirty.HEADER}


def quantities(project) -> dict[int, int]:
    return {key: row["quantity"] for key, row in dirty.loaded_orders(project).items()}


def test_dry_run_reads_and_checks_but_writes_nothing(tmp_path, warehouse_url):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        dry = run(project, dry_run=True)
        assert (dry.status, dry.dry_run, dry.rows_read, dry.rows_loaded, dry.rows_rejected) == ("ok", True, 3, 2, 1)
        assert dry.watermark_after == W_FIRST
        assert not project.warehouse.has_table("orders")
        assert all(dirty.table_rows(project, t) == [] for t in ALL_TABLES)
        run(project)
        before = dirty.snapshot(project, *ALL_TABLES)
        orders_file(tmp_path, LATER, "later.csv")
        dry = run(project, dry_run=True)
        assert (dry.rows_loaded, dry.watermark_before, dry.watermark_after) == (2, W_FIRST, W_LATER)
        assert dirty.snapshot(project, *ALL_TABLES) == before


def test_dry_run_on_an_empty_warehouse_creates_no_table(tmp_path):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}) as project:
        run(project, dry_run=True)
        assert project.warehouse.backend.list_tables() == []


def test_full_refresh_replaces_the_table_and_resets_the_watermark(tmp_path, warehouse_url):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        run(project)
        assert quantities(project) == {1: 2, 3: 5}
        # the file is replaced by an older extract: incremental runs skip it, a full refresh takes it whole
        (tmp_path / "data" / "orders.csv").unlink()
        orders_file(tmp_path, [(5, 1, "2023-12-01 00:00:00"), (3, 9, "2023-12-02 00:00:00")])
        skipped = run(project)
        assert (skipped.rows_read, skipped.rows_skipped) == (0, 2)
        assert quantities(project) == {1: 2, 3: 5}
        full = run(project, full_refresh=True)
        assert (full.status, full.rows_read, full.rows_loaded, full.rows_skipped) == ("ok", 2, 2, 0)
        assert quantities(project) == {5: 1, 3: 9}
        assert dirty.table_rows(project, "_tally_state")[0]["value"] == full.watermark_after == \
            "2023-12-02T00:00:00+00:00"


def test_missing_declared_column_fails_the_run_and_loads_nothing(tmp_path, warehouse_url):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        run(project)
        before = dirty.snapshot(project, *STATE_TABLES)
        orders_file(tmp_path, LATER, "later.csv", header=WITHOUT["quantity"])
        (tmp_path / "data" / "orders.csv").unlink()
        failed = run(project)
        assert failed.status == "failed" and failed.rows_loaded == 0
        assert "declared column(s) missing from the source: quantity" in failed.error
        assert "nothing was loaded" in failed.error
        assert dirty.snapshot(project, *STATE_TABLES) == before
        assert [(r["status"], r["error"], r["watermark_before"]) for r in loads(project)] == [
            ("ok", None, None), ("failed", failed.error, W_FIRST)]


def test_new_column_is_reported_and_ignored_by_default_and_fails_when_told(tmp_path, warehouse_url):
    orders_file(tmp_path, FIRST, header=[*dirty.HEADER[:3], "coupon", *dirty.HEADER[3:]])
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        result = run(project)
        assert (result.status, result.new_columns, result.rows_loaded) == ("ok", ["coupon"], 2)
        assert "coupon" not in dirty.table_rows(project, "orders")[0]
    with opened(tmp_path, {"orders": {**dirty.SOURCE, "on_new_columns": "fail"}}, warehouse_url) as project:
        before = dirty.snapshot(project, *STATE_TABLES)
        failed = run(project, full_refresh=True)
        assert failed.status == "failed" and "new column(s) not declared: coupon" in failed.error
        assert dirty.snapshot(project, *STATE_TABLES) == before
        assert [(r["status"], r["error"]) for r in loads(project)] == [("ok", None), ("failed", failed.error)]


def break_at_merge(project) -> None:
    """Give the orders table a CHECK of its own, so the warehouse refuses a row in the middle of the merge."""
    warehouse = project.warehouse
    if warehouse.dialect.name != "duckdb":
        table = sge.to_identifier("orders", quoted=True).sql(warehouse.dialect.name)
        warehouse.execute_sql(f"ALTER TABLE {table} ADD CONSTRAINT q_max CHECK (quantity < 100)")
        return
    for statement in [   # DuckDB has no ADD CONSTRAINT: the table is made again with it
            'CREATE TABLE "orders_checked" (order_id BIGINT, status VARCHAR, quantity INTEGER CHECK (quantity < 100), '
            'amount DECIMAL(12,2), ordered_on DATE, updated_at TIMESTAMPTZ, note VARCHAR)',
            'INSERT INTO "orders_checked" SELECT * FROM "orders"',
            'DROP TABLE "orders"',
            'ALTER TABLE "orders_checked" RENAME TO "orders"']:
        warehouse.execute_sql(statement)
    warehouse.forget("orders")


def test_a_failure_inside_the_load_transaction_rolls_all_of_it_back(tmp_path, warehouse_url):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        run(project)
        break_at_merge(project)
        before = dirty.snapshot(project, *STATE_TABLES)
        orders_file(tmp_path, [(6, 0, "2024-02-01 00:00:00"), (3, 1, "2024-02-01 12:00:00"),
                               (7, 500, "2024-02-02 00:00:00"), (8, 1, "2024-02-03 00:00:00")], "later.csv")
        failed = run(project)
        assert failed.status == "failed" and re.search(r"check|q_max", failed.error, re.IGNORECASE), failed.error
        # no row (not even the update of order 3), no reject and no watermark of the failed run stayed
        assert dirty.snapshot(project, *STATE_TABLES) == before
        assert [(r["status"], r["watermark_before"], r["error"]) for r in loads(project)] == [
            ("ok", None, None), ("failed", W_FIRST, failed.error)]
        assert quantities(project) == {1: 2, 3: 5}


def test_a_run_that_failed_in_the_merge_reports_nothing_loaded(tmp_path):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}) as project:
        run(project)
        break_at_merge(project)
        orders_file(tmp_path, [(7, 500, "2024-02-02 00:00:00"), (8, 1, "2024-02-03 00:00:00")], "later.csv")
        failed = run(project)
        record = loads(project)[-1]
        assert failed.status == record["status"] == "failed"
        assert (failed.rows_loaded, failed.watermark_after) == (0, W_FIRST)
        assert (record["rows_loaded"], record["watermark_after"]) == (0, W_FIRST)


def test_watermark_moves_only_when_a_load_commits(tmp_path, warehouse_url):
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        def state():
            return [r["value"] for r in dirty.table_rows(project, "_tally_state") if not r["key"].startswith("table:")]

        first = run(project)
        assert (first.watermark_before, first.watermark_after, state()) == (None, W_FIRST, [W_FIRST])
        orders_file(tmp_path, LATER, "later.csv")
        assert run(project, dry_run=True).watermark_after == W_LATER and state() == [W_FIRST]
        broken = orders_file(tmp_path, [(9, 1, "2024-03-01 00:00:00")], "broken.csv", header=WITHOUT["note"])
        failed = run(project)
        assert (failed.status, failed.watermark_before, state()) == ("failed", W_FIRST, [W_FIRST])
        broken.unlink()
        done = run(project)
        assert (done.status, done.watermark_before, done.watermark_after, state()) == (
            "ok", W_FIRST, W_LATER, [W_LATER])
        assert [(r["status"], r["watermark_before"], r["watermark_after"]) for r in loads(project)] == [
            ("ok", None, W_FIRST), ("failed", W_FIRST, W_FIRST), ("ok", W_FIRST, W_LATER)]  # a failure moves nothing


# -- bugs these tests found, each a minimal reproduction: regressions when fixed, strict xfails when open --

def xfail_on(*kinds: str, reason: str) -> list:
    """The warehouse kinds, with the named ones expected to fail for `reason`."""
    marks = {"postgres": [pytest.mark.servers], "mariadb": [pytest.mark.servers]}
    known = pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)
    return [pytest.param(kind, marks=marks.get(kind, []) + ([known] if kind in kinds else []))
            for kind in ("duckdb", "postgres", "mariadb")]


def url_of(request, kind: str, tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path}/warehouse.duckdb" if kind == "duckdb" else request.getfixturevalue(f"{kind}_db_url")


def write_lines(root: Path, lines: list[str], name: str = "orders.csv") -> None:
    path = root / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(dirty.HEADER), *lines]) + "\n", encoding="utf-8")


def test_cursor_without_primary_key_appends_and_a_rerun_changes_nothing(tmp_path, warehouse_url):
    """Fixed in a769ff6: such a source deleted its whole table on every run, so a rerun emptied it."""
    source = {**dirty.SOURCE, "primary_key": []}
    orders_file(tmp_path, FIRST)
    with opened(tmp_path, {"orders": source}, warehouse_url) as project:
        assert run(project).rows_loaded == 2
        again = run(project)
        assert (again.rows_read, again.rows_skipped) == (0, 3)     # without a key, the watermark row too
        assert quantities(project) == {1: 2, 3: 5}
        orders_file(tmp_path, [(4, 1, "2024-01-05 10:00:00")], "later.csv")
        assert run(project).rows_loaded == 1
        assert quantities(project) == {1: 2, 3: 5, 4: 1}


def test_later_loads_still_work_after_a_malformed_line_was_rejected(tmp_path, warehouse_url):
    """Fixed in 5e4683f: on DuckDB the second load failed (stored raws were compared as JSON, and a
    malformed line's text is not JSON)."""
    write_lines(tmp_path, ["1,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r1",
                           "2,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r2,extra",
                           "3,lost,5,1.00,2024-01-05,2024-01-05 10:00:00,r3"])
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        assert dirty.stored_rejects(project, load_id=run(project).load_id) == [
            (dirty.RULE_STATUS, 3), (dirty.RULE_MALFORMED, 2)]
        write_lines(tmp_path, [f"{i},paid,0,1.00,2024-01-06,2024-01-06 10:00:00,r{i}" for i in range(10, 70)],
                    "later.csv")
        later = run(project)
        # 60 new rejects, and the malformed line and order 3 (at the watermark) read again
        assert (later.status, later.error, later.rows_rejected) == ("ok", None, 62)
        assert len(dirty.stored_rejects(project)) == 62


def test_a_tie_on_the_cursor_keeps_the_later_row_of_the_file(tmp_path):
    """Fixed (issue 13 item 5): rows re-read as text ("1,000.00") were ranked after all the others."""
    write_lines(tmp_path, ['1,paid,1,"1,000.00",2024-01-05,2024-01-05 10:00:00,first',
                           "1,paid,1,5.00,2024-01-05,2024-01-05 10:00:00,second"])
    with opened(tmp_path, {"orders": dirty.SOURCE}) as project:
        run(project)
        assert dirty.loaded_orders(project)[1]["note"] == "second"


def one_order(root: Path, column: str, text: str) -> None:
    values = {"order_id": "1", "status": "paid", "quantity": "3", "amount": "9.99", "ordered_on": "2024-01-05",
              "updated_at": "2024-01-05 10:00:00", "note": "r1", column: f'"{text}"'}
    write_lines(root, [",".join(values[c] for c in dirty.HEADER)])


@pytest.mark.parametrize("column, text", [(c, t) for c, texts in dirty.COMMA_NUMBERS.items() for t in texts])
def test_a_comma_that_does_not_group_thousands_makes_no_number(tmp_path, column, text):
    """Fixed in a769ff6: any comma was dropped, so "12,34" loaded as 1234.00."""
    one_order(tmp_path, column, text)
    with opened(tmp_path, {"orders": dirty.SOURCE}) as project:
        run(project)
        assert dirty.loaded_orders(project) == {}
        assert dirty.stored_rejects(project) == [(f"type: {column} is not a valid {dirty.KINDS[column]}", 1)]


@pytest.mark.parametrize("column, text", [(c, t) for c, texts in dirty.MISREAD_NUMBERS.items() for t in texts])
def test_a_number_that_does_not_fit_its_column_is_rejected_not_rounded(tmp_path, column, text):
    one_order(tmp_path, column, text)
    with opened(tmp_path, {"orders": dirty.SOURCE}) as project:
        result = run(project)
        assert dirty.loaded_orders(project) == {}, f"{text!r} loaded as {dirty.loaded_orders(project)[1][column]!r}"
        assert result.rows_rejected == 1


def test_a_reject_names_its_line_in_the_file(tmp_path):
    """Fixed (issue 13 item 5): a row that broke a check was numbered by its position among the parsed rows."""
    write_lines(tmp_path, ["1,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r1",       # line 2
                           "2,paid,0,1.00,2024-01-05,2024-01-05 10:00:00,r2",       # line 3: min
                           "3,paid,5,abc,2024-01-05,2024-01-05 10:00:00,r3",        # line 4: type
                           "4,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r4,x"])    # line 5: malformed
    with opened(tmp_path, {"orders": dirty.SOURCE}) as project:
        run(project)
        numbers = {dirty.tag(r["raw"]): r["row_number"] for r in dirty.table_rows(project, "_tally_rejects")}
        assert numbers == {2: 3, 3: 4, 4: 5}


@pytest.mark.parametrize("kind", xfail_on(reason=""))
def test_identical_rows_breaking_a_check_are_each_recorded(request, tmp_path, kind):
    """Fixed: PostgreSQL and MariaDB stored one of identical rejected rows (collapsed by (raw, rule))."""
    write_lines(tmp_path, ["1,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r1"]
                + ["2,paid,0,1.00,2024-01-05,2024-01-05 10:00:00,r2"] * 2)
    with opened(tmp_path, {"orders": dirty.SOURCE}, url_of(request, kind, tmp_path)) as project:
        result = run(project)
        assert result.rows_rejected == len(dirty.stored_rejects(project, load_id=result.load_id)) == 2


@pytest.mark.parametrize("kind", xfail_on(reason=""))
def test_identical_malformed_lines_are_each_recorded(request, tmp_path, kind):
    """Fixed: identical malformed lines were counted in rows_rejected but stored once; read again,
    neither is recorded a second time."""
    write_lines(tmp_path, ["1,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r1"]
                + ["2,paid,5,1.00,2024-01-05,2024-01-05 10:00:00,r2,extra"] * 2)
    with opened(tmp_path, {"orders": dirty.SOURCE}, url_of(request, kind, tmp_path)) as project:
        result = run(project)
        assert result.rows_rejected == len(dirty.stored_rejects(project, load_id=result.load_id)) == 2
        again = run(project, full_refresh=True)
        assert again.rows_rejected == 2 and dirty.stored_rejects(project, load_id=again.load_id) == []
        assert len(dirty.stored_rejects(project)) == 2
