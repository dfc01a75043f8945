"""`tally tables`, `describe`, `rejects`, `preview` on the three warehouses: what they show, and that they write nothing."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tally import Project
from tests.cli_helpers import invoke, ok, printed, refused
from tests.servers import warehouse_url_for

# changed today: after every sample row (they end before this month), so a re-read does not skip them
TODAY = dt.date.today().isoformat() + " 00:00:00"
BAD = [f"9001,2026-01-05 10:00:00,{TODAY},c001,US,lost,10.00",      # accepted_values: status
       f"9002,2026-01-05 10:00:00,{TODAY},c001,US,paid,abc",         # type: amount
       f"9003,2026-01-05 10:00:00,{TODAY},c001,US,paid,-5.00",       # min: amount
       '9004,"2026-01-05 10:00:00,x']                               # malformed (the file's last line)
RULES = ["accepted_values: status", "type: amount", "min: amount", "malformed CSV line"]
LATER = f"9005,2026-01-06 10:00:00,{TODAY},c002,GB,gone,1.00"


def as_json(*args):
    return json.loads(printed(*args, "--format", "json"))


def starter(root: Path, url: str | None = None) -> Path:
    """`tally init` with four bad lines added to its CSV, on the given warehouse."""
    ok("init", root)
    if url:
        config = root / "tally.yml"
        text = config.read_text(encoding="utf-8").replace("warehouse: duckdb:///warehouse.duckdb",
                                                           f"warehouse: {json.dumps(url)}")
        config.write_text(text, encoding="utf-8")
    with open(root / "data" / "orders.csv", "a", encoding="utf-8") as handle:
        handle.write("\n".join(BAD) + "\n")
    return root


def good_rows(root: Path) -> int:
    with open(root / "data" / "orders.csv", newline="", encoding="utf-8") as handle:
        return sum(1 for row in csv.reader(handle) if len(row) == 7 and row[0].isdigit() and int(row[0]) < 9000)


def contents(root: Path) -> dict:
    """Every table's row count and Tally's state, read with Ibis (what a write would change)."""
    project = Project.load(root)
    try:
        warehouse = project.warehouse
        found = {name: warehouse.table(name).count().execute() for name in warehouse.backend.list_tables()}
        if "_tally_state" in found:
            found["state"] = sorted(map(tuple, warehouse.table("_tally_state").select("key", "value")
                                        .execute().itertuples(index=False)))
        return found
    finally:
        project.close()


@pytest.fixture(scope="module")
def shop(request, warehouse_kind, tmp_path_factory):
    """The starter project with bad lines, ingested into a fresh database of each warehouse."""
    with warehouse_url_for(warehouse_kind, request, "inspect") as url:
        root = starter(tmp_path_factory.mktemp(f"inspect_{warehouse_kind}") / "shop",
                       None if warehouse_kind == "duckdb" else url)   # DuckDB: the project's own file
        ok("-p", root, "ingest")
        yield SimpleNamespace(root=root, kind=warehouse_kind)


def test_tables_lists_row_counts_and_roles(shop):
    rows = {row["table"]: row for row in as_json("-p", shop.root, "tables")}
    assert rows["orders"] == {"table": "orders", "rows": good_rows(shop.root), "used_by": "source orders, model orders"}
    assert rows["_tally_rejects"]["used_by"] == "internal" and rows["_tally_rejects"]["rows"] == len(BAD)
    assert rows["_tally_loads"]["rows"] == 1 and rows["_tally_state"]["used_by"] == "internal"
    assert rows["monthly_by_country"]["rows"] is None and "not in the warehouse yet" in rows["monthly_by_country"]["used_by"]
    text = printed("-p", shop.root, "tables")
    assert "orders" in text and "_tally_loads" in text and "internal" in text


def test_describe_a_model(shop):
    info = as_json("-p", shop.root, "describe", "orders")
    assert (info["model"], info["table"], info["time"], info["updated"]) == ("orders", "orders", "ordered_at", "updated_at")
    measures = {m["measure"]: m for m in info["measures"]}
    assert measures["revenue"] == {"measure": "revenue", "kind": "sum", "expression": "amount",
                                   "where": "status <> 'cancelled'", "format": "money"}
    assert measures["orders"]["kind"] == "count_distinct"
    assert [d["dimension"] for d in info["dimensions"]] == ["country", "status", "customer"]
    assert info["formulas"] == [{"metric": "aov", "formula": "revenue / orders"},
                                {"metric": "net_revenue", "formula": "revenue - refunds"}]
    types = {c["column"]: c["type"] for c in info["columns"]}
    assert types["amount"] == "decimal(12,2)" and types["order_id"] == "int64"
    assert types["ordered_at"] == "timestamp" and types["status"] == "string"
    text = printed("-p", shop.root, "describe", "orders")
    for part in ("Measures", "Dimensions", "Formulas using it", "revenue / orders", "decimal(12,2)"):
        assert part in text, part


def test_describe_a_table(shop):
    info = as_json("-p", shop.root, "describe", "_tally_rejects")
    assert [c["column"] for c in info["columns"]] == ["load_id", "source", "row_number", "raw", "rule", "rejected_at",
                                                      "file"]
    assert info["rows"] == len(BAD) and info["used_by"] == "internal"


def test_unknown_names_are_one_line_with_a_suggestion(shop):
    assert "unknown table or model 'ordres' (did you mean 'orders'?)" in refused("-p", shop.root, "describe", "ordres")
    assert "unknown source 'ordrs' (did you mean 'orders'?)" in refused("-p", shop.root, "rejects", "ordrs")
    assert "unknown source 'ordrs' (did you mean 'orders'?)" in refused("-p", shop.root, "preview", "ordrs")
    assert "--limit must be positive" in refused("-p", shop.root, "rejects", "--limit", "0")


def test_rejects_show_raw_row_rule_file_and_line(shop):
    rows = as_json("-p", shop.root, "rejects")
    assert [r["line"] for r in rows] == [402, 403, 404, 405]   # after the header and 400 sample lines
    for row, rule, raw in zip(rows, RULES, BAD):
        assert row["rule"].startswith(rule) and row["source"] == "orders" and row["file"] == "data/orders.csv"
        first = raw.split(",")[0]
        assert first in row["raw"]
    assert json.loads(rows[0]["raw"])["status"] == "lost"
    stamp = dt.datetime.fromisoformat(rows[0]["rejected_at"])
    assert stamp.utcoffset() == dt.timedelta(0) and abs(dt.datetime.now(dt.timezone.utc) - stamp) < dt.timedelta(hours=1)
    assert len(as_json("-p", shop.root, "rejects", "orders", "--limit", "2")) == 2
    text = printed("-p", shop.root, "rejects")
    assert "accepted_values" in text and "data/orders.csv" in text


def test_inspection_writes_nothing(shop):
    before = contents(shop.root)
    files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shop.root.glob("warehouse.duckdb*")}
    for args in (["tables"], ["describe", "orders"], ["describe", "_tally_loads"], ["rejects"],
                 ["preview", "orders"], ["preview", "orders", "--full-refresh"]):
        ok("-p", shop.root, *args)
        ok("-p", shop.root, *args, "--format", "json")
    assert contents(shop.root) == before
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shop.root.glob("warehouse.duckdb*")} == files


def test_preview_types_rows_and_rejects(shop):
    info = as_json("-p", shop.root, "preview", "orders", "--rows", "5")
    assert info["types_from"] == "declared"
    assert info["types"] == {"order_id": "int64", "ordered_at": "timestamp", "updated_at": "timestamp",
                             "customer": "string", "country": "string", "status": "string", "amount": "decimal(12,2)"}
    # a look at an ingested source reads what ingest would: rows before the watermark are skipped
    assert info["read"] + info["skipped"] == good_rows(shop.root) + len(BAD) and info["skipped"] > 300
    with open(shop.root / "data" / "orders.csv", newline="", encoding="utf-8") as handle:
        written = {row["order_id"]: row for row in csv.DictReader(handle)}
    assert info["rows"]
    for row in info["rows"]:
        assert str(row["amount"]) == written[str(row["order_id"])]["amount"]
    assert [r["line"] for r in info["rejects"]] == [402, 403, 404, 405]
    assert [r["rule"].split(":")[0] for r in info["rejects"]] == ["accepted_values", "type", "min", "malformed CSV line"]
    everything = as_json("-p", shop.root, "preview", "orders", "--rows", "3", "--full-refresh")
    assert (everything["read"], everything["skipped"]) == (good_rows(shop.root) + len(BAD), 0)
    with open(shop.root / "data" / "orders.csv", newline="", encoding="utf-8") as handle:
        first = list(csv.DictReader(handle))[:3]
    assert [str(r["order_id"]) for r in everything["rows"]] == [r["order_id"] for r in first]


def test_rejects_newest_load_first(tmp_path):
    root = starter(tmp_path / "p")
    ok("-p", root, "ingest")
    sample = root / "data" / "orders.csv"
    lines = sample.read_text(encoding="utf-8").splitlines()
    sample.write_text("\n".join(lines[:-1] + [LATER]) + "\n", encoding="utf-8")   # the malformed line fixed
    ok("-p", root, "ingest")
    rows = as_json("-p", root, "rejects")
    assert rows[0]["line"] == 405 and "gone" in rows[0]["raw"]
    assert [r["line"] for r in rows[1:]] == [402, 403, 404, 405]
    assert rows[0]["load_id"] != rows[1]["load_id"]


def test_preview_before_any_load_creates_no_warehouse(tmp_path):
    root = starter(tmp_path / "p")
    info = as_json("-p", root, "preview", "orders", "--rows", "3")
    assert (info["read"], info["would_load"], info["rejected"]) == (good_rows(root) + len(BAD), good_rows(root), len(BAD))
    with open(root / "data" / "orders.csv", newline="", encoding="utf-8") as handle:
        first = list(csv.DictReader(handle))[:3]
    assert [(str(r["order_id"]), str(r["amount"]), r["status"]) for r in info["rows"]] == \
        [(r["order_id"], r["amount"], r["status"]) for r in first]
    assert as_json("-p", root, "rejects") == []
    assert {r["table"] for r in as_json("-p", root, "tables")} == {"orders", "monthly_by_country"}
    assert as_json("-p", root, "describe", "orders")["columns"] == []
    assert not list(root.glob("warehouse.duckdb*"))


def test_preview_of_an_unreadable_source_is_one_line(tmp_path):
    root = starter(tmp_path / "p")
    (root / "data" / "orders.csv").unlink()
    line = refused("-p", root, "preview", "orders", code=1)
    assert "source orders" in line


def test_preview_shows_inferred_types(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("id,price,day,label\n1,\"1,250.50\",2025-01-02,a\n2,3.25,2025-01-03,b\n"
                                             "3,x,2025-01-04,c\n", encoding="utf-8")
    (tmp_path / "tally.yml").write_text("name: t\nsources:\n  t: {kind: csv, path: data/t.csv, table: t}\n",
                                        encoding="utf-8")
    info = as_json("-p", tmp_path, "preview", "t")
    assert info["types_from"] == "inferred"
    assert info["types"] == {"id": "int64", "price": "string", "day": "date", "label": "string"}
    assert [r["label"] for r in info["rows"]] == ["a", "b", "c"] and info["rejects"] == []
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_describe_joins_and_seed_tables_of_the_demo(tmp_path):
    from tally.demo import prepare

    project, counts = prepare("ecommerce", tmp_path / "demo", 300, seed=5)
    project.close()
    info = as_json("-p", tmp_path / "demo", "describe", "orders")
    assert info["joins"] == [{"join": "cost", "model": "product_costs", "on": "sku = cost.sku"},
                             {"join": "size", "model": "product_desi", "on": "sku = size.sku"},
                             {"join": "rate", "model": "shipping_rates",
                              "on": "size.desi * quantity in [rate.desi_from, rate.desi_to)"}]
    assert {"metric": "aov", "formula": "revenue / orders"} in info["formulas"]
    tables = {row["table"]: row for row in as_json("-p", tmp_path / "demo", "tables")}
    assert tables["product_costs"]["used_by"] == "seed product_costs, model product_costs"
    for table, count in counts.items():   # the generated tables' own row counts
        assert tables[table]["rows"] == count, table


@pytest.mark.parametrize("command", ["tables", "describe", "rejects", "preview"])
def test_inspection_commands_are_listed_with_help(command):
    assert command in printed("--help")
    assert "Usage" in printed(command, "--help")


def two_files(root: Path, url: str | None) -> Path:
    """The starter reading `data/orders*.csv`: its sample, and a second file with two bad lines."""
    starter(root, url)
    config = root / "tally.yml"
    config.write_text(config.read_text(encoding="utf-8").replace("path: data/orders.csv", "path: data/orders*.csv"),
                      encoding="utf-8")
    (root / "data" / "orders_2.csv").write_text(
        "order_id,ordered_at,updated_at,customer,country,status,amount\n"
        f"9101,2026-01-05 10:00:00,{TODAY},c001,US,paid,12.00\n"
        f"9102,2026-01-05 10:00:00,{TODAY},c001,US,lost,10.00\n"
        '9103,"2026-01-05 10:00:00,x\n', encoding="utf-8")
    return root


def test_rejects_name_the_file_each_row_came_from(request, warehouse_kind, tmp_path):
    with warehouse_url_for(warehouse_kind, request, "rejfiles") as url:
        root = two_files(tmp_path / "p", None if warehouse_kind == "duckdb" else url)   # DuckDB: the project's own file
        ok("-p", root, "ingest")
        found = {(r["file"], r["line"], r["rule"].split(":")[0]) for r in as_json("-p", root, "rejects")}
    assert found == {("data/orders.csv", 402, "accepted_values"), ("data/orders.csv", 403, "type"),
                     ("data/orders.csv", 404, "min"), ("data/orders.csv", 405, "malformed CSV line"),
                     ("data/orders_2.csv", 3, "accepted_values"), ("data/orders_2.csv", 4, "malformed CSV line")}


def test_rejects_table_of_an_earlier_tally_gains_its_file_column(tmp_path):
    import duckdb

    root = starter(tmp_path / "p")
    con = duckdb.connect(str(root / "warehouse.duckdb"))   # _tally_rejects as Tally made it before `file`
    con.execute("CREATE TABLE _tally_rejects (load_id VARCHAR, source VARCHAR, row_number BIGINT, raw VARCHAR, "
                "rule VARCHAR, rejected_at TIMESTAMPTZ)")
    con.execute("INSERT INTO _tally_rejects VALUES ('old', 'orders', 7, '{}', 'min: amount', now())")
    con.close()
    ok("-p", root, "ingest")
    rows = as_json("-p", root, "rejects")
    assert [(r["file"], r["line"]) for r in rows] == [("data/orders.csv", n) for n in (402, 403, 404, 405)] + [
        ("data/orders.csv", 7)]   # the old row: its file unknown, the source's path shown
