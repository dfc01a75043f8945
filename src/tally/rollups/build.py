"""`tally rollup build`: full or incremental refresh of rollup tables, replacing whole periods atomically."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine import changes
from tally.engine.timegrid import Grain
from tally.rollups import compute
from tally.rollups.definition import RollupDef, definitions
from tally.rollups.growth import add_growth
from tally.warehouse.internal import ensure_internal_tables, now, read_state, write_state
from tally.warehouse.txn import ident

UTC = dt.timezone.utc
MAX_BLOCKS = 4


@dataclass
class BuildResult:
    rollup: str
    table: str
    mode: str                 # full | incremental | unchanged
    periods: int = 0
    rows: int = 0
    days_changed: int = 0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def state_key(name: str) -> str:
    return f"rollup:{name}"


def build(project, names=None, *, full: bool = False, start: str | None = None, end: str | None = None,
          category: str | None = None, progress=None) -> list[BuildResult]:
    """Build or refresh rollups; each commits whole, readers see the old rows until then."""
    progress = progress or (lambda *args: None)
    ensure_internal_tables(project.warehouse)
    seen: dict = {}   # model facts read once per run, shared by its rollups
    chosen = definitions(project, names, category)
    with project.warehouse.memory_budget("build_memory_limit"):
        return [build_one(project, rdef, full=full, start=start, end=end, progress=progress, seen=seen)
                for rdef in chosen]


def build_one(project, rdef: RollupDef, *, full=False, start=None, end=None, progress=None,
              seen: dict | None = None) -> BuildResult:
    clock = time.perf_counter()
    engine, warehouse = project.engine, project.warehouse
    progress = progress or (lambda *args: None)
    stored = _load_state(warehouse, rdef)
    exists = warehouse.has_table(rdef.table)
    fresh = _snapshot(engine, rdef, {} if seen is None else seen)
    days = None
    if start or end:
        periods = _forced_periods(rdef, start, end, fresh)
        mode = "range"
    elif full or stored is None or not exists or stored.get("definition") != fresh["definition"]:
        periods, mode = None, "full"
    else:
        days = _changed_days(engine, rdef, stored, fresh, {} if seen is None else seen)
        if not days:
            return BuildResult(rdef.name, rdef.table, "unchanged", seconds=time.perf_counter() - clock)
        periods = {g: sorted({rdef.period(d, g) for d in days}) for g in rdef.grains}
        mode = "incremental"
    if periods is not None and rdef.rollup.growth:
        # a changed period moves the growth of the one after it
        periods = {g: sorted(set(ps) | {rdef.period_end(p, g) for p in ps}) for g, ps in periods.items()}
    progress(rdef.name, 0.1, mode)
    built_at = now()
    # coarser sums may be updated by difference only while every stored period equals the sum of its
    # stored days: a range build (or a repair) rebuilds some periods from newer data than their days
    by_difference = mode == "incremental" and bool(stored.get("sums_from_days"))
    tables = _compute(engine, rdef, periods, fresh, built_at, progress, days if by_difference else None)
    if rdef.rollup.growth:
        tables = {g: add_growth(t, rdef, g, warehouse if exists and mode != "full" else None,
                                rebuilt=set(periods[g]) if periods is not None else frozenset())
                  for g, t in tables.items()}
    progress(rdef.name, 0.9, "writing")
    # a range rebuild fixes those periods only: what changed elsewhere is still due next time
    state = dict(fresh, sums_from_days=True) if mode != "range" else (
        dict(stored, sums_from_days=False) if stored is not None else None)
    written = _write(warehouse, rdef, tables, periods, state, exists)
    result = BuildResult(rdef.name, rdef.table, mode, periods=sum(pc.count_distinct(t["period_start"]).as_py()
                                                                   for t in tables.values()),
                         rows=written, seconds=time.perf_counter() - clock)
    if mode == "incremental":
        result.days_changed = len(days)
    progress(rdef.name, 1.0, "done")
    return result


def _load_state(warehouse, rdef: RollupDef) -> dict | None:
    text = read_state(warehouse, state_key(rdef.name))
    return json.loads(text) if text else None


def _snapshot(engine, rdef: RollupDef, seen: dict) -> dict:
    """What the models look like now: change watermarks, rows per local day, and the data's span."""
    def once(key, compute):
        if key not in seen:
            seen[key] = compute()
        return seen[key]

    spans = [s for s in (once(("bounds", m), lambda m=m: changes.bounds(engine, m)) for m in sorted(rdef.models)) if s]
    zone = ZoneInfo(rdef.zone)
    first = min(s[0] for s in spans).astimezone(zone).date() if spans else None
    last = max(s[1] for s in spans).astimezone(zone).date() if spans else None
    related = related_models(engine, rdef)
    return {
        "definition": definition_stamp(engine, rdef, related),
        "watermarks": {m: once(("updated", m), lambda m=m: changes.max_updated(engine, m)) for m in sorted(related)},
        "days": {m: once(("days", m, rdef.zone), lambda m=m: changes.day_counts(engine, m, rdef.zone))
                 for m in sorted(rdef.models)},
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
    }


def related_models(engine, rdef: RollupDef) -> set[str]:
    """The rollup's models and the models they join to."""
    return set(rdef.models) | {j.model for m in rdef.models for j in engine.catalog.model(m).joins.values()}


def definition_stamp(engine, rdef: RollupDef, related: set[str] | None = None) -> str:
    """What the stored numbers were built from: the definition and when its lookups were loaded."""
    related = related_models(engine, rdef) if related is None else related
    return rdef.fingerprint + "/" + lookup_stamp(engine, rdef, related)


def lookup_stamp(engine, rdef: RollupDef, related: set[str]) -> str:
    """When the joined lookup tables were last loaded (seeds, ingests): a reload means a full build."""
    lookups = sorted(engine.catalog.model(m).table for m in related
                     if m not in rdef.models and not engine.catalog.model(m).updated)
    warehouse = engine.warehouse
    if not lookups or not warehouse.has_table("_tally_state"):
        return ""
    return ",".join(f"{t}={read_state(warehouse, f'table:{t}') or ''}" for t in lookups)


def _changed_days(engine, rdef: RollupDef, stored: dict, fresh: dict, seen: dict) -> set[dt.date]:
    """Days whose rows changed (by change time, directly or through joins) or whose row count moved.

    Rollups of one run built from the same state share the scan of each model (`seen`).
    """
    days: set[str] = set()
    watermarks = stored.get("watermarks", {})
    for model in rdef.models:
        key = ("changed", model, rdef.zone, json.dumps(watermarks, sort_keys=True))
        if key not in seen:
            seen[key] = changes.changed_days(engine, model, rdef.zone, watermarks)
        days |= seen[key]
        before, after = stored.get("days", {}).get(model, {}), fresh["days"].get(model, {})
        days |= {d for d in set(before) | set(after) if before.get(d) != after.get(d)}
    return {dt.date.fromisoformat(d) for d in days}


def _forced_periods(rdef: RollupDef, start, end, fresh) -> dict[Grain, list[dt.date]]:
    """Every period touching [start, end) (local dates), for `--from/--to` rebuilds."""
    first = dt.date.fromisoformat(str(start)) if start else dt.date.fromisoformat(fresh["first"])
    last = dt.date.fromisoformat(str(end)) if end else dt.date.fromisoformat(fresh["last"]) + dt.timedelta(days=1)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days)]
    return {g: sorted({rdef.period(d, g) for d in days}) for g in rdef.grains}


def _compute(engine, rdef: RollupDef, periods, fresh, built_at, progress,
             days: set[dt.date] | None = None) -> dict[Grain, pa.Table]:
    """The rows to store: everything (periods None), or the given periods; `days` changed (incremental)."""
    catalog = engine.catalog
    if periods is None:
        if fresh["first"] is None:
            return {g: compute.finish(_empty(engine, rdef), rdef, g, catalog, built_at) for g in rdef.grains}
        first = rdef.period(dt.date.fromisoformat(fresh["first"]), Grain.year)
        last = dt.date.fromisoformat(fresh["last"]) + dt.timedelta(days=1)
        raw = compute.full_rows(engine, rdef, first, rdef.period_end(rdef.period(last, Grain.year), Grain.year))
        return {g: compute.finish(t, rdef, g, catalog, built_at) for g, t in raw.items()}
    live = {}   # grain -> rows already queried
    if days is not None and periods.get(Grain.day):
        day_rows = live[Grain.day] = _live_periods(engine, rdef, Grain.day, periods[Grain.day])
        if compute.can_delta(rdef, day_rows):
            progress(rdef.name, 0.3, f"day: {len(periods[Grain.day])} periods")
            changed = sorted(days)
            new_days = day_rows.filter(compute.in_periods(day_rows["period"], changed))
            coarse = compute.delta_rows(engine, engine.warehouse, rdef, changed, new_days, periods)
            return {g: compute.finish(day_rows if g is Grain.day else coarse[g], rdef, g, catalog, built_at)
                    for g in periods}
    tables = {}
    for index, (grain, starts) in enumerate(periods.items()):
        progress(rdef.name, 0.1 + 0.8 * index / max(len(periods), 1), f"{grain.value}: {len(starts)} periods")
        rows = live[grain] if grain in live else _live_periods(engine, rdef, grain, starts)
        tables[grain] = compute.finish(rows, rdef, grain, catalog, built_at)
    return tables


def _live_periods(engine, rdef: RollupDef, grain: Grain, starts: list[dt.date]) -> pa.Table:
    """Every base measure for these periods, live: one query per run of adjacent periods."""
    blocks = _blocks(rdef, grain, starts)
    if len(blocks) > MAX_BLOCKS:  # scattered changes: one query over their whole span beats many small ones
        blocks = [(blocks[0][0], blocks[-1][1])]
    parts = [compute.live_rows(engine, rdef, grain, a, b, rdef.base_names) for a, b in blocks]
    rows = pa.concat_tables(parts) if parts else _empty(engine, rdef)
    return rows.filter(compute.in_periods(rows["period"], starts))


def _empty(engine, rdef: RollupDef) -> pa.Table:
    today = dt.date.today()
    return compute.live_rows(engine, rdef, Grain.day, today, today + dt.timedelta(days=1), rdef.base_names).slice(0, 0)


def _blocks(rdef: RollupDef, grain: Grain, starts: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Contiguous runs of periods as [first start, last end) ranges: one query each."""
    blocks: list[list[dt.date]] = []
    for start in starts:
        if blocks and rdef.period_end(blocks[-1][1], grain) == start:
            blocks[-1][1] = start
        else:
            blocks.append([start, start])
    return [(a, rdef.period_end(b, grain)) for a, b in blocks]


def _write(warehouse, rdef: RollupDef, tables: dict[Grain, pa.Table], periods, fresh: dict | None,
           exists: bool) -> int:
    """Replace the periods built (or everything, for a full build) and the state, in one transaction.

    With no state to keep (`fresh` None: a range build of a new rollup) the next build is a full one.
    """
    data = pa.concat_tables(list(tables.values()), promote_options="permissive")
    dialect = warehouse.dialect
    if exists and set(warehouse.columns_of(rdef.table)) != set(data.schema.names):
        if periods is None:   # a full build of a changed definition: the table takes the new shape
            warehouse.drop_table(rdef.table)
            exists = False
        else:
            warehouse.add_missing_columns(rdef.table, data.schema)
    if not exists:
        warehouse.ensure_table(rdef.table, data.schema)
    table = ident(rdef.table).sql(dialect.name)
    marker = "?" if dialect.name == "duckdb" else "%s"
    state = None
    if fresh is not None:
        state = {k: fresh[k] for k in ("definition", "watermarks", "days", "first", "last", "sums_from_days")}
        state["built_at"] = now().isoformat()
    with warehouse.transaction() as tx:
        if periods is None:
            tx.execute(f"DELETE FROM {table}")
        else:
            for grain, starts in periods.items():
                for chunk in range(0, len(starts), 500):
                    part = starts[chunk:chunk + 500]
                    tx.execute(f"DELETE FROM {table} WHERE grain = {marker} AND period_start IN "
                               f"({', '.join([marker] * len(part))})", [grain.value, *part])
        tx.insert_arrow(rdef.table, data)
        if state is not None:
            write_state(tx, state_key(rdef.name), json.dumps(state, sort_keys=True))
    warehouse.forget(rdef.table)
    return data.num_rows
