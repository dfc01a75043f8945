"""File connectors end to end: Excel / ODS, Parquet, JSON, NDJSON and gzipped CSV into a DuckDB warehouse."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter
import yaml

from tally import Project
from tally.sources import ingest

UTC = dt.timezone.utc
D = decimal.Decimal


# -- helpers --------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path):
    """Write tally.yml with the given sources and load it; closed after the test."""
    opened = []

    def make(sources: dict) -> Project:
        config = {"name": "files", "warehouse": "duckdb:///warehouse.duckdb", "sources": sources}
        (tmp_path / "tally.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        opened.append(Project.load(tmp_path))
        return opened[-1]

    yield make
    for loaded in opened:
        loaded.close()


def rows(project: Project, table: str, order: str | None = None) -> list[dict]:
    data = project.warehouse.backend.table(table).to_pyarrow()
    listed = data.to_pylist()
    return sorted(listed, key=lambda row: row[order]) if order else listed


def rejects(project: Project, source: str) -> list[tuple[str, str]]:
    """(rule, raw) of the recorded rejects of one source."""
    found = [r for r in rows(project, "_tally_rejects") if r["source"] == source]
    return sorted((r["rule"], r["raw"]) for r in found)


def run(project: Project, *names: str):
    results = ingest(project, list(names) or None)
    return results[0] if len(results) == 1 else results


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> None:
    """A workbook with real date cells; None leaves a cell empty, "<blank>" writes a formatted empty cell."""
    book = xlsxwriter.Workbook(str(path))
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    for name, table in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                if value == "<blank>":
                    sheet.write_blank(r, c, None, date)
                elif isinstance(value, dt.datetime):
                    sheet.write_datetime(r, c, value, stamp)
                elif isinstance(value, dt.date):
                    sheet.write_datetime(r, c, value, date)
                elif value is not None:
                    sheet.write(r, c, value)
    book.close()


def write_ods(path: Path, sheets: dict[str, list[list]]) -> None:
    """A minimal OpenDocument spreadsheet (mimetype, manifest, content) with typed cells."""
    def cell(value) -> str:
        if value is None:
            return "<table:table-cell/>"
        if isinstance(value, (int, float)):
            kind = f'office:value-type="float" office:value="{value}"'
        elif isinstance(value, dt.date):
            kind = f'office:value-type="date" office:date-value="{value.isoformat()}"'
        else:
            kind = 'office:value-type="string"'
        return f"<table:table-cell {kind}><text:p>{escape(str(value))}</text:p></table:table-cell>"

    body = "".join(f"<table:table table:name={quoteattr(name)}>"
                   + "".join(f"<table:table-row>{''.join(map(cell, row))}</table:table-row>" for row in table)
                   + "</table:table>" for name, table in sheets.items())
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} office:version="1.2">'
               f"<office:body><office:spreadsheet>{body}</office:spreadsheet></office:body>"
               "</office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" '
                'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet",
                         compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)


ORDERS_SHEET = [
    ["Orders export", None, None, None, None],               # a title row above the header
    [None, None, None, None, None],
    ["order_id", "ordered_at", "day", "amount", "quantity"],  # header_row: 2
    ["#", "UTC", "date", "USD", "units"],                     # skip_rows: 1
    [1, dt.datetime(2024, 1, 5, 10, 30), dt.date(2024, 1, 5), "1,250.00", 3.0],
    [2, dt.datetime(2024, 1, 6, 23, 59), dt.date(2024, 1, 6), 99.5, 1],
    [3, "2024-01-07 08:00:00", "2024-01-07", "₦45,750.00", "2"],  # text cells are typed like CSV text
    [4, dt.datetime(2024, 1, 8), dt.date(2024, 1, 8), 10, "abc"],  # rejected: not an integer
    [5, dt.datetime(2024, 1, 9), dt.date(2024, 1, 9), 10, 0],      # rejected: min
    [None, None, None, None, None],
    ["<blank>", "<blank>", "<blank>", "<blank>", "<blank>"],       # formatted but empty: still no row
]
NOTES_SHEET = [["sku", "note"], ["A-1", "first"], ["B-2", "second"]]

ORDERS_SOURCE = {
    "kind": "excel", "path": "data/orders.xlsx", "sheet": "Orders", "header_row": 2, "skip_rows": 1,
    "table": "orders", "primary_key": ["order_id"],
    "columns": {"order_id": "int64", "ordered_at": "timestamp", "day": "date", "amount": "decimal(12,2)",
                "quantity": "int32"},
    "checks": [{"min": {"quantity": 1}}],
}
ORDERS_LOADED = [
    {"order_id": 1, "ordered_at": dt.datetime(2024, 1, 5, 10, 30, tzinfo=UTC), "day": dt.date(2024, 1, 5),
     "amount": D("1250.00"), "quantity": 3},
    {"order_id": 2, "ordered_at": dt.datetime(2024, 1, 6, 23, 59, tzinfo=UTC), "day": dt.date(2024, 1, 6),
     "amount": D("99.50"), "quantity": 1},
    {"order_id": 3, "ordered_at": dt.datetime(2024, 1, 7, 8, 0, tzinfo=UTC), "day": dt.date(2024, 1, 7),
     "amount": D("45750.00"), "quantity": 2},
]


@pytest.fixture
def workbook(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    write_xlsx(tmp_path / "data" / "orders.xlsx", {"Notes": NOTES_SHEET, "Orders": ORDERS_SHEET})
    return tmp_path / "data" / "orders.xlsx"


# -- Excel / ODS ----------------------------------------------------------------------------------

def test_excel_sheet_by_name_with_header_row_skip_rows_dates_and_money(project, workbook):
    p = project({"orders": ORDERS_SOURCE})
    result = run(p)
    assert (result.status, result.error) == ("ok", None)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (5, 3, 2)
    assert rows(p, "orders", "order_id") == ORDERS_LOADED
    assert [rule for rule, _ in rejects(p, "orders")] == ["min: quantity >= 1.0",
                                                        "type: quantity is not a valid integer"]
    raw = dict(rejects(p, "orders"))["type: quantity is not a valid integer"]
    assert json.loads(raw) == {"order_id": "4", "ordered_at": "2024-01-08", "day": "2024-01-08",
                               "amount": "10", "quantity": "abc"}


def test_excel_sheet_by_index_is_zero_based(project, workbook):
    p = project({"notes": {"kind": "excel", "path": "data/*.xlsx", "sheet": 0, "table": "notes",
                           "columns": {"sku": "text", "note": "text"}},
                 "orders": {**ORDERS_SOURCE, "sheet": 1}})
    notes, orders = run(p)
    assert (notes.status, notes.rows_loaded, orders.status, orders.rows_loaded) == ("ok", 2, "ok", 3)
    assert rows(p, "notes", "sku") == [{"sku": "A-1", "note": "first"}, {"sku": "B-2", "note": "second"}]


@pytest.mark.parametrize("sheet, named", [("Sales", "sheet 'Sales'"), (7, "sheet index 7")])
def test_excel_missing_sheet_names_the_sheets_present(project, workbook, sheet, named):
    result = run(project({"orders": {**ORDERS_SOURCE, "sheet": sheet}}))
    assert result.status == "failed"
    assert named in result.error and "orders.xlsx" in result.error
    assert "sheets: 'Notes', 'Orders'" in result.error


def test_excel_without_declared_columns_keeps_cell_types(project, tmp_path):
    # calamine reads a midnight timestamp as a date; the column must still load as timestamps
    midnight, morning = dt.datetime(2024, 3, 2), dt.datetime(2024, 3, 2, 5, 30)
    write_xlsx(tmp_path / "book.xlsx", {"S": [["id", "day", "at", "price", "label", "empty", None],
                                             [1, dt.date(2024, 3, 1), midnight, 2.5, "x", None, None],
                                             [2, dt.date(2024, 3, 2), morning, 4, "y", None, None]]})
    p = project({"s": {"kind": "excel", "path": "book.xlsx", "table": "s"}})
    assert run(p).rows_loaded == 2
    loaded = p.warehouse.backend.table("s").to_pyarrow()
    assert [(f.name, str(f.type)) for f in loaded.schema] == [
        ("id", "int64"), ("day", "date32[day]"), ("at", "timestamp[us]"), ("price", "double"), ("label", "string"),
        ("empty", "string")]
    assert loaded.column("at").to_pylist() == [midnight, morning]


def test_excel_glob_concatenates_files_and_date_cells_follow_declared_formats(project, tmp_path):
    (tmp_path / "in").mkdir()
    for month in (1, 2):
        write_xlsx(tmp_path / "in" / f"2024-0{month}.xlsx",
                   {"S": [["sku", "sold_on", "units"], [f"A{month}", dt.date(2024, month, 3), 5.0],
                          [f"B{month}", "04.0%d.2024" % month, 6.0]]})
    p = project({"s": {"kind": "excel", "path": "in/*.xlsx", "table": "sales", "primary_key": ["sku"],
                       "columns": {"sku": "text", "sold_on": "date", "units": "int32"},
                       "formats": {"sold_on": "%d.%m.%Y"}}})
    result = run(p)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (4, 4, 0)
    assert [(r["sku"], r["sold_on"], r["units"]) for r in rows(p, "sales", "sku")] == [
        ("A1", dt.date(2024, 1, 3), 5), ("A2", dt.date(2024, 2, 3), 5),
        ("B1", dt.date(2024, 1, 4), 6), ("B2", dt.date(2024, 2, 4), 6)]


def test_excel_files_with_different_columns_fail_naming_both(project, tmp_path):
    write_xlsx(tmp_path / "a.xlsx", {"S": [["sku", "units"], ["A", 1]]})
    write_xlsx(tmp_path / "b.xlsx", {"S": [["sku", "qty"], ["B", 1]]})
    result = run(project({"s": {"kind": "excel", "path": "*.xlsx", "table": "s"}}))
    assert result.status == "failed" and "b.xlsx" in result.error and "a.xlsx" in result.error


def test_excel_broken_workbook_and_bad_options(project, tmp_path, workbook):
    (tmp_path / "fake.xlsx").write_text("a,b\n1,2\n", encoding="utf-8")
    result = run(project({"s": {"kind": "excel", "path": "fake.xlsx", "table": "s"}}))
    assert result.status == "failed" and "cannot read workbook" in result.error and "fake.xlsx" in result.error
    result = run(project({"s": {**ORDERS_SOURCE, "header_row": 40}}))
    assert result.status == "failed" and "no header row 40" in result.error
    from tally.errors import ConfigError

    with pytest.raises(ConfigError, match="header_row"):
        run(project({"orders": {**ORDERS_SOURCE, "header_row": -1}}))
    with pytest.raises(ConfigError, match="unknown key 'sheet_name'"):
        run(project({"orders": {**ORDERS_SOURCE, "sheet_name": "Orders"}}))


def test_excel_unnamed_column_with_data_is_named_by_its_letter(project, tmp_path):
    write_xlsx(tmp_path / "book.xlsx", {"S": [[None, "sku", None, None], [None, "A", "note", None]]})
    p = project({"s": {"kind": "excel", "path": "book.xlsx", "table": "s"}})
    assert run(p).rows_loaded == 1
    assert rows(p, "s") == [{"sku": "A", "column_C": "note"}]


def test_ods_workbook(project, tmp_path):
    write_ods(tmp_path / "book.ods", {"First": [["x"], [1]],
                                      "Data": [["id", "day", "amount"], [1, dt.date(2024, 1, 5), "1,250.00"],
                                               [2, dt.date(2024, 2, 1), 3.5], [3, "not a day", 1]]})
    p = project({"d": {"kind": "excel", "path": "book.ods", "sheet": "Data", "table": "d",
                       "columns": {"id": "int64", "day": "date", "amount": "decimal(12,2)"}}})
    result = run(p)
    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    assert rows(p, "d", "id") == [{"id": 1, "day": dt.date(2024, 1, 5), "amount": D("1250.00")},
                                  {"id": 2, "day": dt.date(2024, 2, 1), "amount": D("3.50")}]
    assert [rule for rule, _ in rejects(p, "d")] == ["type: day is not a valid date"]


# -- Parquet --------------------------------------------------------------------------------------

def test_parquet_keeps_its_types_and_casts_to_declared_ones(project, tmp_path):
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64()), "amount": pa.array([1.5, 2.25]),
                             "at": pa.array([dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 2)],
                                            pa.timestamp("us"))}), tmp_path / "pq" / "a.parquet")
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "amount": pa.array([-1.0]),
                             "at": pa.array([dt.datetime(2024, 1, 3)], pa.timestamp("us")),
                             "note": ["added later"]}), tmp_path / "pq" / "b.parquet")
    p = project({"typed": {"kind": "parquet", "path": "pq/*.parquet", "table": "typed"},
                 "declared": {"kind": "parquet", "path": "pq/*.parquet", "table": "declared",
                              "primary_key": ["id"], "columns": {"id": "int32", "amount": "decimal(10,2)",
                                                                 "at": "timestamp"},
                              "checks": [{"min": {"amount": 0}}]}})
    typed, declared = run(p)
    assert (typed.rows_loaded, declared.rows_loaded, declared.rows_rejected) == (3, 2, 1)
    schema = p.warehouse.backend.table("typed").to_pyarrow().schema
    assert [(f.name, str(f.type)) for f in schema] == [
        ("id", "int64"), ("amount", "double"), ("at", "timestamp[us]"), ("note", "string")]
    assert rows(p, "declared", "id") == [
        {"id": 1, "amount": D("1.50"), "at": dt.datetime(2024, 1, 1, 12, tzinfo=UTC)},
        {"id": 2, "amount": D("2.25"), "at": dt.datetime(2024, 1, 2, tzinfo=UTC)}]
    assert [rule for rule, _ in rejects(p, "declared")] == ["min: amount >= 0.0"]


def test_parquet_broken_file_is_named(project, tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    result = run(project({"b": {"kind": "parquet", "path": "bad.parquet", "table": "b"}}))
    assert result.status == "failed" and "bad.parquet is not a readable Parquet file" in result.error


# -- JSON / NDJSON --------------------------------------------------------------------------------

TRANSACTIONS = {"data": {"items": [
    {"id": 1, "amount": 1250, "status": "fulfilled", "meta": {"utility": "power", "tags": ["a"]},
     "created_at": "2024-01-05T10:00:00Z"},
    {"id": 2, "amount": "1,250.00", "status": "fulfilled", "meta": {"utility": "water"},
     "created_at": "2024-01-05T11:00:00Z"},
    {"id": 3, "amount": 7.5, "status": "pending", "created_at": "2024-01-05T12:00:00Z"},
]}, "next": None}


def test_json_records_path_and_fields_flattening(project, tmp_path):
    (tmp_path / "tx.json").write_text(json.dumps(TRANSACTIONS), encoding="utf-8")
    p = project({"tx": {"kind": "json", "path": "tx.json", "records": "data.items",
                        "fields": {"utility": "meta.utility", "first_tag": "meta.tags.0"},
                        "table": "tx", "primary_key": ["id"],
                        "columns": {"id": "int64", "amount": "decimal(12,2)", "status": "text", "utility": "text",
                                    "first_tag": "text", "created_at": "timestamp"}}})
    result = run(p)
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 3, 0)
    assert rows(p, "tx", "id") == [
        {"id": 1, "amount": D("1250.00"), "status": "fulfilled", "utility": "power", "first_tag": "a",
         "created_at": dt.datetime(2024, 1, 5, 10, tzinfo=UTC)},
        {"id": 2, "amount": D("1250.00"), "status": "fulfilled", "utility": "water", "first_tag": None,
         "created_at": dt.datetime(2024, 1, 5, 11, tzinfo=UTC)},
        {"id": 3, "amount": D("7.50"), "status": "pending", "utility": None, "first_tag": None,
         "created_at": dt.datetime(2024, 1, 5, 12, tzinfo=UTC)}]


def test_json_without_declared_columns_keeps_native_values_and_nested_json_text(project, tmp_path):
    items = TRANSACTIONS["data"]["items"]
    (tmp_path / "tx.json").write_text(json.dumps(items), encoding="utf-8")
    p = project({"tx": {"kind": "json", "path": "tx.json", "table": "tx"}})
    assert run(p).rows_loaded == 3
    loaded = rows(p, "tx", "id")
    # mixed kinds arrive as text, typed by the declared types' cleaning rules (issue 13 item 17)
    assert [r["amount"] for r in loaded] == [D("1250.00"), D("1250.00"), D("7.50")]
    assert json.loads(loaded[0]["meta"]) == {"utility": "power", "tags": ["a"]} and loaded[2]["meta"] is None
    schema = p.warehouse.backend.table("tx").to_pyarrow().schema
    assert str(schema.field("id").type) == "int64"


@pytest.mark.parametrize("document, records, message", [
    ({"data": []}, None, "the document is an object, not a list of records; set `records`"),
    ({"data": []}, "data.rows", "no `records` path 'data.rows' (top-level keys: data)"),
    ([1, 2], None, "record 0 is int, not an object"),
])
def test_json_shape_errors_name_the_file(project, tmp_path, document, records, message):
    (tmp_path / "doc.json").write_text(json.dumps(document), encoding="utf-8")
    source = {"kind": "json", "path": "doc.json", "table": "doc", **({"records": records} if records else {})}
    result = run(project({"doc": source}))
    assert result.status == "failed" and "doc.json" in result.error and message in result.error


def test_invalid_json_document_names_file_and_line(project, tmp_path):
    (tmp_path / "doc.json").write_text('[\n {"id": 1},\n {"id": 2,,}\n]', encoding="utf-8")
    result = run(project({"doc": {"kind": "json", "path": "doc.json", "table": "doc"}}))
    assert result.status == "failed" and "doc.json:3: invalid JSON" in result.error


NDJSON_LINES = ['{"id": 1, "amount": "12.50", "meta": {"utility": "power"}}',
                "",
                '{"id": 2, "amount": 3, "meta": {"utility": "gas"}}',
                '{"id": 3, "amount": ',                       # malformed: becomes a reject, the run goes on
                '{"id": 4, "amount": "n/a"}',
                '42']                                          # not an object: a reject too


@pytest.mark.parametrize("name", ["events.ndjson", "events.ndjson.gz"])
def test_ndjson_lines_with_a_malformed_line_rejected(project, tmp_path, name):
    text = "\n".join(NDJSON_LINES) + "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    p = project({"events": {"kind": "ndjson", "path": name, "table": "events",
                            "fields": {"utility": "meta.utility"},
                            "columns": {"id": "int64", "amount": "decimal(8,2)", "utility": "text"}}})
    result = run(p)
    assert (result.status, result.rows_read, result.rows_loaded, result.rows_rejected) == ("ok", 5, 2, 3)
    assert rows(p, "events", "id") == [{"id": 1, "amount": D("12.50"), "utility": "power"},
                                       {"id": 2, "amount": D("3.00"), "utility": "gas"}]
    assert rejects(p, "events") == [
        (f"{name}:6: records must be a list of objects, found int", "42"),
        (f"malformed JSON line ({name}:4): Expecting value", '{"id": 3, "amount": '),
        ("type: amount is not a valid decimal(8,2)", '{"id":"4","amount":"n/a","meta":null,"utility":null}')]


# -- CSV (gzip) and shared behaviour --------------------------------------------------------------

def test_gzipped_csv_loads(project, tmp_path):
    (tmp_path / "csv").mkdir()
    text = "sku,unit_cost\nA-1,\"1,250.00\"\nB-2,3.5\nC-3,oops\n"
    (tmp_path / "csv" / "costs.csv.gz").write_bytes(gzip.compress(text.encode()))
    p = project({"costs": {"kind": "csv", "path": "csv/*.csv.gz", "table": "costs", "primary_key": ["sku"],
                           "columns": {"sku": "text", "unit_cost": "decimal(12,2)"}}})
    result = run(p)
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 2, 1)
    assert rows(p, "costs", "sku") == [{"sku": "A-1", "unit_cost": D("1250.00")},
                                       {"sku": "B-2", "unit_cost": D("3.50")}]


@pytest.mark.parametrize("kind, path", [("excel", "none/*.xlsx"), ("parquet", "none/*.parquet"),
                                        ("json", "none/*.json"), ("ndjson", "none/*.ndjson")])
def test_no_matching_files_is_a_source_error(project, kind, path):
    result = run(project({"s": {"kind": kind, "path": path, "table": "s"}}))
    assert result.status == "failed" and f"no files match {path!r}" in result.error


def test_rerunning_the_same_files_changes_nothing(project, tmp_path, workbook):
    (tmp_path / "events.ndjson").write_text("\n".join(NDJSON_LINES) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"id": [1, 2], "v": [0.5, 1.5]}), tmp_path / "data" / "v.parquet")
    p = project({"orders": ORDERS_SOURCE,
                 "events": {"kind": "ndjson", "path": "events.ndjson", "table": "events",
                            "columns": {"id": "int64", "amount": "decimal(8,2)"}},
                 "values": {"kind": "parquet", "path": "data/*.parquet", "table": "values"}})
    first = run(p)
    keys = {"orders": "order_id", "events": "id", "values": "id"}
    snapshot = {t: rows(p, t, key) for t, key in keys.items()}
    stored = rows(p, "_tally_rejects")
    second = run(p)
    assert [r.status for r in first + second] == ["ok"] * 6
    assert [(r.rows_loaded, r.rows_rejected) for r in first] == [(r.rows_loaded, r.rows_rejected) for r in second]
    assert {t: rows(p, t, key) for t, key in keys.items()} == snapshot
    assert rows(p, "_tally_rejects") == stored and len(stored) == 5


# -- CSV text typing: the fast path for plain values and the cleaning for the others ---------------

def test_csv_values_plain_or_needing_cleaning_type_the_same_and_impostors_are_rejected(project, tmp_path):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    lines = ["id,ref,name,at",
             "1,42,plain,2024-01-01 10:00:00",
             '2," 43 ",  padded  , 2024-01-01 11:00:00 ',
             '3,"1,044",\u00a0nbsp\u00a0,2024-01-01T12:00:00Z',
             '4,"₦ 45",tab\t,2024-01-01 13:00:00+03:00',
             "5,+46,x,2024-01-01 14:00:00",
             "6,1.5,x,2024-01-01 15:00:00",
             "7,0x10,x,2024-01-01 16:00:00",
             "8,12345678901234567,x,2024-01-01 17:00:00",
             "9,1e3,x,2024-01-01 18:00:00",
             "10,7,x,not a time"]
    (data / "refs.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    p = project({"refs": {"kind": "csv", "path": "data/refs.csv", "table": "refs", "primary_key": ["id"],
                          "columns": {"id": "int64", "ref": "int64", "name": "string", "at": "timestamp"}}})
    result = run(p)
    assert (result.status, result.rows_read, result.rows_loaded, result.rows_rejected) == ("ok", 10, 6, 4)
    loaded = rows(p, "refs", "id")
    assert [(r["id"], r["ref"], r["name"]) for r in loaded] == [
        (1, 42, "plain"), (2, 43, "padded"), (3, 1044, "nbsp"), (4, 45, "tab\t"), (5, 46, "x"),
        (8, 12345678901234567, "x")]
    assert [r["at"] for r in loaded] == [
        dt.datetime(2024, 1, 1, 10, tzinfo=UTC), dt.datetime(2024, 1, 1, 11, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 12, tzinfo=UTC), dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 14, tzinfo=UTC), dt.datetime(2024, 1, 1, 17, tzinfo=UTC)]
    assert [rule for rule, _ in rejects(p, "refs")] == [
        "type: at is not a valid timestamptz", "type: ref is not a valid bigint",
        "type: ref is not a valid bigint", "type: ref is not a valid bigint"]
