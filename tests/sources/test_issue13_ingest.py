"""Issue 13, ingestion: duplicates keep the later row, reserved column names, out-of-range values,
a load that rejects every row of a replaced table, and an empty time value."""

from __future__ import annotations

import pytest

from tests.sources import dirty
from tests.sources.test_ingest_guarantees import opened, run, warehouse_url, write_lines  # noqa: F401

LINE = "{id},paid,5,{amount},2024-01-05,{stamp},{note}"


def line(id=1, amount="1.00", stamp="2024-01-05 10:00:00", note=None):
    return LINE.format(id=id, amount=amount, stamp=stamp, note=note or f"r{id}")


def test_item5_the_later_file_wins_over_a_row_read_as_text(tmp_path, warehouse_url):
    """Two files, same key and cursor: the earlier row needed the text fallback ("$1,010.00") and was kept."""
    source = {**dirty.SOURCE, "cursor": None}
    write_lines(tmp_path, [line(amount='"$1,010.00"', note="first")], "a.csv")
    write_lines(tmp_path, [line(amount="5.00", note="second")], "b.csv")
    with opened(tmp_path, {"orders": source}, warehouse_url) as project:
        result = run(project)
        assert (result.rows_loaded, result.rows_rejected) == (1, 1)
        assert dirty.loaded_orders(project)[1]["note"] == "second"
        rejects = dirty.table_rows(project, "_tally_rejects")
        assert [(r["rule"], r["row_number"]) for r in rejects] == [(dirty.RULE_DUPLICATE, 2)]


def test_item5_rejects_name_their_line_in_each_file(tmp_path, warehouse_url):
    write_lines(tmp_path, [line(1), line(2, amount="abc")], "a.csv")
    write_lines(tmp_path, [line(3), line(4, amount='"1,000.00"'), line(5), line(6).replace(",paid,", ",lost,")],
                "b.csv")
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        run(project)
        rows = dirty.table_rows(project, "_tally_rejects")
        assert sorted((dirty.tag(r["raw"]), r["row_number"]) for r in rows) == [(2, 3), (6, 5)]
        assert sorted(dirty.loaded_orders(project)) == [1, 3, 4, 5]


@pytest.mark.parametrize("column", ["_tally_rule", "_tally_row", "_tally_skip"])
def test_item6_a_source_column_named_like_tallys_own_is_refused(tmp_path, warehouse_url, column):
    path = tmp_path / "data" / "orders.csv"
    path.parent.mkdir(parents=True)
    path.write_text(f"order_id,{column}\n1,x\n2,\n", encoding="utf-8")
    source = {"kind": "csv", "path": "data/*.csv", "table": "orders", "primary_key": ["order_id"],
              "checks": [{"min": {"order_id": 2}}]}
    with opened(tmp_path, {"orders": source}, warehouse_url) as project:
        result = run(project)
        assert result.status == "failed" and column in result.error and "reserved" in result.error
        assert not project.warehouse.has_table("orders")


OUT_OF_RANGE = [("updated_at", v) for v in ("0000-01-01 10:00:00", "10000-01-01 10:00:00", "infinity",
                                             "-infinity", "epoch", "2024-01-05 10:00:00-99:00",
                                             "2024-01-05 24:00:00", "2024-01-05T10:00:00+15:00")]
OUT_OF_RANGE += [("ordered_on", v) for v in ("0000-01-01", "10000-01-01", "infinity", "epoch")]
OUT_OF_RANGE += [("amount", v) for v in ("1.005", "2.001")] + [("quantity", v) for v in ("1e3", "2E1")]
OUT_OF_RANGE += [("ratio", v) for v in ("1e309", "NaN", "Infinity", "-inf")]


@pytest.mark.parametrize("column, text", OUT_OF_RANGE)
def test_item18_out_of_range_values_are_rejected_with_their_rule(tmp_path, warehouse_url, column, text):
    source = {**dirty.SOURCE, "columns": {**dirty.SOURCE["columns"], "ratio": "float64"}}
    values = {"order_id": "1", "status": "paid", "quantity": "3", "amount": "9.99", "ordered_on": "2024-01-05",
              "updated_at": "2024-01-05 10:00:00", "note": "r1", "ratio": "0.5", column: text}
    good = dict(values, order_id="2", **{column: {"updated_at": "2024-01-05 10:00:00+14:00",
                                                  "ordered_on": "0001-02-01", "amount": "1.500",
                                                  "quantity": "7", "ratio": "1e300"}[column]})
    path = tmp_path / "data" / "orders.csv"
    path.parent.mkdir(parents=True)
    path.write_text(",".join(values) + "\n" + ",".join(values.values()) + "\n" + ",".join(good.values()) + "\n",
                    encoding="utf-8")
    with opened(tmp_path, {"orders": source}, warehouse_url) as project:
        result = run(project)
        assert (result.rows_loaded, result.rows_rejected) == (1, 1), result
        assert list(dirty.loaded_orders(project)) == [2]
        [reject] = dirty.table_rows(project, "_tally_rejects")
        assert reject["rule"].startswith(f"type: {column} "), reject["rule"]


def test_item8_a_replaced_table_is_not_emptied_when_every_row_is_rejected(tmp_path, warehouse_url):
    source = {**dirty.SOURCE, "primary_key": [], "cursor": None}
    write_lines(tmp_path, [line(1), line(2)])
    with opened(tmp_path, {"orders": source}, warehouse_url) as project:
        assert run(project).rows_loaded == 2
        write_lines(tmp_path, [line(1, amount="abc"), line(2, amount="x")])
        result = run(project)
        assert result.status == "failed" and "rejected" in result.error, result
        assert sorted(dirty.loaded_orders(project)) == [1, 2]
        statuses = [r["status"] for r in dirty.table_rows(project, "_tally_loads")]
        assert sorted(statuses) == ["failed", "ok"]


def test_an_empty_time_value_does_not_crash_the_rollup_change_scan(tmp_path, warehouse_url):
    """Fixed: engine.changes._count_texts called None.isoformat() for the rows without a time."""
    import yaml

    import tally.rollups
    from tally import Project

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "events.csv").write_text(
        "event_id,at,updated_at\n1,2024-01-05 10:00:00,2024-01-05 10:00:00\n2,,2024-01-05 11:00:00\n"
        "3,2024-01-06 10:00:00,2024-01-06 10:00:00\n", encoding="utf-8")
    config = {"name": "t", "warehouse": warehouse_url, "timezone": "UTC",
              "sources": {"events": {"kind": "csv", "path": "data/*.csv", "table": "events",
                                     "primary_key": ["event_id"], "cursor": "updated_at",
                                     "columns": {"event_id": "int64", "at": "timestamp", "updated_at": "timestamp"}}},
              "models": {"events": {"table": "events", "time": "at", "updated": "updated_at",
                                    "primary_key": ["event_id"], "measures": {"events": {"count": "*"}}}},
              "rollups": {"daily": {"table": "daily_events", "metrics": ["events"], "grains": ["day"]}}}
    (tmp_path / "tally.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = Project.load(tmp_path, warehouse=warehouse_url)
    try:
        assert run(project).rows_loaded == 3
        tally.rollups.build(project)
        tally.rollups.build(project)     # the second build scans the days for changes
        from tally.engine import changes
        assert changes.day_counts(project.engine, "events", "UTC") == {"2024-01-05": "1", "2024-01-06": "1"}
    finally:
        project.close()
