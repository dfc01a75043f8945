"""Which entities (values of a dimension) have rows changed since a watermark: what a ledger refresh recomputes."""

from __future__ import annotations

import datetime as dt

import ibis

from tally.engine.changes import compiled, run_compiled
from tally.engine.scope import ModelScope
from tally.engine.timegrid import as_utc
from tally.warehouse.base import UTC_TS


def change_checks(engine, model_name: str) -> list[tuple[str | None, str, str]]:
    """(join alias or None for the model itself, change-time column, model whose watermark applies):
    the model's own change time and those of the models it joins that have one."""
    model = engine.catalog.model(model_name)
    checks = [(None, model.updated, model_name)] if model.updated else []
    for alias, join in model.joins.items():
        target = engine.catalog.model(join.model)
        if target.updated and join.on is not None:
            checks.append((alias, f"{alias}.{target.updated}", join.model))
    return checks


def changed_entities(engine, model_name: str, dimension: str, watermarks: dict[str, str | None]) -> set:
    """Values of `dimension` over the model's rows changed after the watermarks (ISO UTC), directly
    or through a joined row's change; one scan per change-time column (see `changes.changed_days`)."""
    model = engine.catalog.model(model_name)
    found: set = set()
    for alias, column, owner in change_checks(engine, model_name):
        mark = watermarks.get(owner)
        if not mark:
            continue

        def build(column=column):
            scope = ModelScope(engine.config, engine.warehouse, model_name)
            after = ibis.param(UTC_TS)
            key = scope.value(model.dimensions[dimension].expr)
            picked = scope.joined().filter(scope.column(column) > after)
            return picked.select(entity=key).distinct(), {"after": after}

        query = compiled(engine, ("changed_entities", model_name, dimension, alias), build)
        found |= {row["entity"] for row in run_compiled(engine, query, {"after": _instant(mark)})}
    return found


def _instant(text: str) -> dt.datetime:
    return as_utc(dt.datetime.fromisoformat(text))


def dimension_type(engine, model_name: str, dimension: str):
    """The Ibis type of a dimension's values (how an entity given as text is read)."""
    scope = ModelScope(engine.config, engine.warehouse, model_name)
    return scope.value(engine.catalog.model(model_name).dimensions[dimension].expr).type()
