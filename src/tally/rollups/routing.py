"""Answer live queries from a rollup when one holds exactly the numbers asked for, and is fresh."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from zoneinfo import ZoneInfo

import ibis

from tally.engine import changes
from tally.engine.spec import QuerySpec
from tally.engine.timegrid import Grain, truncate
from tally.engine.translate import to_condition
from tally.project.expr import parse_row_expr
from tally.rollups import loads
from tally.rollups.definition import ADDITIVE, RollupDef, definitions
from tally.rollups.state import stored_text

FRESHNESS_TTL = 1.0   # seconds a freshness check is trusted


class Router:
    """Picks a rollup for a query (or none) and reads the answer from it."""

    def __init__(self, project):
        self.project = project
        self.rollup_defs = definitions(project) if project.config.rollups else []
        self._compiled: dict = {}
        self._fresh: dict[str, tuple[float, dict | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, spec: QuerySpec, start: dt.datetime, end: dt.datetime, measures) -> tuple | None:
        """(rows with period/by/base measure columns, meta) from a rollup, or None to go live."""
        for rollup_def in self.rollup_defs:
            grain = self._usable(rollup_def, spec, start, end, measures)
            if grain is None:
                continue
            state = self._state(rollup_def)
            if state is None:
                continue
            rows = self._read(rollup_def, spec, grain, start, end, [m.name for m in measures])
            return rows, {"source": f"rollup:{rollup_def.name}",
                          "rollup": {"name": rollup_def.name, "table": rollup_def.table,
                                     "built_at": state.get("built_at")}}
        return None

    def _usable(self, rollup_def: RollupDef, spec: QuerySpec, start, end, measures) -> Grain | None:
        """The stored grain that answers the query exactly, or None."""
        if spec.timezone != rollup_def.zone or rollup_def.rollup.where or spec.limit is not None or spec.order_by:
            return None
        names = {m.name for m in measures}
        if not names <= set(rollup_def.base_names) or not set(spec.by) <= set(rollup_def.by):
            return None
        where_dims = set(parse_row_expr(spec.where).references) if spec.where else set()
        if not where_dims <= set(rollup_def.by):
            return None
        additive = all(m.measure.aggregation in ADDITIVE for m in measures)
        if set(spec.by) != set(rollup_def.by) and not additive:
            return None   # distinct counts can't be re-aggregated over a dropped dimension
        zone = ZoneInfo(rollup_def.zone)
        a, b = start.astimezone(zone), end.astimezone(zone)
        if (a.time(), b.time()) != (dt.time(), dt.time()):
            return None
        if spec.grain is not None:
            if spec.grain.value not in rollup_def.rollup.grains or not _aligned(rollup_def, spec.grain, a, b):
                return None
            return spec.grain
        for grain in sorted(rollup_def.grains, key=lambda g: list(Grain).index(g), reverse=True):
            if _aligned(rollup_def, grain, a, b) and rollup_def.period_end(a.date(), grain) == b.date():
                return grain   # exactly one stored period
        if additive and Grain.day in rollup_def.grains:
            return Grain.day
        return None

    def _state(self, rollup_def: RollupDef) -> dict | None:
        """The rollup's build state if it is current (same definition, no change since), else None."""
        with self._lock:
            cached = self._fresh.get(rollup_def.name)
            if cached and time.monotonic() - cached[0] < FRESHNESS_TTL:
                return cached[1]
        warehouse, engine = self.project.warehouse, self.project.engine
        text = stored_text(warehouse, rollup_def.name) if warehouse.has_table("_tally_state") else None
        state = json.loads(text) if text else None
        if state is not None and not self._current(rollup_def, state, engine):
            state = None
        with self._lock:
            self._fresh[rollup_def.name] = (time.monotonic(), state)
        return state

    def _current(self, rollup_def: RollupDef, state: dict, engine) -> bool:
        from tally.rollups.state import definition_stamp

        if state.get("definition") != definition_stamp(engine, rollup_def):
            return False
        if loads.moved(state, loads.stamps(engine, rollup_def)):   # loaded since (or no way to tell)
            return False
        for model, mark in state.get("watermarks", {}).items():
            if changes.max_updated(engine, model, mark) != mark:   # only later change times read
                return False
        for model, days in state.get("days", {}).items():
            rows = sum(int(v.split("/")[0]) for v in days.values())
            if changes.row_count(engine, model) != rows:
                return False
        return True

    def _read(self, rollup_def: RollupDef, spec: QuerySpec, grain: Grain, start, end, names: list[str]):
        zone = ZoneInfo(rollup_def.zone)
        key = (rollup_def.name, grain, spec.by, spec.where, bool(spec.grain), tuple(names))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(rollup_def, spec, grain, names)
        query, schema = compiled
        values = {"start": start.astimezone(zone).date(), "end": end.astimezone(zone).date()}
        rows = self.project.warehouse.run(query, values)
        return rows.rename_columns(schema.names).cast(schema) if rows.schema != schema else rows

    def _compile(self, rollup_def: RollupDef, spec: QuerySpec, grain: Grain, names: list[str]):
        warehouse = self.project.warehouse
        table = warehouse.table(rollup_def.table)
        start, end = ibis.param("date"), ibis.param("date")
        rows = table.filter(table.grain == grain.value, table.period_start >= start, table.period_start < end)
        if spec.where:
            rows = rows.filter(to_condition(parse_row_expr(spec.where).tree, lambda name: rows[name]))
        keys = {"period": rows.period_start} if spec.grain else {}
        keys |= {dim: rows[dim] for dim in spec.by}
        additive = {ref.name for ref in rollup_def.bases if ref.measure.aggregation in ADDITIVE}
        # sums add up; a distinct count is only read where one stored row is one answer row (see _usable)
        values = {n: (rows[n].sum() if n in additive else rows[n].max()) for n in names}
        expr = rows.group_by(**keys).aggregate(**values) if keys else rows.aggregate(**values)
        types = {n: rows[n].type() for n in names}
        expr = expr.select(*keys, **{n: expr[n].cast(types[n]) for n in names})
        return warehouse.compile(expr, {"start": start, "end": end}), expr.schema().to_pyarrow()


def _aligned(rollup_def: RollupDef, grain: Grain, a: dt.datetime, b: dt.datetime) -> bool:
    """Both ends fall on period starts of `grain` (local midnights)."""
    for moment in (a, b):
        local = moment.replace(tzinfo=None)
        if truncate(local, grain, rollup_def.week_start) != local:
            return False
    return True
