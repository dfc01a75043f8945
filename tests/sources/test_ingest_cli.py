"""`tally ingest` on the command line: its summary (table or JSON), exit codes and config errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally import Project
from tally.cli import app
from tally.errors import ConfigError
from tests.sources import dirty

RECORDS = [
    "1,paid,2,\"1,250.00\",2024-01-05,2024-01-05 10:00:00,r1",
    "2,paid,0,5.00,2024-01-05,2024-01-05 11:00:00,r2",             # min: quantity
    "3,lost,1,5.00,2024-01-05,2024-01-05 12:00:00,r3",             # accepted_values: status
    "4,paid,1,₦45,750.00,2024-01-05,2024-01-05 13:00:00,r4",        # malformed: the comma is not quoted
    "5,shipped,1,abc,2024-01-06,2024-01-06T08:00:00+03:00,r5",     # type: amount
    "6,shipped,1,7.50,2024-01-06,2024-01-06T09:00:00Z,r6",
]
COUNTS = {"rows_read": 6, "rows_loaded": 2, "rows_rejected": 4, "rows_skipped": 0}


def tally(root: Path, *args: str):
    return CliRunner().invoke(app, ["--project", str(root), "ingest", *args])


def project_with(root: Path, sources: dict) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "orders.csv").write_text(dirty.Batch(RECORDS).text(), encoding="utf-8")
    return dirty.write_project(root, sources)


def line_of(root: Path, text: str) -> int:
    """The line of tally.yml holding `text`."""
    lines = (root / "tally.yml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def refused(result, code: int) -> str:
    """The one `error:` line of a command that must fail with `code`, and nothing on stdout."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line]   # the progress display leaves a blank line
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


GOOD = {"orders": dirty.SOURCE}
BROKEN = {"orders": dirty.SOURCE, "missing": {**dirty.SOURCE, "path": "nowhere/*.csv", "table": "missing"}}


def test_table_summary_shows_rows_read_loaded_and_rejected(tmp_path):
    result = tally(project_with(tmp_path, GOOD))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    header = next(line for line in result.stdout.splitlines() if "source" in line)
    assert re.findall(r"\w+", header) == ["source", "status", "read", "loaded", "rejected", "skipped",
                                          "watermark", "seconds"]
    row = next(line for line in result.stdout.splitlines() if "orders" in line)
    assert re.findall(r"[\w:+-]+", row)[:6] == ["orders", "ok", "6", "2", "4", "0"]
    assert "2024-01-06" in row             # the watermark (it wraps in a narrow terminal)
    assert result.stderr.strip() == ""


def test_json_summary_is_one_object_per_source(tmp_path):
    sources = {"orders": dirty.SOURCE, "copy": {**dirty.SOURCE, "table": "orders_copy"}}
    result = tally(project_with(tmp_path, sources), "--format", "json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    summary = json.loads(result.stdout)
    assert [s["source"] for s in summary] == ["orders", "copy"]
    for source in summary:
        assert {k: source[k] for k in COUNTS} == COUNTS
        assert (source["status"], source["error"], source["dry_run"]) == ("ok", None, False)
        assert source["watermark_after"] == "2024-01-06T09:00:00+00:00"
    again = json.loads(tally(tmp_path, "orders", "--format", "json").stdout)
    assert [(s["source"], s["rows_read"], s["rows_loaded"], s["rows_skipped"]) for s in again] == [
        ("orders", 2, 1, 4)]       # the malformed line, and the row at the watermark, read again


def test_one_failed_source_exits_1_and_the_other_still_loads(tmp_path):
    result = tally(project_with(tmp_path, BROKEN))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert re.search(r"orders\s.*ok\s.*\b6\b.*\b2\b.*\b4\b", result.stdout)
    assert re.search(r"missing\s.*failed", result.stdout)
    assert "error: source missing: no files match 'nowhere/*.csv'" in result.stderr
    project = Project.load(tmp_path)
    try:
        assert len(dirty.table_rows(project, "orders")) == 2
        assert sorted((r["source"], r["status"]) for r in dirty.table_rows(project, "_tally_loads")) == [
            ("missing", "failed"), ("orders", "ok")]
    finally:
        project.close()


def test_one_failed_source_in_json_exits_1_with_both_objects(tmp_path):
    result = tally(project_with(tmp_path, BROKEN), "--format", "json", "--dry-run")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    summary = {s["source"]: s for s in json.loads(result.stdout)}
    assert {k: summary["orders"][k] for k in COUNTS} == COUNTS and summary["orders"]["dry_run"] is True
    assert summary["missing"]["status"] == "failed" and "no files match" in summary["missing"]["error"]


def test_unknown_source_name_exits_2(tmp_path):
    line = refused(tally(project_with(tmp_path, GOOD), "orders", "refunds"), 2)
    assert line == "error: unknown source(s) refunds (sources: orders)"
    assert not (tmp_path / "warehouse.duckdb").exists()       # refused before anything ran


@pytest.mark.parametrize("change, at, message", [
    ({"tabel": "orders"}, "tabel", "unknown key 'tabel'"),
    ({"columns": {**dirty.SOURCE["columns"], "amount": "money"}}, "columns:", "column 'amount': unknown column type"),
    ({"kind": "csvx"}, "kind: csvx", "unknown source kind 'csvx'"),
    ({"checks": [{"min": {"quantity": 1}, "max": {"quantity": 9}}]}, "- min:",
     "checks.0: a check has exactly one rule"),
    ({"primary_key": ["id"]}, "orders:", "'id' (primary key / cursor) must be one of the declared columns"),
    ({"schedule": "every fortnight"}, "schedule:", "schedule 'every fortnight' is neither"),
    ({"schedule": "0 */6 * *"}, "schedule:", "nor a 5-field cron expression"),
])
def test_bad_source_config_exits_2_naming_file_and_line(tmp_path, change, at, message):
    root = project_with(tmp_path, {"orders": {**dirty.SOURCE, **change}})
    line = refused(tally(root), 2)
    assert line.startswith(f"error: {root / 'tally.yml'}:{line_of(root, at)}: source 'orders': "), line
    assert message in line


@pytest.mark.parametrize("schedule", ["every 12s", "every 6h", "0 */6 * * *", "*/15 9-17 * * MON-FRI"])
def test_interval_and_cron_schedules_are_accepted(tmp_path, schedule):
    result = tally(project_with(tmp_path, {"orders": {**dirty.SOURCE, "schedule": schedule}}))
    assert result.exit_code == 0, (result.stdout, result.stderr)


def test_a_bad_schedule_is_refused_when_the_project_loads(tmp_path):
    """Fixed: the `sources:` section was validated only when a source ran, so `tally query` or
    `tally serve` accepted a source with a bad schedule or type."""
    root = project_with(tmp_path, {"orders": {**dirty.SOURCE, "schedule": "every fortnight"}})
    with pytest.raises(ConfigError, match=rf"tally.yml:{line_of(root, 'schedule:')}: .*every fortnight"):
        Project.load(root).close()
