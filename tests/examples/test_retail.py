"""The retail example end to end on each warehouse: a star schema from CSV, Excel, a REST API and SQLite, every
dirty row rejected with its rule, a second ingest that changes nothing, query answers and every stored column of
the seed's `metrics_daily` and `metrics_products` tables equal to pandas over the clean rows.

The clean rows are worked out here from the raw files with pandas, independently of the ingestion.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from contextlib import ExitStack, closing
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest

import numpy as np

import tally
import tally.rollups
from examples.retail.generate import EXPORTED_AT, _utc_text, prepare, serve_customers
from tally.sources import ingest
from tests.servers import warehouse_url_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retail"
ROWS, SEED = 5000, 11
SOURCES = ["products", "stores", "channels", "customers", "sales", "stock", "interactions"]
TABLES = {"products": "dim_products", "stores": "dim_stores", "channels": "dim_channels",
          "customers": "dim_customers", "sales": "fact_sales", "stock": "fact_stock",
          "interactions": "fact_interactions"}
KEYS = {"dim_products": ["product_id"], "dim_stores": ["store_id"], "dim_channels": ["channel_id"],
        "dim_customers": ["customer_id"], "fact_sales": ["sale_id"], "fact_stock": ["product_id", "stock_date"],
        "fact_interactions": ["interaction_id"]}
CATEGORIES = ["Grocery", "Home", "Electronics", "Clothing", "Beauty", "Toys", "Garden", "Sports"]
SEGMENTS = ["Consumer", "Loyalty", "Student", "Business"]
INTERACTION_TYPES = ["view", "search", "cart_add", "wishlist", "checkout", "review", "support_chat", "support_call"]
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
DUPLICATE = "duplicate_key (a later row was kept)"
LONDON = "Europe/London"
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


def _contents(project, names=(*KEYS, "_tally_rejects")) -> dict[str, pd.DataFrame]:
    """Every table's rows (an empty frame for a table a failed source never created)."""
    return {name: _table(project, name) if project.warehouse.has_table(name)
            else pd.DataFrame(columns=KEYS.get(name, ["source"])) for name in names}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The example's sources written once, its customers API running."""
    root = tmp_path_factory.mktemp("retail")
    shutil.copy(EXAMPLE / "tally.yml", root / "tally.yml")
    counts = prepare(root, ROWS, seed=SEED)
    with serve_customers(root) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("RETAIL_API_URL", url)
        yield SimpleNamespace(root=root, url=url, counts=counts)


@pytest.fixture(scope="module")
def retail(request, generated, warehouse_kind):
    """The example ingested twice into a fresh database of each warehouse, then its rollups built."""
    with ExitStack() as stack:
        url = stack.enter_context(warehouse_url_for(warehouse_kind, request, "retail"))
        project = tally.Project.load(generated.root, warehouse=url)
        stack.callback(project.close)
        first = {r.source: r for r in ingest(project)}
        before = _contents(project)
        second = {r.source: r for r in ingest(project)}
        after = _contents(project)
        yield SimpleNamespace(root=generated.root, url=generated.url, project=project, counts=generated.counts,
                              first=first, second=second, before=before, after=after, kind=warehouse_kind)


def _built(request, retail) -> SimpleNamespace:
    """The seed's two rollups built once per warehouse: their build results and stored rows."""
    if not hasattr(retail, "built"):
        project = retail.project
        retail.built = {r.rollup: r for r in tally.rollups.build(project, ["metrics_daily", "metrics_products"])}
        retail.stored = {name: project.warehouse.run(project.warehouse.compile(project.warehouse.table(name)))
                         .to_pandas() for name in retail.built}
    return retail


# -- the clean rows, worked out with pandas from the raw sources ----------------------------------------------

def _money(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype(str).str.replace(r"[£,\s]", "", regex=True), errors="coerce")


def _blank(values: pd.Series) -> pd.Series:
    return values.map(lambda v: not isinstance(v, str) or not v.strip())


def _latest(frame: pd.DataFrame, key: str, cursor: str) -> pd.DataFrame:
    return frame.sort_values([cursor], kind="stable").drop_duplicates(key, keep="last")


@pytest.fixture(scope="module")
def clean(generated) -> SimpleNamespace:
    data = generated.root / "data"
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
    customers["first_purchase"] = pd.to_datetime(customers.first_purchase_at, format="%Y-%m-%dT%H:%M:%SZ", utc=True)
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

    stock = pd.concat([pd.read_csv(f, dtype={"stock_date": str}) for f in sorted((data / "stock").glob("*.csv"))],
                      ignore_index=True)
    return SimpleNamespace(products=products, stores=stores, channels=channels, customers=customers, sales=sales,
                           events=events, stock=stock, raw_sales=raw)


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
    stock = before["fact_stock"]
    assert len(stock) == len(clean.stock)
    assert stock.closing_stock.astype(int).sum() == clean.stock.closing_stock.sum()


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


def test_stock_on_hand_new_customers_signups_and_interactions(retail, clean):
    last = clean.stock[clean.stock.stock_date == clean.stock.stock_date.max()]
    active = clean.products[clean.products.active.astype(bool)].merge(last, on="product_id")
    got = _rows(retail.project.query(["stock_on_hand"], by=["category"]), "category")
    expected = active.groupby("category").closing_stock.sum().astype(float)    # the catalogue = the last count
    assert {k: v["stock_on_hand"] for k, v in got.items() if v["stock_on_hand"]} == \
        {k: v for k, v in expected.items() if v}

    c = clean.customers
    got = _rows(retail.project.query(["new_customers", "signups"], by=["segment"], start="2025-01-01",
                                     end="2026-01-01"), "segment")
    expected = {}
    for measure, moment in (("new_customers", c.first_purchase), ("signups", c.created)):
        local = moment.dt.tz_convert(LONDON)
        year = c[(local >= pd.Timestamp("2025-01-01", tz=LONDON)) & (local < pd.Timestamp("2026-01-01", tz=LONDON))]
        for segment, n in year.groupby("segment").size().items():
            expected.setdefault(segment, {"new_customers": 0, "signups": 0})[measure] = n
    _same(got, expected)

    e = clean.events
    got = _rows(retail.project.query(["product_views", "cart_adds"], by=["channel"], start="2024-01-01",
                                     end="2026-01-01"), "channel")
    _same(got, {name: {"product_views": (g.interaction_type == "view").sum(),
                       "cart_adds": (g.interaction_type == "cart_add").sum()} for name, g in e.groupby("channel_name")})


# -- the seed's stored tables ------------------------------------------------------------------------------------

def _starts(days: pd.Series, grain: str) -> pd.Series:
    """The local period start of each (naive, local) day."""
    if grain == "day":
        return days
    if grain == "week":                                                 # weeks start on Monday
        return days - pd.to_timedelta(days.dt.weekday, unit="D")
    return days.dt.to_period({"month": "M", "quarter": "Q", "year": "Y"}[grain]).dt.start_time


def _ends(starts: pd.Series, grain: str) -> pd.Series:
    step = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(days=7), "month": pd.DateOffset(months=1),
            "quarter": pd.DateOffset(months=3), "year": pd.DateOffset(years=1)}[grain]
    return starts + step


def _periods(frames: list[pd.DataFrame], grain: str) -> pd.DataFrame:
    """Side-by-side aggregates (missing sums and counts are 0), with the period's start, end and grain."""
    table = pd.concat(frames, axis=1).fillna(0).reset_index()
    table = table.rename(columns={"start": "period_start"})
    table["period_end"] = _ends(table.period_start, grain)
    table["grain"] = grain
    return table


def _ratio(top: pd.Series, bottom: pd.Series) -> pd.Series:
    return (top.astype(float) / bottom.astype(float)).replace([np.inf, -np.inf], np.nan)


def _metrics_daily(clean) -> pd.DataFrame:
    s = clean.sales.assign(day=clean.sales.sold_at.dt.normalize())          # naive London times already
    c = clean.customers[clean.customers.first_purchase.notna()]
    c = c.assign(day=c.first_purchase.dt.tz_convert(LONDON).dt.tz_localize(None).dt.normalize())
    tables = []
    for grain in ("day", "week", "month", "quarter", "year"):
        sales = s.assign(start=_starts(s.day, grain)).groupby("start").agg(
            revenue=("total_amount", "sum"), total_transactions=("transaction_id", "nunique"),
            total_customers=("customer_id", "nunique"), units_sold=("quantity", "sum"))
        new = c.assign(start=_starts(c.day, grain)).groupby("start").size().rename("new_customers")
        tables.append(_periods([sales, new], grain))
    table = pd.concat(tables, ignore_index=True)
    table["total_sales"] = table.revenue
    table["avg_transaction_value"] = _ratio(table.revenue, table.total_transactions)
    return table


def _metrics_products(clean) -> pd.DataFrame:
    s = clean.sales.assign(day=clean.sales.sold_at.dt.normalize(), cogs=clean.sales.quantity * clean.sales.unit_cost)
    k = clean.stock.assign(day=pd.to_datetime(clean.stock.counted_at).dt.normalize())
    tables = []
    for grain in ("day", "month"):
        sales = s.assign(start=_starts(s.day, grain)).groupby(["product_id", "start"]).agg(
            units_sold=("quantity", "sum"), revenue=("total_amount", "sum"), cogs=("cogs", "sum"))
        stock = k.assign(start=_starts(k.day, grain)).groupby(["product_id", "start"]).agg(
            stock_unit_days=("closing_stock", "sum"), stock_days=("stock_date", "nunique"))
        tables.append(_periods([sales, stock], grain))
    table = pd.concat(tables, ignore_index=True)
    table["profit"] = table.revenue - table.cogs
    table["margin"] = _ratio(table.profit, table.revenue)
    table["stock_level"] = _ratio(table.stock_unit_days, table.stock_days)
    return table


def _equal_tables(stored: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Every stored column equals the expected one, row for row (money to the penny, ratios to 1e-9)."""
    assert set(stored.columns) == set(expected.columns) | {"built_at"}
    assert stored.built_at.notna().all()
    stored, expected = stored.drop(columns="built_at").copy(), expected.copy()
    for frame in (stored, expected):
        for column in ("period_start", "period_end"):
            frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
        if "product_id" in frame:
            frame["product_id"] = frame.product_id.astype(int)
    assert not stored.duplicated(keys).any()
    merged = stored.merge(expected, on=keys, how="outer", suffixes=("", "_expected"), indicator=True)
    assert (merged._merge == "both").all(), merged[merged._merge != "both"][[*keys, "_merge"]].head(10)
    assert (merged.period_end == merged.period_end_expected).all()
    for column in sorted(set(expected.columns) - {*keys, "period_end"}):
        got, want = merged[column].astype(float), merged[f"{column}_expected"].astype(float)
        wrong = ~(np.isclose(got, want, rtol=1e-9, atol=0.005) | (got.isna() & want.isna()))
        assert not wrong.any(), (column, merged[wrong][[*keys, column, f"{column}_expected"]].head(5))


def test_metrics_daily_stores_the_seed_columns_equal_to_pandas(request, retail, clean):
    built = _built(request, retail)
    assert built.built["metrics_daily"].rows == len(built.stored["metrics_daily"])
    _equal_tables(built.stored["metrics_daily"], _metrics_daily(clean), ["grain", "period_start"])


def test_metrics_products_is_keyed_by_product_id_with_stock_level(request, retail, clean):
    stored = _built(request, retail).stored["metrics_products"]
    assert {"product_id", "units_sold", "revenue", "profit", "stock_level"} <= set(stored.columns)
    assert "product" not in stored.columns
    _equal_tables(stored, _metrics_products(clean), ["grain", "period_start", "product_id"])


def test_first_purchases_agree_with_the_sales(clean):
    """The CRM's first purchase is its customer's first sale here, or one before the sales history began."""
    raw = clean.raw_sales[clean.raw_sales.customer_id.fillna("") != ""]
    sold = pd.to_datetime(raw.sold_at, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    first_sale = sold.groupby(raw.customer_id.astype(int)).min().dropna()     # none: only spoiled dates
    c = clean.customers.set_index("customer_id")
    bought = c.first_purchase.dt.tz_convert(LONDON).dt.tz_localize(None)
    have = first_sale.index.intersection(c.index)
    assert (bought[have] <= first_sale[have]).all()                 # nobody buys before their first purchase
    in_history = have[bought[have] >= pd.Timestamp("2024-01-01")]
    assert (bought[in_history] == first_sale[in_history]).mean() > 0.95   # a few first sales have spoiled dates
    assert len(in_history) > 100 and (bought[have] < pd.Timestamp("2024-01-01")).sum() > 50
    never = c.index.difference(raw.customer_id.astype(int))
    assert (bought[never].isna() | (bought[never] < pd.Timestamp("2024-01-01"))).all()
    assert (c.first_purchase.dropna() >= c.created[c.first_purchase.notna()]).all()


def test_watermarks_stay_at_or_before_the_extract(retail):
    for name, result in retail.first.items():
        if result.watermark_after:
            moment = pd.Timestamp(result.watermark_after)
            moment = moment.tz_convert(LONDON).tz_localize(None) if moment.tzinfo else moment
            assert moment <= pd.Timestamp(EXPORTED_AT), (name, result.watermark_after)


# -- the generator and its API ----------------------------------------------------------------------------------

def test_customers_api_pages_and_filters(generated):
    with httpx.Client(base_url=generated.url) as client:
        first = client.get("/customers", params={"page": 1, "per_page": 50}).json()
        second = client.get("/customers", params={"page": 2, "per_page": 50}).json()
        total = first["meta"]["total"]
        assert total == generated.counts["dim_customers"] and len(first["data"]) == 50
        assert not {r["customer_id"] for r in first["data"]} & {r["customer_id"] for r in second["data"]}
        since = second["data"][0]["updated_at"]
        newer = client.get("/customers", params={"per_page": 1000, "updated_since": since.replace("Z", "+00:00")})
        records = json.loads((generated.root / "data" / "customers.json").read_text(encoding="utf-8"))
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


def test_no_cursor_value_is_later_than_the_extract(tmp_path):
    """Issue 13 item 9: corrections were stamped up to 10 days after their sale, past the extract (at 30,000
    rows, seed 11, two sales were changed on 2026-01-06), which moved the cursor watermark into the future."""
    prepare(tmp_path, 30_000, seed=11)
    data, extract = tmp_path / "data", pd.Timestamp(EXPORTED_AT)

    def latest(folder: str, column: str, utc: bool = False) -> pd.Timestamp:
        frames = [pd.read_csv(f, dtype=str, usecols=[column]) for f in (data / folder).glob("*.csv")]
        values = pd.to_datetime(pd.concat(frames)[column], format="ISO8601", errors="coerce", utc=utc)
        return values.dt.tz_convert(LONDON).dt.tz_localize(None).max() if utc else values.max()

    assert latest("sales", "updated_at") <= extract
    assert latest("stock", "counted_at") <= extract
    assert latest("interactions", "interaction_at", utc=True) <= extract
    customers = pd.DataFrame(json.loads((data / "customers.json").read_text(encoding="utf-8")))
    for column in ("updated_at", "first_purchase_at"):
        moment = pd.to_datetime(customers[column], utc=True).max()
        assert moment.tz_convert(LONDON).tz_localize(None) <= extract, column
    products = pd.read_excel(data / "products.xlsx", sheet_name="Catalogue", header=3, engine="calamine")
    assert pd.to_datetime(products.updated_at).max() <= extract
    with closing(sqlite3.connect(data / "retail.db")) as con:
        for table in ("dim_stores", "dim_channels"):
            (stamp,) = con.execute(f"SELECT max(updated_at) FROM {table}").fetchone()
            assert pd.Timestamp(stamp) <= extract, table


@pytest.mark.parametrize(("wall", "utc"), [
    ("2024-10-27 00:30:00", "2024-10-26T23:30:00Z"),      # BST until 01:00 UTC on the day the clocks go back
    ("2024-03-31 00:30:00", "2024-03-31T00:30:00Z"),      # GMT until 01:00 UTC on the day they go forward
    ("2024-03-31 12:00:00", "2024-03-31T11:00:00Z"),
    ("2025-01-15 09:00:00", "2025-01-15T09:00:00Z"),
])
def test_london_times_become_utc_by_the_hour_not_the_day(wall, utc):
    seconds = int((datetime.fromisoformat(wall) - datetime(1970, 1, 1)).total_seconds())
    assert _utc_text(np.array([seconds], np.int64)).to_pylist() == [utc]
