"""The retail example end to end: a star schema from CSV, Excel, a REST API and SQLite, every dirty row rejected
with its rule, a second ingest that changes nothing, and query answers equal to pandas over the clean rows.

The clean rows are worked out here from the raw files with pandas, independently of the ingestion.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest

import tally
from examples.retail.generate import prepare, serve_customers
from tally.sources import ingest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retail"
ROWS, SEED = 5000, 11
SOURCES = ["products", "stores", "channels", "customers", "sales", "interactions"]
TABLES = {"products": "dim_products", "stores": "dim_stores", "channels": "dim_channels",
          "customers": "dim_customers", "sales": "fact_sales", "interactions": "fact_interactions"}
KEYS = {"dim_products": "product_id", "dim_stores": "store_id", "dim_channels": "channel_id",
        "dim_customers": "customer_id", "fact_sales": "sale_id", "fact_interactions": "interaction_id"}
CATEGORIES = ["Grocery", "Home", "Electronics", "Clothing", "Beauty", "Toys", "Garden", "Sports"]
SEGMENTS = ["Consumer", "Loyalty", "Student", "Business"]
INTERACTION_TYPES = ["view", "search", "cart_add", "wishlist", "checkout", "review", "support_chat", "support_call"]
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
DUPLICATE = "duplicate_key (a later row was kept)"
# (source, kind of dirty row as the generator counts it, the rule it must be rejected with)
DIRT = [
    ("sales", "bad_date", "type: sold_at is not a valid timestamptz"),
    ("sales", "negative_quantity", "min: quantity >= 1.0"),
    ("sales", "unknown_product", "exists_in: product_id in dim_products.product_id"),
    ("sales", "duplicate", DUPLICATE),
    ("sales", "truncated_line", "malformed CSV line"),
    ("interactions", "bad_timestamp", "type: interaction_at is not a valid timestamptz"),
    ("interactions", "negative_duration", "min: duration_seconds >= 0.0"),
    ("interactions", "unknown_type", "accepted_values: interaction_type in"),
    ("interactions", "unknown_customer", "exists_in: customer_id in dim_customers.customer_id"),
    ("products", "blank_name", "not_null: product_name"),
    ("products", "negative_cost", "min: unit_cost >= 0.0"),
    ("products", "unknown_category", "accepted_values: category in"),
    ("products", "bad_date", "type: created_at is not a valid timestamptz"),
    ("products", "duplicate", DUPLICATE),
    ("customers", "blank_name", "not_null: "),
    ("customers", "bad_email", "regex: email ~"),
    ("customers", "bad_date", "type: created_at is not a valid timestamptz"),
    ("customers", "unknown_segment", "accepted_values: segment in"),
    ("stores", "blank_name", "not_null: store_name"),
    ("stores", "bad_date", "type: open_date is not a valid date"),
    ("stores", "duplicate", DUPLICATE),
    ("channels", "unknown_type", "accepted_values: channel_type in"),
]


def _table(project, name: str) -> pd.DataFrame:
    warehouse = project.warehouse
    frame = warehouse.run(warehouse.compile(warehouse.table(name))).to_pandas()
    return frame.sort_values(KEYS[name]).reset_index(drop=True) if name in KEYS else frame


def _contents(project) -> dict[str, pd.DataFrame]:
    """Every table's rows (an empty frame for a table a failed source never created)."""
    return {name: _table(project, name) if project.warehouse.has_table(name) else pd.DataFrame(columns=[KEYS[name]])
            for name in [*KEYS, "_tally_rejects"]}


@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    """The example prepared, its customers API running, ingested twice."""
    root = tmp_path_factory.mktemp("retail")
    shutil.copy(EXAMPLE / "tally.yml", root / "tally.yml")
    counts = prepare(root, ROWS, seed=SEED)
    with serve_customers(root) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("RETAIL_API_URL", url)
        project = tally.Project.load(root)
        first = {r.source: r for r in ingest(project)}
        before = _contents(project)
        second = {r.source: r for r in ingest(project)}
        after = _contents(project)
        yield SimpleNamespace(root=root, url=url, project=project, counts=counts, first=first, second=second,
                              before=before, after=after)
        project.close()


# -- the clean rows, worked out with pandas from the raw sources ----------------------------------------------

def _money(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype(str).str.replace(r"[£,\s]", "", regex=True), errors="coerce")


def _blank(values: pd.Series) -> pd.Series:
    return values.map(lambda v: not isinstance(v, str) or not v.strip())


def _latest(frame: pd.DataFrame, key: str, cursor: str) -> pd.DataFrame:
    return frame.sort_values([cursor], kind="stable").drop_duplicates(key, keep="last")


@pytest.fixture(scope="module")
def clean(retail) -> SimpleNamespace:
    data = retail.root / "data"
    products = pd.read_excel(data / "products.xlsx", sheet_name="Catalogue", header=3, engine="calamine", dtype=object)
    products["unit_cost"], products["unit_price"] = _money(products.unit_cost), _money(products.unit_price)
    created = pd.to_datetime(products.created_at.astype(str), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    products = _latest(products[~_blank(products.product_name) & (products.unit_cost >= 0) & created.notna()
                                & products.category.isin(CATEGORIES)], "product_id", "updated_at")
    products["product_id"] = products.product_id.astype(int)

    with closing(sqlite3.connect(data / "retail.db")) as con:
        stores = pd.read_sql("SELECT * FROM dim_stores", con)
        channels = pd.read_sql("SELECT * FROM dim_channels", con)
    opened = pd.to_datetime(stores.open_date, format="%Y-%m-%d", errors="coerce")
    stores = _latest(stores[~_blank(stores.store_name) & opened.notna()], "store_id", "updated_at")
    channels = channels[channels.channel_type.isin(["physical", "digital", "assisted"])]

    customers = pd.DataFrame(json.loads((data / "customers.json").read_text(encoding="utf-8")))
    customers["created"] = pd.to_datetime(customers.created_at, format="%Y-%m-%dT%H:%M:%SZ", errors="coerce",
                                          utc=True)
    customers = customers[~_blank(customers.first_name) & ~_blank(customers.last_name)
                          & customers.email.map(lambda e: bool(EMAIL.fullmatch(e)))
                          & customers.segment.isin(SEGMENTS) & customers.created.notna()]

    raw = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in sorted((data / "sales").glob("*.csv"))],
                    ignore_index=True)
    sales = raw[raw.updated_at.fillna("") != ""].copy()                 # a cut-off line has no updated_at
    sales["sold_at"] = pd.to_datetime(sales.sold_at, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    for column in ("unit_price", "discount", "total_amount"):
        sales[column] = _money(sales[column])
    for column in ("sale_id", "transaction_id", "store_id", "channel_id", "product_id", "quantity"):
        sales[column] = sales[column].astype(int)
    sales["customer_id"] = pd.to_numeric(sales.customer_id).astype("Int64")
    sales = sales[sales.sold_at.notna() & (sales.quantity >= 1) & sales.product_id.isin(products.product_id)
                  & sales.store_id.isin(stores.store_id) & sales.channel_id.isin(channels.channel_id)
                  & (sales.customer_id.isna() | sales.customer_id.isin(customers.customer_id))]
    assert ((sales.quantity * sales.unit_price - sales.discount - sales.total_amount).abs() < 0.005).all()
    sales = _latest(sales, "sale_id", "updated_at")
    sales = sales.merge(products[["product_id", "category", "unit_cost"]], on="product_id")
    sales = sales.merge(stores[["store_id", "store_name"]], on="store_id")
    sales = sales.merge(channels[["channel_id", "channel_name"]], on="channel_id")

    events = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False)
                        for f in sorted((data / "interactions").glob("*.csv"))], ignore_index=True)
    events["moment"] = pd.to_datetime(events.interaction_at, format="%Y-%m-%dT%H:%M:%SZ", errors="coerce", utc=True)
    events["duration_seconds"] = events.duration_seconds.astype(int)
    events["customer_id"] = events.customer_id.astype(int)
    events = events[events.moment.notna() & (events.duration_seconds >= 0)
                    & events.interaction_type.isin(INTERACTION_TYPES)
                    & events.customer_id.isin(customers.customer_id)]
    events = events.merge(channels[["channel_id", "channel_name"]].astype({"channel_id": str}), on="channel_id")
    return SimpleNamespace(products=products, stores=stores, channels=channels, customers=customers, sales=sales,
                           events=events)


# -- ingestion --------------------------------------------------------------------------------------------------

def test_every_source_loads_and_accounts_for_every_row(retail):
    assert list(retail.first) == SOURCES
    for run in (retail.first, retail.second):
        for name, result in run.items():
            assert result.status == "ok", (name, result.error)
            assert result.rows_read == result.rows_loaded + result.rows_rejected, name
    written = {name: retail.counts[TABLES[name]] for name in SOURCES}
    assert {name: r.rows_read for name, r in retail.first.items()} == written
    assert retail.counts["fact_sales"] == ROWS + retail.counts["fact_sales.duplicate"]
    for name, result in retail.first.items():
        assert len(retail.before[TABLES[name]]) == result.rows_loaded, name


@pytest.mark.parametrize(("source", "kind", "rule"), DIRT, ids=[f"{s}-{k}" for s, k, _ in DIRT])
def test_each_kind_of_dirty_row_is_rejected_with_its_rule(retail, source, kind, rule):
    rejects = retail.before["_tally_rejects"]
    mine = rejects[rejects.source == source]
    table = TABLES[source]
    assert retail.counts[f"{table}.{kind}"] > 0
    assert mine.rule.str.startswith(rule).sum() == retail.counts[f"{table}.{kind}"], sorted(set(mine.rule))


def test_only_dirty_rows_are_rejected(retail):
    rejects = retail.before["_tally_rejects"]
    for source in SOURCES:
        table = TABLES[source]
        planted = sum(v for k, v in retail.counts.items() if k.startswith(f"{table}.") and k != "fact_sales.money_text")
        assert (rejects.source == source).sum() == planted == retail.first[source].rows_rejected, source
    duplicate = json.loads(rejects[(rejects.source == "sales") & (rejects.rule == DUPLICATE)].raw.iloc[0])
    assert set(duplicate) >= {"sale_id", "sold_at", "quantity", "updated_at"}


def test_messy_values_are_cleaned_not_rejected(retail, clean):
    sales, products, customers = (retail.before[t] for t in ("fact_sales", "dim_products", "dim_customers"))
    assert retail.counts["fact_sales.money_text"] > 0
    assert (sales.unit_price > 0).all() and sales.unit_price.map(lambda v: v.as_tuple().exponent == -2).all()
    pending = sales.merge(clean.sales[["sale_id", "unit_price", "total_amount"]], on="sale_id", suffixes=("", "_x"))
    assert len(pending) == len(sales)
    assert ((pending.unit_price.astype(float) - pending.unit_price_x).abs() < 0.005).all()
    assert ((pending.total_amount.astype(float) - pending.total_amount_x).abs() < 0.005).all()
    assert not customers.first_name.str.match(r"^\s|.*\s$").any()               # padded names trimmed
    assert not products.product_name.str.match(r"^\s|.*\s$").any()
    assert sales.customer_id.isna().any()                                      # anonymous till sales load
    assert set(customers.columns) >= {"city", "postcode", "country"}           # flattened from `address`
    assert customers.city.notna().all()


def test_loaded_tables_equal_the_clean_rows(retail, clean):
    before = retail.before
    assert sorted(before["fact_sales"].sale_id) == sorted(clean.sales.sale_id)
    assert sorted(before["dim_products"].product_id) == sorted(clean.products.product_id)
    assert sorted(before["dim_customers"].customer_id) == sorted(clean.customers.customer_id)
    assert sorted(before["dim_stores"].store_id) == sorted(clean.stores.store_id)
    assert sorted(before["dim_channels"].channel_id) == sorted(clean.channels.channel_id)
    assert sorted(before["fact_interactions"].interaction_id) == sorted(clean.events.interaction_id.astype(int))
    kept = before["fact_sales"].set_index("sale_id").quantity.astype(int)
    expected = clean.sales.set_index("sale_id").quantity
    assert (kept.sort_index() == expected.sort_index()).all()              # corrections won over the originals


def test_a_second_ingest_changes_nothing(retail):
    for name, frame in retail.before.items():
        if name == "_tally_rejects":
            assert len(retail.after[name]) == len(frame)
            continue
        pd.testing.assert_frame_equal(retail.after[name], frame, check_like=True, obj=name)
    assert retail.second["sales"].rows_loaded < 10 and retail.second["customers"].rows_loaded < 10


# -- answers ----------------------------------------------------------------------------------------------------

def _rows(table, key: str | None = None) -> dict:
    rows = table.to_pylist()
    if key is None:
        (row,) = rows
        return {k: float(v) if v is not None else None for k, v in row.items()}
    return {row[key]: {k: float(v) for k, v in row.items() if k != key} for row in rows}


def _same(got: dict, expected: dict) -> None:
    """Grouped answers equal (money to the penny), groups without data left out on both sides."""
    got = {k: v for k, v in got.items() if any(v.values())}
    expected = {k: v for k, v in expected.items() if any(v.values())}
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx({k: float(v) for k, v in values.items()}, abs=0.005), key


def test_headline_metrics_equal_pandas(retail, clean):
    s = clean.sales
    got = _rows(retail.project.query(
        ["total_sales", "total_transactions", "avg_transaction_value", "total_customers", "units_sold", "profit"],
        start="2024-01-01", end="2026-01-01"))
    revenue = s.total_amount.sum()
    cogs = (s.quantity * s.unit_cost).sum()
    expected = {"total_sales": revenue, "total_transactions": s.transaction_id.nunique(),
                "avg_transaction_value": revenue / s.transaction_id.nunique(),
                "total_customers": s.customer_id.dropna().nunique(), "units_sold": s.quantity.sum(),
                "profit": revenue - cogs}
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, abs=0.005)


def test_revenue_and_profit_by_category_equal_pandas(retail, clean):
    s = clean.sales.assign(cogs=clean.sales.quantity * clean.sales.unit_cost)
    got = _rows(retail.project.query(["revenue", "profit", "units_sold"], by=["category"],
                                     start="2024-01-01", end="2026-01-01"), "category")
    grouped = s.groupby("category").agg(revenue=("total_amount", "sum"), cogs=("cogs", "sum"),
                                        units_sold=("quantity", "sum"))
    _same(got, {c: {"revenue": r.revenue, "profit": r.revenue - r.cogs, "units_sold": r.units_sold}
                for c, r in grouped.iterrows()})


def test_december_sales_by_store_in_london_time(retail, clean):
    s = clean.sales
    december = s[(s.sold_at >= "2024-12-01") & (s.sold_at < "2025-01-01")]      # naive London times
    got = _rows(retail.project.query(["total_sales", "total_transactions"], by=["store"],
                                     start="2024-12-01", end="2025-01-01"), "store")
    _same(got, {name: {"total_sales": g.total_amount.sum(), "total_transactions": g.transaction_id.nunique()}
                for name, g in december.groupby("store_name")})


def test_monthly_transactions_by_channel(retail, clean):
    s = clean.sales[(clean.sales.sold_at >= "2025-01-01") & (clean.sales.sold_at < "2025-04-01")]
    table = retail.project.query(["total_transactions"], by=["channel"], grain="month",
                                 start="2025-01-01", end="2025-04-01")
    got = {(str(r["period"])[:7], r["channel"]): r["total_transactions"] for r in table.to_pylist()
           if r["total_transactions"]}
    expected = {(month, channel): g.transaction_id.nunique()
                for (month, channel), g in s.groupby([s.sold_at.dt.strftime("%Y-%m"), "channel_name"])}
    assert got == expected


def test_stock_new_customers_and_interactions(retail, clean):
    active = clean.products[clean.products.active.astype(bool)]
    got = _rows(retail.project.query(["stock_level"], by=["category"]), "category")
    expected = active.groupby("category").stock_level.sum().astype(float)
    assert {k: v["stock_level"] for k, v in got.items() if v["stock_level"]} == \
        {k: v for k, v in expected.items() if v}

    c = clean.customers
    local = c.created.dt.tz_convert("Europe/London")
    joined = c[(local >= pd.Timestamp("2025-01-01", tz="Europe/London"))
               & (local < pd.Timestamp("2026-01-01", tz="Europe/London"))]
    got = _rows(retail.project.query(["new_customers"], by=["segment"], start="2025-01-01", end="2026-01-01"),
                "segment")
    assert {k: v["new_customers"] for k, v in got.items() if v["new_customers"]} == \
        joined.groupby("segment").size().astype(float).to_dict()

    e = clean.events
    got = _rows(retail.project.query(["product_views", "cart_adds"], by=["channel"], start="2024-01-01",
                                     end="2026-01-01"), "channel")
    _same(got, {name: {"product_views": (g.interaction_type == "view").sum(),
                       "cart_adds": (g.interaction_type == "cart_add").sum()} for name, g in e.groupby("channel_name")})


# -- the generator and its API ----------------------------------------------------------------------------------

def test_customers_api_pages_and_filters(retail):
    with httpx.Client(base_url=retail.url) as client:
        first = client.get("/customers", params={"page": 1, "per_page": 50}).json()
        second = client.get("/customers", params={"page": 2, "per_page": 50}).json()
        total = first["meta"]["total"]
        assert total == retail.counts["dim_customers"] and len(first["data"]) == 50
        assert not {r["customer_id"] for r in first["data"]} & {r["customer_id"] for r in second["data"]}
        since = second["data"][0]["updated_at"]
        newer = client.get("/customers", params={"per_page": 1000, "updated_since": since.replace("Z", "+00:00")})
        records = json.loads((retail.root / "data" / "customers.json").read_text(encoding="utf-8"))
        assert newer.json()["meta"]["total"] == sum(r["updated_at"] >= since for r in records)
        assert min(r["updated_at"] for r in newer.json()["data"]) == since
        assert client.get("/customers", params={"per_page": 0}).status_code == 400
        assert client.get("/customers", params={"updated_since": "soon"}).status_code == 400
        assert client.get("/orders").status_code == 404


def test_the_generator_is_deterministic(tmp_path):
    counts = [prepare(tmp_path / name, 400, seed=5) for name in ("a", "b")]
    assert counts[0] == counts[1]
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 20
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert prepare(tmp_path / "c", 400, seed=6) != counts[0] or \
        (tmp_path / "c/data/customers.json").read_bytes() != (tmp_path / "a/data/customers.json").read_bytes()
