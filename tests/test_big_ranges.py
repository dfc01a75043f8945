"""Ranges of centuries: refused at once when the answer would list too many periods or a rebuild
would query too many days, answered quickly when it would not (once: minutes, or no end)."""

from __future__ import annotations

import json
import time

import pytest

from tests.cli_helpers import invoke



@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("big") / "shop"
    assert invoke("init", root).exit_code == 0
    assert invoke("-p", root, "ingest").exit_code == 0
    return root


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_hours_over_centuries_are_refused_at_once(shop):
    clock = time.perf_counter()
    line = one_line_error(invoke("-p", shop, "query", "revenue", "--grain", "hour", "--from", "1000-01-01",
                                "--to", "8999-01-01"))
    assert time.perf_counter() - clock < 5
    assert "by hour is about 70,117,800 periods" in line and "narrow the range or use a coarser grain" in line


def test_years_over_centuries_answer_quickly(shop):
    clock = time.perf_counter()
    result = invoke("-p", shop, "query", "revenue", "--grain", "year", "--from", "1000-01-01", "--to", "8999-01-01",
                   "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert time.perf_counter() - clock < 10
    rows = json.loads(result.stdout)
    assert len(rows) == 7999 and rows[0]["period"] == "1000-01-01" and rows[-1]["period"] == "8998-01-01"
    assert sum(row["revenue"] for row in rows) > 0


def test_a_rebuild_of_centuries_is_refused_at_once(shop):
    assert invoke("-p", shop, "rollup", "build").exit_code == 0
    clock = time.perf_counter()
    line = one_line_error(invoke("-p", shop, "rollup", "build", "--from", "1000-01-01"))
    assert time.perf_counter() - clock < 5
    assert "--from 1000-01-01" in line and "days, more than 200,000" in line and "--full" in line


def test_a_grid_of_every_period_for_every_value_too_big_to_read_is_refused(shop):
    # six years of hours for every customer: 5 million rows, once 45 s and hundreds of MB of JSON
    clock = time.perf_counter()
    line = one_line_error(invoke("-p", shop, "query", "revenue", "--grain", "hour", "--by", "customer",
                                "--from", "2020-01-01", "--to", "2026-01-01"))
    assert time.perf_counter() - clock < 10
    assert "periods ×" in line and "values of customer" in line and "--limit" in line
    top = invoke("-p", shop, "query", "revenue", "--grain", "hour", "--by", "customer", "--from", "2020-01-01",
                "--to", "2026-01-01", "--order", "-revenue", "--limit", "3", "--format", "json")
    assert top.exit_code == 0 and len(json.loads(top.stdout)) == 3
