"""Key work: what a build does with a rollup's stored distinct key rows (see `keys`), and the count changes they give."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from tally.engine.timegrid import Grain
from tally.rollups import keys
from tally.rollups.definition import RollupDef
from tally.rollups.rows import coarser_sql, in_periods, period_blocks
from tally.rollups.state import BuildMode, RollupState


class KeyWork:
    """What a build does with the rollup's distinct key rows (see `keys`): rewrite them all, swap the
    rebuilt days' rows, or leave them (none kept; or incomplete, which only a full rewrite mends)."""

    def __init__(self, engine, rollup_def: RollupDef, measures: list[str], fingerprint: str, *, rewrite_all=False,
                 days: list[dt.date] | None = None, span: tuple[dt.date, dt.date] | None = None):
        self.engine, self.rollup_def, self.measures, self.fingerprint = engine, rollup_def, measures, fingerprint
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
            parts = [keys.live(self.engine, self.rollup_def, measure, a, b)
                     for a, b in period_blocks(self.rollup_def, Grain.day, self.days)]
            rows = pa.concat_tables(parts)
            self._new[measure] = rows.filter(in_periods(rows["period"], self.days))
        return self._new[measure]

    def prepare(self, warehouse, engine) -> None:
        """Before a full rewrite: mark the keys incomplete (a failure leaves them so), empty tables."""
        with warehouse.transaction() as tx:
            keys.mark(tx, self.rollup_def, self.measures, None)
        for measure in self.measures:
            keys.recreate(warehouse, engine, self.rollup_def, measure)

    def write_first(self, warehouse, engine) -> None:
        """A full rewrite on DuckDB: the key rows written and committed before the rollup's rows are
        worked out (its coarser distinct counts are then counted from them, see `compute.full_rows`),
        marked incomplete until the build's transaction commits."""
        self.prepare(warehouse, engine)
        with warehouse.transaction() as tx:
            for measure in self.measures if self.span is not None else []:
                keys.insert_all(tx, self.engine, self.rollup_def, measure, *self.span)
        self.written = True

    def tables(self) -> dict[str, str]:
        """The measures whose every key row is in, and their tables."""
        return {m: keys.table_name(self.rollup_def, m) for m in self.measures} if self.written and self.span else {}

    def store(self, tx) -> None:
        """Inside the build's transaction: write the key rows, then record them complete."""
        if self.rewrite_all:
            for measure in self.measures if self.span is not None and not self.written else []:
                keys.insert_all(tx, self.engine, self.rollup_def, measure, *self.span)
            keys.mark(tx, self.rollup_def, self.measures, self.fingerprint)
        elif self.swaps_days:
            for measure in self.measures:
                days = self.swaps.get(measure, self.days)
                if days:
                    rows = self.new_rows(measure)
                    keys.replace_days(tx, self.rollup_def, measure, days,
                                      rows if days is self.days else rows.filter(in_periods(rows["period"], days)))


def plan_key_work(engine, rollup_def: RollupDef, mode: BuildMode, periods, current: RollupState, exists: bool) -> KeyWork:
    """Full builds rewrite every key row; incremental and range builds swap their rebuilt days' rows
    when the keys are complete. An incremental build over incomplete keys rewrites them all (the
    days it doesn't rebuild haven't changed since built); a range build leaves them incomplete (days
    outside its range may hold changes not built yet)."""
    measures = keys.measures(engine, rollup_def)
    span = None
    if current.first is not None:
        span = (dt.date.fromisoformat(current.first), dt.date.fromisoformat(current.last) + dt.timedelta(days=1))
    if not measures:
        return KeyWork(engine, rollup_def, [], current.definition)
    ready = mode is not BuildMode.full and exists and keys.complete(engine.warehouse, rollup_def, current.definition,
                                                                   measures)
    if mode is BuildMode.full or (mode is BuildMode.incremental and not ready):
        return KeyWork(engine, rollup_def, measures, current.definition, rewrite_all=True, span=span)
    if not ready:
        return KeyWork(engine, rollup_def, [], current.definition)
    return KeyWork(engine, rollup_def, measures, current.definition, days=list(periods.get(Grain.day, [])))


def key_changes(rollup_def: RollupDef, work: KeyWork, periods) -> dict[str, dict[Grain, pa.Table]]:
    """Per distinct measure and coarser grain: keys gained minus lost per (period, dimensions).

    Records on `work` which days' key rows changed: only those are swapped.
    """
    coarse = {g: (starts, coarser_sql(rollup_def, g)) for g, starts in periods.items()
              if g is not Grain.day and starts}
    found = {}
    for measure in work.measures:
        found[measure], work.swaps[measure] = keys.changes(work.engine, rollup_def, measure, work.days,
                                                           work.new_rows(measure), coarse)
        found[measure] = {g: found[measure].get(g, _no_change(rollup_def, work, measure)) for g in coarse}
    return found


def _no_change(rollup_def: RollupDef, work: KeyWork, measure: str) -> pa.Table:
    rows = work.new_rows(measure)
    return pa.table({"period": pa.array([], pa.date32()), **{k: pa.array([], rows.schema.field(k).type)
                                                             for k in rollup_def.by},
                     "change": pa.array([], pa.int64())})
