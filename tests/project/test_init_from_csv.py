"""`tally init DIR --from-csv FILE`: a drafted project from an awkward CSV ingests and answers at once."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import yaml

from tests.cli_helpers import ok, printed, refused


HEADER = ["Order ID", "Order Date", "Updated At", "Customer Name", "COUNTRY", "Amount (net)", "amount-net",
          "Select", "Qty", "Notes"]


def awkward_csv(path: Path, rows: int = 250) -> list[dict]:
    rng = random.Random(7)
    records = []
    for i in range(rows):
        placed = dt.datetime(2025, 1, 1) + dt.timedelta(minutes=rng.randrange(365 * 24 * 60))
        records.append({"Order ID": str(100 + i), "Order Date": placed.strftime("%Y-%m-%d %H:%M:%S"),
                        "Updated At": (placed + dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
                        "Customer Name": f"Customer {rng.randrange(180)}", "COUNTRY": rng.choice(["US", "DE", "TR"]),
                        "Amount (net)": f"{rng.randrange(100, 99_999) / 100:.2f}",
                        "amount-net": "" if i % 17 == 0 else f"{rng.randrange(1, 900) / 100:.2f}",
                        "Select": rng.choice(["yes", "no"]), "Qty": str(rng.randrange(1, 9)), "Notes": f"note {i}"})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(records)
    return records


def test_awkward_headers_draft_a_project_that_answers(tmp_path):
    source = tmp_path / "Sales Export.csv"
    records = awkward_csv(source)
    project = tmp_path / "drafted"
    said = printed("init", project, "--from-csv", source)
    assert "time column: order_date" in said
    config = yaml.safe_load((project / "tally.yml").read_text(encoding="utf-8"))
    src = config["sources"]["sales_export"]
    assert src["path"] == "data/Sales Export.csv" and (project / "data" / "Sales Export.csv").exists()
    assert src["rename"] == {"Order ID": "order_id", "Order Date": "order_date", "Updated At": "updated_at",
                             "Customer Name": "customer_name", "COUNTRY": "country", "Amount (net)": "amount_net",
                             "amount-net": "amount_net_2", "Select": "select_col", "Qty": "qty", "Notes": "notes"}
    assert src["columns"] == {"order_id": "int64", "order_date": "timestamp", "updated_at": "timestamp",
                              "customer_name": "string", "country": "string", "amount_net": "decimal(18,2)",
                              "amount_net_2": "decimal(18,2)", "select_col": "boolean", "qty": "int64",
                              "notes": "string"}
    assert src["primary_key"] == ["order_id"] and src["cursor"] == "updated_at"
    model = config["models"]["sales_export"]
    assert (model["time"], model["updated"]) == ("order_date", "updated_at")
    assert set(model["dimensions"]) == {"country", "select_col"}      # customer_name and notes: too many values
    assert model["measures"] == {"total_amount_net": {"sum": "amount_net", "format": "number"},
                                 "total_amount_net_2": {"sum": "amount_net_2", "format": "number"},
                                 "total_qty": {"sum": "qty", "format": "integer"},
                                 "row_count": {"count": "*", "format": "integer"}}

    ok("-p", project, "ingest")
    answer = json.loads(printed("-p", project, "query", "total_amount_net", "total_amount_net_2", "row_count",
                           "--grain", "month", "--format", "json"))
    expected = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for r in records:
        month = expected[r["Order Date"][:7] + "-01"]
        month[0] += Decimal(r["Amount (net)"])
        month[1] += Decimal(r["amount-net"] or 0)
        month[2] += 1
    assert {a["period"]: [Decimal(str(a["total_amount_net"])), Decimal(str(a["total_amount_net_2"])), a["row_count"]]
            for a in answer} == {k: v for k, v in expected.items()}
    by_country = json.loads(printed("-p", project, "query", "total_qty", "--by", "country", "--format", "json"))
    qty = defaultdict(int)
    for r in records:
        qty[r["COUNTRY"]] += int(r["Qty"])
    assert {a["country"]: a["total_qty"] for a in by_country} == qty
    # yes/no reads as a boolean: still a dimension
    chosen = json.loads(printed("-p", project, "query", "row_count", "--by", "select_col", "--format", "json"))
    assert {a["select_col"]: a["row_count"] for a in chosen} == {
        True: sum(r["Select"] == "yes" for r in records), False: sum(r["Select"] == "no" for r in records)}


def test_no_time_column_is_said_and_the_draft_still_answers(tmp_path):
    source = tmp_path / "scores.csv"
    source.write_text("Player,Score,Team\nann,1.5,red\nbob,2.25,blue\ncid,,red\ndan,4,red\n", encoding="utf-8")
    said = printed("init", tmp_path / "p", "--from-csv", source)
    assert "time column: none found" in said
    text = (tmp_path / "p" / "tally.yml").read_text(encoding="utf-8")
    assert "no date or timestamp column was found" in text and "time:" not in text.split("models:")[1].split("#")[0]
    ok("-p", tmp_path / "p", "ingest")
    rows = json.loads(printed("-p", tmp_path / "p", "query", "row_count", "total_score", "--by", "team", "--format", "json"))
    assert {r["team"]: (r["row_count"], r["total_score"]) for r in rows} == {"red": (3, 5.5), "blue": (1, 2.25)}


def test_the_created_column_is_preferred_as_time(tmp_path):
    source = tmp_path / "signups.csv"
    source.write_text("id,shipped_on,Created,modified_at,plan\n1,2025-01-03,2025-01-01 10:00:00,2025-01-05 00:00:00,a\n"
                      "2,2025-02-03,2025-02-01 10:00:00,2025-02-05 00:00:00,b\n", encoding="utf-8")
    ok("init", tmp_path / "p", "--from-csv", source)
    model = yaml.safe_load((tmp_path / "p" / "tally.yml").read_text(encoding="utf-8"))["models"]["signups"]
    assert (model["time"], model["updated"]) == ("created", "modified_at")
    ok("-p", tmp_path / "p", "ingest")
    rows = json.loads(printed("-p", tmp_path / "p", "query", "row_count", "--grain", "month", "--format", "json"))
    assert [(r["period"], r["row_count"]) for r in rows] == [("2025-01-01", 1), ("2025-02-01", 1)]


def test_a_csv_inside_the_folder_is_referenced_not_copied(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "t.csv").write_text("kind,n\na,1\nb,2\na,3\n", encoding="utf-8")
    ok("init", tmp_path, "--from-csv", tmp_path / "files" / "t.csv")
    assert yaml.safe_load((tmp_path / "tally.yml").read_text(encoding="utf-8"))["sources"]["t"]["path"] == "files/t.csv"
    assert not (tmp_path / "data").exists()
    ok("-p", tmp_path, "ingest")
    assert json.loads(printed("-p", tmp_path, "query", "total_n", "--format", "json")) == [{"total_n": 6}]


def test_refusals_are_one_line_and_write_nothing(tmp_path):
    twins = tmp_path / "twins.csv"
    twins.write_text("Amount,amount\n1,2\n", encoding="utf-8")
    assert "differ only in case" in refused("init", tmp_path / "a", "--from-csv", twins)
    assert "no such file" in refused("init", tmp_path / "b", "--from-csv", tmp_path / "nope.csv")
    reserved = tmp_path / "reserved.csv"
    reserved.write_text("_tally_rule,x\n1,2\n", encoding="utf-8")
    assert "reserved" in refused("init", tmp_path / "c", "--from-csv", reserved)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n", encoding="utf-8")
    assert "no rows" in refused("init", tmp_path / "d", "--from-csv", empty)
    assert not any((tmp_path / name).exists() for name in "abcd")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "tally.yml").write_text("name: mine\n", encoding="utf-8")
    assert "already exists" in refused("init", tmp_path / "e", "--from-csv", twins)
    assert (tmp_path / "e" / "tally.yml").read_text(encoding="utf-8") == "name: mine\n"


def test_a_semicolon_file_gets_its_delimiter(tmp_path):
    source = tmp_path / "semi.csv"
    source.write_text("Shop;Day;Sales\na;2025-01-01;1,5\nb;2025-01-02;2\na;2025-02-01;3\n", encoding="utf-8")
    ok("init", tmp_path / "p", "--from-csv", source)
    config = yaml.safe_load((tmp_path / "p" / "tally.yml").read_text(encoding="utf-8"))
    assert config["sources"]["semi"]["delimiter"] == ";" and config["models"]["semi"]["time"] == "day"
    ok("-p", tmp_path / "p", "ingest")
    rows = json.loads(printed("-p", tmp_path / "p", "query", "row_count", "--by", "shop", "--format", "json"))
    assert {r["shop"]: r["row_count"] for r in rows} == {"a": 2, "b": 1}


def test_a_file_not_in_utf8_is_refused_with_a_hint(tmp_path):
    source = tmp_path / "latin.csv"
    source.write_bytes("name,n\n\u00e9t\u00e9,1\n".encode("latin-1"))
    assert "save the file as UTF-8" in refused("init", tmp_path / "p", "--from-csv", source)
    assert not (tmp_path / "p").exists()


def test_a_few_stray_values_do_not_turn_a_column_into_text(tmp_path):
    # 199 good times and amounts, one broken date and one 'n/a' amount: a draft still dates by the
    # column and sums the amounts; ingest rejects the two rows, and the sums equal a plain one
    lines = ["id,paid at,amount"]
    for i in range(200):
        stamp = "not a date" if i == 50 else f"2026-0{1 + i % 3}-{1 + i % 28:02d} 10:00:00"
        lines.append(f"{i},{stamp},{'n/a' if i == 120 else f'{i}.25'}")
    source = tmp_path / "payments.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ok("init", tmp_path / "p", "--from-csv", source)
    text = (tmp_path / "p" / "tally.yml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    assert config["sources"]["payments"]["columns"] == {"id": "int64", "paid_at": "timestamp",
                                                        "amount": "decimal(18,2)"}
    assert config["models"]["payments"]["time"] == "paid_at"
    assert "1 value(s) do not read as timestamp" in text and "1 value(s) do not read as decimal(18,2)" in text
    ok("-p", tmp_path / "p", "ingest")
    got = json.loads(printed("-p", tmp_path / "p", "query", "total_amount", "--grain", "month", "--format", "json"))
    want: dict = defaultdict(Decimal)
    for i in range(200):
        if i not in (50, 120):
            want[f"2026-0{1 + i % 3}-01"] += Decimal(f"{i}.25")
    assert {row["period"]: Decimal(str(row["total_amount"])) for row in got} == dict(want)
    rejected = json.loads(printed("-p", tmp_path / "p", "rejects", "--format", "json"))
    assert sorted(r["line"] for r in rejected) == [52, 122]
