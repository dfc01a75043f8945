"""Generate the `ecommerce` example's seeded demo data: orders, catalog, stock, refunds and cost lookups."""

from __future__ import annotations

import argparse
import csv
from datetime import date, datetime, timezone
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SHOP_TZ = ZoneInfo("Europe/Istanbul")
DAY = 86_400
SHOPS = 20
MONEY = pa.decimal128(12, 2)
TIMESTAMP = pa.timestamp("us", tz="UTC")
STATUSES = pa.array(["paid", "shipped", "refunded", "cancelled"])
PAID, SHIPPED, REFUNDED, CANCELLED = range(4)
# Orders per local hour in Istanbul: quiet nights, a lunch bump, an evening peak.
HOUR_WEIGHTS = np.array([2.2, 1.3, 0.7, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.2, 4.2, 4.8,
                         5.2, 5.0, 4.8, 4.7, 4.8, 5.0, 5.3, 5.8, 6.6, 7.2, 6.6, 4.2])
WEEKDAY_WEIGHTS = np.array([0.92, 0.90, 0.92, 0.95, 1.00, 1.25, 1.30])  # Monday first
MONTH_WEIGHTS = np.array([0.90, 0.85, 0.95, 0.95, 1.00, 0.95, 0.90, 0.92, 0.97, 1.00, 1.40, 1.50])
GROWTH_PER_YEAR = 0.45
LINES_PER_ORDER = [0.66, 0.22, 0.08, 0.04]
QUANTITIES = [0.80, 0.12, 0.04, 0.02, 0.02]
SKUS_PER_LISTING = [0.55, 0.30, 0.15]
DISCOUNT_PERCENTS = np.array([5, 10, 15, 20, 25, 30])
LISTING_ID_BASE = 100_000
MAX_DESI = 30.0
# Carrier rate card: a line whose total desi (desi x quantity, at most 30 x 5) falls in
# [RATE_BOUNDS[i], RATE_BOUNDS[i + 1]) costs RATE_COSTS[i].
RATE_BOUNDS = [0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 75, 100, 150, 100_000]
RATE_COSTS = ["2.99", "3.49", "3.99", "4.59", "5.19", "6.29", "7.99", "10.49", "13.99", "18.49",
              "24.99", "30.99", "41.99", "57.99", "79.99", "119.99"]


class Catalog(NamedTuple):
    """Listings (grouped by shop for sampling) and their SKUs."""

    by_shop: np.ndarray  # listings sorted by shop; the sampling order
    cdf: np.ndarray  # shop + cumulative popularity within the shop, over `by_shop`
    group_end: np.ndarray  # end of each shop's block in `by_shop`
    first_sku: np.ndarray
    sku_count: np.ndarray
    sku_listing: np.ndarray
    price_cents: np.ndarray


def _categorical(rng: np.random.Generator, probs, n: int) -> np.ndarray:
    """Draw n category indices with the given probabilities."""
    cdf = np.cumsum(probs) / np.sum(probs)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _grouped_cdf(weights: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative weights restarting in each contiguous group, offset by the group number."""
    starts = np.searchsorted(groups, np.arange(n_groups), side="left")
    ends = np.searchsorted(groups, np.arange(n_groups), side="right")
    cs = np.cumsum(weights, dtype=np.float64)
    before = np.where(starts > 0, cs[starts - 1], 0.0)
    cdf = groups + (cs - before[groups]) / (cs[ends - 1] - before)[groups]
    cdf[ends - 1] = np.arange(1, n_groups + 1)
    return cdf, ends


def _grouped_pick(cdf: np.ndarray, ends: np.ndarray, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per element, draw a position within its group's block by the group's weights."""
    return np.minimum(np.searchsorted(cdf, group + u, side="right"), ends[group] - 1)


def _midnight(day: date, tz) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def _day_weights(days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative order volume per day: weekday, month, shopping holidays, growth, noise."""
    n = days.astype(np.int64)
    weekday = (n + 3) % 7  # 1970-01-01 was a Thursday
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    mday = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    w = WEEKDAY_WEIGHTS[weekday] * MONTH_WEIGHTS[month - 1]
    w[(month == 11) & (weekday == 4) & (mday >= 22) & (mday <= 28)] *= 2.6  # Black Friday
    w[(weekday == 0) & (((month == 11) & (mday >= 25)) | ((month == 12) & (mday == 1)))] *= 1.9
    w[(month == 11) & (mday == 11)] *= 1.8  # 11.11
    w *= np.exp(GROWTH_PER_YEAR * (n - n[0]) / 365.25)
    return w * rng.lognormal(0.0, 0.08, len(days))


def _order_times(n: int, start: date, end: date, rng: np.random.Generator):
    """Sorted order timestamps (UTC seconds) and their local day index, within [lo, hi)."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D"))
    midnights = np.array([_midnight(d, SHOP_TZ) for d in days.astype(object)], dtype=np.int64)
    lo = max(_midnight(start, timezone.utc), _midnight(start, SHOP_TZ))
    hi = min(_midnight(end, timezone.utc), _midnight(end, SHOP_TZ))
    day = _categorical(rng, _day_weights(days, rng), n)
    ts = midnights[day] + _categorical(rng, HOUR_WEIGHTS, n) * 3600 + rng.integers(0, 3600, n)
    # The first local night can fall before `start` in UTC (and vice versa): move it a day.
    ts[ts < lo] += DAY
    ts[ts >= hi] -= DAY
    ts = np.sort(np.clip(ts, lo, hi - 1))
    return ts, np.searchsorted(midnights, ts, side="right") - 1, hi


def _order_shops(day: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shop sizes, and a shop per order drawn from 30-day buckets where each shop grows at its own
    rate and a few open later."""
    bucket = day // 30
    n_buckets = int(bucket.max()) + 1
    size = rng.permutation(np.arange(1, SHOPS + 1) ** -1.3)
    growth = rng.normal(0.35, 0.45, SHOPS)
    opens = np.zeros(SHOPS)
    opens[rng.choice(SHOPS, 4, replace=False)] = rng.uniform(0.1, 0.75, 4) * n_buckets
    at = np.arange(n_buckets)[:, None]
    share = size * np.exp(growth * at * 30 / 365.25) * (at >= opens)
    cdf, ends = _grouped_cdf(share.ravel(), np.repeat(np.arange(n_buckets), SHOPS), n_buckets)
    return size, _grouped_pick(cdf, ends, bucket, rng.random(len(day))) - bucket * SHOPS


def _catalog(rows: int, shop_size: np.ndarray, rng: np.random.Generator) -> Catalog:
    """Listings spread over shops by size, 1-3 SKUs each, Zipf popularity within a shop."""
    n = int(np.clip(6 * np.sqrt(rows), 100, 40_000))
    share = shop_size**0.6 / np.sum(shop_size**0.6)
    counts = 3 + np.floor(share * (n - 3 * SHOPS)).astype(np.int64)
    listing_shop = rng.permutation(np.repeat(np.arange(SHOPS), counts))
    n = len(listing_shop)
    sku_count = _categorical(rng, SKUS_PER_LISTING, n) + 1
    first_sku = np.cumsum(sku_count) - sku_count
    sku_listing = np.repeat(np.arange(n), sku_count)
    variant = np.arange(len(sku_listing)) - first_sku[sku_listing]
    base = rng.lognormal(np.log(22), 0.75, n) * rng.lognormal(0.0, 0.35, SHOPS)[listing_shop]
    price = np.clip(base[sku_listing] * (1 + 0.12 * variant), 3, 450)
    price_cents = np.round(price).astype(np.int64) * 100 - 1  # 24.99-style prices
    by_shop = np.lexsort((rng.random(n), listing_shop))
    sorted_shop = listing_shop[by_shop]
    rank = np.arange(n) - np.searchsorted(sorted_shop, np.arange(SHOPS))[sorted_shop] + 1
    cdf, ends = _grouped_cdf(rank**-1.05, sorted_shop, SHOPS)
    return Catalog(by_shop, cdf, ends, first_sku, sku_count, sku_listing, price_cents)


def _earlier(group: np.ndarray, day: np.ndarray, lag_days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For elements sorted by (group, time): a random earlier element of the same group from `lag_days`
    before (or the next one after), -1 when that predates the data."""
    n_days = int(day.max()) + 1
    counts = np.bincount(group * n_days + day, minlength=(int(group.max()) + 1) * n_days)
    starts = np.cumsum(counts) - counts
    target = day - lag_days
    cell = group * n_days + np.maximum(target, 0)
    pos = np.minimum(starts[cell] + (rng.random(len(day)) * counts[cell]).astype(np.int64),
                     np.arange(len(day)) - 1)
    first = starts[group * n_days]  # the group's first element
    return np.where((target < day[first]) | (pos < first), -1, pos)


def _customers(day: np.ndarray, shop: np.ndarray, rng: np.random.Generator, new_share: float = 0.42) -> np.ndarray:
    """Customer id per order (orders sorted by time): new ones keep arriving, returning ones come back
    a lognormal lag after an order of theirs, which gives a heavy-tailed orders-per-customer law."""
    n = len(day)
    lag = np.ceil(rng.lognormal(np.log(40), 1.0, n)).astype(np.int64)
    by_shop = np.argsort(shop.astype(np.int8), kind="stable")  # radix sort; keeps time order
    found = _earlier(shop[by_shop], day[by_shop], lag[by_shop], rng)
    same_shop = np.empty(n, np.int64)
    same_shop[by_shop] = np.where(found < 0, -1, by_shop[found])
    any_shop = _earlier(np.zeros(n, np.int64), day, lag, rng)
    loyal = rng.random(n) < 0.7  # most returning customers come back to the same shop
    parent = np.where(loyal, same_shop, any_shop)
    # Customers whose previous order predates the data show up as new ones.
    is_new = (rng.random(n) < new_share) | (parent < 0)
    parent[is_new] = np.flatnonzero(is_new)
    while True:  # pointer jumping: every order ends up pointing at its customer's first order
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    return np.cumsum(is_new)[parent]


def _pick_skus(shop: np.ndarray, cat: Catalog, rng: np.random.Generator) -> np.ndarray:
    pos = _grouped_pick(cat.cdf, cat.group_end, shop, rng.random(len(shop)))
    listing = cat.by_shop[pos]
    variant = (rng.random(len(shop)) ** 1.6 * cat.sku_count[listing]).astype(np.int64)
    return cat.first_sku[listing] + variant


def _line_skus(shop: np.ndarray, line_no: np.ndarray, cat: Catalog, rng: np.random.Generator) -> np.ndarray:
    """SKU per line; an SKU repeated within an order is redrawn a few times."""
    sku = _pick_skus(shop, cat, rng)
    for _ in range(4):
        dup = np.zeros(len(sku), dtype=bool)
        for lag in (1, 2, 3):
            dup[lag:] |= (line_no[lag:] > lag) & (sku[lag:] == sku[:-lag])
        redo = np.flatnonzero(dup)
        if not len(redo):
            break
        sku[redo] = _pick_skus(shop[redo], cat, rng)
    return sku


def _decimal(units: np.ndarray, type_: pa.DataType = MONEY) -> pa.Array:
    """Decimal array from integer units of its scale (cents for money), without Python objects."""
    buf = np.empty((len(units), 2), dtype=np.int64)
    buf[:, 0] = units
    buf[:, 1] = units >> 63
    return pa.Array.from_buffers(type_, len(units), [None, pa.py_buffer(buf)])


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds * 1_000_000, type=TIMESTAMP)


def _catalog_tables(cat: Catalog, rng: np.random.Generator) -> dict[str, pa.Table]:
    n = len(cat.sku_listing)
    names = pa.array([f"SKU-{i:06d}" for i in range(1, n + 1)])
    product_id = pa.array(np.arange(1, n + 1, dtype=np.int64))
    stock = np.minimum(500, rng.exponential(90, n)).astype(np.int32)
    stock[rng.random(n) < 0.06] = 0
    return {
        "listing_products": pa.table({
            "listing_id": pa.array(LISTING_ID_BASE + 1 + cat.sku_listing.astype(np.int64)),
            "product_id": product_id, "sku": names}),
        "product_offerings": pa.table({
            "product_id": product_id, "sku": names, "price": _decimal(cat.price_cents),
            "quantity": pa.array(stock), "is_enabled": pa.array(rng.random(n) >= 0.10)}),
    }


def _order_statuses(ts: np.ndarray, hi: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per order: cancelled (~4%), shipped once its shipping delay has passed by `hi`, else paid."""
    n = len(ts)
    ship = ts + ((0.3 + rng.gamma(2.0, 0.6, n)) * DAY).astype(np.int64)
    cancel_at = ts + rng.integers(600, 2 * DAY, n)
    cancelled = (rng.random(n) < 0.04) & (cancel_at < hi)
    shipped = ~cancelled & (ship < hi)
    status = np.where(cancelled, CANCELLED, np.where(shipped, SHIPPED, PAID)).astype(np.int8)
    paid_at = np.minimum(ts + rng.integers(5, 300, n), hi - 1)
    return status, np.where(cancelled, cancel_at, np.where(shipped, ship, paid_at))


def _refunds(ordered, net, status, updated, line_order, line_no, hi, rng) -> pa.Table:
    """Refund ~3% of non-cancelled lines 3-45 days later (full or partial); marks them refunded in place."""
    n = len(ordered)
    wanted = (rng.random(n) < 0.031) & (status != CANCELLED)
    delay = 3 * DAY + (np.minimum(rng.exponential(9.0, n), 42.0) * DAY).astype(np.int64)
    refunded_at = ordered + delay
    idx = np.flatnonzero(wanted & (refunded_at < hi))  # not yet paid back by `end`: no refund
    at = refunded_at[idx]
    full = rng.random(len(idx)) < 0.7
    partial = np.clip(np.round(net[idx] * rng.uniform(0.2, 0.8, len(idx))).astype(np.int64), 1, net[idx])
    amount = np.where(full, net[idx], partial)
    settled = at + rng.integers(60, 3 * DAY, len(idx))
    refund_updated = np.where(settled < hi, settled, at)
    status[idx] = REFUNDED
    updated[idx] = np.maximum(updated[idx], at)
    order = np.argsort(at, kind="stable")
    idx, at, amount, refund_updated = idx[order], at[order], amount[order], refund_updated[order]
    return pa.table({
        "refund_id": pa.array(np.arange(1, len(idx) + 1, dtype=np.int64)),
        "order_id": pa.array(line_order[idx] + 1), "line_no": pa.array(line_no[idx]),
        "amount": _decimal(amount), "refunded_at": _timestamps(at), "updated_at": _timestamps(refund_updated)})


def generate(rows: int, seed: int = 42, start: date = date(2024, 11, 1),
             end: date = date(2026, 11, 1)) -> dict[str, pa.Table]:
    """The example's four tables with `rows` order lines; all timestamps fall in [start, end) in UTC and Istanbul."""
    if rows < 1 or start >= end:
        raise ValueError("generate needs rows >= 1 and start < end")
    rng = np.random.Generator(np.random.PCG64(seed))
    lines = _categorical(rng, LINES_PER_ORDER, rows).astype(np.int64) + 1
    ends = np.cumsum(lines)
    n_orders = int(np.searchsorted(ends, rows)) + 1
    lines, ends = lines[:n_orders], ends[:n_orders]
    lines[-1] -= ends[-1] - rows
    ts, day, hi = _order_times(n_orders, start, end, rng)
    shop_size, shop = _order_shops(day, rng)
    customer = _customers(day, shop, rng)
    cat = _catalog(rows, shop_size, rng)
    tables = _catalog_tables(cat, rng)

    line_order = np.repeat(np.arange(n_orders), lines)
    line_no = (np.arange(rows) - (ends - lines)[line_order] + 1).astype(np.int32)
    sku = _line_skus(shop[line_order], line_no, cat, rng)
    quantity = (_categorical(rng, QUANTITIES, rows) + 1).astype(np.int32)
    price = cat.price_cents[sku]
    coupon = DISCOUNT_PERCENTS[_categorical(rng, [1] * len(DISCOUNT_PERCENTS), n_orders)]
    percent = np.where(rng.random(n_orders) < 0.2, coupon, 0)  # a coupon covers the whole order
    discount = (quantity * price * percent[line_order] + 50) // 100

    status_o, updated_o = _order_statuses(ts, hi, rng)
    status, updated = status_o[line_order], updated_o[line_order]
    ordered = ts[line_order]
    tables["order_refunds"] = _refunds(ordered, quantity * price - discount, status, updated, line_order,
                                       line_no, hi, rng)
    tables["orders"] = pa.table({
        "order_id": pa.array(line_order + 1), "line_no": pa.array(line_no),
        "shop_id": pa.array((shop[line_order] + 1).astype(np.int32)),
        "listing_id": pa.array(LISTING_ID_BASE + 1 + cat.sku_listing[sku]),
        "sku": pc.take(tables["listing_products"]["sku"], pa.array(sku.astype(np.int32))),
        "customer_id": pa.array(customer[line_order]),
        "status": pc.take(STATUSES, pa.array(status)),
        "quantity": pa.array(quantity), "unit_price": _decimal(price), "discount": _decimal(discount),
        "ordered_at": _timestamps(ordered), "updated_at": _timestamps(updated)})
    return {k: tables[k] for k in ("orders", "listing_products", "product_offerings", "order_refunds")}


def lookups(tables: dict[str, pa.Table], seed: int = 42) -> dict[str, pa.Table]:
    """Cost per SKU (30-70% of price), desi per SKU (similar within a listing) and the carrier rate card."""
    rng = np.random.Generator(np.random.PCG64(seed).jumped())
    offers, links = tables["product_offerings"], tables["listing_products"]
    price_cents = np.round(offers["price"].cast(pa.float64()).to_numpy() * 100).astype(np.int64)
    unit_cost = np.round(price_cents * rng.uniform(0.3, 0.7, len(price_cents))).astype(np.int64)
    listing = links["listing_id"].to_numpy()[pc.index_in(offers["sku"], links["sku"]).to_numpy()]
    _, listing_idx = np.unique(listing, return_inverse=True)
    base = rng.lognormal(np.log(2.0), 0.8, listing_idx.max() + 1)[listing_idx]
    desi_tenths = np.round(np.clip(base * rng.uniform(0.9, 1.15, len(base)), 0.5, MAX_DESI) * 10).astype(np.int64)
    return {
        "costs": pa.table({"sku": offers["sku"], "unit_cost": _decimal(unit_cost)}),
        "desi": pa.table({"sku": offers["sku"], "desi": _decimal(desi_tenths, pa.decimal128(6, 1))}),
        "shipping_rates": pa.table({
            "desi_from": pa.array(RATE_BOUNDS[:-1], pa.int32()), "desi_to": pa.array(RATE_BOUNDS[1:], pa.int32()),
            "cost": pa.array(RATE_COSTS).cast(MONEY)}),
    }


def write_lookups(project_dir: Path, tables: dict[str, pa.Table], seed: int = 42) -> None:
    """Write costs.csv, desi.csv and shipping_rates.csv into the project folder."""
    for name, table in lookups(tables, seed).items():
        with open(Path(project_dir) / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(table.column_names)
            writer.writerows(zip(*(col.to_pylist() for col in table.columns)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="number of order lines")
    parser.add_argument("--out", type=Path, required=True, help="folder for the parquet and CSV files")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tables = generate(args.rows, args.seed)
    for name, table in tables.items():
        pq.write_table(table, args.out / f"{name}.parquet")
        print(f"{name}: {table.num_rows:,} rows")
    write_lookups(args.out, tables, args.seed)


if __name__ == "__main__":
    main()
