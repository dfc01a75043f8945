"""`tally rollup build`: full or incremental refresh of rollup tables, replacing whole periods atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine import changes
from tally.engine.checks import check_query
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import Grain
from tally.rollups import compute, inputs, keys, loads
from tally.rollups.definition import RollupDef, definitions
from tally.rollups.growth import add_growth
from tally.warehouse.internal import ensure_internal_tables, now, read_state, write_state
from tally.sources.validate import q
from tally.warehouse.txn import ident

UTC = dt.timezone.utc
MAX_BLOCKS = 4
MERGE_GAP = dt.timedelta(days=31)
BUDGET_FREE_DAYS = 31   # an incremental build of more changed days runs within the build memory budget
NARROW = 18          # DECIMAL(18, s) is a 64-bit integer to the database; DECIMAL(38, s) a 128-bit one
HEADROOM = 10 ** 3   # a new table's sums stay narrow when they fit a thousand times over


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
    chosen = definitions(project, names, category)
    for rdef in chosen:   # type clashes in what each rollup reads: one line at tally.yml's, before any work
        check_query(project.engine, QuerySpec(metrics=tuple(rdef.rollup.metrics), by=tuple(rdef.by),
                                              where=rdef.rollup.where))
    seen: dict = {"rollups": chosen}   # model facts read once per run, shared by its rollups
    return [build_one(project, rdef, full=full, start=start, end=end, progress=progress, seen=seen)
            for rdef in chosen]


def build_one(project, rdef: RollupDef, *, full=False, start=None, end=None, progress=None,
              seen: dict | None = None) -> BuildResult:
    clock = time.perf_counter()
    engine, warehouse = project.engine, project.warehouse
    progress = progress or (lambda *args: None)
    seen = {} if seen is None else seen
    stored = _load_state(warehouse, rdef)
    exists = warehouse.has_table(rdef.table)
    fresh = _snapshot(engine, rdef, seen, stored)
    days = None
    reloaded = loads.moved(stored, fresh["loads"])   # models without a change time loaded since
    if start or end:
        periods = _forced_periods(rdef, start, end, fresh)
        mode = "range"
    elif (full or stored is None or not exists or stored.get("definition") != fresh["definition"]
          or (reloaded and not _comparable(engine, rdef, stored, reloaded))):
        periods, mode = None, "full"
        _all_days(engine, rdef, fresh, seen)
        _all_inputs(engine, rdef, fresh, seen)
    else:
        flagged = _changed_days(engine, rdef, stored, fresh, seen)
        days = _input_changes(engine, rdef, stored, fresh, flagged, seen, reloaded)
        if not days:
            if flagged or reloaded:   # rows changed, the rollup's numbers can't have: the state moves on
                _write_state(warehouse, rdef, dict(fresh, sums_from_days=stored.get("sums_from_days", False)))
            return BuildResult(rdef.name, rdef.table, "unchanged", seconds=time.perf_counter() - clock)
        periods = {g: sorted({rdef.period(d, g) for d in days}) for g in rdef.grains}
        mode = "incremental"
    with contextlib.ExitStack() as budget:
        return _build_periods(project, rdef, stored, exists, fresh, mode, periods, days, clock, progress, budget,
                              seen)


def _build_periods(project, rdef: RollupDef, stored, exists: bool, fresh: dict, mode: str, periods, days,
                   clock: float, progress, budget: contextlib.ExitStack, seen: dict) -> BuildResult:
    engine, warehouse = project.engine, project.warehouse
    if periods is not None and rdef.rollup.growth:
        # a changed period moves the growth of the one after it
        periods = {g: sorted(set(ps) | {rdef.period_end(p, g) for p in ps}) for g, ps in periods.items()}
    progress(rdef.name, 0.1, mode)
    built_at = now()
    # coarser sums may be updated by difference only while every stored period equals the sum of its
    # stored days: a range build (or a repair) rebuilds some periods from newer data than their days
    by_difference = mode == "incremental" and bool(stored.get("sums_from_days"))
    work = _key_work(engine, rdef, mode, periods, fresh, exists)
    # a build of many periods (or of every key row) runs within the warehouse's build memory budget
    # (DuckDB spills past it); a few changed days don't need it, and lowering the limit evicts cached blocks
    if mode != "incremental" or len(days) > BUDGET_FREE_DAYS or work.rewrite_all:
        budget.enter_context(warehouse.memory_budget("build_memory_limit"))
    # a full build sums the distinct counts whose every value is on one day from the days' counts
    summed = (compute.day_summed(engine, rdef, *_full_span(rdef, fresh), seen.setdefault("day_summed", {}))
              if periods is None and fresh["first"] is not None else [])
    if mode == "full" and work.rewrite_all and compute.counts_from_keys(engine, rdef, work.measures, summed):
        work.write_first(warehouse, engine)
    tables, doomed = _compute(engine, rdef, periods, fresh, built_at, progress, days if by_difference else None,
                              work, summed)
    if rdef.rollup.growth:
        tables = {g: add_growth(t, rdef, g, warehouse if exists and mode != "full" else None,
                                rebuilt=set(periods[g]) if periods is not None else frozenset())
                  for g, t in tables.items()}
    progress(rdef.name, 0.9, "writing")
    # a range rebuild fixes those periods only: what changed elsewhere is still due next time
    state = dict(fresh, sums_from_days=True) if mode != "range" else (
        dict(stored, sums_from_days=False) if stored is not None else None)
    if work.rewrite_all and not work.written:
        work.prepare(warehouse, engine)
    counted = sum(pc.count_distinct(t["period_start"]).as_py() for t in tables.values())
    written = _write(warehouse, rdef, tables, periods, state, exists, work.store, doomed)   # empties `tables`
    result = BuildResult(rdef.name, rdef.table, mode, periods=counted, rows=written,
                         seconds=time.perf_counter() - clock)
    if mode == "incremental":
        result.days_changed = len(days)
    progress(rdef.name, 1.0, "done")
    return result


def _full_span(rdef: RollupDef, fresh: dict) -> tuple[dt.date, dt.date]:
    """What a full build computes: whole years, from the first day with data to the last."""
    first = rdef.period(dt.date.fromisoformat(fresh["first"]), Grain.year)
    last = dt.date.fromisoformat(fresh["last"]) + dt.timedelta(days=1)
    return first, rdef.period_end(rdef.period(last, Grain.year), Grain.year)


def _load_state(warehouse, rdef: RollupDef) -> dict | None:
    text = read_state(warehouse, state_key(rdef.name))
    return json.loads(text) if text else None


def _snapshot(engine, rdef: RollupDef, seen: dict, stored: dict | None = None) -> dict:
    """What the models look like now: change watermarks and the data's span (rows per local day
    come with the mode: `_all_days`, or `_changed_days` reading just the changed days). What the
    last build saw (`stored`) lets both be read from the rows beyond it."""
    stored = stored or {}
    known, marks = stored.get("bounds", {}), stored.get("watermarks", {})
    found = {m: _once(seen, ("bounds", m), lambda m=m: changes.bounds(engine, m, known.get(m)))
             for m in sorted(rdef.models)}
    spans = [s for s in found.values() if s]
    zone = ZoneInfo(rdef.zone)
    first = min(s[0] for s in spans).astimezone(zone).date() if spans else None
    last = max(s[1] for s in spans).astimezone(zone).date() if spans else None
    related = loads.related_models(engine, rdef)
    return {
        "definition": definition_stamp(engine, rdef, related),
        "loads": loads.stamps(engine, rdef),
        "watermarks": {m: _once(seen, ("updated", m), lambda m=m: changes.max_updated(engine, m, marks.get(m)))
                       for m in sorted(related)},
        "bounds": {m: [s[0].isoformat(), s[1].isoformat()] for m, s in found.items() if s},
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
    }


def definition_stamp(engine, rdef: RollupDef, related: set[str] | None = None) -> str:
    """What the stored numbers were built from: the definition and when its lookups were loaded."""
    related = loads.related_models(engine, rdef) if related is None else related
    return rdef.fingerprint + "/" + lookup_stamp(engine, rdef, related)


def lookup_stamp(engine, rdef: RollupDef, related: set[str]) -> str:
    """When the joined lookup tables were last loaded (seeds, ingests): a reload means a full build."""
    lookups = sorted(engine.catalog.model(m).table for m in related
                     if m not in rdef.models and not engine.catalog.model(m).updated)
    warehouse = engine.warehouse
    if not lookups or not warehouse.has_table("_tally_state"):
        return ""
    return ",".join(f"{t}={read_state(warehouse, f'table:{t}') or ''}" for t in lookups)


def _all_days(engine, rdef: RollupDef, fresh: dict, seen: dict) -> None:
    """Every local day's row counts into `fresh` (a full build)."""
    fresh["days"] = {m: _once(seen, ("days", m, rdef.zone),
                              lambda m=m: changes.day_counts(engine, m, rdef.zone, seen[("bounds", m)]))
                     for m in sorted(rdef.models)}


def _once(seen: dict, key, compute):
    if key not in seen:
        seen[key] = compute()
    return seen[key]


def _changed_days(engine, rdef: RollupDef, stored: dict, fresh: dict, seen: dict) -> set[dt.date]:
    """Days whose rows changed (by change time, directly or through joins) or whose row count moved.
    Puts the row counts as of now in `fresh`: those of the changed days when the counts of the rest
    show no deletion (see `changes.days_now`), else every day's.

    Rollups of one run built from the same state share the scan of each model (`seen`).
    """
    days: set[str] = set()
    watermarks = stored.get("watermarks", {})
    fresh["days"] = {}
    for model in sorted(rdef.models):
        mark = json.dumps(watermarks, sort_keys=True)
        found = _once(seen, ("changed", model, rdef.zone, mark),
                      lambda: changes.changed_days(engine, model, rdef.zone, watermarks, seen.get(("bounds", model), False)))
        before = stored.get("days", {}).get(model, {})
        after = None
        if watermarks.get(model):   # every row changed since is in a `found` day
            after = _once(seen, ("days", model, rdef.zone, mark, json.dumps(before, sort_keys=True)),
                          lambda: changes.days_now(engine, model, rdef.zone, seen.get(("bounds", model)),
                                                   before, found))
        if after is None:
            after = _once(seen, ("days", model, rdef.zone),
                          lambda: changes.day_counts(engine, model, rdef.zone, seen[("bounds", model)]))
        fresh["days"][model] = after
        days |= found | {d for d in set(before) | set(after) if before.get(d) != after.get(d)}
    return {dt.date.fromisoformat(d) for d in days}


def _comparable(engine, rdef: RollupDef, stored: dict, reloaded: set[str]) -> bool:
    """Whether the days a load changed in place can be found by fingerprint (else: a full build)."""
    return (inputs.supported(engine.warehouse) and stored.get("inputs") is not None
            and reloaded <= rdef.models)   # a joined model's fingerprints are its rows' keys, not its values


def _input_changes(engine, rdef: RollupDef, stored: dict, fresh: dict, flagged: set[dt.date],
                   seen: dict, reloaded: set[str] = frozenset()) -> set[dt.date]:
    """The flagged days whose fingerprint of what the rollup reads moved (see `inputs`); all of
    them where fingerprints aren't kept. Every day of a `reloaded` model (loaded since, without a
    change time: see `loads`) is compared. Puts the fingerprints as of now in `fresh`."""
    if not inputs.supported(engine.warehouse):
        return flagged
    before = stored.get("inputs")
    if before is None:   # none kept yet (built by an older version): from now on
        _all_inputs(engine, rdef, fresh, seen)
        return flagged
    if not flagged and not reloaded:
        fresh["inputs"] = before
        return flagged
    days = sorted(flagged)
    isos = {d.isoformat() for d in days}
    now, changed = {}, set()
    for m in sorted(rdef.models):
        old = before.get(m, {})
        if m in reloaded:   # a row may have changed in place on any day
            now[m] = _fingerprints(engine, rdef, m, None, seen)
            changed |= {d for d in set(old) | set(now[m]) if old.get(d) != now[m].get(d)}
        else:
            found = _fingerprints(engine, rdef, m, days, seen)
            now[m] = {**{d: v for d, v in old.items() if d not in isos}, **found}
            changed |= {d for d in isos if old.get(d) != found.get(d)}
    fresh["inputs"] = now
    return {dt.date.fromisoformat(d) for d in changed}


def _all_inputs(engine, rdef: RollupDef, fresh: dict, seen: dict) -> None:
    """Every day's fingerprints into `fresh` (a full build; or the first build that keeps them)."""
    if inputs.supported(engine.warehouse):
        fresh["inputs"] = {m: _fingerprints(engine, rdef, m, None, seen) for m in sorted(rdef.models)}


def _fingerprints(engine, rdef: RollupDef, model: str, days: list[dt.date] | None, seen: dict) -> dict[str, str]:
    """The model's fingerprints for `rdef` (see `inputs`), read in one pass with those of the run's
    other rollups in the same zone that read the model (each would read the same days)."""
    key = ("inputs", model, rdef.zone, None if days is None else tuple(days))
    if rdef.name not in seen.get(key, {}):
        peers = [r for r in seen.get("rollups", []) if r.zone == rdef.zone and model in r.models
                 and r.name != rdef.name and r.name not in seen.get(key, {})]
        found = inputs.fingerprints(engine, [rdef, *peers], model, seen.get(("bounds", model)), days)
        seen[key] = {**seen.get(key, {}), **found}
    return seen[key][rdef.name]


class KeyWork:
    """What a build does with the rollup's distinct key rows (see `keys`): rewrite them all, swap the
    rebuilt days' rows, or leave them (none kept; or incomplete, which only a full rewrite mends)."""

    def __init__(self, engine, rdef: RollupDef, measures: list[str], fingerprint: str, *, rewrite_all=False,
                 days: list[dt.date] | None = None, span: tuple[dt.date, dt.date] | None = None):
        self.engine, self.rdef, self.measures, self.fingerprint = engine, rdef, measures, fingerprint
        self.rewrite_all, self.days, self.span = rewrite_all, days or [], span
        self.swaps: dict[str, list[dt.date]] = {}   # measure -> the days whose rows to swap (default: all)
        self._new: dict[str, pa.Table] = {}
        self.written = False   # every key row already in (committed, not yet marked complete)

    @property
    def swaps_days(self) -> bool:
        return bool(self.measures) and not self.rewrite_all and bool(self.days)

    def new_rows(self, measure: str) -> pa.Table:
        """The rebuilt days' key rows, live (queried once per build)."""
        if measure not in self._new:
            parts = [keys.live(self.engine, self.rdef, measure, a, b)
                     for a, b in _blocks(self.rdef, Grain.day, self.days)]
            rows = pa.concat_tables(parts)
            self._new[measure] = rows.filter(compute.in_periods(rows["period"], self.days))
        return self._new[measure]

    def prepare(self, warehouse, engine) -> None:
        """Before a full rewrite: mark the keys incomplete (a failure leaves them so), empty tables."""
        with warehouse.transaction() as tx:
            keys.mark(tx, self.rdef, self.measures, None)
        for measure in self.measures:
            keys.recreate(warehouse, engine, self.rdef, measure)

    def write_first(self, warehouse, engine) -> None:
        """A full rewrite on DuckDB: the key rows written and committed before the rollup's rows are
        worked out (its coarser distinct counts are then counted from them, see `compute.full_rows`),
        marked incomplete until the build's transaction commits."""
        self.prepare(warehouse, engine)
        with warehouse.transaction() as tx:
            for measure in self.measures if self.span is not None else []:
                keys.insert_all(tx, self.engine, self.rdef, measure, *self.span)
        self.written = True

    def tables(self) -> dict[str, str]:
        """The measures whose every key row is in, and their tables."""
        return {m: keys.table_name(self.rdef, m) for m in self.measures} if self.written and self.span else {}

    def store(self, tx) -> None:
        """Inside the build's transaction: write the key rows, then record them complete."""
        if self.rewrite_all:
            for measure in self.measures if self.span is not None and not self.written else []:
                keys.insert_all(tx, self.engine, self.rdef, measure, *self.span)
            keys.mark(tx, self.rdef, self.measures, self.fingerprint)
        elif self.swaps_days:
            for measure in self.measures:
                days = self.swaps.get(measure, self.days)
                if days:
                    rows = self.new_rows(measure)
                    keys.replace_days(tx, self.rdef, measure, days,
                                      rows if days is self.days else rows.filter(compute.in_periods(rows["period"], days)))


def _key_work(engine, rdef: RollupDef, mode: str, periods, fresh: dict, exists: bool) -> KeyWork:
    """Full builds rewrite every key row; incremental and range builds swap their rebuilt days' rows
    when the keys are complete. An incremental build over incomplete keys rewrites them all (the
    days it doesn't rebuild haven't changed since built); a range build leaves them incomplete (days
    outside its range may hold changes not built yet)."""
    measures = keys.measures(engine, rdef)
    span = None
    if fresh["first"] is not None:
        span = (dt.date.fromisoformat(fresh["first"]), dt.date.fromisoformat(fresh["last"]) + dt.timedelta(days=1))
    if not measures:
        return KeyWork(engine, rdef, [], fresh["definition"])
    ready = mode != "full" and exists and keys.complete(engine.warehouse, rdef, fresh["definition"], measures)
    if mode == "full" or (mode == "incremental" and not ready):
        return KeyWork(engine, rdef, measures, fresh["definition"], rewrite_all=True, span=span)
    if not ready:
        return KeyWork(engine, rdef, [], fresh["definition"])
    return KeyWork(engine, rdef, measures, fresh["definition"], days=list(periods.get(Grain.day, [])))


def _forced_periods(rdef: RollupDef, start, end, fresh) -> dict[Grain, list[dt.date]]:
    """Every period touching [start, end) (local dates), for `--from/--to` rebuilds."""
    first = dt.date.fromisoformat(str(start)) if start else dt.date.fromisoformat(fresh["first"])
    last = dt.date.fromisoformat(str(end)) if end else dt.date.fromisoformat(fresh["last"]) + dt.timedelta(days=1)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days)]
    return {g: sorted({rdef.period(d, g) for d in days}) for g in rdef.grains}


def _compute(engine, rdef: RollupDef, periods, fresh, built_at, progress,
             days: set[dt.date] | None = None, work: KeyWork | None = None, summed: list[str] | tuple = ()):
    """The rows to store: everything (periods None), or the given periods; `days` changed (incremental).

    Returns (rows per grain, rows to delete per grain or None for whole periods). An incremental
    build by difference drops from `periods` those whose rows didn't change; on DuckDB it keeps
    just the changed rows, and says which stored rows they replace."""
    catalog = engine.catalog
    if periods is None:
        if fresh["first"] is None:
            return {g: compute.finish(_empty(engine, rdef), rdef, g, catalog, built_at) for g in rdef.grains}, None
        raw = compute.full_rows(engine, rdef, *_full_span(rdef, fresh), work.tables() if work else {}, summed)
        return {g: compute.finish(t, rdef, g, catalog, built_at) for g, t in raw.items()}, None
    live = {}   # grain -> rows already queried
    if days is not None and periods.get(Grain.day):
        # every base measure, distinct counts too (a few days' worth): the very query a full build
        # runs for days, so a process that built before (a scheduler, the server) has its plan
        day_rows = _live_periods(engine, rdef, Grain.day, periods[Grain.day])
        live[Grain.day] = day_rows
        if compute.can_delta(rdef, day_rows):
            progress(rdef.name, 0.3, f"day: {len(periods[Grain.day])} periods")
            changed = sorted(days)
            new_days = day_rows.filter(compute.in_periods(day_rows["period"], changed))
            counted = _key_changes(rdef, work, periods) if work and work.swaps_days else {}
            if (engine.warehouse.dialect.name == "duckdb" and not rdef.rollup.growth
                    and set(rdef.other) <= set(counted)):
                rows, doomed = compute.delta_in_place(engine.warehouse, rdef, changed, new_days, periods, counted)
                return {g: compute.finish(t, rdef, g, catalog, built_at) for g, t in rows.items()}, doomed
            coarse, stored = compute.delta_rows(engine, engine.warehouse, rdef, changed, new_days, periods, counted)
            rows = {g: day_rows if g is Grain.day else coarse[g] for g in periods}
            doomed = None
            if not rdef.rollup.growth and set(rdef.base_names) <= set(stored.column_names):
                doomed = _skip_unchanged(rdef, periods, rows, stored, engine.warehouse)
            return {g: compute.finish(t, rdef, g, catalog, built_at) for g, t in rows.items()}, doomed
    tables = {}
    for index, (grain, starts) in enumerate(periods.items()):
        progress(rdef.name, 0.1 + 0.8 * index / max(len(periods), 1), f"{grain.value}: {len(starts)} periods")
        rows = live[grain] if grain in live else _live_periods(engine, rdef, grain, starts)
        tables[grain] = compute.finish(rows, rdef, grain, catalog, built_at)
    return tables, None


def _skip_unchanged(rdef: RollupDef, periods: dict, rows: dict[Grain, pa.Table], stored: pa.Table,
                    warehouse) -> dict[Grain, pa.Table] | None:
    """Leave out what comes out as stored (a changed day whose numbers didn't move): it is neither
    deleted nor written again, and keeps its `built_at`.

    By period everywhere (`periods` loses the unchanged ones); on DuckDB also by row:
    `rows` keeps only new and changed rows, and the stored rows they replace or that are gone are
    returned (period, dimensions) per grain, to be deleted one by one.
    """
    doomed, by_row = {}, warehouse.dialect.name == "duckdb"
    for grain, (same, changed, gone) in compute.compare_rows(rdef, stored, rows, warehouse).items():
        if same:
            periods[grain] = [p for p in periods[grain] if p not in same]
        if by_row:
            rows[grain], doomed[grain] = changed, gone
        elif same:
            rows[grain] = rows[grain].filter(pc.invert(compute.in_periods(rows[grain]["period"], sorted(same))))
    return doomed if by_row else None


def _key_changes(rdef: RollupDef, work: KeyWork, periods) -> dict[str, dict[Grain, pa.Table]]:
    """Per distinct measure and coarser grain: keys gained minus lost per (period, dimensions).

    Records on `work` which days' key rows changed: only those are swapped.
    """
    coarse = {g: (starts, compute.coarser_sql(rdef, g)) for g, starts in periods.items()
              if g is not Grain.day and starts}
    found = {}
    for measure in work.measures:
        found[measure], work.swaps[measure] = keys.changes(work.engine, rdef, measure, work.days,
                                                           work.new_rows(measure), coarse)
        found[measure] = {g: found[measure].get(g, _no_change(rdef, work, measure)) for g in coarse}
    return found


def _no_change(rdef: RollupDef, work: KeyWork, measure: str) -> pa.Table:
    rows = work.new_rows(measure)
    return pa.table({"period": pa.array([], pa.date32()), **{k: pa.array([], rows.schema.field(k).type)
                                                             for k in rdef.by},
                     "change": pa.array([], pa.int64())})


def _live_periods(engine, rdef: RollupDef, grain: Grain, starts: list[dt.date], metrics=None) -> pa.Table:
    """Base measures (all, or `metrics`) for these periods, live: one query per run of adjacent periods."""
    blocks = _blocks(rdef, grain, starts)
    if len(blocks) > MAX_BLOCKS:  # scattered changes: one query over their whole span beats many small ones
        blocks = [(blocks[0][0], blocks[-1][1])]
    parts = [compute.live_rows(engine, rdef, grain, a, b, metrics or rdef.base_names) for a, b in blocks]
    rows = pa.concat_tables(parts) if parts else _empty(engine, rdef)
    return rows.filter(compute.in_periods(rows["period"], starts))


def _empty(engine, rdef: RollupDef) -> pa.Table:
    today = dt.date.today()
    return compute.live_rows(engine, rdef, Grain.day, today, today + dt.timedelta(days=1), rdef.base_names).slice(0, 0)


def _blocks(rdef: RollupDef, grain: Grain, starts: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Runs of periods as [first start, last end) ranges, one query each; runs a few weeks apart
    are one (reading the days between costs less than another pass over the joins)."""
    blocks: list[list[dt.date]] = []
    for start in starts:
        if blocks and start - rdef.period_end(blocks[-1][1], grain) <= MERGE_GAP:
            blocks[-1][1] = start
        else:
            blocks.append([start, start])
    return [(a, rdef.period_end(b, grain)) for a, b in blocks]


def _write(warehouse, rdef: RollupDef, tables: dict[Grain, pa.Table], periods, fresh: dict | None,
           exists: bool, also=None, doomed: dict[Grain, pa.Table] | None = None) -> int:
    """Replace the periods built (or everything, for a full build) and the state, in one transaction.

    With no state to keep (`fresh` None: a range build of a new rollup) the next build is a full one.
    Each grain's rows are let go once written (`tables` ends empty): a full build holds millions.
    """
    schema = pa.unify_schemas([t.schema for t in tables.values()], promote_options="permissive")
    dialect = warehouse.dialect
    if exists and set(warehouse.columns_of(rdef.table)) != set(schema.names):
        if periods is None:   # a full build of a changed definition: the table takes the new shape
            warehouse.drop_table(rdef.table)
            exists = False
        else:
            warehouse.add_missing_columns(rdef.table, schema)
    schema = _storage_schema(warehouse, rdef.table, schema, tables, exists)
    if not exists:
        warehouse.ensure_table(rdef.table, schema)
    table = ident(rdef.table).sql(dialect.name)
    with warehouse.transaction() as tx:
        if periods is None:
            tx.execute(f"DELETE FROM {table}")
        elif doomed is not None:   # DuckDB: just the replaced rows, every grain in one statement
            gone = [t.append_column("grain", pa.repeat(pa.scalar(g.value), t.num_rows))
                    for g, t in doomed.items() if t.num_rows]
            if gone:
                tx.con.register("__tally_doomed", pa.concat_tables(gone, promote_options="permissive"))
                match = "".join(f" AND t.{q(k)} IS NOT DISTINCT FROM d.{q(k)}" for k in rdef.by)
                tx.execute(f"DELETE FROM {table} AS t USING __tally_doomed AS d WHERE t.grain = d.grain "
                           f"AND t.period_start = d.period{match}")
                tx.con.unregister("__tally_doomed")
        else:
            for grain, starts in periods.items():
                tx.delete_in(rdef.table, "period_start", starts, grain=grain.value)
        if periods is not None and len(tables) > 1 and dialect.name == "duckdb":   # some periods: one insert (a full build goes grain by grain)
            tables = {None: pa.concat_tables([t if t.schema.equals(schema) else t.cast(schema)
                                              for t in tables.values()])}
        written = 0
        for grain in list(tables):
            rows = tables.pop(grain)
            # stored in (grain, period) order: a later read of some periods skips the other blocks;
            # the database casts to the stored types as it inserts (no Arrow cast before it)
            tx.insert_arrow(rdef.table, rows, order_by="period_start")
            written += rows.num_rows
            del rows
        if also is not None:
            also(tx)
        if fresh is not None:
            _put_state(tx, rdef, fresh)
    warehouse.forget(rdef.table)
    return written


STATE = ("definition", "watermarks", "bounds", "days", "first", "last", "sums_from_days", "inputs", "loads")


def _put_state(tx, rdef: RollupDef, fresh: dict) -> None:
    state = {k: fresh[k] for k in STATE if k in fresh}
    state["built_at"] = now().isoformat()
    write_state(tx, state_key(rdef.name), json.dumps(state, sort_keys=True))


def _write_state(warehouse, rdef: RollupDef, fresh: dict) -> None:
    """The state alone: changes were found, none that moves the rollup's rows."""
    with warehouse.transaction() as tx:
        _put_state(tx, rdef, fresh)


def _storage_schema(warehouse, name: str, schema: pa.Schema, tables: dict[Grain, pa.Table],
                    exists: bool) -> pa.Schema:
    """Sums of money stored as DECIMAL(18, s) while they fit: DuckDB reads those ~8x faster than
    the DECIMAL(38, s) sums arrive as (what an incremental build and a routed query read back).

    A new table is narrow where its values fit with room to spare; a later value too wide for a
    narrow column widens the column first (ALTER TABLE), so nothing is ever cut. The database
    casts the values as they are inserted. Returns the schema to create a new table with.
    """
    stored = {f.name: f.type for f in warehouse.table(name).schema().to_pyarrow()} if exists else {}
    fields = []
    for column in schema:
        kind = column.type
        if not pa.types.is_decimal(kind) or kind.precision <= NARROW or kind.scale > 6:
            fields.append(column)
            continue
        limit = 10 ** (NARROW - kind.scale)
        extremes = [pc.min_max(t[column.name]).as_py() for t in tables.values() if column.name in t.column_names]
        top = max([abs(v) for e in extremes for v in e.values() if v is not None] or [0])
        if exists:
            kept = stored.get(column.name)
            if pa.types.is_decimal(kept) and kept.precision <= NARROW and top >= limit:
                _widen(warehouse, name, column.name, kind)
            fields.append(column)
        else:
            fields.append(column.with_type(pa.decimal128(NARROW, kind.scale)) if top * HEADROOM < limit else column)
    return pa.schema(fields)


def _widen(warehouse, name: str, column: str, kind: pa.Decimal128Type) -> None:
    """ALTER a narrow decimal column of a rollup table to `kind` (DDL: before the build's transaction)."""
    dialect = warehouse.dialect.name
    table, col = ident(name).sql(dialect), ident(column).sql(dialect)
    if dialect == "mysql":
        sql = f"ALTER TABLE {table} MODIFY COLUMN {col} DECIMAL({kind.precision}, {kind.scale})"
    else:
        number = "NUMERIC" if dialect == "postgres" else "DECIMAL"
        sql = f"ALTER TABLE {table} ALTER COLUMN {col} TYPE {number}({kind.precision}, {kind.scale})"
    warehouse.execute_sql(sql)
    warehouse.forget(name)
