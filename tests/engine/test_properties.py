"""Properties of query results on random sales and returns in zones with DST: totals, grains, ratios, compare."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import tally
from tests.engine import randomdata as rd
from tests.engine.randomdata import Dataset, Range

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SALES_ADDITIVE = ["revenue", "orders", "units", "web_revenue", "big_orders"]
MIXED_ADDITIVE = ["revenue", "returned", "net", "return_count"]


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, tally.Project]:
    """One DuckDB project per week start, built once; each example writes new tables into it."""
    built = {}
    for name in rd.WEEKDAYS:
        folder = tmp_path_factory.mktemp(f"properties_{name}")
        (folder / "tally.yml").write_text(rd.PROJECT_YML.format(week_start=name))
        built[name] = tally.Project.load(folder)
    yield built
    for project in built.values():
        project.close()


@dataclass(frozen=True)
class Case:
    """Random data and one query's arguments (`timezone` is the data's zone)."""

    data: Dataset
    rng: Range
    grain: str | None = None
    by: tuple[str, ...] = ()
    where: str | None = None
    metrics: tuple[str, ...] = ()
    week_start: str = "monday"

    @property
    def kwargs(self) -> dict:
        return {"timezone": self.data.zone, "grain": self.grain, "by": list(self.by), "where": self.where,
                **self.rng.args}


@st.composite
def cases(draw, grains=(None, *rd.GRAINS), metric_sets=None, by=True, where=True, gaps=False) -> Case:
    zone = draw(st.sampled_from(rd.DST_ZONES) if gaps else rd.zones)
    window = draw(st.sampled_from(sorted(rd.WINDOWS)))
    grain = draw(st.sampled_from(grains))
    rng = draw(rd.ranges(zone, window, max_hours=96 if grain == "hour" else None, gaps=gaps))
    data = draw(rd.datasets(zone, window, around=rng))
    if metric_sets is None:
        metrics = tuple(draw(st.lists(st.sampled_from(rd.METRICS), min_size=1, max_size=6, unique=True)))
    else:
        metrics = tuple(draw(st.sampled_from(metric_sets)))
    dims = rd.dimensions_of(metrics)
    chosen = tuple(draw(st.lists(st.sampled_from(dims), unique=True, max_size=len(dims)))) if by else ()
    wheres = [w for w in rd.WHERES if dims == ("store", "channel") or "channel" not in w]
    filt = draw(st.one_of(st.none(), st.sampled_from(wheres))) if where else None
    return Case(data, rng, grain, chosen, filt, metrics, draw(st.sampled_from(sorted(rd.WEEKDAYS))))


def run(projects, case: Case, metrics=None, **overrides) -> list[dict]:
    kwargs = {**case.kwargs, **overrides}
    return projects[case.week_start].query(list(metrics or case.metrics), **kwargs).to_pylist()


def put(projects, case: Case, *names) -> None:
    for name in names or (case.week_start,):
        rd.load(projects[name], case.data)


# -- (a) breakdowns add up ------------------------------------------------------------------------------

@SETTINGS
@given(case=cases(grains=(None, "day", "month"), metric_sets=[SALES_ADDITIVE, MIXED_ADDITIVE]))
def test_breakdowns_add_up_to_the_total(projects, case):
    put(projects, case)
    by = case.by or rd.dimensions_of(case.metrics)[:1]
    total = run(projects, case, by=[])
    parts = run(projects, case, by=list(by))
    keys = ("period",) if case.grain else ()
    sums = defaultdict(lambda: defaultdict(int))
    for row in parts:
        for metric in case.metrics:
            sums[tuple(row[k] for k in keys)][metric] += row[metric]
    for row in total:
        key = tuple(row[k] for k in keys)
        for metric in case.metrics:
            assert sums[key][metric] == row[metric], (key, metric)


# -- (b) grains nest ------------------------------------------------------------------------------------

def _roll_up(rows: list[dict], label, metrics) -> dict:
    """Day rows combined per coarser label: sums add, min/max take the extreme of the non-null days."""
    out: dict = {}
    for row in rows:
        acc = out.setdefault(label(row["period"]), {m: None for m in metrics})
        for m in metrics:
            if row[m] is None:
                continue
            if acc[m] is None:
                acc[m] = row[m]
            elif m in ("min_amount", "max_amount"):
                acc[m] = (min if m == "min_amount" else max)(acc[m], row[m])
            else:
                acc[m] += row[m]
    return out


NESTING = ["revenue", "orders", "units", "returned", "net", "min_amount", "max_amount"]
COARSER = {"month": lambda d: d.replace(day=1), "quarter": lambda d: d.replace(day=1, month=(d.month - 1) // 3 * 3 + 1),
           "year": lambda d: d.replace(day=1, month=1)}


@SETTINGS
@given(case=cases(grains=("month", "quarter", "year"), metric_sets=[NESTING], by=False, where=False))
def test_days_add_up_to_months_quarters_and_years(projects, case):
    put(projects, case)
    days = run(projects, case, grain="day")
    coarse = run(projects, case)
    rolled = _roll_up(days, COARSER[case.grain], case.metrics)
    assert [r["period"] for r in coarse] == sorted(rolled)
    for row in coarse:
        for metric in case.metrics:
            want = rolled[row["period"]][metric]
            assert row[metric] == (0 if want is None and metric not in ("min_amount", "max_amount") else want)


@settings(SETTINGS, max_examples=15)
@given(case=cases(grains=("week",), metric_sets=[NESTING], by=False, where=False))
def test_days_add_up_to_weeks_for_either_week_start(projects, case):
    put(projects, case, *rd.WEEKDAYS)
    days = run(projects, case, grain="day")
    for name, first in rd.WEEKDAYS.items():
        weeks = projects[name].query(list(case.metrics), **case.kwargs).to_pylist()
        assert all(r["period"].weekday() == first for r in weeks), name
        rolled = _roll_up(days, lambda d: d - dt.timedelta(days=(d.weekday() - first) % 7), case.metrics)
        assert [r["period"] for r in weeks] == sorted(rolled)
        for row in weeks:
            for metric in case.metrics:
                want = rolled[row["period"]][metric]
                assert row[metric] == (0 if want is None and metric not in ("min_amount", "max_amount") else want)


# -- (c) the engine equals pandas -----------------------------------------------------------------------

def check_against_pandas(projects, case: Case) -> None:
    put(projects, case)
    rows = run(projects, case)
    wanted = rd.reference(case.data, case.metrics, case.rng, zone=case.data.zone, grain=case.grain, by=case.by,
                          where=case.where, week_start=rd.WEEKDAYS[case.week_start])
    keys = (["period"] if case.grain else []) + list(case.by)
    rd.assert_rows_equal(rows, wanted, keys)


@SETTINGS
@given(case=cases())
def test_equals_pandas(projects, case):
    check_against_pandas(projects, case)


@settings(SETTINGS, max_examples=20)
@given(case=cases(grains=("hour",)))
def test_hours_equal_pandas(projects, case):
    check_against_pandas(projects, case)


def sale(when: dt.datetime, store: int = 1, amount: str = "1.00", qty: int = 1) -> tuple:
    return (when, store, "web", Decimal(amount), qty, 1)


# 01:45Z is 03:45 CEST; 02:30 on 2025-03-30 does not exist in Berlin and reads as 03:30 CEST
GAP_START = Case(rd.Dataset("Europe/Berlin", "spring", (sale(dt.datetime(2025, 3, 30, 1, 45, tzinfo=rd.UTC)),)),
                 Range(dt.datetime(2025, 3, 30, 2, 30), dt.datetime(2025, 3, 30, 5)), "hour", metrics=("orders",))


@settings(SETTINGS, max_examples=15)
@given(case=cases(gaps=True))
@example(case=GAP_START)
def test_equals_pandas_when_range_ends_fall_in_dst_gaps(projects, case):
    check_against_pandas(projects, case)


# -- (d) ratios ----------------------------------------------------------------------------------------

RATIO_METRICS = ["avg_ticket", "per_unit", "return_rate", "web_share", "revenue", "orders", "units", "returned",
                 "web_revenue"]


def _ratio(a, b):
    return None if b == 0 else float(a) / float(b)


@SETTINGS
@given(case=cases(grains=(None, "day", "week", "month"), metric_sets=[RATIO_METRICS], by=False, where=False))
def test_ratios_are_ratios_of_totals(projects, case):
    put(projects, case)
    rows = run(projects, case, by=["store"])
    totals = run(projects, case)
    keys = ("period",) if case.grain else ()
    sums: dict = defaultdict(lambda: defaultdict(int))
    for row in rows + totals:
        for ratio, (num, den) in rd.RATIOS.items():
            rd.assert_value(row[ratio], _ratio(row[num], row[den]), (ratio, row))
    for row in rows:
        for name in rd.ADDITIVE:
            if name in row:
                sums[tuple(row[k] for k in keys)][name] += row[name]
    for row in totals:
        part = sums[tuple(row[k] for k in keys)]
        for ratio, (num, den) in rd.RATIOS.items():
            rd.assert_value(row[ratio], _ratio(part[num], part[den]), ratio)


def test_ratio_of_zero_is_null(projects):
    rd.load(projects["monday"], rd.Dataset("UTC", "spring", (sale(dt.datetime(2025, 3, 3, 12, tzinfo=rd.UTC),
                                                                  amount="5.00", qty=0),)))
    rows = projects["monday"].query(["per_unit", "avg_ticket", "return_rate", "units"], grain="day",
                                    start="2025-03-03", end="2025-03-05").to_pylist()
    assert rows == [{"period": dt.date(2025, 3, 3), "per_unit": None, "avg_ticket": 5.0, "return_rate": 0.0,
                     "units": 0},
                    {"period": dt.date(2025, 3, 4), "per_unit": None, "avg_ticket": None, "return_rate": None,
                     "units": 0}]


# -- (e) compare previous_period -----------------------------------------------------------------------

def previous_range(rng: Range, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants of the range just before: as many whole months, else as many whole local (calendar) days,
    else as long in local wall-clock time (12 h from 00:00 to 12:00 even when 13 h elapse across DST);
    it ends where the range starts."""
    a, b = rng.start, rng.end
    if all((x.day, x.hour, x.minute) == (1, 0, 0) for x in (a, b)):
        index = a.year * 12 + a.month - 1 - ((b.year - a.year) * 12 + b.month - a.month)
        return _wall(a.replace(year=index // 12, month=index % 12 + 1), zone), rd.to_instant(a, zone)
    if a.time() == b.time() == dt.time():
        return _wall(a - (b - a), zone), rd.to_instant(a, zone)
    start, end = rd.to_instant(a, zone), rd.to_instant(b, zone)
    wall_a, wall_b = rd.to_local(start, zone), rd.to_local(end, zone)   # a time in a gap is read past it
    return _wall(wall_a - (wall_b - wall_a), zone), start


def _wall(local: dt.datetime, zone: str) -> dt.datetime:
    """A wall-clock time as an instant; one the clocks skipped is the first time they show after it."""
    while rd.in_gap(local, zone):
        local = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return rd.to_instant(local, zone)


def _iso(instant: dt.datetime, zone: str) -> str:
    """How meta shows a range end: a local date at midnight, else the local wall-clock time."""
    local = rd.to_local(instant, zone)
    return local.date().isoformat() if local.time() == dt.time() else local.isoformat()


COMPARED = ["revenue", "orders", "customers", "net", "avg_ticket", "max_amount"]


@SETTINGS
@given(case=cases(grains=(None,), metric_sets=[COMPARED], by=False, where=False),
       by=st.sampled_from([(), ("store",)]))
def test_previous_period_equals_the_previous_range(projects, case, by):
    put(projects, case)
    zone = case.data.zone
    result = projects[case.week_start].query_result(list(case.metrics), compare="previous_period",
                                                    **{**case.kwargs, "by": list(by)})
    lo, hi = previous_range(case.rng, zone)
    assert (result.meta["compare"]["from"], result.meta["compare"]["to"]) == (_iso(lo, zone), _iso(hi, zone))
    assume(lo < hi)   # the wall-clock minutes before were all skipped by a spring-forward: an empty range
    # ends as instants: a wall-clock time typed in a repeated hour would mean its first occurrence
    direct = {tuple(r[d] for d in by): r for r in run(projects, case, by=list(by), start=lo, end=hi)}
    for row in result.to_pylist():
        key = tuple(row[d] for d in by)
        if key not in direct:  # a group with no rows before compares with the metric over no rows
            direct[key] = run(projects, case, by=[], where=f"store = {row['store']}", start=lo, end=hi)[0]
        previous = direct[key]
        for m in case.metrics:
            rd.assert_value(row[f"{m}_previous"], previous[m], m)
            if row[m] is None or previous[m] is None:
                assert row[f"{m}_change"] is None
                continue
            assert row[f"{m}_change"] == pytest.approx(row[m] - previous[m])
            pct = None if previous[m] == 0 else float(row[m] - previous[m]) / float(previous[m]) * 100
            rd.assert_value(row[f"{m}_change_pct"], pct, m)


@SETTINGS
@given(case=cases(grains=("hour", "day", "month"), metric_sets=[COMPARED], by=False, where=False))
def test_previous_period_by_period_lines_up_when_lengths_match(projects, case):
    put(projects, case)
    rows = run(projects, case, compare="previous_period")
    lo, hi = previous_range(case.rng, case.data.zone)
    assume(lo < hi)
    direct = run(projects, case, start=lo, end=hi)
    if len(direct) == len(rows):
        for row, prev in zip(rows, direct):
            for m in case.metrics:
                rd.assert_value(row[f"{m}_previous"], prev[m], (m, row["period"], prev["period"]))


# -- engine bugs found by the properties, each pinned by a minimal example ---------------------------------

def _one_sale(project, when: dt.datetime, store: int = 1) -> None:
    rd.load(project, rd.Dataset("UTC", "spring", (sale(when, store),)))


def test_avg_keeps_its_precision(projects):
    """Once rounded to cents: the average was cast back to the column's decimal(12,2)."""
    day = dt.datetime(2025, 3, 10, 12, tzinfo=rd.UTC)
    rd.load(projects["monday"], rd.Dataset("UTC", "spring", tuple(sale(day, amount=c) for c in ("0.01", "0", "0"))))
    row = projects["monday"].query(["avg_amount"], start="2025-03-01", end="2025-04-01").to_pylist()[0]
    assert float(row["avg_amount"]) == pytest.approx(0.01 / 3)


def test_where_counts_rows(projects):
    """Once an ibis IntegrityError: count(*) was taken over the unfiltered relation."""
    _one_sale(projects["monday"], dt.datetime(2025, 3, 10, 12, tzinfo=rd.UTC))
    rows = projects["monday"].query(["orders"], where="store = 1", start="2025-03-01", end="2025-04-01").to_pylist()
    assert rows == [{"orders": 1}]


def test_range_starting_in_a_dst_gap_buckets_by_the_real_offset(projects):
    """Once bucketed a whole range with the pre-gap offset (utcoffset() of a time that does not exist)."""
    _one_sale(projects["monday"], dt.datetime(2025, 3, 30, 22, 30, tzinfo=rd.UTC))  # 00:30 CEST on Mar 31
    ask = dict(grain="day", end="2025-04-01", timezone="Europe/Berlin")
    in_gap = projects["monday"].query(["orders"], start="2025-03-30T02:30", **ask).to_pylist()
    same_instant = projects["monday"].query(["orders"], start="2025-03-30T03:30", **ask).to_pylist()
    assert same_instant == [{"period": dt.date(2025, 3, 30), "orders": 0},
                            {"period": dt.date(2025, 3, 31), "orders": 1}]
    assert in_gap == same_instant


def test_range_ending_in_a_dst_gap_lists_every_hour(projects):
    """Once lost its last hour: period_labels compared same-zone datetimes by wall clock."""
    _one_sale(projects["monday"], dt.datetime(2025, 3, 1, tzinfo=rd.UTC))
    rows = projects["monday"].query(["orders"], grain="hour", start="2025-03-30", end="2025-03-30T02:30",
                                    timezone="Europe/Berlin").to_pylist()  # 02:30 does not exist: it is 03:30 CEST
    assert [r["period"].hour for r in rows] == [0, 1, 3]


def test_previous_of_a_new_group_is_zero(projects):
    """Once null: a --by group with no rows in the previous range had no previous value."""
    _one_sale(projects["monday"], dt.datetime(2025, 3, 10, 12, tzinfo=rd.UTC), store=2)
    row = projects["monday"].query(["revenue"], by=["store"], start="2025-03-08", end="2025-03-15",
                                   compare="previous_period").to_pylist()[0]
    assert (row["revenue_previous"], row["revenue_change"]) == (Decimal(0), Decimal("1.00"))


def test_previous_period_by_day_lines_up_from_the_last_day(projects):
    """Days pair counted from the last (docs): April 30 with March 31, so April 1 with March 2."""
    march = (sale(dt.datetime(2025, 3, 1, 12, tzinfo=rd.UTC), amount="10"),
             sale(dt.datetime(2025, 3, 2, 12, tzinfo=rd.UTC), amount="20"))
    rd.load(projects["monday"], rd.Dataset("UTC", "spring", march))
    april = projects["monday"].query(["revenue"], grain="day", start="2025-04-01", end="2025-05-01",
                                     compare="previous_period").to_pylist()
    assert (april[0]["period"], april[0]["revenue_previous"]) == (dt.date(2025, 4, 1), Decimal("20.00"))
    assert [r["revenue_previous"] for r in april[1:]] == [Decimal(0)] * 29
