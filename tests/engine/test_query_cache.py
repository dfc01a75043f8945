"""Answers replayed from `.tally/cache/queries` equal the engine's, and go stale never."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tally.engine import replay
from tally.app import Project
from tests.servers import warehouse_url_for

ROWS = 1500
QUERIES = [
    {"metrics": ["revenue"], "grain": "month", "start": "2025-01-01", "end": "2026-01-01"},   # a rollup answers
    {"metrics": ["revenue", "orders", "aov"], "by": ["shop"], "grain": "week"},       # open range, formula
    {"metrics": ["revenue", "margin"], "compare": "previous_period", "start": "2025-03-01", "end": "2025-04-01"},
    {"metrics": ["net_revenue", "profit"], "by": ["shop"], "order_by": ["-net_revenue"], "limit": 2},  # top-N: live
    {"metrics": ["revenue", "units"], "where": "status <> 'refunded'", "grain": "day", "by": ["shop"],
     "start": "2025-02-01", "end": "2025-02-15"},
    {"metrics": ["profit", "customers"], "grain": "month", "compare": "previous_year", "start": "2025-06-01",
     "end": "2025-09-01", "timezone": "America/New_York"},                          # another zone: live
    {"metrics": ["stock", "revenue"], "by": ["sku"], "order_by": ["-revenue"], "limit": 3},   # a snapshot model
]


@pytest.fixture
def example(request, warehouse_kind, tmp_path):
    """A fresh ecommerce project with built rollups on its own database: (folder, warehouse URL)."""
    from tally.demo import prepare
    from tally.rollups import build

    with warehouse_url_for(warehouse_kind, request, "qcache") as url:
        folder = tmp_path / "project"
        project, _ = prepare("ecommerce", folder, ROWS, seed=5, warehouse=url)
        build(project)
        project.close()
        yield folder, url


def answer(folder: Path, url: str, query: dict, cache: bool = True):
    """A query through a new Project (a new process's first query), and whether it was replayed."""
    project = Project.load(folder, warehouse=url)
    project.query_cache = cache
    try:
        args = dict(query)
        result = project.query_result(args.pop("metrics"), **args)
        return result, "engine" not in project.__dict__
    finally:
        project.close()


def same(a, b) -> bool:
    return a.table.equals(b.table) and a.meta == b.meta


def entries(folder: Path) -> list[Path]:
    return sorted((folder / replay.CACHE_DIR).glob("*.bin"))


def test_cached_answers_equal_uncached(example):
    folder, url = example
    sources = set()
    for query in QUERIES:
        cold, replayed_cold = answer(folder, url, query)
        warm, replayed_warm = answer(folder, url, query)
        plain, _ = answer(folder, url, query, cache=False)
        assert not replayed_cold and replayed_warm, query
        assert same(warm, plain) and same(cold, plain), query
        assert warm.table.num_rows > 0, query
        sources.add(plain.meta["source"].split(":")[0])
    assert sources == {"live", "rollup"}
    assert len(entries(folder)) == len(QUERIES)


def test_changed_config_answers_anew(example):
    folder, url = example
    query = QUERIES[1]
    before, _ = answer(folder, url, query)
    config = folder / "tally.yml"
    config.write_text(config.read_text().replace("revenue: {formula: gross_sales - discounts",
                                                 "revenue: {formula: gross_sales", 1))
    after, replayed = answer(folder, url, query)
    plain, _ = answer(folder, url, query, cache=False)
    assert not replayed and same(after, plain)
    assert not after.table.equals(before.table)


def test_new_rows_and_a_rollup_build_answer_anew(example):
    from tally.rollups import build

    folder, url = example
    query = QUERIES[0]
    before, _ = answer(folder, url, query)
    assert before.meta["source"].startswith("rollup:")
    project = Project.load(folder, warehouse=url)
    first = project.warehouse.raw_fetch(
        "SELECT min(order_id) AS o FROM orders WHERE status <> 'cancelled' AND ordered_at >= "
        "TIMESTAMP '2025-03-01 00:00:00' AND ordered_at < TIMESTAMP '2025-11-01 00:00:00'").to_pylist()[0]["o"]
    # a changed row (its change time later than the rollup's watermark): the rollup is stale now
    project.warehouse.execute_sql(f"UPDATE orders SET unit_price = unit_price + 1000, "
                                  f"updated_at = TIMESTAMP '2099-01-01 00:00:00' WHERE order_id = {first!r}")
    if project.warehouse.dialect.name == "mysql":
        project.warehouse.backend.con.commit()
    project.close()
    changed, replayed = answer(folder, url, query)
    plain, _ = answer(folder, url, query, cache=False)
    assert not replayed and same(changed, plain)
    assert plain.meta["source"] == "live" and not changed.table.equals(before.table)
    assert answer(folder, url, query)[1]   # recorded again: replayed now

    project = Project.load(folder, warehouse=url)
    build(project)
    project.close()
    rebuilt, replayed = answer(folder, url, query)
    plain, _ = answer(folder, url, query, cache=False)
    assert not replayed and same(rebuilt, plain)
    assert plain.meta["source"].startswith("rollup:") and rebuilt.table.equals(changed.table)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_cache_file_is_ignored_and_rewritten(example, damage):
    folder, url = example
    query = QUERIES[2]
    answer(folder, url, query)
    [path] = entries(folder)
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "flip": data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:],
               "empty": b"", "garbage": b"\x00" * 64 + b"not a cache file"}[damage]
    path.write_bytes(damaged)
    result, replayed = answer(folder, url, query)
    plain, _ = answer(folder, url, query, cache=False)
    assert not replayed and same(result, plain)
    replay.read_entry(path)   # whole again
    assert answer(folder, url, query)[1]


SCRIPT = """
import json, sys
from tally.app import Project
project = Project.load(sys.argv[1], warehouse=sys.argv[2])
result = project.query_result(["revenue", "orders"], by=["shop"], grain="month")
print(json.dumps({"replayed": "engine" not in project.__dict__, "rows": result.table.num_rows,
                  "loaded": sorted(m for m in ("ibis", "pandas") if m in sys.modules)}))
"""


def test_replay_does_not_load_ibis(example):
    folder, url = example
    runs = [json.loads(subprocess.run([sys.executable, "-c", SCRIPT, str(folder), url], check=True,
                                      capture_output=True, text=True).stdout) for _ in range(2)]
    assert not runs[0]["replayed"] and "ibis" in runs[0]["loaded"]
    assert runs[1] == {"replayed": True, "rows": runs[0]["rows"], "loaded": []}


CLI_SCRIPT = """
import sys
from tally.cli import main
sys.argv = ["tally", "-p", sys.argv[1], "query", "revenue", "--grain", "month", "--format", "json"]
try:
    main()
finally:
    print("ibis" in sys.modules, file=sys.stderr)
"""


def test_cli_query_replays_without_ibis(tmp_path):
    from tally.demo import prepare

    project, _ = prepare("ecommerce", tmp_path, ROWS, seed=5)
    project.close()
    runs = [subprocess.run([sys.executable, "-c", CLI_SCRIPT, str(tmp_path)], capture_output=True, text=True)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0]
    assert runs[0].stdout == runs[1].stdout and json.loads(runs[1].stdout)
    assert [r.stderr.strip() for r in runs] == ["True", "False"]


def test_footer_meta_from_the_driver_equals_the_warehouses(example):
    """After a replay the footer's reads of Tally's tables go through the driver alone: same meta."""
    from tally.delivery import provenance

    folder, url = example
    query = dict(QUERIES[1])
    metrics = query.pop("metrics")
    answer(folder, url, {"metrics": metrics, **query})
    described = []
    for cache in (True, False):
        project = Project.load(folder, warehouse=url)
        project.query_cache = cache
        try:
            result = project.query_result(metrics, **query)
            assert ("warehouse" in project.__dict__) is not cache   # replayed: the warehouse never opened
            described.append(provenance.describe(project, metrics, result))
            assert ("warehouse" in project.__dict__) is not cache
        finally:
            project.close()
    assert described[0] == described[1] and described[0]["models"]["orders"]["max_time"]


def test_changed_table_schema_answers_anew(example):
    folder, url = example
    query = QUERIES[3]
    answer(folder, url, query)
    project = Project.load(folder, warehouse=url)
    project.warehouse.execute_sql("ALTER TABLE order_refunds ADD COLUMN note VARCHAR(10)")
    project.close()
    result, replayed = answer(folder, url, query)
    plain, _ = answer(folder, url, query, cache=False)
    assert not replayed and same(result, plain)


def test_the_driver_connection_only_reads(example):
    """A replay runs SQL from a file in the project folder: its connection refuses writes."""
    from tally.warehouse.rawsql import RawConnection

    folder, url = example
    con = RawConnection(url, folder)
    try:
        with pytest.raises(Exception):
            con.execute("CREATE TABLE forged (x INTEGER)")
    finally:
        con.close()
    project = Project.load(folder, warehouse=url)
    try:
        assert not project.warehouse.has_table("forged")
    finally:
        project.close()


def test_only_a_projects_first_query_replays(example):
    """A long-lived process (tally serve) answers from the engine after its first query: a replay
    opens a fresh driver connection and re-reads every recorded read, each time."""
    folder, url = example
    query = dict(QUERIES[0])
    answer(folder, url, query)   # recorded
    project = Project.load(folder, warehouse=url)
    try:
        args = dict(query)
        metrics = args.pop("metrics")
        first = project.query_result(metrics, **args)
        assert "engine" not in project.__dict__   # replayed, without Ibis
        second = project.query_result(metrics, **args)
        assert "engine" in project.__dict__ and same(first, second)
    finally:
        project.close()
