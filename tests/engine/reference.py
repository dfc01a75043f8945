"""A plain pandas computation of the ecommerce metrics, written from SPEC.md, to check the engine against."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

TZ = "Europe/Istanbul"


def lines(tables: dict, lookups: dict) -> pd.DataFrame:
    """Order lines with unit cost and shipping rate attached, local time columns added."""
    orders = tables["orders"].to_pandas()
    costs = lookups["costs"].to_pandas()
    desi = lookups["desi"].to_pandas()
    rates = lookups["shipping_rates"].to_pandas()
    df = orders.merge(costs, on="sku", how="left").merge(desi, on="sku", how="left")
    total = df["desi"].astype(float) * df["quantity"]
    bins = rates.sort_values("desi_from")
    edges = bins["desi_from"].astype(float).tolist() + [float(bins["desi_to"].astype(float).iloc[-1])]
    index = pd.cut(total, edges, right=False, labels=False)
    df["rate"] = [bins["cost"].iloc[int(i)] if pd.notna(i) else None for i in index]
    df["local"] = df["ordered_at"].dt.tz_convert(TZ)
    return df


def refunds(tables: dict) -> pd.DataFrame:
    df = tables["order_refunds"].to_pandas()
    orders = tables["orders"].to_pandas()[["order_id", "line_no", "shop_id", "listing_id", "sku"]]
    df = df.merge(orders, on=["order_id", "line_no"], how="left")
    df["local"] = df["refunded_at"].dt.tz_convert(TZ)
    return df


def in_range(df: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    lo, hi = pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ)
    return df[(df["local"] >= lo) & (df["local"] < hi)]


def kpis(order_lines: pd.DataFrame, refund_rows: pd.DataFrame) -> dict:
    live = order_lines[order_lines["status"] != "cancelled"]
    gross = sum((Decimal(int(q)) * p for q, p in zip(live["quantity"], live["unit_price"])), Decimal(0))
    discounts = sum(live["discount"], Decimal(0))
    cogs = sum((Decimal(int(q)) * c for q, c in zip(live["quantity"], live["unit_cost"]) if c is not None
                and not pd.isna(c)), Decimal(0))
    shipping = sum((r for r in live["rate"] if r is not None and not pd.isna(r)), Decimal(0))
    refund_total = sum(refund_rows["amount"], Decimal(0))
    revenue = gross - discounts
    orders = live["order_id"].nunique()
    profit = revenue - refund_total - cogs - shipping
    return {
        "gross_sales": gross, "discounts": discounts, "revenue": revenue, "orders": orders,
        "units": int(live["quantity"].sum()), "customers": live["customer_id"].nunique(),
        "refunds": refund_total, "net_revenue": revenue - refund_total, "cogs": cogs,
        "shipping_cost": shipping, "profit": profit,
        "aov": float(revenue) / orders if orders else None,
        "margin": float(profit) / float(revenue) if revenue else None,
    }
