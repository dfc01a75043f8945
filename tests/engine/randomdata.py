"""Random sales and returns clustered around a zone's DST changes, and a pandas reference of the same metrics."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume
from hypothesis import strategies as st

UTC = dt.timezone.utc
QUARTER = dt.timedelta(minutes=15)
ZONES = ("Europe/Istanbul", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC")
DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
zones = st.sampled_from(ZONES + DST_ZONES)  # zones that change their clocks twice as often
GRAINS = ("hour", "day", "week", "month", "quarter", "year")
WEEKDAYS = {"monday": 0, "sunday": 6}

# Each window holds a DST change of New York, Berlin or Lord Howe (and the winter one a year boundary).
WINDOWS = {
    "winter": (dt.datetime(2024, 10, 25, tzinfo=UTC), dt.datetime(2025, 2, 10, tzinfo=UTC)),
    "spring": (dt.datetime(2025, 2, 20, tzinfo=UTC), dt.datetime(2025, 5, 10, tzinfo=UTC)),
    "autumn": (dt.datetime(2025, 9, 20, tzinfo=UTC), dt.datetime(2025, 11, 20, tzinfo=UTC)),
}

PROJECT_YML = """\
name: properties
timezone: UTC
week_start: {week_start}
warehouse: duckdb:///warehouse.duckdb
models:
  sales:
    table: sales
    time: sold_at
    dimensions: {{store: store, channel: channel}}
    measures:
      revenue: {{sum: amount}}
      orders: {{count: "*"}}
      customers: {{count_distinct: customer}}
      avg_amount: {{avg: amount}}
      min_amount: {{min: amount}}
      max_amount: {{max: amount}}
      units: {{sum: qty}}
      web_revenue: {{sum: amount, where: "channel = 'web'"}}
      big_orders: {{count: "*", where: "amount >= 100"}}
      web_customers: {{count_distinct: customer, where: "channel = 'web'"}}
  returns:
    table: returns
    time: returned_at
    dimensions: {{store: store}}
    measures:
      returned: {{sum: amount}}
      return_count: {{count: "*"}}
metrics:
  net: revenue - returned
  avg_ticket: revenue / orders
  per_unit: revenue / units
  return_rate: returned / revenue
  web_share: web_revenue / revenue
"""


@dataclass(frozen=True)
class Measure:
    """A measure of PROJECT_YML restated for pandas: model, aggregation, value column, row filter."""

    model: str
    aggregation: str
    column: str | None = None
    where: object = None


MEASURES = {
    "revenue": Measure("sales", "sum", "amount"),
    "orders": Measure("sales", "count"),
    "customers": Measure("sales", "count_distinct", "customer"),
    "avg_amount": Measure("sales", "avg", "amount"),
    "min_amount": Measure("sales", "min", "amount"),
    "max_amount": Measure("sales", "max", "amount"),
    "units": Measure("sales", "sum", "qty"),
    "web_revenue": Measure("sales", "sum", "amount", lambda df: df["channel"] == "web"),
    "big_orders": Measure("sales", "count", None, lambda df: df["amount"] >= Decimal(100)),
    "web_customers": Measure("sales", "count_distinct", "customer", lambda df: df["channel"] == "web"),
    "returned": Measure("returns", "sum", "amount"),
    "return_count": Measure("returns", "count"),
}
RATIOS = {"avg_ticket": ("revenue", "orders"), "per_unit": ("revenue", "units"),
          "return_rate": ("returned", "revenue"), "web_share": ("web_revenue", "revenue")}
DIFFERENCES = {"net": ("revenue", "returned")}
METRICS = (*MEASURES, *RATIOS, *DIFFERENCES)
ADDITIVE = ("revenue", "orders", "units", "web_revenue", "big_orders", "returned", "return_count", "net")

# --where filters: SQL text -> the same predicate in pandas (SQL's NULL is never equal, nor unequal).
WHERES = {
    "store = 1": lambda df: df["store"] == 1,
    "store in (2, 3)": lambda df: df["store"].isin([2, 3]),
    "store <> 2 and store < 4": lambda df: (df["store"] != 2) & (df["store"] < 4),
    "channel = 'web'": lambda df: df["channel"] == "web",
    "channel <> 'web'": lambda df: df["channel"].notna() & (df["channel"] != "web"),
    "channel is null or store = 4": lambda df: df["channel"].isna() | (df["store"] == 4),
}
CHANNELS = ("web", "shop", "phone", None)


def base_measures(metrics) -> list[str]:
    found = []
    for metric in metrics:
        parts = RATIOS.get(metric) or DIFFERENCES.get(metric) or (metric,)
        found += [p for p in parts if p not in found]
    return found


def models_of(metrics) -> set[str]:
    return {MEASURES[m].model for m in base_measures(metrics)}


def dimensions_of(metrics) -> tuple[str, ...]:
    return ("store",) if "returns" in models_of(metrics) else ("store", "channel")


# -- time in a zone ---------------------------------------------------------------------------------------

def to_instant(local: dt.datetime, zone: str) -> dt.datetime:
    """A naive local time as an instant, read as Python does (fold=0: a time in a gap moves by the gap)."""
    return local.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


def in_gap(local: dt.datetime, zone: str) -> bool:
    """Whether a naive local time never shows on the zone's clocks (skipped by a spring-forward)."""
    return to_instant(local, zone).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != local


def to_local(instant: dt.datetime, zone: str) -> dt.datetime:
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


@lru_cache(maxsize=None)
def transitions(zone: str, window: str) -> tuple[dt.datetime, ...]:
    """Instants in the window where the zone's offset changes (these zones change on the half hour)."""
    lo, hi = WINDOWS[window]
    tz, found, instant = ZoneInfo(zone), [], lo
    before = lo.astimezone(tz).utcoffset()
    while instant < hi:
        offset = instant.astimezone(tz).utcoffset()
        if offset != before:
            found.append(instant)
            before = offset
        instant += dt.timedelta(minutes=30)
    return tuple(found)


@lru_cache(maxsize=None)
def anchors(zone: str, window: str) -> tuple[dt.datetime, ...]:
    """Instants worth crowding data and range ends around: DST changes, the midnights around them, month starts."""
    lo, hi = WINDOWS[window]
    months = pd.date_range(to_local(lo, zone).date(), to_local(hi, zone).date(), freq="MS")
    starts = [to_instant(m.to_pydatetime(), zone) for m in months]
    changes = transitions(zone, window)
    midnights = [to_instant(dt.datetime.combine(to_local(t, zone).date() + dt.timedelta(days=n), dt.time()), zone)
                 for t in changes for n in (0, 1)]
    return (*changes * 3, *midnights * 2, *starts)  # DST changes and the midnights after them weigh more


def _between(lo: dt.datetime, hi: dt.datetime):
    return st.integers(0, int((hi - lo).total_seconds())).map(lambda s: lo + dt.timedelta(seconds=s))


def instants(zone: str, window: str, around: tuple[dt.datetime, dt.datetime] | None = None):
    """UTC instants in a window, many close to (or exactly on) a DST change, a period edge or a range end."""
    offset = st.one_of(st.sampled_from([0, -1, 1, -1800, 1800, -3600, 3600]),
                       st.integers(-5400, 5400), st.integers(-40 * 3600, 40 * 3600))
    points = anchors(zone, window) + ((around[0] - (around[1] - around[0]), *around) if around else ())
    near = st.builds(lambda a, s: a + dt.timedelta(seconds=s), st.sampled_from(points), offset)
    if around is None:
        return st.one_of(_between(*WINDOWS[window]), near, near)
    lo, hi = around
    return st.one_of(_between(*WINDOWS[window]), near, near, _between(lo - (hi - lo), hi))  # and the range before


@lru_cache(maxsize=None)
def gap_times(zone: str, window: str) -> tuple[dt.datetime, ...]:
    """Local quarter hours that spring-forwards in the window skip."""
    return tuple(t for change in transitions(zone, window) for k in range(-12, 12)
                 if in_gap(t := to_local(change, zone).replace(minute=0) + k * QUARTER, zone))


def local_points(zone: str, window: str):
    """Naive local quarter hours for range ends: near DST changes (gaps, overlaps), midnights, month starts."""
    lo, hi = WINDOWS[window]
    first = to_local(lo, zone).date() - dt.timedelta(days=5)
    days = (hi - lo).days + 10
    quarters = st.one_of(st.integers(-8, 8), st.integers(-4 * 48, 4 * 48))  # within 2 h: gaps and overlaps
    near = st.builds(lambda a, k: to_local(a, zone) + k * QUARTER, st.sampled_from(anchors(zone, window)), quarters)
    midnight = st.integers(0, days).map(lambda n: dt.datetime.combine(first + dt.timedelta(days=n), dt.time()))
    month = st.sampled_from([d.to_pydatetime() for d in pd.date_range(first, periods=days // 28 + 2, freq="MS")])
    return st.one_of(near, near, midnight, month)


# -- query ranges ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    """A query range as the user types it: naive local times in the query timezone, [start, end)."""

    start: dt.datetime
    end: dt.datetime

    @property
    def args(self) -> dict:
        return {"start": self.start.isoformat(timespec="minutes"), "end": self.end.isoformat(timespec="minutes")}


@st.composite
def ranges(draw, zone: str, window: str, *, max_hours: int | None = None, gaps: bool = False) -> Range:
    """A range with both ends on local quarter hours, often across a DST change; with `gaps`, ends may fall in one."""
    quarters = 4 * (max_hours or 24 * 45)
    changes = transitions(zone, window)
    if gaps and gap_times(zone, window) and draw(st.booleans()):
        gap, k = draw(st.sampled_from(gap_times(zone, window))), draw(st.integers(1, quarters))
        start, end = (gap, gap + k * QUARTER) if draw(st.booleans()) else (gap - k * QUARTER, gap)
    elif changes and draw(st.booleans()):
        change, before, after = (draw(st.sampled_from(changes)), draw(st.integers(1, quarters // 2)),
                                 draw(st.integers(1, quarters // 2)))
        # typed as plain wall-clock text, a time in the repeated hour means its first occurrence (fold=0)
        start, end = (to_local(change + k * QUARTER, zone).replace(fold=0) for k in (-before, after))
    else:
        points = local_points(zone, window)
        start = draw(points)
        steps = st.integers(1, quarters).map(lambda k: start + k * QUARTER)
        end = draw(steps if max_hours else st.one_of(steps, points))
    if end < start:
        start, end = end, start
    assume(start < end and to_instant(start, zone) < to_instant(end, zone))
    assume(gaps or not (in_gap(start, zone) or in_gap(end, zone)))
    if max_hours:
        assume(to_instant(end, zone) - to_instant(start, zone) <= dt.timedelta(hours=max_hours))
    return Range(start, end)


# -- data ---------------------------------------------------------------------------------------------------

SCHEMAS = {
    "sales": pa.schema([("sold_at", pa.timestamp("us", tz="UTC")), ("store", pa.int16()), ("channel", pa.string()),
                        ("amount", pa.decimal128(12, 2)), ("qty", pa.int32()), ("customer", pa.int64())]),
    "returns": pa.schema([("returned_at", pa.timestamp("us", tz="UTC")), ("store", pa.int16()),
                          ("amount", pa.decimal128(12, 2))]),
}


@dataclass(frozen=True)
class Dataset:
    """Rows as plain tuples in SCHEMAS' column order (so a failing example prints in full)."""

    zone: str
    window: str
    sales: tuple[tuple, ...]
    returns: tuple[tuple, ...] = ()

    def table(self, model: str) -> pa.Table:
        schema, rows = SCHEMAS[model], getattr(self, model)
        return pa.table({f.name: [r[i] for r in rows] for i, f in enumerate(schema)}, schema=schema)

    def frame(self, model: str) -> pd.DataFrame:
        """The model's rows with its time column as `at` (UTC)."""
        return self.table(model).to_pandas().rename(columns={"sold_at": "at", "returned_at": "at"})


cents = st.integers(-50_000, 200_000).map(lambda c: Decimal(c).scaleb(-2))
stores = st.integers(1, 4)


@st.composite
def datasets(draw, zone: str, window: str, around: Range | None = None, max_sales: int = 30,
             max_returns: int = 10) -> Dataset:
    """Sales and returns; with `around`, many inside that range and the one just before it."""
    when = instants(zone, window, around and (to_instant(around.start, zone), to_instant(around.end, zone)))
    sales = draw(st.lists(st.tuples(when, stores, st.sampled_from(CHANNELS), cents, st.integers(-2, 5),
                                    st.integers(1, 8)), min_size=draw(st.integers(0, max_sales)), max_size=max_sales))
    returns = draw(st.lists(st.tuples(when, stores, cents), min_size=draw(st.integers(0, max_returns)),
                            max_size=max_returns))
    return Dataset(zone, window, tuple(sales), tuple(returns))


def load(project, data: Dataset) -> None:
    for model in SCHEMAS:
        project.warehouse.write_table(model, data.table(model))


# -- the pandas reference ---------------------------------------------------------------------------------

def period_of(local: pd.Series, grain: str, week_start: int) -> pd.Series:
    """The period label (date, or naive datetime for hours) of naive local wall-clock times."""
    if grain == "hour":
        return pd.Series([t.to_pydatetime() for t in local.dt.floor("h")], index=local.index, dtype=object)
    day = local.dt.normalize()
    if grain == "week":
        day = day - pd.to_timedelta((day.dt.weekday - week_start) % 7, unit="D")
    elif grain != "day":
        day = day.dt.to_period({"month": "M", "quarter": "Q", "year": "Y"}[grain]).dt.start_time
    return pd.Series(day.dt.date, index=local.index, dtype=object)


def expected_periods(zone: str, rng: Range, grain: str, week_start: int) -> list:
    """Every period touching [start, end): the labels of all quarter hours in it (offsets are whole quarters)."""
    grid = pd.date_range(to_instant(rng.start, zone), to_instant(rng.end, zone), freq="15min", inclusive="left")
    local = pd.Series(grid.tz_convert(zone).tz_localize(None))
    return sorted(set(period_of(local, grain, week_start)))


def _aggregate(measure: Measure, rows: pd.DataFrame):
    if measure.where is not None and len(rows):
        rows = rows[measure.where(rows).fillna(False).astype(bool)]
    values = rows[measure.column].dropna().tolist() if measure.column else []
    if measure.aggregation == "count":
        return len(rows)
    if measure.aggregation == "count_distinct":
        return len(set(values))
    if measure.aggregation == "sum":
        return sum(values, Decimal(0) if measure.column == "amount" else 0)
    if not values:
        return None
    if measure.aggregation == "avg":
        return float(sum(values, Decimal(0))) / len(values)
    return min(values) if measure.aggregation == "min" else max(values)


def _derive(metric: str, values: dict):
    if metric in DIFFERENCES:
        a, b = (values[n] for n in DIFFERENCES[metric])
        return a - b
    if metric in RATIOS:
        a, b = (values[n] for n in RATIOS[metric])
        return None if a is None or b is None or b == 0 else float(a) / float(b)
    return values[metric]


def _python(value):
    return None if value is None or (not isinstance(value, (dt.date, Decimal, str)) and pd.isna(value)) else (
        value.item() if hasattr(value, "item") else value)


def reference(data: Dataset, metrics, rng: Range, *, zone: str, grain: str | None = None, by=(),
              where: str | None = None, week_start: int = 0) -> list[dict]:
    """The rows a query should return, computed with pandas from the definitions in PROJECT_YML."""
    lo, hi = to_instant(rng.start, zone), to_instant(rng.end, zone)
    keys = (["period"] if grain else []) + list(by)
    groups: dict[str, dict] = {}
    combos: dict[tuple, None] = {}
    for model in sorted(models_of(metrics)):
        df = data.frame(model)
        df = df[(df["at"] >= lo) & (df["at"] < hi)]
        if where:
            df = df[WHERES[where](df).fillna(False).astype(bool)]
        if grain:
            df = df.assign(period=period_of(df["at"].dt.tz_convert(zone).dt.tz_localize(None), grain, week_start))
        groups[model] = {}
        if keys and len(df):
            for key, rows in df.groupby(keys, dropna=False, sort=False):
                groups[model][tuple(_python(k) for k in key)] = rows
                combos[tuple(_python(k) for k in key)[len(keys) - len(by):]] = None
        elif not keys:
            groups[model][()] = df
    combos_list = list(combos) if by else [()]
    if grain:
        wanted = [(p, *c) for p in expected_periods(zone, rng, grain, week_start) for c in combos_list]
    else:
        wanted = combos_list
    empty = {model: data.frame(model).iloc[0:0] for model in groups}
    rows = []
    for key in wanted:
        values = {name: _aggregate(MEASURES[name], groups[MEASURES[name].model].get(key, empty[MEASURES[name].model]))
                  for name in base_measures(metrics)}
        rows.append({**dict(zip(keys, key)), **{m: _derive(m, values) for m in metrics}})
    return sorted(rows, key=lambda r: tuple((r[k] is None, r[k] or 0) for k in keys))


def assert_rows_equal(actual: list[dict], expected: list[dict], keys) -> None:
    """Same rows in the same order; decimals and counts exactly, floats to 1e-9."""
    assert [tuple(r[k] for k in keys) for r in actual] == [tuple(r[k] for k in keys) for r in expected]
    for got, want in zip(actual, expected):
        assert got.keys() == want.keys()
        for name, value in want.items():
            assert_value(got[name], value, (name, tuple(want[k] for k in keys)))


def assert_value(got, want, where=None) -> None:
    if want is None:
        assert got is None, where
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert type(got) is type(want) and got == want, (where, got, want)
