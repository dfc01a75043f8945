"""The `http` connector end to end: a real local API, `tally.sources.ingest`, a DuckDB warehouse."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import yaml

import tally
from tally.errors import ConfigError
from tally.sources import ingest
from tally.sources.connectors import http_api
from tally.warehouse.internal import read_state
from tests.sources.fake_api import serve, transactions

TOKEN = "s3cret-token"
COLUMNS = {"id": "int64", "user_id": "int64", "amount": "decimal(12,2)", "status": "text",
           "channel": "text", "updated_at": "timestamp"}
PAGINATION = {
    "plain": {},
    "page": {"records": "data", "pagination": {"type": "page", "size": 3}},
    "offset": {"records": "data", "pagination": {"type": "offset", "size": 3}},
    "cursor": {"records": "data", "pagination": {"type": "cursor", "size": 3, "size_param": "limit",
                                                 "next_cursor": "meta.next"}},
    "link": {"pagination": {"type": "link", "size": 3, "size_param": "per_page"}},
}


@pytest.fixture
def api(monkeypatch):
    """The upstream API with 7 transactions, guarded by a bearer token read from ${API_TOKEN}."""
    monkeypatch.setenv("API_TOKEN", TOKEN)
    with serve(transactions(7), token=TOKEN) as running:
        yield running


def source(url: str, style: str = "page", **options) -> dict:
    return {"kind": "http", "url": f"{url}/{style}/transactions", "headers": {"Authorization": "Bearer ${API_TOKEN}"},
            "fields": {"channel": "meta.channel"}, "incremental": {"param": "updated_since"}, "backoff": 0.02,
            "table": "transactions", "primary_key": ["id"], "cursor": "updated_at", "columns": COLUMNS,
            **PAGINATION[style], **options}


def run(root: Path, config: dict):
    """Write tally.yml with this one source, ingest it; (LoadResult, loaded rows by id, stored watermark)."""
    (root / "tally.yml").write_text(yaml.safe_dump({
        "name": "http-test", "warehouse": f"duckdb:///{root / 'warehouse.duckdb'}",
        "sources": {"transactions": config}}))
    project = tally.Project.load(root)
    try:
        result = ingest(project)[0]
        warehouse = project.warehouse
        rows = []
        if warehouse.has_table("transactions"):
            rows = warehouse.run(warehouse.compile(warehouse.table("transactions"))).to_pylist()
        return result, sorted(rows, key=lambda r: r["id"]), read_state(warehouse, "source:transactions")
    finally:
        project.close()


@pytest.mark.parametrize(("style", "requests"), [("plain", 1), ("page", 3), ("offset", 3), ("cursor", 3),
                                                 ("link", 3)])
def test_each_pagination_style_loads_every_record(api, tmp_path, style, requests):
    url, upstream = api
    result, rows, watermark = run(tmp_path, source(url, style))
    assert result.status == "ok", result.error
    assert (result.rows_read, result.rows_loaded) == (7, 7)
    assert [r["id"] for r in rows] == list(range(1, 8))
    assert len(upstream.requests) == requests and all(r.authorized for r in upstream.requests)
    assert rows[1] == {"id": 2, "user_id": 102, "amount": Decimal("25.00"), "status": "fulfilled", "channel": "app",
                       "updated_at": datetime(2024, 1, 1, 0, 2, tzinfo=timezone.utc)}
    assert watermark == "2024-01-01T00:07:00+00:00"


def test_a_full_last_page_ends_at_the_empty_page_after_it(tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", TOKEN)
    with serve(transactions(6), token=TOKEN) as (url, upstream):
        result, rows, _ = run(tmp_path, source(url, "offset"))
    assert result.rows_loaded == 6
    assert [r.params["offset"] for r in upstream.requests] == ["0", "3", "6"]


def test_without_declared_columns_json_values_keep_their_types(api, tmp_path):
    url, _ = api
    config = source(url, "page")
    del config["columns"]
    result, rows, _ = run(tmp_path, config)
    assert result.status == "ok", result.error
    assert rows[0]["amount"] == 12.5 and rows[0]["meta"] == '{"channel":"web"}' and rows[0]["channel"] == "web"


def test_second_run_asks_past_the_watermark_and_updates_changed_records(api, tmp_path):
    url, upstream = api
    first, _, watermark = run(tmp_path, source(url))
    upstream.upsert({**upstream.records[2], "amount": 99.99, "updated_at": "2024-01-02T00:00:00Z"})
    upstream.upsert({**transactions(8)[-1], "updated_at": "2024-01-02T00:01:00Z"})
    before = len(upstream.requests)
    second, rows, after = run(tmp_path, source(url))
    assert second.status == "ok", second.error
    assert {r.params["updated_since"] for r in upstream.requests[before:]} == {watermark}
    # the API's filter is inclusive and a keyed source re-reads the row at the watermark (id 7): the
    # merge replaces it, so a row updated in the same instant as the last one loaded is never lost
    assert (second.rows_loaded, second.rows_skipped) == (3, 0)
    assert [r["id"] for r in rows] == list(range(1, 9))
    assert rows[2]["amount"] == Decimal("99.99")
    assert after == "2024-01-02T00:01:00+00:00"


def test_nothing_new_loads_nothing_and_keeps_the_watermark(api, tmp_path):
    url, upstream = api
    _, _, watermark = run(tmp_path, source(url))
    upstream.records = []
    result, rows, after = run(tmp_path, source(url))
    assert (result.status, result.rows_loaded, len(rows), after) == ("ok", 0, 7, watermark)


def test_429_waits_as_long_as_retry_after_says(api, tmp_path):
    url, upstream = api
    upstream.fail(429, request=2, retry_after=1)
    result, rows, _ = run(tmp_path, source(url))
    assert result.status == "ok", result.error and len(rows) == 7
    throttled, retried = upstream.requests[1], upstream.requests[2]
    assert retried.params == throttled.params
    assert 0.95 <= retried.at - throttled.at < 2.5


def test_retry_after_as_an_http_date():
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    response = httpx.Response(503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    assert 27 <= http_api.retry_after(response) <= 30
    assert http_api.retry_after(httpx.Response(429, headers={"Retry-After": "2"})) == 2.0
    assert http_api.retry_after(httpx.Response(429)) is None


def test_a_retry_after_beyond_five_minutes_fails_now(api, tmp_path):
    url, upstream = api
    upstream.fail(503, retry_after=3600)
    result, _, _ = run(tmp_path, source(url))
    assert result.status == "failed" and "asks to wait 3600 s" in result.error and len(upstream.requests) == 1


def test_a_500_is_retried(api, tmp_path):
    url, upstream = api
    upstream.fail(500, request=3, times=2)
    result, rows, _ = run(tmp_path, source(url))
    assert result.status == "ok", result.error
    assert len(rows) == 7 and len(upstream.requests) == 5


def test_a_timeout_is_retried(api, tmp_path):
    url, upstream = api
    upstream.stall(3, request=1)
    started = time.monotonic()
    result, rows, _ = run(tmp_path, source(url, timeout=0.3))
    assert result.status == "ok", result.error
    assert len(rows) == 7 and time.monotonic() - started < 2.5


def test_a_persistent_500_fails_the_run_and_changes_nothing(api, tmp_path):
    url, upstream = api
    _, _, watermark = run(tmp_path, source(url))
    upstream.upsert({**transactions(8)[-1], "updated_at": "2024-01-02T00:00:00Z"})
    upstream.fail(500, request=len(upstream.requests) + 1, times=10)
    result, rows, after = run(tmp_path, source(url, retries=2))
    assert result.status == "failed"
    assert f"GET {url}/page/transactions?updated_since=2024-01-01T00%3A07%3A00%2B00%3A00&per_page=3&page=1 " \
        "answered 500 Internal Server Error (tried 3 times)" in result.error
    assert "500 Internal Server Error" in result.error and "tried 3 times" in result.error
    assert (result.rows_loaded, len(rows), after) == (0, 7, watermark)


def test_a_wrong_token_fails_at_once_without_showing_it(api, tmp_path, monkeypatch):
    url, upstream = api
    monkeypatch.setenv("API_TOKEN", "wrong-token")
    result, rows, watermark = run(tmp_path, source(url))
    assert result.status == "failed" and "401 Unauthorized" in result.error and "not retried" in result.error
    assert "wrong-token" not in result.error
    assert (len(upstream.requests), rows, watermark) == (1, [], None)


def test_an_unreachable_api_fails_after_its_retries(tmp_path):
    with serve() as (url, _):
        pass                                                   # the port is free again
    result, _, _ = run(tmp_path, source(url, retries=1, headers={}))
    assert result.status == "failed" and "failed (ConnectError" in result.error and "tried 2 times" in result.error


def test_exceeding_the_page_budget_fails_instead_of_truncating(api, tmp_path):
    url, upstream = api
    result, rows, _ = run(tmp_path, source(url, max_pages=2))
    assert result.status == "failed" and "max_pages=2" in result.error
    assert rows == [] and len(upstream.requests) == 2


def test_a_missing_records_path_fails_clearly(api, tmp_path):
    url, _ = api
    result, rows, _ = run(tmp_path, source(url, records="items"))
    assert result.status == "failed" and rows == []
    assert "the response has no 'items' (records); it has: data, meta" in result.error


def test_secret_query_values_are_masked_in_messages():
    shown = http_api.shown_url("https://user:pw@api.example.com/v1/tx?api_key=abc&page=2&access_token=xyz")
    assert shown == "https://api.example.com/v1/tx?api_key=***&page=2&access_token=***"


def test_bad_options_name_the_key(api, tmp_path):
    url, _ = api
    config = source(url, pagination={"type": "cursor"})
    with pytest.raises(ConfigError, match="next_cursor"):
        run(tmp_path, config)
