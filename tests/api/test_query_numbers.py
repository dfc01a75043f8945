"""/query on DuckDB, PostgreSQL and MariaDB: the rows equal `tally query --format json` and an
independent SQL sum; a cached answer is never stale (more rows loaded: the next answer changes)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.api.conftest import ROWS, cli, client, make_project, write_rows


@pytest.fixture(scope="module")
def sales(session_warehouse_url, tmp_path_factory):
    from tally import Project

    directory = make_project(tmp_path_factory.mktemp("h5numbers"), session_warehouse_url)
    project = Project.load(directory)
    yield directory, project, client(project)
    project.close()


def sql_sums(project, start: str, end: str) -> dict:
    """Revenue per shop by a plain SQL statement over the loaded table (Istanbul is UTC+3 all year)."""
    from tally.warehouse import CompiledQuery

    sql = ("SELECT shop, sum(amount) AS revenue, count(*) AS sold FROM h5_sales "
           f"WHERE sold_at >= TIMESTAMP '{start} 00:00:00' - INTERVAL '3' HOUR "
           f"AND sold_at < TIMESTAMP '{end} 00:00:00' - INTERVAL '3' HOUR GROUP BY shop")
    rows = project.reader.run(CompiledQuery(sql=sql, params=())).to_pylist()
    return {r["shop"]: (Decimal(str(r["revenue"])), int(r["sold"])) for r in rows}


@pytest.mark.parametrize("live", [False, True])
def test_query_rows_equal_the_cli_and_plain_sql(sales, live):
    directory, project, api = sales
    args = ["revenue", "sold", "--by", "shop", "--from", "2026-09-01", "--to", "2026-10-01"]
    printed = json.loads(cli("-p", directory, "query", *args, "--format", "json", *(["--live"] if live else [])))
    answer = api.get("/api/v1/query", params={"metrics": "revenue,sold", "by": "shop", "from": "2026-09-01",
                                              "to": "2026-10-01", "live": live})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == printed
    expected = sql_sums(project, "2026-09-01", "2026-10-01")
    got = {r["shop"]: (Decimal(str(r["revenue"])), r["sold"]) for r in answer.json()["rows"]}
    assert got == expected == {"a": (Decimal("15.50"), 2), "b": (Decimal("120.26"), 2)}


def test_meta_equals_the_cli_meta(sales):
    directory, _, api = sales
    printed = json.loads(cli("-p", directory, "query", "revenue", "--grain", "month", "--format", "json", "--meta"))
    answer = api.post("/api/v1/query", json={"metrics": ["revenue"], "grain": "month"}).json()
    assert answer["rows"] == printed["rows"]
    assert answer["meta"] == printed["meta"]


def load(directory, project, full_refresh: bool = False) -> None:
    """An ingest as the server sees one: on DuckDB by the server's own project (one process owns the
    file: the scheduler, or a CLI command handed to the server); elsewhere by another connection."""
    if project.warehouse.dialect.local_duckdb:
        from tally.sources import ingest

        assert all(r.status == "ok" for r in ingest(project, full_refresh=full_refresh))
    else:
        cli("-p", directory, "ingest", *(["--full-refresh"] if full_refresh else []))


def test_cached_answer_moves_with_the_data(sales, monkeypatch):
    from tally.delivery import answer

    directory, project, api = sales
    computed = []
    original = answer.answer
    monkeypatch.setattr(answer, "answer", lambda *a, **k: computed.append(1) or original(*a, **k))
    params = {"metrics": "revenue,sold", "by": "shop", "from": "2026-09-01", "to": "2026-09-30", "live": True}
    first = api.get("/api/v1/query", params=params).json()
    assert api.get("/api/v1/query", params=params).json() == first
    assert len(computed) == 1   # the second answer came from the cache
    write_rows(directory, "b.csv", [(10, "2026-09-03 10:00:00", "1000.00", "a")])
    load(directory, project)
    after = api.get("/api/v1/query", params=params).json()
    assert after != first and len(computed) == 2
    assert {r["shop"]: r["revenue"] for r in after["rows"]} == {"a": 1015.5, "b": 120.26}
    assert sql_sums(project, "2026-09-01", "2026-09-30")["a"] == (Decimal("1015.50"), 3)
    (directory / "data" / "b.csv").unlink()
    load(directory, project, full_refresh=True)
    assert api.get("/api/v1/query", params=params).json()["rows"] == first["rows"]
