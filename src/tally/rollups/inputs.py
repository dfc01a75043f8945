"""What a rollup reads of a model's rows, fingerprinted per local day.

Rows change all the time in ways a rollup never sees: an order line going from `shipped` to
`refunded` moves its change time, yet no measure filtered on `status <> 'cancelled'` and no
report by shop moves with it. An incremental build finds such days by their change time; it then
compares each day's fingerprint of what the rollup reads, now and as of the last build, and
recomputes only the days whose fingerprint moved.

A fingerprint is a day's row count and the sum of a 64-bit hash of each row's inputs:
- every dimension the rollup is by, and the rollup's filter;
- every measure's value where its own filter holds (its key, for a distinct count; its filter
  alone, for a row count).
An expression that reads a lookup (a joined model without a change time) is hashed by the row's
own columns it depends on instead (the join's keys, the range's value): lookups only change by a
reload, which rebuilds the rollup in full. Columns of joined models that have a change time are
read through the join, as the rollup reads them.

Only on DuckDB, whose `hash()` is one portable 64-bit function; other warehouses recompute every
day found by change time.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as idt

from tally.engine.changes import UTC, compiled, day_bucket_in, run_compiled, segments
from tally.engine.scope import ModelScope
from tally.engine.timecol import time_column
from tally.engine.translate import to_ibis
from tally.project.expr import parse_row_expr
from tally.rollups.definition import RollupDef
from tally.warehouse.base import UTC_TS


@ibis.udf.scalar.builtin(name="hash")
def _hash(value) -> idt.uint64:
    """DuckDB's `hash()` as it is: Ibis's own `hash()` turns it into a signed integer through two
    casts, which (with the decimal the sum needed then) took 2.4x the time of the whole pass."""


def supported(warehouse) -> bool:
    return warehouse.dialect.row_hash


def fingerprints(engine, rollup_defs: list[RollupDef], model_name: str, span, days: list[dt.date] | None = None
                 ) -> dict[str, dict[str, str]]:
    """Per rollup (by name) reading the model, per local day (ISO) of the model's rows (all, or
    just `days`): "rows:hash sum". The rollups share their zone; one pass over the rows serves them all."""
    rollup_defs = [r for r in rollup_defs if model_name in r.models]
    if span is None or not rollup_defs or (days is not None and not days):
        return {r.name: {} for r in rollup_defs}
    zones = {r.zone for r in rollup_defs}
    if len(zones) > 1:
        raise ValueError(f"fingerprints of rollups in several zones at once: {sorted(zones)}")
    zone = rollup_defs[0].zone
    catalog = engine.catalog
    model = catalog.model(model_name)
    offsets = segments(zone, span)

    def build():
        base = engine.warehouse.table(model.table)
        # a range around the days first, so the database skips the other blocks
        params = {"start": ibis.param(UTC_TS), "end": ibis.param(UTC_TS)}
        ts = time_column(base, model_name, model.time)
        base = base.filter(ts >= params["start"], ts < params["end"])
        scope = ModelScope(catalog.config, engine.warehouse, model_name, base=base)
        values = [_values(scope, catalog, rollup_def, model_name) for rollup_def in rollup_defs]   # (joins are added as read)
        day = day_bucket_in(engine, time_column(scope.base, model_name, model.time), offsets)
        relation = scope.joined()
        metrics = {"rows": relation.count()}
        for index, read in enumerate(values):
            if read:   # a rollup reading nothing but the row count (a plain count by no dimension) hashes nothing
                row = ibis.struct({f"v{i}": v for i, v in enumerate(read)})
                metrics[f"h{index}"] = _hash(row).sum()   # DuckDB sums the unsigned hashes as HUGEINT
        expr = relation.group_by(day=day).aggregate(**metrics)
        if days is not None:   # the days themselves too: DuckDB then hashes only their rows (3x faster)
            expr = expr.filter(expr.day.isin(days))
        return expr, params

    if days is None:   # a full build's, compiled once
        query = compiled(engine, ("fingerprints", model_name, offsets, tuple((r.name, r.fingerprint) for r in rollup_defs)),
                         build)
        values = {"start": span[0], "end": span[1] + dt.timedelta(microseconds=1)}
    else:
        expr, params = build()
        query = engine.warehouse.compile(expr, params)
        tz = ZoneInfo(zone)
        values = {"start": dt.datetime.combine(min(days), dt.time(), tzinfo=tz).astimezone(UTC),
                  "end": dt.datetime.combine(max(days) + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(UTC)}
    rows = run_compiled(engine, query, values)
    return {rollup_def.name: {r["day"].isoformat(): f"{r['rows']}:{r.get(f'h{index}', 0)}" for r in rows}
            for index, rollup_def in enumerate(rollup_defs)}


def _values(scope: ModelScope, catalog, rollup_def: RollupDef, model_name: str) -> list:
    model = catalog.model(model_name)
    values = []
    for dim in rollup_def.by:
        values += _inputs(scope, catalog, model.dimensions[dim].expr)
    if rollup_def.rollup.where:
        tree = parse_row_expr(rollup_def.rollup.where)
        used = [model.dimensions[name].expr for name in tree.references]
        if all(not _reads_lookup(scope, catalog, ref) for text in used for ref in parse_row_expr(text).references):
            values.append(to_ibis(tree.tree, lambda name: scope.value(model.dimensions[name].expr)))
        else:
            values += [v for text in used for v in _inputs(scope, catalog, text)]
    for ref in rollup_def.bases:
        if ref.model != model_name:
            continue
        measure = ref.measure
        value = None if measure.value == "*" else measure.value
        where = measure.where
        if where and value and _plain(scope, catalog, where) and _plain(scope, catalog, value):
            values.append(ibis.cases((scope.condition(where), scope.value(value))))
            continue
        if where:
            values += [scope.condition(where)] if _plain(scope, catalog, where) else _inputs(scope, catalog, where)
        if value:
            values += _inputs(scope, catalog, value)
    return values


def _plain(scope: ModelScope, catalog, text: str) -> bool:
    return not any(_reads_lookup(scope, catalog, ref) for ref in parse_row_expr(text).references)


def _inputs(scope: ModelScope, catalog, text: str) -> list:
    """The expression's value, or, when it reads a lookup, the row's own columns it depends on."""
    if _plain(scope, catalog, text):
        return [scope.value(text)]
    return [v for ref in parse_row_expr(text).references for v in _raw(scope, catalog, ref)]


def _reads_lookup(scope: ModelScope, catalog, ref: str) -> bool:
    if "." not in ref:
        return False
    alias = ref.split(".", 1)[0]
    join = scope.model.joins.get(alias)
    return join is not None and not catalog.model(join.model).updated


def _raw(scope: ModelScope, catalog, ref: str) -> list:
    """Columns standing for `ref`: itself, or for a lookup's column the join's own inputs."""
    if not _reads_lookup(scope, catalog, ref):
        return [scope.column(ref)]
    join = scope.model.joins[ref.split(".", 1)[0]]
    if join.on is not None:
        return [v for local in join.keys for v in _raw(scope, catalog, local)]
    return _inputs(scope, catalog, join.range)
