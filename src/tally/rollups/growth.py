"""Period-over-period growth columns for rollups that ask for them (`growth: true`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef


def add_growth(table: pa.Table, rollup_def: RollupDef, grain: Grain, warehouse=None, rebuilt=frozenset()) -> pa.Table:
    """m_previous and m_change_pct per metric: the previous period of the same dimensions.

    Previous periods not in `table` are read from the stored rollup (`warehouse`), so an
    incremental build gets the same numbers as a full one; except the periods this build
    replaces (`rebuilt`): one with no rows in `table` has none any more.
    """
    rows = table.to_pylist()
    keys = rollup_def.by
    index = {(r["period_start"], *[r[k] for k in keys]): r for r in rows}
    missing = {_previous(rollup_def, r["period_start"], grain) for r in rows} - {r["period_start"] for r in rows}
    missing -= set(rebuilt)
    if warehouse is not None and missing:
        for r in _stored(warehouse, rollup_def, grain, sorted(missing)):
            index.setdefault((r["period_start"], *[r[k] for k in keys]), r)
    columns = {name: table[name] for name in table.column_names if name != "built_at"}
    for metric in rollup_def.rollup.metrics:
        previous = [index.get((_previous(rollup_def, r["period_start"], grain), *[r[k] for k in keys]), {}).get(metric)
                    for r in rows]
        before = pa.array(previous, type=table[metric].type)
        now = table[metric]
        change = pc.subtract(pc.cast(now, pa.float64()), pc.cast(before, pa.float64()))
        base = pc.cast(before, pa.float64())
        pct = pc.multiply(pc.divide(change, pc.if_else(pc.equal(base, 0.0), pa.scalar(None, pa.float64()), base)),
                          100.0)
        columns[f"{metric}_previous"] = before
        columns[f"{metric}_change_pct"] = pct
    columns["built_at"] = table["built_at"]
    return pa.table(columns)


def _previous(rollup_def: RollupDef, start, grain: Grain):
    import datetime as dt

    return rollup_def.period(start - dt.timedelta(days=1), grain)


def _stored(warehouse, rollup_def: RollupDef, grain: Grain, starts) -> list[dict]:
    table = warehouse.table(rollup_def.table)
    expr = table.filter(table.grain == grain.value, table.period_start.isin(starts))
    return warehouse.run(warehouse.compile(expr)).to_pylist()
