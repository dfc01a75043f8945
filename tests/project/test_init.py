"""`tally init`: a starter project that ingests and answers at once, checked against the CSV by plain Python."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from tests.cli_helpers import invoke, ok, refused




def monthly_from_csv(path: Path) -> dict[str, tuple[Decimal, int]]:
    """Revenue and orders per month as the template defines them, straight from the file."""
    revenue, orders = defaultdict(Decimal), defaultdict(set)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["status"] != "cancelled":
                month = row["ordered_at"][:7] + "-01"
                revenue[month] += Decimal(row["amount"])
                orders[month].add(row["order_id"])
    return {month: (revenue[month], len(orders[month])) for month in revenue}


def test_init_ingest_query_answers_like_the_csv(tmp_path):
    target = tmp_path / "first-hour"
    ok("init", target)
    sample = target / "data" / "orders.csv"
    with open(sample, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert 200 <= len(rows) <= 1000
    assert list(rows[0]) == ["order_id", "ordered_at", "updated_at", "customer", "country", "status", "amount"]
    ok("-p", target, "ingest")
    answer = json.loads(ok("-p", target, "query", "revenue", "orders", "--grain", "month", "--format", "json").stdout)
    expected = monthly_from_csv(sample)
    assert len(expected) >= 11
    assert {row["period"]: (Decimal(str(row["revenue"])), row["orders"]) for row in answer} == expected
    aov = json.loads(ok("-p", target, "query", "aov", "--format", "json").stdout)[0]["aov"]
    total = sum(r for r, _ in expected.values())
    assert abs(Decimal(str(aov)) - total / sum(n for _, n in expected.values())) < Decimal("0.01")


def test_init_template_is_commented_with_every_part(tmp_path):
    ok("init", tmp_path / "p")
    text = (tmp_path / "p" / "tally.yml").read_text(encoding="utf-8")
    for part in ("sources:", "models:", "updated: updated_at", "metrics:", "formula: revenue / orders", "rollups:"):
        assert part in text, part
    assert text.count("#") > 20


def test_init_rollup_builds_and_verifies(tmp_path):
    ok("init", tmp_path)
    ok("-p", tmp_path, "ingest")
    ok("-p", tmp_path, "rollup", "build")
    assert "ok" in ok("-p", tmp_path, "verify").stdout


def test_init_refuses_a_folder_with_a_project(tmp_path):
    (tmp_path / "tally.yml").write_text("name: mine\n", encoding="utf-8")
    line = refused("init", tmp_path)
    assert "already exists; not overwriting it" in line
    assert (tmp_path / "tally.yml").read_text(encoding="utf-8") == "name: mine\n"
    assert not (tmp_path / "data").exists()
