"""Issue 14: where an answer came from (live or a rollup, each model's last load and watermark),
`--live`, `--format json --meta`, and periods only partly covered by the range or the data."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from tests.cli_helpers import invoke, ok, printed


# sales in Istanbul (UTC+3): 10:00 UTC is 13:00 local; the last row is on Wednesday 2026-09-16
SALES = [(1, "2026-08-30 10:00:00", "10.50", "a"), (2, "2026-09-01 10:00:00", "20.25", "a"),
         (3, "2026-09-02 10:00:00", "5.00", "b"), (4, "2026-09-08 10:00:00", "7.75", "b"),
         (5, "2026-09-15 10:00:00", "100.00", "a"), (6, "2026-09-16 10:00:00", "1.10", "b")]

CONFIG = """
name: meta
timezone: Europe/Istanbul
week_start: monday
warehouse: {url}
sources:
  j5_sales:
    kind: csv
    path: sales.csv
    table: j5_sales
    primary_key: [id]
    cursor: sold_at
    columns: {{id: int64, sold_at: timestamp, amount: "decimal(12,2)", shop: string}}
models:
  sales:
    table: j5_sales
    time: sold_at
    primary_key: [id]
    dimensions: {{shop: shop}}
    measures:
      revenue: {{sum: amount, format: money}}
      sold: {{count: id, format: integer}}
rollups:
  j5_sales_report:
    metrics: [revenue, sold]
    grains: [day, month]
    by: [shop]
"""


@pytest.fixture(scope="module")
def sales_dir(session_warehouse_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("meta")
    (directory / "tally.yml").write_text(CONFIG.format(url=session_warehouse_url), encoding="utf-8")
    lines = ["id,sold_at,amount,shop"] + [",".join(map(str, row)) for row in SALES]
    (directory / "sales.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ok("-p", directory, "ingest", "--full-refresh")
    ok("-p", directory, "rollup", "build", "--full")
    return directory, before


def meta_of(directory, *args) -> tuple[list, dict]:
    plain = json.loads(printed("-p", directory, "query", *args, "--format", "json"))
    both = json.loads(printed("-p", directory, "query", *args, "--format", "json", "--meta"))
    assert set(both) == {"rows", "meta"}
    assert both["rows"] == plain   # --meta wraps the very rows a script reads without it
    return plain, both["meta"]


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_meta_from_a_rollup_and_live(sales_dir):
    directory, before = sales_dir
    september = ["--from", "2026-09-01", "--to", "2026-10-01"]
    rows, meta = meta_of(directory, "revenue", "--grain", "month", *september)
    expected = sum(Decimal(amount) for _, sold, amount, _ in SALES if sold.startswith("2026-09"))
    assert Decimal(str(rows[0]["revenue"])) == expected
    assert (meta["timezone"], meta["from"], meta["to"], meta["grain"]) == ("Europe/Istanbul", "2026-09-01",
                                                                         "2026-10-01", "month")
    assert meta["source"] == "rollup" and meta["rollup"]["name"] == "j5_sales_report"
    assert before <= when(meta["rollup"]["built_at"]) <= dt.datetime.now(dt.timezone.utc)
    sales = meta["models"]["sales"]
    assert before <= when(sales["last_load"]) <= dt.datetime.now(dt.timezone.utc)
    assert sales["watermark"].replace("T", " ").startswith("2026-09-16 10:00:00")
    assert when(sales["max_time"]) == dt.datetime(2026, 9, 16, 10, tzinfo=dt.timezone.utc)

    live_rows, live = meta_of(directory, "revenue", "--grain", "month", *september, "--live")
    assert live["source"] == "live" and live["rollup"] is None and live_rows == rows


def test_footer_says_where_the_answer_came_from(sales_dir):
    directory, _ = sales_dir
    text = printed("-p", directory, "query", "revenue", "--grain", "month", "--from", "2026-09-01", "--to", "2026-10-01")
    assert "answered from rollup j5_sales_report (built 20" in text
    assert "sales: last load 20" in text and "watermark 2026-09-16" in text
    text = printed("-p", directory, "query", "revenue", "--grain", "month", "--from", "2026-09-01", "--to",
              "2026-10-01", "--live")
    assert "answered live (--live)" in text and "rollup" not in text


def test_partial_periods(sales_dir):
    """Weeks of a September query: the first starts in August (range), those after Wednesday
    2026-09-16 end past the last data (data); the 2026-09-28 week is both."""
    directory, _ = sales_dir
    rows, meta = meta_of(directory, "revenue", "--grain", "week", "--from", "2026-09-01", "--to", "2026-10-01")
    assert [r["period"] for r in rows] == ["2026-08-31", "2026-09-07", "2026-09-14", "2026-09-21", "2026-09-28"]
    assert meta["partial"] == [{"period": "2026-08-31", "reasons": ["range"]},
                               {"period": "2026-09-14", "reasons": ["data"]},
                               {"period": "2026-09-21", "reasons": ["data"]},
                               {"period": "2026-09-28", "reasons": ["range", "data"]}]
    assert meta["data_through"] == "2026-09-16T21:00:00Z"   # the end of the local day of the last row
    text = printed("-p", directory, "query", "revenue", "--grain", "week", "--from", "2026-09-01", "--to", "2026-10-01")
    marked = [line for line in text.splitlines() if "* " in line and "2026-" in line and "│" in line]
    assert [m.split()[1] for m in marked] == ["2026-08-31", "2026-09-14", "2026-09-21", "2026-09-28"]
    assert "* partial period: 2026-08-31 (cut by the range)" in text

    rows, meta = meta_of(directory, "revenue", "--grain", "day", "--from", "2026-09-14", "--to", "2026-09-18")
    assert meta["partial"] == [{"period": "2026-09-17", "reasons": ["data"]}]
    _, meta = meta_of(directory, "revenue", "--grain", "month", "--from", "2026-08-01", "--to", "2026-09-01")
    assert meta["partial"] == []


def test_meta_needs_json(sales_dir):
    directory, _ = sales_dir
    result = invoke("-p", directory, "query", "revenue", "--meta")
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "error: --meta adds the answer's meta to JSON: use it with --format json"]


def test_a_total_past_the_data_is_flagged(sales_dir):
    directory, _ = sales_dir
    _, meta = meta_of(directory, "revenue", "--from", "2026-09-01", "--to", "2026-10-01")
    assert meta["past_data"] is True and meta["partial"] == []
    _, meta = meta_of(directory, "revenue", "--from", "2026-09-01", "--to", "2026-09-10")
    assert meta["past_data"] is False
    text = printed("-p", directory, "query", "revenue", "--from", "2026-09-01", "--to", "2026-10-01")
    assert "* partial: the range ends after the data (through 2026-09-16T21:00:00Z)" in text
