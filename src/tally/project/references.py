"""Cross-reference checks: joins, metric names, formula cycles, fan-out risks."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from tally.project.expr import parse_formula

if TYPE_CHECKING:
    from tally.project.loader import LoadedConfig


def _suggest(name: str, known) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def check_references(loaded: LoadedConfig) -> None:
    """Refuse a config whose names don't resolve, before anything runs."""
    _check_joins(loaded)
    _check_metric_names(loaded)
    _check_formulas(loaded)
    _check_rollups(loaded)


def _check_joins(loaded: LoadedConfig) -> None:
    models = loaded.config.models
    for name, model in models.items():
        for alias, join in model.joins.items():
            where = ("models", name, "joins", alias)
            if join.model not in models:
                raise loaded.error(f"join {alias!r} of model {name!r} points at unknown model {join.model!r}"
                                   + _suggest(join.model, models), *where, "model")
            if alias in model.dimensions or alias in model.measures:
                raise loaded.error(f"join name {alias!r} is also a dimension or measure of {name!r}", *where)
            target = models[join.model]
            if join.on is not None:
                wanted = sorted(join.keys.values())
                if sorted(target.primary_key) != wanted:
                    raise loaded.error(
                        f"join {alias!r} of {name!r} on {wanted} is not many-to-one: model {join.model!r} must "
                        f"declare primary_key: {wanted} (a join on a non-unique key would multiply measures)",
                        *where, "on")


def _check_metric_names(loaded: LoadedConfig) -> None:
    owner: dict[str, str] = {}
    for name, model in loaded.config.models.items():
        for measure in model.measures:
            if measure in owner:
                raise loaded.error(f"measure {measure!r} is defined in both {owner[measure]!r} and {name!r}; "
                                   "metric names must be unique", "models", name, "measures", measure)
            owner[measure] = name
    for metric in loaded.config.metrics:
        if metric in owner:
            raise loaded.error(f"metric {metric!r} has the same name as a measure of model {owner[metric]!r}",
                               "metrics", metric)


def _check_formulas(loaded: LoadedConfig) -> None:
    config = loaded.config
    measures = {m for model in config.models.values() for m in model.measures}
    known = measures | set(config.metrics)
    graph: dict[str, list[str]] = {}
    for name, metric in config.metrics.items():
        refs = list(parse_formula(metric.formula).references)
        for ref in refs:
            if ref not in known:
                raise loaded.error(f"metric {name!r} uses unknown metric {ref!r}" + _suggest(ref, known),
                                   "metrics", name)
        graph[name] = [ref for ref in refs if ref in config.metrics]
    _find_cycle(loaded, graph)


def _find_cycle(loaded: LoadedConfig, graph: dict[str, list[str]]) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise loaded.error(f"metrics form a cycle: {' -> '.join(cycle)}", "metrics", nxt)
            if state.get(nxt) is None:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def _check_rollups(loaded: LoadedConfig) -> None:
    """Rollup metrics exist, have a time axis, and can be broken down by the rollup's dimensions."""
    config = loaded.config
    measures = {m: name for name, model in config.models.items() for m in model.measures}
    known = set(measures) | set(config.metrics)
    tables = {}
    for name, rollup in config.rollups.items():
        where = ("rollups", name)
        table = rollup.table or name
        if table in tables:
            raise loaded.error(f"rollups {tables[table]!r} and {name!r} both write table {table!r}", *where)
        tables[table] = name
        if table in {m.table for m in config.models.values()}:
            raise loaded.error(f"rollup {name!r} would write over the model table {table!r}", *where, "table")
        if table in loaded_tables(config):
            raise loaded.error(f"rollup {name!r} would write over table {table!r}, which a source or seed loads",
                               *where, "table")
        if table.lower().startswith(INTERNAL):
            raise loaded.error(f"rollup {name!r}: table {table!r} is reserved ({INTERNAL}* tables are Tally's own)",
                               *where, "table")
        _check_rollup_columns(loaded, name, rollup, measures)
        for metric in rollup.metrics:
            if metric not in known:
                raise loaded.error(f"rollup {name!r} uses unknown metric {metric!r}" + _suggest(metric, known),
                                   *where, "metrics")
        for model_name in _models_behind(config, rollup.metrics, measures):
            model = config.models[model_name]
            if model.time is None:
                raise loaded.error(f"rollup {name!r}: {', '.join(rollup.metrics)} include a snapshot of model "
                                   f"{model_name!r} (no time column); rollups store periods", *where, "metrics")
            for dim in rollup.by:
                if dim not in model.dimensions:
                    raise loaded.error(f"rollup {name!r}: model {model_name!r} has no dimension {dim!r}"
                                       + _suggest(dim, model.dimensions), *where, "by")


INTERNAL = "_tally_"
RESERVED = ("grain", "period", "period_start", "period_end", "built_at")   # a rollup table's own columns


def loaded_tables(config) -> set[str]:
    """Tables Tally itself writes from data: sources' and seeds' (each write stamps the table)."""
    sources = {s.get("table") for s in config.sources.values() if isinstance(s, dict)}
    return (sources | {seed.table or name for name, seed in config.seeds.items()}) - {None}


def _check_rollup_columns(loaded: LoadedConfig, name: str, rollup, measures: dict[str, str]) -> None:
    """Every column of the rollup table has one meaning: no reserved name, no name twice."""
    config = loaded.config
    values = set(rollup.metrics) | _measures_behind(config, rollup.metrics, measures)   # base measures are stored
    growth = [f"{m}_{suffix}" for m in rollup.metrics for suffix in ("previous", "change_pct")] if rollup.growth else []
    for key, names in (("by", rollup.by), ("metrics", sorted(values) + growth)):
        for column in names:
            if column.lower() in RESERVED or column.lower().startswith(INTERNAL):
                raise loaded.error(f"rollup {name!r}: {column!r} is a reserved name in a rollup table "
                                   f"({', '.join(RESERVED)}, {INTERNAL}*): rename the "
                                   f"{'dimension' if key == 'by' else 'metric'}", "rollups", name, key)
    for dim in rollup.by:
        if dim in values or dim in growth:
            raise loaded.error(f"rollup {name!r}: dimension {dim!r} has the name of a stored metric column",
                               "rollups", name, "by")
    for column in growth:
        if column in values:
            raise loaded.error(f"rollup {name!r}: growth column {column!r} is also a metric's name",
                               "rollups", name, "metrics")


def _models_behind(config, metrics, measures: dict[str, str]) -> set[str]:
    return {measures[m] for m in _measures_behind(config, metrics, measures)}


def _measures_behind(config, metrics, measures: dict[str, str]) -> set[str]:
    found, stack = set(), list(metrics)
    while stack:
        name = stack.pop()
        if name in measures:
            found.add(name)
        elif name in config.metrics:
            stack.extend(parse_formula(config.metrics[name].formula).references)
    return found
