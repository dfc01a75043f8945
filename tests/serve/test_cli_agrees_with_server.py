"""While `tally serve` runs on a DuckDB project, `tally query --format json` from another process and the
server's `GET /api/v1/query` give the same rows, and after a handed-off `tally ingest` both give the new
numbers, which a plain Python sum over the CSV files agrees with; `rollup build` and `verify` succeed."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import httpx

from tests.serve.conftest import days_ago, serving, tally, write_orders

# (CLI arguments, the same query as API parameters)
QUERIES = [
    (["revenue", "orders", "--by", "country"], {"metrics": "revenue,orders", "by": "country"}),
    (["revenue", "orders", "aov", "--grain", "month", "--by", "country", "--from", "2020-01-01", "--to", "2040-01-01"],
     {"metrics": "revenue,orders,aov", "grain": "month", "by": "country", "from": "2020-01-01", "to": "2040-01-01"}),
    (["revenue", "refunds", "--grain", "day", "--last", "30d", "--where", "country = 'TR'"],
     {"metrics": "revenue,refunds", "grain": "day", "last": "30d", "where": "country = 'TR'"}),
]


def decimals(text: str):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def by_country(root: Path) -> list[dict]:
    """revenue (amounts of orders not cancelled) and orders per country, summed in plain Python from the CSVs."""
    revenue, orders = defaultdict(Decimal), defaultdict(set)
    for path in sorted((root / "data").glob("orders*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["status"] != "cancelled":
                    revenue[row["country"]] += Decimal(row["amount"])
                    orders[row["country"]].add(row["order_id"])
    return [{"country": c, "revenue": revenue[c], "orders": Decimal(len(orders[c]))} for c in sorted(revenue)]


def both(root: Path, client: httpx.Client) -> list[tuple[list, list, str]]:
    """Each query's rows from the CLI (handed to the server) and from the server's API, and where the API's came from."""
    answers = []
    for args, params in QUERIES:
        cli = tally(root, "query", *args, "--format", "json")
        assert cli.returncode == 0 and cli.stderr == "", cli.stderr
        api = client.get("/api/v1/query", params=params)
        assert api.status_code == 200, api.text
        answers.append((decimals(cli.stdout), decimals(api.text)["rows"], api.json()["meta"]["source"]))
    return answers


def sorted_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: row["country"])


def test_cli_and_server_agree_before_and_after_a_handed_off_ingest(project):
    with serving(project) as server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client:
        before = both(project, client)
        for cli_rows, api_rows, _ in before:
            assert cli_rows == api_rows and api_rows
        assert sorted_rows(before[0][0]) == by_country(project)
        # new orders (and a new country), loaded through the server while it serves (and caches) answers
        write_orders(project / "data" / "orders2.csv", 50_000, 240, days_ago(3))
        with open(project / "data" / "orders2.csv", "a", newline="") as handle:
            csv.writer(handle).writerow([60_000, days_ago(2).isoformat(sep=" "), days_ago(2).isoformat(sep=" "),
                                         "c999", "FR", "paid", "12.34"])
        ingested = tally(project, "ingest")
        assert ingested.returncode == 0, ingested.stderr
        after = both(project, client)
        for cli_rows, api_rows, _ in after:
            assert cli_rows == api_rows and api_rows
        expected = by_country(project)
        assert sorted_rows(after[0][0]) == expected != sorted_rows(before[0][0])
        assert [row["country"] for row in expected] == ["DE", "FR", "TR", "US"]
        assert [tally(project, *args).returncode for args in (["rollup", "build"], ["verify"])] == [0, 0]
        built = both(project, client)   # the month query is now answered from the rollup: the same rows
        assert [(cli, api) for cli, api, _ in built] == [(cli, api) for cli, api, _ in after]
        assert built[1][2] == "rollup"
        total = client.get("/api/v1/query", params={"metrics": "revenue"}).json()["rows"][0]["revenue"]
        assert Decimal(str(total)) == sum(row["revenue"] for row in expected)
        assert server.handed_off() == 3 * len(QUERIES) + 3
