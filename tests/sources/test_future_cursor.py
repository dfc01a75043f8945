"""Issue 13 item 9: a cursor value later than the load's time must not move the watermark past rows
still to come (a correction stamped days ahead hid every later sale, silently)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from tally.cli import app
from tally.errors import ConfigError
from tests.sources import dirty
from tests.sources.test_ingest_guarantees import opened, run, warehouse_url, write_lines  # noqa: F401

UTC = dt.timezone.utc


def stamp(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds")


def line(id: int, updated: dt.datetime) -> str:
    return f"{id},paid,1,{id}.00,2024-01-05,{stamp(updated)},r{id}"


def test_a_future_cursor_is_rejected_and_a_later_sale_still_loads(tmp_path, warehouse_url):
    now = dt.datetime.now(UTC)
    write_lines(tmp_path, [line(1, now - dt.timedelta(days=3)), line(2, now + dt.timedelta(days=10))])
    with opened(tmp_path, {"orders": dirty.SOURCE}, warehouse_url) as project:
        first = run(project)
        assert (first.rows_loaded, first.rows_rejected, first.rows_skipped) == (1, 1, 0)
        assert dt.datetime.fromisoformat(first.watermark_after) < now   # not the correction's stamp
        [reject] = dirty.table_rows(project, "_tally_rejects")
        assert reject["rule"].startswith("future_cursor: updated_at is later than the load time")
        # a real new sale, stamped before today but after the loaded row: the next load takes it
        write_lines(tmp_path, [line(1, now - dt.timedelta(days=3)), line(2, now + dt.timedelta(days=10)),
                               line(3, now - dt.timedelta(days=1))])
        second = run(project)
        # row 1 sits at the watermark: with a key it is read again (the merge replaces it)
        assert (second.rows_loaded, second.rows_rejected, second.warnings) == (2, 1, [])
        assert sorted(dirty.loaded_orders(project)) == [1, 3]


def test_within_the_tolerance_a_cursor_loads(tmp_path, warehouse_url):
    now = dt.datetime.now(UTC)
    source = {**dirty.SOURCE, "cursor_tolerance": "2d"}
    write_lines(tmp_path, [line(1, now + dt.timedelta(days=1)), line(2, now + dt.timedelta(days=3))])
    with opened(tmp_path, {"orders": source}, warehouse_url) as project:
        result = run(project)
        assert (result.rows_loaded, result.rows_rejected) == (1, 1)
        assert sorted(dirty.loaded_orders(project)) == [1]


def test_without_a_limit_the_hidden_rows_are_reported(tmp_path, warehouse_url):
    """cursor_tolerance: none keeps the old behaviour; the rows the watermark then hides are named."""
    now = dt.datetime.now(UTC)
    source = {**dirty.SOURCE, "cursor_tolerance": "none"}
    write_lines(tmp_path, [line(1, now - dt.timedelta(days=3)), line(2, now + dt.timedelta(days=10))])
    dirty.write_project(tmp_path, {"orders": source}, warehouse=warehouse_url)   # the CLI below uses it too
    with opened(tmp_path, None, warehouse_url) as project:
        first = run(project)
        assert (first.rows_loaded, first.rows_rejected, first.warnings) == (2, 0, [])
        later = dt.datetime.now(UTC) + dt.timedelta(seconds=1)   # after the first load began
        write_lines(tmp_path, [line(1, now - dt.timedelta(days=3)), line(2, now + dt.timedelta(days=10)),
                               line(3, later), line(4, now - dt.timedelta(days=5))])
    runner = CliRunner()
    result = runner.invoke(app, ["-p", str(tmp_path), "ingest", "--format", "json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    # row 2 sits at the watermark (read again); rows 1, 3 and 4 are before it: skipped
    assert (summary["rows_loaded"], summary["rows_skipped"]) == (1, 3)
    warnings = summary["warnings"]
    assert any("is later than this load's time" in w for w in warnings), warnings
    # row 3 is new since the last load; row 4 is old (never seen? it is before the previous load: not counted)
    assert any(w.startswith("1 skipped row(s) have a updated_at later than the previous load") for w in warnings)
    result = runner.invoke(app, ["-p", str(tmp_path), "ingest"], env={"COLUMNS": "200"})
    assert "warning: source orders:" in result.stderr and "--full-refresh" in result.stderr


@pytest.mark.parametrize("value", ["soon", "1 week", "-1h", "1.5h"])
def test_a_bad_tolerance_is_refused_when_the_config_loads(tmp_path, value):
    source = {**dirty.SOURCE, "cursor_tolerance": value}
    with pytest.raises(ConfigError, match="cursor_tolerance.*is not a duration"):
        with opened(tmp_path, {"orders": source}):
            pass
