"""`tally verify`: recompute every stored rollup period live and compare, to the cent."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.timegrid import Grain
from tally.rollups.definition import RollupDef, definitions
from tally.rollups.growth import add_growth
from tally.rollups.rows import finish, live_rows
from tally.warehouse.sqltext import null_safe_match, quote_ident, scratch_connection, sql_literal


@dataclass
class Mismatch:
    rollup: str
    grain: str
    period_start: str
    key: dict
    metric: str
    stored: object
    live: object

    def as_dict(self) -> dict:
        return asdict(self)


def verify(project, names=None, *, repair: bool = False, category: str | None = None) -> dict:
    """Mismatches per rollup (empty lists when stored equals live); with repair, rebuild those periods."""
    report = {}
    for rollup_def in definitions(project, names, category):
        mismatches = verify_one(project, rollup_def)
        report[rollup_def.name] = mismatches
        if repair and mismatches:
            _repair(project, rollup_def, mismatches)
    return report


def verify_one(project, rollup_def: RollupDef) -> list[Mismatch]:
    warehouse, engine = project.warehouse, project.engine
    if not warehouse.has_table(rollup_def.table):
        return [Mismatch(rollup_def.name, "-", "-", {}, "(table)", "missing", "run `tally rollup build`")]
    table = warehouse.table(rollup_def.table)
    found: list[Mismatch] = []
    columns = ["period_start", "period_end", *rollup_def.by, *stored_columns(rollup_def)]
    span = _data_span(engine, rollup_def)
    for grain in rollup_def.grains:
        stored = warehouse.run(warehouse.compile(table.filter(table.grain == grain.value).select(columns)))
        starts = [d for d in (pc.min(stored["period_start"]).as_py() if stored.num_rows else None,
                              span[0] if span else None) if d]
        ends = [d for d in (pc.max(stored["period_end"]).as_py() if stored.num_rows else None,
                            span[1] if span else None) if d]
        live = stored.slice(0, 0)
        if starts:  # every period the data or the table has: rows missing at either end show too
            first, last = rollup_def.period(min(starts), grain), max(ends)
            live = finish(live_rows(engine, rollup_def, grain, first, last, rollup_def.base_names), rollup_def, grain,
                          engine.catalog, dt.datetime.now(dt.timezone.utc))
            if rollup_def.rollup.growth:   # every period since the data's first: each previous one is there too
                live = add_growth(live, rollup_def, grain)
            live = live.select(columns)
        found += _compare(rollup_def, grain, stored, live)
    return found


def stored_columns(rollup_def: RollupDef) -> list[str]:
    """Every stored number: the metrics, and their growth columns when the rollup keeps them."""
    growth = [f"{m}_{suffix}" for m in rollup_def.rollup.metrics for suffix in ("previous", "change_pct")]
    return rollup_def.value_columns + (growth if rollup_def.rollup.growth else [])


def _data_span(engine, rollup_def: RollupDef) -> tuple[dt.date, dt.date] | None:
    """First local day and the day after the last, over the rollup's models."""
    from zoneinfo import ZoneInfo

    from tally.engine import changes

    spans = [s for s in (changes.bounds(engine, m) for m in sorted(rollup_def.models)) if s]
    if not spans:
        return None
    zone = ZoneInfo(rollup_def.zone)
    return (min(s[0] for s in spans).astimezone(zone).date(),
            max(s[1] for s in spans).astimezone(zone).date() + dt.timedelta(days=1))


def _compare(rollup_def: RollupDef, grain: Grain, stored: pa.Table, live: pa.Table) -> list[Mismatch]:
    """Rows and cells that differ (counts exactly, money to the cent, ratios to 1e-9), found by DuckDB."""
    con = scratch_connection()
    try:
        con.register("s", stored)
        con.register("l", live.cast(stored.schema) if live.schema != stored.schema else live)
        keys = ["period_start", *rollup_def.by]
        on = null_safe_match("s", "l", keys)
        tests = []
        for metric in stored_columns(rollup_def):
            kind = stored.schema.field(metric).type
            a, b = f"s.{quote_ident(metric)}", f"l.{quote_ident(metric)}"
            if pa.types.is_floating(kind):
                differs = (f"(({a} IS NULL) <> ({b} IS NULL) OR abs({a} - {b}) > "
                           f"1e-9 * greatest(abs({a}), abs({b})) + 1e-9)")
            elif pa.types.is_decimal(kind):
                differs = f"round({a}, 2) IS DISTINCT FROM round({b}, 2)"
            else:
                differs = f"{a} IS DISTINCT FROM {b}"
            tests.append(f"CASE WHEN {differs} THEN {sql_literal(metric)} END")
        found = con.execute(
            "SELECT COALESCE(s.period_start, l.period_start) AS period_start, "
            + "".join(f"COALESCE(s.{quote_ident(k)}, l.{quote_ident(k)}) AS {quote_ident(k)}, " for k in rollup_def.by)
            + "s.period_start IS NULL AS missing, l.period_start IS NULL AS extra, "
            f"list_filter([{', '.join(tests) or 'NULL'}], x -> x IS NOT NULL) AS metrics, "
            f"to_json(s) AS stored, to_json(l) AS live FROM s FULL OUTER JOIN l ON {on} "
            f"WHERE s.period_start IS NULL OR l.period_start IS NULL OR len(metrics) > 0 "
            f"ORDER BY 1").fetchall()
    finally:
        con.close()
    out = []
    for row in found:
        start, dims = row[0], dict(zip(rollup_def.by, row[1:1 + len(rollup_def.by)]))
        missing, extra, metrics, stored_json, live_json = row[1 + len(rollup_def.by):]
        if missing or extra:
            out.append(Mismatch(rollup_def.name, grain.value, start.isoformat(), dims, "(row)",
                                "missing" if missing else "present", "present" if missing else "missing"))
            continue
        a, b = json.loads(stored_json), json.loads(live_json)
        out += [Mismatch(rollup_def.name, grain.value, start.isoformat(), dims, m, a.get(m), b.get(m)) for m in metrics]
    return out


def _repair(project, rollup_def: RollupDef, mismatches: list[Mismatch]) -> None:
    from tally.rollups.build import build_one

    days = sorted({dt.date.fromisoformat(m.period_start) for m in mismatches if m.period_start != "-"})
    if not days or any(m.metric == "(table)" for m in mismatches):
        build_one(project, rollup_def, full=True)
        return
    start = days[0]
    end = max(rollup_def.period_end(d, Grain(m.grain)) for m in mismatches for d in [dt.date.fromisoformat(m.period_start)])
    build_one(project, rollup_def, start=start.isoformat(), end=end.isoformat())
