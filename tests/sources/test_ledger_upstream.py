"""The `http` connector polling the ledger example's Transaction API (a real server on a free port): cursor
pages, 429 + Retry-After, edited rows replacing old ones by id, and re-polls from the watermark that count
nothing twice, checked against plain Python over the upstream's own rows (examples/ledger/reference.py)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

import tally
from examples.ledger import reference
from examples.ledger.generate import serve_upstream
from tally.sources import ingest
from tally.warehouse.internal import read_state

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ledger" / "tally.yml"
BUCKETS = {"earned": "earned", "spent": "spent", "payout": "payout", "paid_out": "paidOut"}


def example_source(url: str, **options) -> dict:
    """The example's own `transactions` source, pointed at `url`."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    source = config["sources"]["transactions"]
    return {**source, "url": f"{url}/transactions", **options}


def write_project(root: Path, warehouse: str, source: dict) -> None:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config.pop("rollups")
    config.update(warehouse=warehouse, sources={"transactions": source})
    (root / "tally.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def poll(root: Path):
    """One ingest of the project: (LoadResult, stored rows by id, watermark, per-user sums from the engine)."""
    project = tally.Project.load(root)
    try:
        result = ingest(project)[0]
        warehouse = project.warehouse
        stored = {}
        if warehouse.has_table("transactions"):
            stored = {r["id"]: r for r in warehouse.run(warehouse.compile(warehouse.table("transactions"))).to_pylist()}
        sums = {}
        if stored:
            table = project.query_result(list(BUCKETS), by=["user_id"]).table.to_pylist()
            sums = {r["user_id"]: {BUCKETS[k]: r[k] for k in BUCKETS} for r in table}
        return result, stored, read_state(warehouse, "source:transactions"), sums
    finally:
        project.close()


def expected_sums(rows: list[dict]) -> dict:
    return {user: {k: v for k, v in b.items() if k != "balance"} for user, b in reference.per_user(rows).items()}


def same_rows(stored: dict, upstream: list[dict]) -> None:
    """The warehouse holds exactly the upstream's current version of every transaction."""
    assert set(stored) == {row["id"] for row in upstream}
    for row in upstream:
        got = stored[row["id"]]
        assert (got["user_id"], got["type"], got["amount"]) == (row["userId"], row["type"], Decimal(str(row["amount"])))
        stamp = got["updated_at"]   # MariaDB hands back UTC without its zone
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
        assert stamp == datetime.fromisoformat(row["updatedAt"]), row


@pytest.fixture
def warehouse_url(request, warehouse_kind, tmp_path):
    """An empty warehouse of each kind (servers started on first use)."""
    from tests.servers import mariadb_database, postgres_database

    with ExitStack() as stack:
        if warehouse_kind == "duckdb":
            yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        elif warehouse_kind == "postgres":
            yield stack.enter_context(postgres_database(request.getfixturevalue("postgres_url"), "ledger"))
        else:
            yield stack.enter_context(mariadb_database(request.getfixturevalue("mariadb_url"), "ledger"))


def test_cursor_paging_reads_every_row_once(tmp_path):
    with serve_upstream(rows=2_500, seed=8) as upstream:
        write_project(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}",
                      example_source(upstream.url, pagination={**example_source("")["pagination"], "size": 300}))
        result, stored, watermark, sums = poll(tmp_path)
        rows = upstream.api.transactions()
        assert result.status == "ok", result.error
        assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (2_500, 2_500, 0)
        assert len(upstream.api.log) == 9   # 8 full pages of 300 and a short one
        assert [bool(p.get("cursor")) for p in upstream.api.log] == [False] + [True] * 8
        assert all(p["limit"] == "300" and "updatedSince" not in p for p in upstream.api.log)   # nothing stored yet
        same_rows(stored, rows)
        assert sums == expected_sums(rows)
        assert datetime.fromisoformat(watermark) == datetime.fromisoformat(rows[-1]["updatedAt"])


def test_429_waits_for_retry_after_then_loads_everything(tmp_path):
    with serve_upstream(rows=1_200, seed=9, throttle_every=3, retry_after=1) as upstream:
        write_project(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}",
                      example_source(upstream.url, pagination={**example_source("")["pagination"], "size": 250}))
        started = time.monotonic()
        result, stored, _, _ = poll(tmp_path)
        took = time.monotonic() - started
        assert result.status == "ok", result.error
        assert upstream.api.throttled == 2 and took >= 1.9   # 5 pages + 2 retries: requests 3 and 6 refused
        throttled, retried = upstream.api.log[2], upstream.api.log[3]
        assert throttled == retried   # the same page asked again
        same_rows(stored, upstream.api.transactions())


def test_a_429_on_every_try_fails_clearly_and_loads_nothing(tmp_path):
    with serve_upstream(rows=100, seed=9, throttle_every=1, retry_after=0) as upstream:
        write_project(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}", example_source(upstream.url, retries=2))
        result, stored, watermark, _ = poll(tmp_path)
        assert result.status == "failed" and upstream.api.requests == 3
        assert "429" in result.error and "tried 3 times" in result.error and "nothing was loaded" in result.error
        assert "\n" not in result.error
        assert (stored, watermark) == ({}, None)


def test_edits_replace_by_id_and_repolls_count_nothing_twice(tmp_path, warehouse_url):
    with serve_upstream(rows=1_500, seed=10) as upstream:
        write_project(tmp_path, warehouse_url, example_source(upstream.url))
        first, _, watermark, _ = poll(tmp_path)
        assert first.status == "ok", first.error
        before = {row["id"]: row for row in upstream.api.transactions()}
        upstream.api.advance(300)   # new transactions and corrections of old ones, stamped now
        rows = upstream.api.transactions()
        edited = [row for row in rows if row["id"] in before and row != before[row["id"]]]
        assert len(edited) > 5 and len(rows) > len(before)
        asked = len(upstream.api.log)
        second, stored, after, sums = poll(tmp_path)
        assert second.status == "ok", second.error
        # asked only from the watermark; the filter is inclusive, so the row at the watermark comes again
        assert [p["updatedSince"] for p in list(upstream.api.log)[asked:]] == [watermark]
        assert second.rows_read == len([row for row in rows if row["updatedAt"] >= _api_text(watermark)])
        same_rows(stored, rows)
        assert sums == expected_sums(rows)
        assert datetime.fromisoformat(after) == datetime.fromisoformat(rows[-1]["updatedAt"])
        third, again, last, sums_again = poll(tmp_path)   # nothing new: the same answers
        assert third.status == "ok" and third.rows_read <= 1 and last == after
        assert again == stored and sums_again == sums


def _api_text(watermark: str) -> str:
    """The stored watermark as the API's ISO text (UTC, milliseconds, Z)."""
    from examples.ledger.generate import _since

    return _since(watermark)
