"""Random queries on the ecommerce example, each checked against SQL text written here from the
metric definitions in examples/ecommerce/tally.yml (not Tally's compiled SQL), on every warehouse.

Periods and ranges are turned into UTC instants with zoneinfo; each period's numbers come from one
plain `SELECT ... WHERE time >= lo AND time < hi GROUP BY ...` per model.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta

CASES = 60
ZONES = ["Europe/Istanbul", "UTC", "America/New_York", "Australia/Adelaide"]   # Adelaide: +9:30 / +10:30
METRICS = ["gross_sales", "discounts", "revenue", "orders", "units", "customers", "refunds", "net_revenue", "aov"]
DIMS = {"shop": "shop_id", "status": "status"}
WHERES = [None, ("status", "shipped"), ("shop", 3), ("status", "refunded")]

# orders: every measure filtered by status <> 'cancelled'; refunds reach the line's dimensions
ORDERS_SQL = ("SELECT {keys}SUM(CASE WHEN status <> 'cancelled' THEN quantity * unit_price END), "
              "SUM(CASE WHEN status <> 'cancelled' THEN discount END), "
              "COUNT(DISTINCT CASE WHEN status <> 'cancelled' THEN order_id END), "
              "SUM(CASE WHEN status <> 'cancelled' THEN quantity END), "
              "COUNT(DISTINCT CASE WHEN status <> 'cancelled' THEN customer_id END) "
              "FROM orders WHERE ordered_at >= {lo} AND ordered_at < {hi}{where}{group}")
REFUNDS_SQL = ("SELECT {keys}SUM(r.amount) FROM order_refunds r LEFT JOIN orders o "
               "ON o.order_id = r.order_id AND o.line_no = r.line_no "
               "WHERE r.refunded_at >= {lo} AND r.refunded_at < {hi}{where}{group}")


def sql_rows(project, sql: str) -> list[tuple]:
    warehouse = project.warehouse
    if warehouse.dialect.name == "duckdb":
        return warehouse.cursor().execute(sql).fetchall()
    con = warehouse.backend.con
    cursor = con.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()
        if warehouse.dialect.name == "mysql":
            con.commit()


def instant(project, when: dt.datetime) -> str:
    utc = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if project.warehouse.dialect.name == "mysql":
        return f"'{utc:%Y-%m-%d %H:%M:%S}'"
    return f"TIMESTAMPTZ '{utc:%Y-%m-%d %H:%M:%S}+00:00'"


def base_values(project, lo, hi, by, where, metrics) -> dict[tuple, dict]:
    """Base measures per --by group over [lo, hi), from plain SQL (only the models the metrics need:
    a group shows when those models have rows for it)."""
    def clause(prefix: str) -> tuple[str, str, str]:
        cols = [f"{prefix}{DIMS[d]}" for d in by]
        keys = "".join(f"{c}, " for c in cols)
        group = f" GROUP BY {', '.join(cols)}" if cols else ""
        cond = ""
        if where:
            value = f"'{where[1]}'" if isinstance(where[1], str) else str(where[1])
            cond = f" AND {prefix}{DIMS[where[0]]} = {value}"
        return keys, group, cond

    out: dict[tuple, dict] = {}
    keys, group, cond = clause("")
    for row in [] if set(metrics) <= {"refunds"} else \
            sql_rows(project, ORDERS_SQL.format(keys=keys, lo=instant(project, lo), hi=instant(project, hi),
                                                where=cond, group=group)):
        out.setdefault(tuple(row[:len(by)]), {}).update(
            zip(("gross_sales", "discounts", "orders", "units", "customers"), row[len(by):]))
    keys, group, cond = clause("o.")
    for row in [] if not set(metrics) & {"refunds", "net_revenue"} else \
            sql_rows(project, REFUNDS_SQL.format(keys=keys, lo=instant(project, lo), hi=instant(project, hi),
                                                 where=cond, group=group)):
        out.setdefault(tuple(row[:len(by)]), {})["refunds"] = row[len(by)]
    return out


def metric_values(base: dict) -> dict:
    """The metrics from base measures, by their formulas (sums and counts over no rows are 0)."""
    get = {m: base.get(m) for m in ("gross_sales", "discounts", "refunds")}
    gross, disc, ref = (Decimal(v if v is not None else 0) for v in get.values())
    orders = int(base.get("orders") or 0)
    revenue = gross - disc
    return {"gross_sales": gross, "discounts": disc, "refunds": ref, "orders": orders,
            "units": int(base.get("units") or 0), "customers": int(base.get("customers") or 0),
            "revenue": revenue, "net_revenue": revenue - ref, "aov": float(revenue) / orders if orders else None}


def local(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz)


def periods(grain: str | None, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date, dt.date]]:
    """(label, lo, hi) local dates of each period touching [start, end), clipped to it."""
    if grain is None:
        return [(None, start, end)]
    if grain == "day":
        first, step = start, relativedelta(days=1)
    elif grain == "week":
        first, step = start - dt.timedelta(days=start.weekday()), relativedelta(weeks=1)   # Monday weeks
    else:
        first, step = start.replace(day=1), relativedelta(months=1)
    out, label = [], first
    while label < end:
        out.append((label, max(label, start), min(label + step, end)))
        label += step
    return out


def previous(kind: str, grain, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    if kind == "previous_year":
        back = relativedelta(weeks=52) if grain == "week" else relativedelta(years=1)
        return start - back, end - back
    if start.day == end.day == 1:
        months = (end.year - start.year) * 12 + end.month - start.month
        return start - relativedelta(months=months), start
    return start - (end - start), start


def expected(project, case) -> list[dict]:
    tz = ZoneInfo(case["timezone"])
    by, grain, where = case["by"], case["grain"], case["where"]

    def answer(start, end):
        table = {}
        for label, lo, hi in periods(grain, start, end):
            values = base_values(project, local(lo, tz), local(hi, tz), by, where, case["metrics"])
            table[label] = values
        groups = sorted({k for values in table.values() for k in values}, key=str) if by else [()]
        return {(label, g): metric_values(table[label].get(g, {})) for label in table for g in groups}

    now = answer(case["start"], case["end"])
    rows = []
    if case["compare"]:
        lo, hi = previous(case["compare"], grain, case["start"], case["end"])
        before = answer(lo, hi)
        labels_now = [p[0] for p in periods(grain, case["start"], case["end"])]
        labels_before = [p[0] for p in periods(grain, lo, hi)]
        if case["compare"] == "previous_period":
            pair = dict(zip(reversed(labels_now), reversed(labels_before)))
        else:
            back = relativedelta(weeks=52) if grain == "week" else relativedelta(years=1)
            pair = {label: (label - back if label else None) for label in labels_now}
    for (label, group), values in now.items():
        row = ({"period": label} if grain else {}) | dict(zip(by, group))
        for m in case["metrics"]:
            row[m] = values[m]
            if case["compare"]:
                prev = before.get((pair.get(label), group)) or metric_values({})
                row[f"{m}_previous"] = prev[m]
        rows.append(row)
    if case["limit"]:
        metric = case["metrics"][0]
        rows.sort(key=lambda r: (r[metric] is None, -(r[metric] or 0), *(r[d] for d in by)))   # nulls last
        rows = rows[:case["limit"]]
    return rows


def random_case(rng: random.Random) -> dict:
    start = dt.date(2024, 12, 1) + dt.timedelta(days=rng.randrange(680))
    grain = rng.choice([None, None, "day", "week", "month"])
    if rng.random() < 0.3:
        start = start.replace(day=1)
        end = start + relativedelta(months=rng.choice([1, 2, 3]))
    else:
        end = start + dt.timedelta(days=rng.randrange(1, 15 if grain == "day" else 70))
    by = tuple(rng.sample(list(DIMS), rng.choice([0, 1, 1, 2])))
    limit = rng.choice([None, 2, 3]) if (grain is None and by) else None
    return {"metrics": rng.sample(METRICS, rng.choice([1, 2, 3])), "by": by, "grain": grain, "start": start,
            "end": end, "timezone": rng.choice(ZONES), "where": rng.choice(WHERES),
            "compare": rng.choice([None, "previous_period", "previous_year"]), "limit": limit}


def same(got, want, what) -> None:
    if isinstance(want, float) or isinstance(got, float):
        assert (got is None) == (want is None) and (want is None or got == pytest.approx(want, rel=1e-9)), what
    else:
        assert got == want, what


@pytest.mark.parametrize("seed", range(CASES))
def test_random_query_equals_plain_sql(ecommerce, seed):
    project, _ = ecommerce
    case = random_case(random.Random(seed))
    where = None
    if case["where"]:
        value = case["where"][1]
        where = f"{case['where'][0]} = " + (f"'{value}'" if isinstance(value, str) else str(value))
    order = [f"-{case['metrics'][0]}"] if case["limit"] else []
    got = project.query(case["metrics"], by=list(case["by"]), grain=case["grain"], start=case["start"].isoformat(),
                        end=case["end"].isoformat(), where=where, compare=case["compare"], order_by=order,
                        limit=case["limit"], timezone=case["timezone"]).to_pylist()
    want = expected(project, case)
    if not case["limit"]:
        key = lambda r: tuple(str(r.get(k)) for k in ("period", *case["by"]))   # noqa: E731
        got, want = sorted(got, key=key), sorted(want, key=key)
    assert len(got) == len(want), case
    for g, w in zip(got, want):
        for name, value in w.items():
            same(g[name], value, (case, name, w))
