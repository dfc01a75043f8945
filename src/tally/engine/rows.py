"""After the warehouse answers: types, zero-filled periods, snapshots, derived metrics, comparisons."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.catalog import Catalog
from tally.engine.plan import ZERO_OVER_NO_ROWS, Plan
from tally.engine.spec import QuerySpec
from tally.engine.translate import to_arrow
from tally.errors import QueryError

FILLED_WITH_ZERO = ZERO_OVER_NO_ROWS


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Give every warehouse's answer the same Arrow types (Ibis' view of the query)."""
    table = table.rename_columns(schema.names)
    return table if table.schema == schema else table.cast(schema)


def _fills(plan: Plan) -> dict:
    return {ref.name: (0 if ref.measure.aggregation in FILLED_WITH_ZERO else None) for ref in plan.measures}


MAX_FILLED_ROWS = 1_000_000   # every period for every value: a grid past this is no answer to read


def assemble(timed: pa.Table | None, timeless: pa.Table | None, periods: list | None,
             spec: QuerySpec, plan: Plan) -> pa.Table:
    """One row per key: periods with no data added (zeros), snapshot measures joined by dimension."""
    fills = _fills(plan)
    if timeless is None and periods is None:
        return _fill_nulls(_ensure_total(timed, spec, plan), fills)
    keys = (("period",) if spec.grain else ()) + spec.by
    timed_rows = timed.to_pylist() if timed is not None else []
    snapshot = {tuple(r[d] for d in spec.by): r for r in timeless.to_pylist()} if timeless is not None else {}
    keyed = {tuple(r[k] for k in keys): r for r in timed_rows}
    combos = list(dict.fromkeys([tuple(r[d] for d in spec.by) for r in timed_rows] + list(snapshot)))
    if not spec.by:
        combos = [()]
    if periods is not None:
        if len(periods) * len(combos) > MAX_FILLED_ROWS:
            raise QueryError(
                f"the answer would hold {len(periods) * len(combos):,} rows ({len(periods):,} periods × "
                f"{len(combos):,} values of {', '.join(spec.by)}), more than {MAX_FILLED_ROWS:,}: narrow the "
                f"range, use a coarser grain, or keep the top rows with --limit")
        for period in periods:
            for combo in combos:
                keyed.setdefault((period, *combo), {"period": period, **dict(zip(spec.by, combo))})
    elif not spec.grain:
        for combo in combos:
            keyed.setdefault(combo, dict(zip(spec.by, combo)))
    snapshot_names = set(timeless.column_names) - set(spec.by) if timeless is not None else set()
    rows = list(keyed.values())
    for row in rows:
        snap = snapshot.get(tuple(row[d] for d in spec.by), {})
        for name, fill in fills.items():
            value = snap.get(name) if name in snapshot_names else row.get(name)
            row[name] = fill if value is None else value
    schema = _schema(timed, timeless, keys, plan)
    return pa.Table.from_pylist(rows, schema=schema)


def _schema(timed, timeless, keys, plan: Plan) -> pa.Schema:
    fields = {}
    for table in (timed, timeless):
        if table is not None:
            for f in table.schema:
                fields.setdefault(f.name, f)
    names = list(keys) + [ref.name for ref in plan.measures]
    return pa.schema([fields[n] for n in names])


def _ensure_total(table: pa.Table, spec: QuerySpec, plan: Plan) -> pa.Table:
    """A query with no keys always has its one total row."""
    if spec.by or spec.grain or table.num_rows:
        return table
    return pa.Table.from_pylist([{ref.name: None for ref in plan.measures}], schema=table.schema)


def _fill_nulls(table: pa.Table, fills: dict) -> pa.Table:
    for name, fill in fills.items():
        if fill is not None and table[name].null_count:
            index = table.column_names.index(name)
            filled = pc.fill_null(table[name], pa.scalar(fill).cast(table.schema.field(name).type))
            table = table.set_column(index, name, filled)
    return table


def add_derived(table: pa.Table, spec: QuerySpec, catalog: Catalog) -> pa.Table:
    """Compute derived metrics from aggregated measures and keep the requested columns."""
    keys = (["period"] if spec.grain else []) + list(spec.by)
    return derive(table, keys, spec.metrics, catalog)


def derive(table: pa.Table, keys: list[str], metrics, catalog: Catalog) -> pa.Table:
    """The key columns and `metrics`, derived ones computed from the measure columns present."""
    values: dict[str, object] = {}

    def resolve(name: str):
        if name in table.column_names:
            return table[name]
        if name not in values:
            values[name] = to_arrow(catalog.derived[name].expr.tree, resolve, table.num_rows)
        return values[name]

    columns = {k: table[k] for k in keys}
    for metric in metrics:
        columns[metric] = resolve(metric)
    return pa.table(columns)


def order_and_limit(table: pa.Table, spec: QuerySpec, *, use_limit: bool, ordered: bool = True) -> pa.Table:
    if not ordered:
        return table.slice(0, spec.limit) if use_limit and spec.limit is not None else table
    keys = (["period"] if spec.grain else []) + list(spec.by)
    sort = [(name, "descending" if desc else "ascending") for name, desc in spec.order_by]
    sort += [(k, "ascending") for k in keys if k not in dict(spec.order_by)]
    if sort and table.num_rows > 1:
        table = table.sort_by(sort)
    if use_limit and spec.limit is not None:
        table = table.slice(0, spec.limit)
    return table


def zero_values(plan: Plan, spec: QuerySpec, catalog: Catalog) -> dict:
    """Each metric's value over no rows at all: 0 for sums and counts, ratios over them null."""
    fills = _fills(plan)
    table = pa.table({name: pa.array([fill], pa.int64() if fill is not None else pa.null())
                      for name, fill in fills.items()})
    return derive(table, [], spec.metrics, catalog).to_pylist()[0]


def attach_comparison(current: pa.Table, previous: pa.Table, spec: QuerySpec, pairs=None,
                      zero: dict | None = None) -> pa.Table:
    """Add m_previous, m_change and m_change_pct for each metric, matching rows by key.

    `pairs` gives, with --grain, the previous period a current period is compared with
    (timegrid.period_pairs). A key with no row in the previous range compares with `zero`
    (what the metric is over no rows).
    """
    zero = zero or {}
    lookup = _previous_lookup(current, previous, spec, pairs)
    columns = {name: current[name] for name in current.column_names if name not in spec.metrics}
    for metric in spec.metrics:
        now = current[metric]
        before = pa.array([row.get(metric) if row is not None else zero.get(metric) for row in lookup],
                          type=now.type)
        a, b = _same_type(now, before)
        change = pc.subtract(a, b)
        pct = pc.multiply(pc.divide(pc.cast(change, pa.float64()),
                                    pc.if_else(pc.equal(pc.cast(b, pa.float64()), 0.0),
                                               pa.scalar(None, pa.float64()), pc.cast(b, pa.float64()))), 100.0)
        columns.update({metric: now, f"{metric}_previous": before, f"{metric}_change": change,
                        f"{metric}_change_pct": pct})
    return pa.table(columns)


def _same_type(a, b):
    if pa.types.is_decimal(a.type):
        target = pa.decimal128(37, a.type.scale)
        return pc.cast(a, target), pc.cast(b, target)
    return a, b


def _previous_lookup(current: pa.Table, previous: pa.Table, spec: QuerySpec, pairs) -> list:
    """For each current row, the previous row it is compared with (None: that key had no row)."""
    by = list(spec.by)
    keyed = {tuple(r[k] for k in (["period"] if spec.grain else []) + by): r for r in previous.to_pylist()}
    dims = list(zip(*[current[d].to_pylist() for d in by])) if by else [()] * current.num_rows
    if not spec.grain:
        return [keyed.get(combo) for combo in dims]
    periods = [pairs(p) for p in current["period"].to_pylist()]
    return [keyed.get((p, *combo)) if p is not None else None for p, combo in zip(periods, dims)]
