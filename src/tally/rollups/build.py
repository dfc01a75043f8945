"""`tally rollup build`: full or incremental refresh of rollup tables, replacing whole periods atomically.

The stages, each in its module: what the last build left (`state`), what changed since (`detect`),
the distinct key rows (`keywork`, `keys`), every period's rows (`compute`: the full build) or the
changed ones' (`delta`), and the write (`write`). This module decides the mode and runs them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field

import pyarrow.compute as pc

from tally.engine.checks import check_query
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import MAX_PERIODS, Grain, parse_date
from tally.errors import QueryError
from tally.rollups import compute, delta, detect
from tally.rollups.definition import RollupDef, definitions
from tally.rollups.detect import RunScans
from tally.rollups.growth import add_growth
from tally.rollups.keywork import KeyWork, plan_key_work
from tally.rollups.rows import finish, live_periods
from tally.rollups.state import BuildMode, RollupState, load_state, save_state_alone, state_key, stored_text
from tally.rollups.write import write_rows
from tally.warehouse.internal import ensure_internal_tables, now

__all__ = ["BuildMode", "BuildResult", "build", "build_one", "state_key"]

BUDGET_FREE_DAYS = 31   # an incremental build of more changed days runs within the build memory budget


@dataclass
class BuildResult:
    rollup: str
    table: str
    mode: BuildMode
    periods: int = 0
    rows: int = 0
    days_changed: int = 0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Plan:
    """What one rollup's build does: its mode, the periods it replaces (None: all) and the changed days."""

    mode: BuildMode
    periods: dict[Grain, list[dt.date]] | None
    days: set[dt.date] | None = None      # incremental: the local days that changed


def build(project, names=None, *, full: bool = False, start: str | None = None, end: str | None = None,
          category: str | None = None, progress=None) -> list[BuildResult]:
    """Build or refresh rollups; each commits whole, readers see the old rows until then."""
    progress = progress or (lambda *args: None)
    start, end = rebuild_range(start, end)
    ensure_internal_tables(project.warehouse)
    chosen = definitions(project, names, category)
    for rollup_def in chosen:   # type clashes in what each rollup reads: one line at tally.yml's, before any work
        check_query(project.engine, QuerySpec(metrics=tuple(rollup_def.rollup.metrics), by=tuple(rollup_def.by),
                                              where=rollup_def.rollup.where))
    scans = RunScans(chosen)   # model facts read once per run, shared by its rollups
    return [build_one(project, rollup_def, full=full, start=start, end=end, progress=progress, scans=scans)
            for rollup_def in chosen]


def rebuild_range(start, end) -> tuple[dt.date | None, dt.date | None]:
    """--from/--to of a rebuild as local dates, read as a query's range is (refused before any work)."""
    first = parse_date(start, "--from") if start is not None else None
    last = parse_date(end, "--to") if end is not None else None
    if first and last and first >= last:
        raise QueryError(f"--from {first} must be before --to {last} (the rebuilt days are [from, to))")
    return first, last


def build_one(project, rollup_def: RollupDef, *, full=False, start=None, end=None, progress=None,
              scans: RunScans | None = None) -> BuildResult:
    clock = time.perf_counter()
    engine, warehouse = project.engine, project.warehouse
    progress = progress or (lambda *args: None)
    scans = RunScans() if scans is None else scans
    stored = load_state(warehouse, rollup_def)
    exists = warehouse.has_table(rollup_def.table)
    current = detect.snapshot(engine, rollup_def, scans, stored)
    plan = _plan(engine, rollup_def, stored, current, exists, scans, full=full, start=start, end=end)
    if plan.mode is BuildMode.unchanged:
        return BuildResult(rollup_def.name, rollup_def.table, BuildMode.unchanged, seconds=time.perf_counter() - clock)
    with contextlib.ExitStack() as budget:
        return _build_periods(project, rollup_def, stored, exists, current, plan, clock, progress, budget, scans)


def _plan(engine, rollup_def: RollupDef, stored: RollupState | None, current: RollupState, exists: bool,
          scans: RunScans, *, full: bool, start, end) -> _Plan:
    """The mode and periods: a range when asked, full when nothing usable is stored, else the
    periods of the days that changed (none: unchanged, and the state moves on if rows changed)."""
    reloaded = (stored or RollupState()).moved_loads(current.loads)   # models without a change time loaded since
    if start or end:
        start, end = rebuild_range(start, end)
        return _Plan(BuildMode.range, _forced_periods(rollup_def, start, end, current))
    if (full or stored is None or not exists or stored.definition != current.definition
            or (reloaded and not detect.fingerprints_comparable(engine, rollup_def, stored, reloaded))):
        detect.read_all_days(engine, rollup_def, current, scans)
        detect.read_all_inputs(engine, rollup_def, current, scans)
        return _Plan(BuildMode.full, None)
    flagged = detect.changed_days(engine, rollup_def, stored, current, scans)
    days = detect.input_changes(engine, rollup_def, stored, current, flagged, scans, reloaded)
    if not days:
        if flagged or reloaded:   # rows changed, the rollup's numbers can't have: the state moves on
            save_state_alone(engine.warehouse, rollup_def, current.but(sums_from_days=stored.sums_from_days))
        return _Plan(BuildMode.unchanged, None)
    periods = {g: sorted({rollup_def.period(d, g) for d in days}) for g in rollup_def.grains}
    return _Plan(BuildMode.incremental, periods, days)


def _build_periods(project, rollup_def: RollupDef, stored: RollupState | None, exists: bool, current: RollupState,
                   plan: _Plan, clock: float, progress, budget: contextlib.ExitStack, scans: RunScans) -> BuildResult:
    engine, warehouse = project.engine, project.warehouse
    mode, periods, days = plan.mode, plan.periods, plan.days
    if periods is not None and rollup_def.rollup.growth:
        # a changed period moves the growth of the one after it
        periods = {g: sorted(set(ps) | {rollup_def.period_end(p, g) for p in ps}) for g, ps in periods.items()}
    progress(rollup_def.name, 0.1, mode.value)
    built_at = now()
    # coarser sums may be updated by difference only while every stored period equals the sum of its
    # stored days: a range build (or a repair) rebuilds some periods from newer data than their days
    by_difference = mode is BuildMode.incremental and bool(stored.sums_from_days)
    work = plan_key_work(engine, rollup_def, mode, periods, current, exists)
    # a build of many periods (or of every key row) runs within the warehouse's build memory budget
    # (DuckDB spills past it); a few changed days don't need it, and lowering the limit evicts cached blocks
    if mode is not BuildMode.incremental or len(days) > BUDGET_FREE_DAYS or work.rewrite_all:
        budget.enter_context(warehouse.memory_budget("build_memory_limit"))
    # a full build sums the distinct counts whose every value is on one day from the days' counts
    summed = (compute.day_summed(engine, rollup_def, *compute.full_span(rollup_def, current), scans.day_summed)
              if periods is None and current.first is not None else [])
    if mode is BuildMode.full and work.rewrite_all and compute.counts_from_keys(engine, rollup_def, work.measures, summed):
        work.write_first(warehouse, engine)
    tables, replaced = _rows_to_store(engine, rollup_def, periods, current, built_at, progress,
                                      days if by_difference else None, work, summed)
    if rollup_def.rollup.growth:
        tables = {g: add_growth(t, rollup_def, g, warehouse if exists and mode is not BuildMode.full else None,
                                rebuilt=set(periods[g]) if periods is not None else frozenset())
                  for g, t in tables.items()}
    progress(rollup_def.name, 0.9, "writing")
    # a range rebuild fixes those periods only: what changed elsewhere is still due next time
    state = current.but(sums_from_days=True) if mode is not BuildMode.range else (
        stored.but(sums_from_days=False) if stored is not None else None)
    if work.rewrite_all and not work.written:
        work.prepare(warehouse, engine)
    counted = sum(pc.count_distinct(t["period_start"]).as_py() for t in tables.values())
    written = write_rows(warehouse, rollup_def, tables, periods, state, exists, work.store, replaced)   # empties `tables`
    result = BuildResult(rollup_def.name, rollup_def.table, mode, periods=counted, rows=written,
                         seconds=time.perf_counter() - clock)
    if mode is BuildMode.incremental:
        result.days_changed = len(days)
    progress(rollup_def.name, 1.0, "done")
    return result


def _forced_periods(rollup_def: RollupDef, start, end, current: RollupState) -> dict[Grain, list[dt.date]]:
    """Every period touching [start, end) (local dates), for `--from/--to` rebuilds."""
    first = start or dt.date.fromisoformat(current.first)
    last = end or dt.date.fromisoformat(current.last) + dt.timedelta(days=1)
    if (last - first).days > MAX_PERIODS:   # each day is queried: centuries of them take minutes
        raise QueryError(f"--from {first} --to {last} rebuilds {(last - first).days:,} days, more than "
                         f"{MAX_PERIODS:,}: rebuild a narrower range, or everything with --full")
    days = [first + dt.timedelta(days=i) for i in range((last - first).days)]
    return {g: sorted({rollup_def.period(d, g) for d in days}) for g in rollup_def.grains}


def _rows_to_store(engine, rollup_def: RollupDef, periods, current: RollupState, built_at, progress,
                   days: set[dt.date] | None = None, work: KeyWork | None = None, summed: list[str] | tuple = ()):
    """The rows to store: everything (periods None), or the given periods; `days` changed (incremental).

    Returns (rows per grain, stored rows they replace per grain, or None for whole periods). An
    incremental build by difference drops from `periods` those whose rows didn't change (see `delta`)."""
    catalog = engine.catalog
    stored_shape = lambda rows: {g: finish(t, rollup_def, g, catalog, built_at) for g, t in rows.items()}  # noqa: E731
    if periods is None:
        return stored_shape(compute.every_period(engine, rollup_def, current, work.tables() if work else {}, summed)), None
    live = {}   # grain -> rows already queried
    if days is not None and periods.get(Grain.day):
        # every base measure, distinct counts too (a few days' worth): the very query a full build
        # runs for days, so a process that built before (a scheduler, the server) has its plan
        live[Grain.day] = live_periods(engine, rollup_def, Grain.day, periods[Grain.day])
        found = delta.rows_by_difference(engine, rollup_def, periods, days, live[Grain.day], work, progress)
        if found is not None:
            rows, replaced = found
            return stored_shape(rows), replaced
    tables = {}
    for index, (grain, starts) in enumerate(periods.items()):
        progress(rollup_def.name, 0.1 + 0.8 * index / max(len(periods), 1), f"{grain.value}: {len(starts)} periods")
        rows = live[grain] if grain in live else live_periods(engine, rollup_def, grain, starts)
        tables[grain] = finish(rows, rollup_def, grain, catalog, built_at)
    return tables, None


def _load_state(warehouse, rollup_def: RollupDef) -> dict | None:
    """The stored state as the JSON object it is kept as (for inspection; builds use `state.load_state`)."""
    text = stored_text(warehouse, rollup_def.name)
    return json.loads(text) if text else None
