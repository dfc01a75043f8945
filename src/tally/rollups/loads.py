"""The loads behind a rollup: how changes show in models that have no change time (`updated:`).

A model with `updated:` shows every changed row by its change time. One without can have a row
changed in place (an ingest replacing an order's status under the same key) where neither change
times nor row counts show it. Every committed ingest that loads rows, and every seed, stamps its
table (`table:<name>` in `_tally_state`); a rollup keeps the stamps of its models as of its build.
A stamp that moved means rows may have changed anywhere: the build compares every day's
fingerprint where the warehouse has them (DuckDB, see `inputs`) and rebuilds in full elsewhere,
and routing answers live until the rollup is built again.

The same holds for the models a rollup joins to, except that a changed lookup always means a full
build (the fingerprints read a row's own join keys, not the lookup's values).

A table that no source or seed writes carries no stamp: Tally can't tell when its rows changed,
so each build re-checks it (as above) and routing never answers from it.
"""

from __future__ import annotations

from tally.project.references import loaded_tables
from tally.rollups.definition import RollupDef
from tally.warehouse.internal import read_state

UNKNOWN = None   # the stamp of a table no source or seed writes


def related_models(engine, rollup_def: RollupDef) -> set[str]:
    """The rollup's models and the models they join to."""
    return set(rollup_def.models) | {j.model for m in rollup_def.models for j in engine.catalog.model(m).joins.values()}


def watched(engine, rollup_def: RollupDef) -> list[str]:
    """The rollup's models and those they join to, without a change time."""
    return sorted(m for m in related_models(engine, rollup_def) if not engine.catalog.model(m).updated)


def stamps(engine, rollup_def: RollupDef) -> dict[str, str | None]:
    """Per watched model, its table's last load stamp ("" before any; UNKNOWN when nothing stamps it)."""
    found = {}
    loaded = loaded_tables(engine.config)
    warehouse = engine.warehouse
    for model in watched(engine, rollup_def):
        table = engine.catalog.model(model).table
        found[model] = (read_state(warehouse, f"table:{table}") or "") if table in loaded else UNKNOWN
    return found


def moved(stored: dict | None, now: dict[str, str | None]) -> set[str]:
    """Watched models whose rows may have changed since the build that left `stored`."""
    before = (stored or {}).get("loads", {})
    return {m for m, stamp in now.items() if stamp is UNKNOWN or m not in before or before[m] != stamp}
