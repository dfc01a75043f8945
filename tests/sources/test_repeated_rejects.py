"""A rejected row is recorded once however often its file is read again, and every new bad row is
recorded, on every warehouse: DuckDB merges inside the warehouse, PostgreSQL and MariaDB through Arrow.

The expected rejects come from plain Python over the CSV written (field count, quantity, status),
never from Tally: since every load reads the whole file, `_tally_rejects` must hold exactly one row
per bad line of the file, at that line, whatever loads came before.
"""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from tally import Project
from tally.commands import inspect
from tally.sources import ingest

STATUSES = ["paid", "shipped"]
SOURCE = {"kind": "csv", "path": "data/orders.csv", "table": "orders", "primary_key": ["order_id"],
          "columns": {"order_id": "int64", "status": "text", "quantity": "int32"},
          "checks": [{"min": {"quantity": 1}}, {"accepted_values": {"status": STATUSES}}]}
HEADER = "order_id,status,quantity"


def url_of(request, kind: str, root: Path) -> str:
    return f"duckdb:///{root}/warehouse.duckdb" if kind == "duckdb" else request.getfixturevalue(f"{kind}_db_url")


def write(root: Path, lines: list[str]) -> Path:
    path = root / "data" / "orders.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def bad_lines(path: Path) -> list[tuple[int, str]]:
    """(file line, rule kind) of every line the source's rules reject, read with the csv module."""
    found = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            if number == 1:
                continue
            if len(fields) != 3:
                found.append((number, "malformed"))
            elif int(fields[2]) < 1:
                found.append((number, "min"))
            elif fields[1] not in STATUSES:
                found.append((number, "accepted_values"))
    return sorted(found)


def stored(project) -> list[tuple[int, str]]:
    """(line, rule kind) of the rejects `tally rejects` reports for the source."""
    rows = inspect.rejects(project, "orders", 1000, project.sources)
    return sorted((row["line"], row["rule"].split(":")[0].split(" ")[0]) for row in rows)


def test_a_reread_reject_is_recorded_once_and_a_new_identical_one_again(request, tmp_path, warehouse_kind):
    """Failed before on DuckDB: its merge skipped any reject whose (raw, rule) was stored already, so a
    new bad line identical to an earlier one was never recorded (PostgreSQL and MariaDB recorded it)."""
    (tmp_path / "tally.yml").write_text(yaml.safe_dump(
        {"name": "rejects", "warehouse": url_of(request, warehouse_kind, tmp_path), "sources": {"orders": SOURCE}}))
    first = ["1,paid,2", "2,paid,0", "3,paid,1,extra", "4,shipped,5"]
    path = write(tmp_path, first)
    project = Project.load(tmp_path)
    try:
        once = ingest(project)[0]
        assert once.status == "ok" and once.rows_rejected == len(bad_lines(path)) == 2
        assert stored(project) == bad_lines(path) == [(3, "min"), (4, "malformed")]

        again = ingest(project)[0]   # the same file read again: nothing new to record
        assert again.rows_rejected == 2
        assert stored(project) == bad_lines(path)

        # the same bad lines once more, and one of another kind: three new rejects
        write(tmp_path, first + ["2,paid,0", "3,paid,1,extra", "5,lost,3"])
        third = ingest(project)[0]
        assert third.status == "ok" and third.rows_rejected == len(bad_lines(path)) == 5
        assert stored(project) == bad_lines(path)
        assert len(stored(project)) == 5
        assert {row["file"] for row in inspect.rejects(project, "orders", 1000, project.sources)
                } == {"data/orders.csv"}

        ingest(project, full_refresh=True)   # a full refresh reads them all again: still once each
        assert stored(project) == bad_lines(path)
    finally:
        project.close()
