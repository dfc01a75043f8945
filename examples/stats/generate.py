"""Generate the `stats` example's seeded demo data: a platform's users, activity, businesses, payments, logs."""

from __future__ import annotations

import argparse
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DAY = 86_400
HOUR = 3_600
MONEY = pa.decimal128(12, 2)
TIMESTAMP = pa.timestamp("us", tz="UTC")
# Traffic per UTC hour: Europe's working day, then the Americas' evening.
HOUR_WEIGHTS = np.array([1.6, 1.2, 0.9, 0.7, 0.6, 0.7, 1.0, 1.6, 2.4, 3.1, 3.5, 3.7,
                         3.8, 3.9, 4.1, 4.3, 4.4, 4.2, 3.9, 3.6, 3.3, 2.9, 2.4, 2.0])
# Monday first: people sign up and businesses trade on weekdays, use the app more at weekends.
SIGNUP_WEEKDAYS = np.array([1.10, 1.08, 1.04, 1.00, 0.95, 0.82, 0.80])
USAGE_WEEKDAYS = np.array([0.95, 0.94, 0.95, 0.98, 1.05, 1.16, 1.10])
BUSINESS_WEEKDAYS = np.array([1.22, 1.18, 1.15, 1.10, 1.00, 0.36, 0.30])
PAYMENT_WEEKDAYS = np.array([0.90, 0.92, 0.95, 1.00, 1.15, 1.30, 1.08])
PLANS = ["free", "starter", "pro", "enterprise"]
PLAN_SHARES = [0.62, 0.22, 0.12, 0.04]
COUNTRIES = ["US", "GB", "DE", "NG", "IN", "BR", "TR", "FR"]
COUNTRY_SHARES = [0.28, 0.12, 0.10, 0.14, 0.13, 0.09, 0.07, 0.07]
ACTIVITY_KINDS = ["login", "view", "search", "purchase", "message"]
ACTIVITY_SHARES = [0.22, 0.40, 0.18, 0.06, 0.14]
CATEGORIES = ["retail", "food", "services", "travel", "software", "health"]
CATEGORY_SHARES = [0.30, 0.24, 0.18, 0.08, 0.10, 0.10]
CATEGORY_TICKET = np.array([38.0, 21.0, 85.0, 240.0, 49.0, 64.0])  # median payment per category
TXN_STATUSES = pa.array(["completed", "pending", "failed", "refunded"])
COMPLETED, PENDING, FAILED, REFUNDED = range(4)
FEE_BASIS_POINTS, FEE_FIXED_CENTS = 290, 30  # 2.9% + 0.30 per settled payment
SERVICES = ["api", "auth", "payments", "search", "notifications"]
SERVICE_SHARES = [0.38, 0.16, 0.12, 0.22, 0.12]
SERVICE_ERROR_RATE = np.array([0.004, 0.006, 0.010, 0.005, 0.012])
SERVICE_LATENCY_MS = np.array([80.0, 45.0, 220.0, 150.0, 60.0])  # median of a healthy request
INCIDENTS_PER_YEAR = 14


def _categorical(rng: np.random.Generator, probs, n: int) -> np.ndarray:
    """Draw n category indices with the given probabilities."""
    cdf = np.cumsum(probs) / np.sum(probs)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def _day_weights(days: np.ndarray, growth: float, weekdays: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative volume per day: exponential growth, a weekly pattern, a December lift and some noise."""
    n = days.astype(np.int64)
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    w = weekdays[(n + 3) % 7] * np.exp(growth * (n - n[0]) / 365.25)  # 1970-01-01 was a Thursday
    w[month == 12] *= 1.15
    return w * rng.lognormal(0.0, 0.07, len(days))


def _times(n: int, start: date, end: date, growth: float, weekdays: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """n sorted UTC timestamps (seconds) in [start, end), shaped by day and hour of day."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D"))
    day = _categorical(rng, _day_weights(days, growth, weekdays, rng), n)
    seconds = day * DAY + _categorical(rng, HOUR_WEIGHTS, n) * HOUR + rng.integers(0, HOUR, n)
    return np.sort(_midnight(start) + seconds)


def _launch(times: np.ndarray, start: date, share: float, rng: np.random.Generator) -> np.ndarray:
    """The earliest `share` of creations moved into the first half hour: the cohort the platform starts
    with, so someone is there to act from the first day."""
    count = max(1, int(len(times) * share))
    times = times.copy()
    times[:count] = _midnight(start) + rng.integers(0, 1_800, count)
    return np.sort(times)


def _existing(at: np.ndarray, created: np.ndarray, bias: float, rng: np.random.Generator) -> tuple:
    """For times `at` (sorted): an entity created by then (index into sorted `created`); the times move
    up to the first creation when they predate it. bias < 1 favours recent entities, > 1 old ones."""
    at = np.maximum(at, created[0])
    known = np.searchsorted(created, at, side="right")
    pick = np.minimum((known * rng.random(len(at)) ** bias).astype(np.int64), known - 1)
    return pick, at


def _later(at: np.ndarray, hi: int, mean_days: float, rng: np.random.Generator) -> np.ndarray:
    """A change time after `at`, before `hi`."""
    return np.minimum(at + (rng.exponential(mean_days, len(at)) * DAY).astype(np.int64) + 1, hi - 1)


def _decimal(units: np.ndarray, type_: pa.DataType = MONEY) -> pa.Array:
    """Decimal array from integer units of its scale (cents for money), without Python objects."""
    buf = np.empty((len(units), 2), dtype=np.int64)
    buf[:, 0] = units
    buf[:, 1] = units >> 63
    return pa.Array.from_buffers(type_, len(units), [None, pa.py_buffer(buf)])


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1_000_000, type=TIMESTAMP)


def _labels(names: list[str], index: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(names)).cast(pa.string())


def _users(n: int, start: date, end: date, hi: int, rng) -> pa.Table:
    """Sign-ups growing ~2.5x a year; a quarter of users later change plan (their updated_at moves)."""
    signed = _launch(_times(n, start, end, 0.9, SIGNUP_WEEKDAYS, rng), start, 0.02, rng)
    changed = rng.random(n) < 0.25
    return pa.table({
        "user_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "signed_up_at": _timestamps(signed),
        "plan": _labels(PLANS, _categorical(rng, PLAN_SHARES, n)),
        "country": _labels(COUNTRIES, _categorical(rng, COUNTRY_SHARES, n)),
        "updated_at": _timestamps(np.where(changed, _later(signed, hi, 60.0, rng), signed)),
    })


def _activity(n: int, signed: np.ndarray, start: date, end: date, hi: int, rng) -> pa.Table:
    """App events by users who had signed up by then, recent sign-ups the most active."""
    at = _times(n, start, end, 1.1, USAGE_WEEKDAYS, rng)
    user, at = _existing(at, signed, 0.55, rng)
    return pa.table({
        "activity_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "user_id": pa.array(user + 1),
        "occurred_at": _timestamps(at),
        "kind": _labels(ACTIVITY_KINDS, _categorical(rng, ACTIVITY_SHARES, n)),
        "updated_at": _timestamps(np.minimum(at + rng.integers(0, 120, n), hi - 1)),  # ingestion lag
    })


def _businesses(n: int, start: date, end: date, hi: int, rng) -> pa.Table:
    """Businesses onboarded on weekdays; most are verified (updated) within a few days."""
    created = _launch(_times(n, start, end, 0.6, BUSINESS_WEEKDAYS, rng), start, 0.05, rng)
    verified = rng.random(n) < 0.8
    return pa.table({
        "business_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "created_at": _timestamps(created),
        "category": _labels(CATEGORIES, _categorical(rng, CATEGORY_SHARES, n)),
        "updated_at": _timestamps(np.where(verified, _later(created, hi, 3.0, rng), created)),
    })


def _transactions(n: int, users: pa.Table, businesses: pa.Table, start: date, end: date, hi: int,
                  rng) -> pa.Table:
    """Payments to businesses that exist by then (older ones bigger), by users signed up by then.

    ~4% fail, ~2.5% are refunded days later, the last day's still settle after `end` (pending).
    """
    at = _times(n, start, end, 0.8, PAYMENT_WEEKDAYS, rng)
    signed = users["signed_up_at"].cast(pa.int64()).to_numpy() // 1_000_000
    created = businesses["created_at"].cast(pa.int64()).to_numpy() // 1_000_000
    business, at = _existing(at, created, 1.8, rng)
    user, at = _existing(at, signed, 0.8, rng)
    category = pc.index_in(businesses["category"], pa.array(CATEGORIES)).to_numpy()[business]
    size = rng.lognormal(0.0, 0.35, len(created))[business]  # a business's typical ticket
    amount = np.clip(CATEGORY_TICKET[category] * size * rng.lognormal(0.0, 0.6, n), 1.0, 5_000.0)
    cents = np.round(amount * 100).astype(np.int64)
    settle = at + rng.integers(20, 36 * HOUR, n)
    refund = settle + (rng.uniform(1.0, 21.0, n) * DAY).astype(np.int64)
    status = np.full(n, COMPLETED, np.int8)
    status[rng.random(n) < 0.04] = FAILED
    status[(status == COMPLETED) & (rng.random(n) < 0.025) & (refund < hi)] = REFUNDED
    status[(status == COMPLETED) & (settle >= hi)] = PENDING
    updated = np.where(status == REFUNDED, refund, np.where(status == PENDING, at, np.minimum(settle, hi - 1)))
    fee = np.where(status == FAILED, 0, (cents * FEE_BASIS_POINTS + 5_000) // 10_000 + FEE_FIXED_CENTS)
    return pa.table({
        "txn_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "business_id": pa.array(business + 1),
        "user_id": pa.array(user + 1),
        "amount": _decimal(cents),
        "fee": _decimal(fee),
        "status": TXN_STATUSES.take(pa.array(status)),
        "created_at": _timestamps(at),
        "updated_at": _timestamps(updated),
    })


def _incidents(lo: int, hi: int, rng) -> list[tuple[int, int, int, float, float]]:
    """(from, to, service, error rate, latency factor): a few outages of one service (the busy ones more
    often), 1 to 10 hours long."""
    count = max(1, round(INCIDENTS_PER_YEAR * (hi - lo) / (365 * DAY)))
    begin = rng.integers(lo, hi, count)
    length = (rng.uniform(1.0, 10.0, count) * HOUR).astype(np.int64)
    return list(zip(begin, begin + length, _categorical(rng, SERVICE_SHARES, count),
                    rng.uniform(0.2, 0.6, count), rng.uniform(2.5, 6.0, count)))


def _system_events(n: int, start: date, end: date, rng) -> pa.Table:
    """Requests per service with a small error rate, lognormal latency, and incidents that raise both."""
    at = _times(n, start, end, 1.0, USAGE_WEEKDAYS, rng)
    service = _categorical(rng, SERVICE_SHARES, n)
    error_rate = SERVICE_ERROR_RATE[service].copy()
    slowdown = np.ones(n)
    for begin, stop, hit, rate, factor in _incidents(int(at[0]), int(at[-1]) + 1, rng):
        inside = (at >= begin) & (at < stop) & (service == hit)
        error_rate[inside] = rate
        slowdown[inside] = factor
    error = rng.random(n) < error_rate
    latency = SERVICE_LATENCY_MS[service] * slowdown * rng.lognormal(0.0, 0.5, n) * np.where(error, 3.0, 1.0)
    return pa.table({
        "event_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "occurred_at": _timestamps(at),
        "service": _labels(SERVICES, service),
        "kind": pa.array(np.where(error, "error", "request")),
        "latency_ms": pa.array(np.clip(np.round(latency), 1, 60_000).astype(np.int32)),
        "updated_at": _timestamps(at),
    })


def generate(rows: int, seed: int = 42, start: date = date(2024, 1, 1),
             end: date = date(2025, 1, 1)) -> dict[str, pa.Table]:
    """The platform's five tables for `rows` payments (app events and request logs twice that, a user per four
    payments, a business per forty); every timestamp falls in [start, end) UTC."""
    if rows < 1 or start >= end:
        raise ValueError("generate needs rows >= 1 and start < end")
    rng = np.random.Generator(np.random.PCG64(seed))
    hi = _midnight(end)
    users = _users(max(20, rows // 4), start, end, hi, rng)
    signed = users["signed_up_at"].cast(pa.int64()).to_numpy() // 1_000_000
    businesses = _businesses(max(5, rows // 40), start, end, hi, rng)
    return {
        "platform_users": users,
        "user_activity": _activity(2 * rows, signed, start, end, hi, rng),
        "businesses": businesses,
        "transactions": _transactions(rows, users, businesses, start, end, hi, rng),
        "system_events": _system_events(2 * rows, start, end, rng),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="number of payments")
    parser.add_argument("--out", type=Path, required=True, help="folder for the parquet files")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in generate(args.rows, args.seed).items():
        pq.write_table(table, args.out / f"{name}.parquet")
        print(f"{name}: {table.num_rows:,} rows")


if __name__ == "__main__":
    main()
