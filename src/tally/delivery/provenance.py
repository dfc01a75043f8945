"""Where an answer came from: live or a rollup, each model's last load, and the periods only partly covered.

Computed after the engine answered, from the answer's meta and Tally's own tables
(`_tally_loads`, `_tally_state`): only reads, so a read-only warehouse serves it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
DATE_HOUR = 12   # a DATE is 12:00 UTC of its day (engine/timecol.py, which imports the query layer)
LOADS_SQL = ("SELECT source, max(ended_at) AS ended_at FROM _tally_loads WHERE status = 'ok' "
             "GROUP BY source")   # fixed text: nothing of a user's in it


def describe(project, metrics, result, live: bool = False) -> dict:
    """The meta `--format json --meta` prints: the answer's range and source, per-model freshness,
    and the partial periods."""
    meta = result.meta
    source = meta.get("source", "live")
    rollup = meta.get("rollup") if source.startswith("rollup:") else None
    out = {"timezone": meta.get("timezone"), "from": meta.get("from"), "to": meta.get("to"),
           "grain": meta.get("grain"), "source": "rollup" if rollup else "live", "forced_live": live,
           "rollup": ({"name": rollup["name"], "table": rollup.get("table"), "built_at": _iso(rollup.get("built_at"))}
                      if rollup else None)}
    for key in ("compare", "as_of"):
        if key in meta:
            out[key] = meta[key]
    models = _models(project, metrics)
    out["models"] = freshness(project, models)
    through = data_through(out["models"], models, meta)
    out["data_through"] = _iso(through)
    out["partial"] = partial_periods(result.table, meta, project.config.week_start_index, through)
    out["past_data"] = past_data(meta, through)
    return out


def past_data(meta: dict, through: dt.datetime | None) -> bool:
    """The range ends after the data does (the answer's last part has no data yet)."""
    from tally.engine.timegrid import parse_local

    if through is None or not meta.get("to"):
        return False
    return parse_local(meta["to"], ZoneInfo(meta["timezone"]), "to") > through


def _models(project, metrics) -> dict[str, bool]:
    """Each model behind the metrics -> whether it has a time column."""
    catalog = project.catalog
    return {ref.model: bool(catalog.model(ref.model).time) for ref in catalog.base_measures(list(metrics))}


def freshness(project, models: dict[str, bool]) -> dict[str, dict]:
    """Per model: its table, its last load (the latest successful `tally ingest` of a source
    writing the table, or the last stamp of a load or seed), the source's watermark, and the
    latest time in its rows."""
    warehouse, config = project.reader, project.config
    states = _states(warehouse)
    loads = _loads(warehouse)
    writers: dict[str, list[str]] = {}
    for name, raw in config.sources.items():
        if isinstance(raw, dict) and raw.get("table"):
            writers.setdefault(raw["table"], []).append(name)
    found = {}
    for model, timed in models.items():
        table = config.models[model].table
        stamps = [loads[s] for s in writers.get(table, []) if s in loads]
        stamped = _utc(states.get(f"table:{table}", (None, None))[1])
        last = max([*stamps, stamped] if stamped else stamps, default=None)
        marks = [states[f"source:{s}"][0] for s in writers.get(table, []) if f"source:{s}" in states]
        found[model] = {"table": table, "last_load": _iso(last), "watermark": max(marks) if marks else None,
                        "max_time": _iso(_max_time(project, model)) if timed else None}
    return found


def _states(warehouse) -> dict[str, tuple]:
    """_tally_state as {key: (value, updated_at)} (a few rows: one per source, table, rollup)."""
    if not warehouse.has_table("_tally_state"):
        return {}
    from tally.warehouse.internal import read_all_state

    return read_all_state(warehouse)


def _loads(warehouse) -> dict[str, dt.datetime]:
    if not warehouse.has_table("_tally_loads"):
        return {}
    from tally.warehouse import CompiledQuery

    rows = warehouse.run(CompiledQuery(sql=LOADS_SQL, params=())).to_pylist()
    return {row["source"]: _utc(row["ended_at"]) for row in rows if row["ended_at"] is not None}


def _max_time(project, model: str) -> dt.datetime | None:
    """The latest `time` of a model's rows (a DATE counts as 12:00 UTC of its day, as in queries),
    in plain SQL of Tally's own: names from tally.yml, quoted; no query layer needed."""
    warehouse, definition = project.reader, project.config.models[model]
    if not warehouse.has_table(definition.table):
        return None
    from tally.warehouse import CompiledQuery

    sql = f"SELECT max({_quote(definition.time, warehouse)}) AS hi FROM {_quote(definition.table, warehouse)}"
    value = warehouse.run(CompiledQuery(sql=sql, params=())).to_pylist()[0]["hi"]
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(DATE_HOUR), tzinfo=UTC)
    return _utc(value)


def _quote(name: str, warehouse) -> str:
    mark = warehouse.dialect.identifier_quote
    return mark + name.replace(mark, mark * 2) + mark


def data_through(models: dict[str, dict], timed: dict[str, bool], meta: dict) -> dt.datetime | None:
    """Where the data of the answer ends: the end of the local day (the hour, for `--grain hour`)
    holding the latest row, of the model whose data ends first."""
    ends = []
    zone = ZoneInfo(meta.get("timezone") or "UTC")
    for model, info in models.items():
        if not timed.get(model) or info["max_time"] is None:
            continue
        local = dt.datetime.fromisoformat(info["max_time"].replace("Z", "+00:00")).astimezone(zone)
        if meta.get("grain") == "hour":
            top = local.replace(minute=0, second=0, microsecond=0, tzinfo=None) + dt.timedelta(hours=1)
        else:
            top = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time())
        ends.append(_local(top, zone))
    return min(ends) if ends else None


def partial_periods(table, meta: dict, week_start: int, through: dt.datetime | None) -> list[dict]:
    """The answer's periods only partly inside the range (`range`) or past the end of the data (`data`)."""
    from tally.delivery.tabular import period_label
    from tally.engine.timegrid import Grain, parse_local

    if not meta.get("grain") or "period" not in table.column_names:
        return []
    grain, zone = Grain(meta["grain"]), ZoneInfo(meta["timezone"])
    start, end = parse_local(meta["from"], zone, "from"), parse_local(meta["to"], zone, "to")
    found = []
    for value in dict.fromkeys(table.column("period").to_pylist()):
        if value is None:
            continue
        local = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
        begin, finish = _local(local, zone), _local(local + grain.step, zone)
        reasons = []
        if begin < start or finish > end:
            reasons.append("range")
        if through is not None and finish > through:
            reasons.append("data")
        if reasons:
            found.append({"period": period_label(value), "reasons": reasons})
    return found


def footer(meta: dict) -> list[str]:
    """The lines printed under a query's table: where the answer came from and how fresh it is."""
    if meta["rollup"]:
        built = meta["rollup"]["built_at"] or "an unknown time"
        lines = [f"answered from rollup {meta['rollup']['name']} (built {built})"]
    else:
        lines = ["answered live" + (" (--live)" if meta.get("forced_live") else "")]
    for model, info in meta["models"].items():
        loaded = f"last load {info['last_load']}" if info["last_load"] else "no load recorded"
        parts = [loaded] + ([f"watermark {info['watermark']}"] if info["watermark"] else [])
        parts += [f"latest row {info['max_time']}"] if info["max_time"] else []
        lines.append(f"{model}: " + ", ".join(parts))
    if meta["past_data"] and not meta["grain"]:
        lines.append(f"* partial: the range ends after the data (through {meta['data_through']})")
    if meta["partial"]:
        reasons = {"range": "cut by the range", "data": "past the end of the data"}
        groups: dict[tuple, list[str]] = {}
        for p in meta["partial"]:
            groups.setdefault(tuple(p["reasons"]), []).append(p["period"])
        parts = []
        for why, labels in groups.items():   # a long run of empty periods reads as its first and last
            said = " and ".join(reasons[r] for r in why)
            parts.append(f"{', '.join(labels)} ({said})" if len(labels) <= 3
                         else f"{labels[0]} … {labels[-1]} ({len(labels)} periods, {said})")
        lines.append("* partial period: " + "; ".join(parts))
    return lines


def _local(naive: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    from tally.engine.timegrid import read_local

    return read_local(naive, zone)


def _utc(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value) -> str | None:
    moment = _utc(value)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None
