"""Issue 13 item 17: a source without `columns:` gets types inferred with the declared types' cleaning
rules; a declared type that differs from the stored table is refused, and `--full-refresh` rebuilds
the table with the declared types in one transaction (a failure leaves the old table)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from tally.cli import app
from tally.sources import merge
from tests.sources import dirty
from tests.sources.test_ingest_guarantees import opened, run, warehouse_url  # noqa: F401

UTC = dt.timezone.utc
HEADER = "id,amount,total,sold_at,day,paid,qty,note,code"
LINES = [
    '1,€16.77,"1,250.00",2024-01-05 10:00:00+02:00,2024-01-05,yes,3,hello,007',
    '2,€3.10,"12,000.5",2024-01-05T10:00:00Z,2024-01-06,no,4,world,010',
    "3,,7.25,2024-01-06 08:30:00-05:30,,true,,,",
    '4,$1.00,-3,2024-01-07 00:00:00,2024-02-29,N,-12,"a, b",123',
]
SOURCE = {"kind": "csv", "path": "data/*.csv", "table": "sales", "primary_key": ["id"]}


def write(tmp_path, lines, name="sales.csv"):
    path = tmp_path / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")


def money(text: str) -> Decimal | None:
    """Plain Python: a money string without its currency symbol and thousands separators."""
    text = text.strip().lstrip("€$").replace(",", "")
    return Decimal(text) if text else None


def instant(text: str) -> dt.datetime:
    """Plain Python: an ISO timestamp, naive ones in UTC (the default data_timezone)."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def expected(lines) -> dict[int, dict]:
    rows = {}
    for record in lines:
        fields = next(__import__("csv").reader([record]))
        id_, amount, total, sold_at, day, paid, qty, note, code = fields
        rows[int(id_)] = {
            "id": int(id_), "amount": money(amount), "total": money(total), "sold_at": instant(sold_at),
            "day": dt.date.fromisoformat(day) if day else None,
            "paid": {"yes": True, "no": False, "true": True, "n": False}[paid.lower()],
            "qty": int(qty) if qty else None, "note": note or None, "code": code or None}
    return rows


def stored(project, table="sales") -> dict[int, dict]:
    """The table's rows as plain values (MariaDB keeps booleans as 0/1 and timestamps as naive UTC)."""
    rows = dirty.table_rows(project, table)
    out = {}
    for row in rows:
        row = {k: dirty.utc(v) for k, v in row.items()}
        if "paid" in row and isinstance(row["paid"], int):
            row["paid"] = bool(row["paid"])
        out[row["id"]] = row
    return out


def families(project, table="sales") -> dict[str, str]:
    """The stored columns' kinds, as the warehouse's own catalog reports them (through Ibis)."""
    project.warehouse.forget(table)
    schema = project.warehouse.backend.table(table).schema()
    kinds = {}
    for name, dtype in schema.items():
        if dtype.is_decimal():
            kinds[name] = f"decimal(scale {dtype.scale})"
        elif dtype.is_boolean() or (dtype.is_int8() and project.warehouse.dialect.name == "mysql"):
            kinds[name] = "boolean" if dtype.is_boolean() or name == "paid" else "integer"
        elif dtype.is_integer():
            kinds[name] = "integer"
        elif dtype.is_string():
            kinds[name] = "string"
        elif dtype.is_timestamp():
            kinds[name] = "timestamp"
        elif dtype.is_date():
            kinds[name] = "date"
        else:
            kinds[name] = str(dtype)
    return kinds


INFERRED = {"id": "integer", "amount": "decimal(scale 2)", "total": "decimal(scale 2)", "sold_at": "timestamp",
            "day": "date", "paid": "boolean", "qty": "integer", "note": "string", "code": "string"}


def test_a_source_without_columns_loads_inferred_types(tmp_path, warehouse_url):
    write(tmp_path, LINES)
    with opened(tmp_path, {"sales": SOURCE}, warehouse_url) as project:
        result = run(project)
        assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 4, 0), result
        assert result.inferred_types == {"id": "int64", "amount": "decimal(18,2)", "total": "decimal(18,2)",
                                         "sold_at": "timestamp", "day": "date", "paid": "boolean", "qty": "int64",
                                         "note": "string", "code": "string"}
        assert families(project) == INFERRED
        assert stored(project) == expected(LINES)


def test_a_later_load_keeps_the_stored_types_and_rejects_what_does_not_fit(tmp_path, warehouse_url):
    write(tmp_path, LINES[:2])
    with opened(tmp_path, {"sales": SOURCE}, warehouse_url) as project:
        run(project)
    write(tmp_path, ['5,abc,1.5,2024-01-08 09:00:00,2024-01-08,yes,7.5,x,9'], "later.csv")
    with opened(tmp_path, {"sales": SOURCE}, warehouse_url) as project:
        result = run(project)
        assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 2, 1), result
        assert result.inferred_types["amount"] == "decimal(18,2)" and result.inferred_types["qty"] == "int64"
        [reject] = dirty.table_rows(project, "_tally_rejects")
        assert reject["rule"] == "type: amount is not a valid decimal(18,2)"
        assert families(project) == INFERRED and sorted(stored(project)) == [1, 2]


def test_ingest_prints_the_inferred_types(tmp_path):
    write(tmp_path, LINES)
    dirty.write_project(tmp_path, {"sales": SOURCE})
    result = CliRunner().invoke(app, ["--project", str(tmp_path), "ingest", "--format", "json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)[0]["inferred_types"]["amount"] == "decimal(18,2)"
    result = CliRunner().invoke(app, ["--project", str(tmp_path), "ingest"])
    text = re.sub(r"\s+", " ", result.stderr)      # rich wraps the note in a narrow terminal
    assert ("note: source sales: inferred id int64, amount decimal(18,2), total decimal(18,2), sold_at timestamp, "
            "day date, paid boolean, qty int64, note string, code string") in text


@pytest.mark.parametrize("values, kind", [
    (["007", "12"], "string"),                       # a leading zero: a code, not a number
    (["1e3", "2.5"], "float64"), (["1.5", "2"], "decimal(18,1)"), (["NaN", "1"], "string"),
    (["2024-01-05", "2024-01-05 10:00:00"], "timestamp"), (["2024-01-05", "epoch"], "string"),
    (["", ""], "string"), (["T", "f"], "boolean"), (["1", "0"], "int64"),
    (["12345678901234567890.5"], "decimal(38,1)"),
])
def test_the_first_type_every_value_fits_wins(tmp_path, values, kind):
    path = tmp_path / "data" / "v.csv"
    path.parent.mkdir(parents=True)
    path.write_text("id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)), encoding="utf-8")
    with opened(tmp_path, {"v": {"kind": "csv", "path": "data/*.csv", "table": "v"}}) as project:
        result = run(project)
        assert (result.status, result.inferred_types["v"]) == ("ok", kind), result
        assert result.rows_loaded == len(values)


# -- a declared type that differs from the stored table --------------------------------------------

TEXT = {**SOURCE, "columns": {name: "text" for name in HEADER.split(",")}}
TYPED = {**SOURCE, "columns": {"id": "int64", "amount": "decimal(12,2)", "total": "decimal(12,2)",
                               "sold_at": "timestamp", "day": "date", "paid": "bool", "qty": "int32",
                               "note": "text", "code": "text"}}
TEXT_FAMILIES = dict.fromkeys(HEADER.split(","), "string")


def loaded_as_text(tmp_path, warehouse_url):
    """A first load that stored every column as text (as loads without `columns:` once did)."""
    write(tmp_path, LINES)
    with opened(tmp_path, {"sales": TEXT}, warehouse_url) as project:
        assert run(project).status == "ok"
        assert families(project) == TEXT_FAMILIES
        return stored(project)


def test_declaring_other_types_refuses_a_plain_load_and_leaves_the_table(tmp_path, warehouse_url):
    before = loaded_as_text(tmp_path, warehouse_url)
    with opened(tmp_path, {"sales": TYPED}, warehouse_url) as project:
        result = run(project)
        assert result.status == "failed"
        assert "\n" not in result.error and "amount (stored as string, declared decimal(12,2))" in result.error
        assert "run `tally ingest sales --full-refresh` to rebuild the table with the declared types" in result.error
        assert families(project) == TEXT_FAMILIES and stored(project) == before


def test_full_refresh_rebuilds_the_table_with_the_declared_types(tmp_path, warehouse_url):
    loaded_as_text(tmp_path, warehouse_url)
    write(tmp_path, LINES + ["5,€oops,1,2024-01-08 09:00:00,2024-01-08,yes,1,x,1"])
    with opened(tmp_path, {"sales": TYPED}, warehouse_url) as project:
        result = run(project, full_refresh=True)
        assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 4, 1), result
        assert families(project) == INFERRED
        assert stored(project) == expected(LINES)      # every row checked again: the bad one is rejected
        assert [r["rule"] for r in dirty.table_rows(project, "_tally_rejects")] == [
            "type: amount is not a valid decimal(12,2)"]
        assert not [t for t in project.warehouse.backend.list_tables() if t.startswith("__tally_")]
        assert run(project).status == "ok"            # the next plain load finds the declared types


def test_a_full_refresh_that_fails_midway_leaves_the_old_table(tmp_path, warehouse_url, monkeypatch):
    before = loaded_as_text(tmp_path, warehouse_url)

    def broken(*args, **kwargs):
        raise RuntimeError("the warehouse went away")

    monkeypatch.setattr(merge, "merge_sql", broken)
    with opened(tmp_path, {"sales": TYPED}, warehouse_url) as project:
        result = run(project, full_refresh=True)
        assert result.status == "failed" and "went away" in result.error
        assert families(project) == TEXT_FAMILIES and stored(project) == before
        assert not [t for t in project.warehouse.backend.list_tables() if t.startswith("__tally_")]
        monkeypatch.undo()                             # the failure came after the table was made again
        assert run(project, full_refresh=True).status == "ok"
        assert families(project) == INFERRED and stored(project) == expected(LINES)
