"""Run queries: cached compiled plans, range parameters, zero-filled periods, comparisons, derived metrics."""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import replace
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa

from tally.engine import rows as rowops
from tally.engine.catalog import Catalog
from tally.engine.checks import check_query
from tally.engine.plan import (UTC_TS, Part, Plan, Shape, build_plan, data_bounds_expr, distinct_keys_expr,
                              distinct_keys_part, split_keys_expr)
from tally.engine.result import Result
from tally.engine.spec import QuerySpec
from tally.engine.timecol import DATE_HOUR, is_date
from tally.engine.timegrid import (SUPPORTED, as_utc, check_period_count, in_supported_range, offset_segments, period_labels, period_pairs,
                                  previous_range, shift_local)
from tally.errors import QueryError
from tally.project.schema import ProjectConfig
from tally.warehouse import CompiledQuery, Warehouse

UTC = dt.timezone.utc
CACHE_SIZE = 256


class Engine:
    """Answers queries for one project on one warehouse; compiled SQL is cached per query shape."""

    def __init__(self, config: ProjectConfig, warehouse: Warehouse, catalog: Catalog | None = None):
        self.config = config
        self.catalog = catalog or Catalog(config)
        self.warehouse = warehouse
        self._plans: OrderedDict[Shape, Plan] = OrderedDict()
        self._keys: OrderedDict[Shape, Part] = OrderedDict()
        self._splits: OrderedDict[Shape, CompiledQuery] = OrderedDict()
        self._bounds: dict[str, object] = {}
        self._lock = threading.Lock()
        self.router = None   # set by the project when rollups exist: (spec, start, end, measures) -> rows | None
        self.locate = None   # set by the project: (message, *config path) -> ConfigError at the line in tally.yml

    def spec(self, metrics, **kwargs) -> QuerySpec:
        kwargs.setdefault("timezone", self.config.timezone)
        if kwargs["timezone"] is None:
            kwargs["timezone"] = self.config.timezone
        return QuerySpec.build(metrics, **kwargs)

    def query(self, metrics, **kwargs) -> Result:
        """Answer a query given as loose input (see QuerySpec.build)."""
        return self.run(self.spec(metrics, **kwargs))

    def run(self, spec: QuerySpec, *, live: bool = False, ordered: bool = True) -> Result:
        """Answer a spec; `live` never reads a rollup (what rollup builds and verify compare against).

        `ordered=False`: rows in whatever order the warehouse gives them, for a caller that matches
        them by key (a rollup build: sorting millions of day rows in Arrow took ~1 s per rollup)."""
        for metric in spec.metrics:
            self.catalog.check(metric)
        self._check_order(spec)
        check_query(self, spec)
        start, end = self._resolve_range(spec)
        if spec.compare:
            start, end = self._clip_for_comparison(spec, start, end)
        self._check_date_zone(spec, start, end)
        meta = {"timezone": spec.timezone, "from": _iso(start, spec.zone), "to": _iso(end, spec.zone),
                "grain": spec.grain.value if spec.grain else None, "source": "live"}
        table = self._answer(spec, start, end, meta, live, ordered)
        as_of = self._snapshots_as_of(spec)
        if as_of:
            meta["as_of"] = as_of
        if spec.compare:
            table, meta["compare"] = self._compare(spec, table, start, end, live)
        return Result(table, meta)

    def _compare(self, spec: QuerySpec, table: pa.Table, start, end, live: bool) -> tuple[pa.Table, dict]:
        """The current rows with each metric's previous value, change and change %, and the
        comparison's meta."""
        before_start, before_end, delta = previous_range(spec.compare, start, end, spec.zone, spec.grain)
        # every group of the previous range, unordered and uncut: the current answer's groups (kept
        # by --limit) are looked up in it, whatever their rank was then
        whole = replace(spec, order_by=(), limit=None)
        previous = self._answer(whole, before_start, before_end, {}, live, ordered=False)
        zero = rowops.zero_values(self._plan(whole, before_start, before_end), spec, self.catalog)
        pairs = None
        if spec.grain:
            def labels(lo, hi):
                if spec.compare != "previous_period":
                    return []   # previous_year pairs by label alone
                return period_labels(spec.grain, lo, hi, spec.timezone, self.config.week_start_index)

            pairs = period_pairs(spec.compare, delta, labels(start, end), labels(before_start, before_end))
        meta = {"kind": spec.compare, "from": _iso(before_start, spec.zone), "to": _iso(before_end, spec.zone)}
        return rowops.attach_comparison(table, previous, spec, pairs, zero), meta

    def _clip_for_comparison(self, spec: QuerySpec, start, end):
        """A range whose comparison range would overlap it (previous_year over more than a year):
        an open end is pulled in until they just meet, an explicit range is refused."""
        before_start, before_end, delta = previous_range(spec.compare, start, end, spec.zone, spec.grain)
        if before_end <= start:
            return start, end
        if spec.start is None:
            return shift_local(end, delta, spec.zone), end
        if spec.end is None:
            return start, shift_local(start, -delta, spec.zone)
        span = "52 weeks" if spec.grain and spec.grain.value == "week" else "one year"
        raise QueryError(f"--compare {spec.compare}: the range {_iso(start, spec.zone)} → {_iso(end, spec.zone)} "
                         f"is longer than {span}, so the range it is compared with would overlap it "
                         f"(shorten it to at most {span})")

    def _snapshots_as_of(self, spec: QuerySpec) -> dict:
        """Each requested metric that reads a snapshot model (no time: today's stock whatever the
        range): when its table was last loaded (ISO UTC), or None when no load was recorded."""
        found = {}
        for metric in spec.metrics:
            tables = sorted({self.catalog.model(ref.model).table for ref in self.catalog.base_measures([metric])
                             if not self.catalog.model(ref.model).time})
            if tables:
                stamps = [self._loaded_at(table) for table in tables]
                found[metric] = None if None in stamps else min(stamps)
        return found

    def _loaded_at(self, table: str) -> str | None:
        """When a load or seed last replaced or changed `table` (its `table:` state key), or None."""
        if not self.warehouse.has_table("_tally_state"):
            return None
        state = self.warehouse.table("_tally_state")
        rows = self.warehouse.run(self.warehouse.compile(
            state.filter(state.key == f"table:{table}").select("updated_at"))).to_pylist()
        if not rows or rows[0]["updated_at"] is None:
            return None
        return as_utc(rows[0]["updated_at"]).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def distinct_keys(self, spec: QuerySpec, measure: str) -> tuple[Part, dict]:
        """The compiled query of a `count_distinct` measure's distinct (period, dimensions, key) rows
        over the spec's range, and its parameter values (run it, or insert its rows elsewhere)."""
        ref, shape, start, end = self._key_shape(spec, measure)
        part = self._cached(self._keys, shape, lambda: distinct_keys_part(shape, self.catalog, self.warehouse, ref))
        return part, {"start": start.astimezone(UTC), "end": end.astimezone(UTC)}

    def distinct_keys_expr(self, spec: QuerySpec, measure: str):
        """The same rows as `distinct_keys`, as an Ibis expression with the range's values in it
        (to be part of a larger expression)."""
        ref, shape, start, end = self._key_shape(spec, measure)
        params = {"start": ibis.literal(start.astimezone(UTC), UTC_TS), "end": ibis.literal(end.astimezone(UTC), UTC_TS)}
        return distinct_keys_expr(shape, self.catalog, self.warehouse, ref, params)

    def split_keys(self, spec: QuerySpec, measure: str) -> int:
        """How many values a `count_distinct` measure counts over the spec's range have rows in more
        than one period of its grain (its dimensions play no part); see `plan.split_keys_expr`."""
        ref, shape, start, end = self._key_shape(spec, measure)
        shape = replace(shape, by=())

        def build() -> CompiledQuery:
            params = {"start": ibis.param(UTC_TS), "end": ibis.param(UTC_TS)}
            return self.warehouse.compile(split_keys_expr(shape, self.catalog, self.warehouse, ref, params), params)

        query = self._cached(self._splits, shape, build)
        values = {"start": start.astimezone(UTC), "end": end.astimezone(UTC)}
        return int(self.warehouse.run(query, values).to_pylist()[0]["split"])

    def _key_shape(self, spec: QuerySpec, measure: str):
        ref = next((r for r in self.catalog.base_measures([measure]) if r.name == measure), None)
        if ref is None or ref.measure.aggregation != "count_distinct" or not self.catalog.model(ref.model).time:
            raise QueryError(f"{measure!r} is not a count_distinct measure of a model with a time column")
        start, end = self._resolve_range(spec)
        segments = offset_segments(spec.timezone, start, end) if spec.grain else None
        shape = Shape((measure,), spec.by, spec.grain, spec.where, (), None, self.config.week_start_index,
                      segments, False)
        return ref, shape, start, end

    # -- internals ----------------------------------------------------------

    def _answer(self, spec: QuerySpec, start: dt.datetime, end: dt.datetime, meta: dict,
                live: bool = False, ordered: bool = True) -> pa.Table:
        if spec.grain and spec.fill and spec.limit is None:
            check_period_count(spec.grain, start, end)   # before any work: a grid too big to list
        plan = self._plan(spec, start, end)
        values = {"start": start.astimezone(UTC), "end": end.astimezone(UTC)}
        timed = timeless = None
        routable = self.router and not live and plan.timed and not plan.timeless
        routed = self.router(spec, start, end, plan.measures) if routable else None
        if routed is not None:
            timed, info = routed
            timed = rowops.conform(timed.select(plan.timed.schema.names), plan.timed.schema)
            meta.update(info)
        elif plan.timed:
            timed = self.warehouse.run(plan.timed.query, values)
            timed = rowops.conform(timed, plan.timed.schema)
        if plan.timeless:
            timeless = rowops.conform(self.warehouse.run(plan.timeless.query), plan.timeless.schema)
        periods = None
        if spec.grain and spec.fill and spec.limit is None:
            periods = period_labels(spec.grain, start, end, spec.timezone, self.config.week_start_index)
        rows = rowops.assemble(timed, timeless, periods, spec, plan)
        rows = rowops.add_derived(rows, spec, self.catalog)
        return rowops.order_and_limit(rows, spec, use_limit=not plan.sql_orders, ordered=ordered)

    def _plan(self, spec: QuerySpec, start: dt.datetime, end: dt.datetime) -> Plan:
        segments = offset_segments(spec.timezone, start, end) if spec.grain else None
        shape = Shape(spec.metrics, spec.by, spec.grain, spec.where, spec.order_by, spec.limit,
                      self.config.week_start_index, segments, spec.fill and spec.limit is None)
        return self._cached(self._plans, shape, lambda: build_plan(shape, self.catalog, self.warehouse))

    def _cached(self, store: OrderedDict, shape: Shape, build):
        """`store`'s entry for `shape`, built (outside the lock) when missing; the least recently
        used entries go past CACHE_SIZE."""
        with self._lock:
            found = store.get(shape)
            if found is not None:
                store.move_to_end(shape)
                return found
        found = build()
        with self._lock:
            store[shape] = found
            while len(store) > CACHE_SIZE:
                store.popitem(last=False)
        return found

    def _check_date_zone(self, spec: QuerySpec, start: dt.datetime, end: dt.datetime) -> None:
        """A DATE time column is placed at 12:00 UTC: refuse a zone where that is another date."""
        for ref in self.catalog.base_measures(spec.metrics):
            model = self.catalog.model(ref.model)
            if model.time and is_date(self.warehouse.table(model.table), model.time, ref.model):
                first, changes = offset_segments(spec.timezone, start, end)
                if any(abs(offset) >= DATE_HOUR * 3600 for offset in (first, *[off for _, off in changes])):
                    raise QueryError(f"model {ref.model!r}: its time column {model.time!r} is a DATE, counted at "
                                     f"12:00 UTC, which is another date in {spec.timezone} (UTC offset of 12 hours "
                                     "or more); store a timestamp to query in this timezone")

    def _check_order(self, spec: QuerySpec) -> None:
        allowed = set(spec.metrics) | set(spec.by) | ({"period"} if spec.grain else set())
        for name, _ in spec.order_by:
            if name in allowed:
                continue
            if name in self.catalog.names:
                raise QueryError(f"cannot order by {name!r}: it is not in the query; add it to the metrics "
                                 f"(`tally query {' '.join(spec.metrics)} {name} --order ...`)")
            if any(name in self.catalog.dimensions_of(metric) for metric in spec.metrics):
                raise QueryError(f"cannot order by {name!r}: the query is not broken down by it; add `--by {name}`")
            if name == "period":
                raise QueryError("cannot order by 'period': the query has no periods; add `--grain day` (or week, ...)")
            raise QueryError(f"cannot order by {name!r}: order by a metric, dimension or period "
                             f"of the query ({', '.join(sorted(allowed))})")

    def _resolve_range(self, spec: QuerySpec) -> tuple[dt.datetime, dt.datetime]:
        """The query's [start, end); open ends come from the data, widened to whole local days."""
        if spec.start and spec.end:
            return spec.start, spec.end
        lo, hi = self._data_bounds(spec)
        tz = spec.zone
        start = spec.start or _local_midnight(lo, tz)
        end = spec.end or _local_midnight(hi, tz, next_day=True)
        if start >= end:
            end = start + dt.timedelta(days=1)
        return start, end

    def _data_bounds(self, spec: QuerySpec) -> tuple[dt.datetime, dt.datetime]:
        models = {ref.model for ref in self.catalog.base_measures(spec.metrics) if self.catalog.model(ref.model).time}
        lows, highs = [], []
        for model in sorted(models):
            if model not in self._bounds:
                self._bounds[model] = self.warehouse.compile(data_bounds_expr(self.catalog, self.warehouse, model))
            row = self.warehouse.run(self._bounds[model]).to_pylist()[0]
            if row["lo"] is not None:
                lows.append(as_utc(row["lo"]))
                highs.append(as_utc(row["hi"]))
        if not lows:
            today = dt.datetime.now(UTC)
            return today, today
        if not in_supported_range(min(lows), max(highs)):
            raise QueryError(f"the data runs from {min(lows):%Y-%m-%d} to {max(highs):%Y-%m-%d}, out of range "
                             f"({SUPPORTED}): give --from and --to")
        return min(lows), max(highs)


def _local_midnight(instant: dt.datetime, tz: ZoneInfo, next_day: bool = False) -> dt.datetime:
    day = instant.astimezone(tz).date() + dt.timedelta(days=1 if next_day else 0)
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(UTC)


def _iso(instant: dt.datetime, tz: ZoneInfo) -> str:
    local = instant.astimezone(tz)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return local.date().isoformat()
    return local.replace(tzinfo=None).isoformat()
