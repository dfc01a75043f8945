"""What a rollup build leaves behind for the next one (`RollupState`), and the kinds of build (`BuildMode`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from enum import Enum

from tally.rollups import loads
from tally.rollups.definition import RollupDef
from tally.warehouse.internal import now, read_state, write_state


class BuildMode(str, Enum):
    """How a build refreshes a rollup (a `str`: results compare and print as the plain word)."""

    full = "full"                  # every period, from all the rows
    incremental = "incremental"    # the periods of the days that changed since the last build
    range = "range"                # the periods touching `--from/--to`, whatever changed
    unchanged = "unchanged"        # nothing the rollup reads moved: no rows written

    def __str__(self) -> str:
        return self.value


# kept for an older state that lacks them: written back only when known (`None` leaves them out)
_OPTIONAL = ("definition", "watermarks", "bounds", "days", "inputs", "loads", "built_at")


@dataclass
class RollupState:
    """The models as a build saw them (stored as JSON under `rollup:<name>` in `_tally_state`).

    Dates are ISO strings as stored: per model, change watermarks, time bounds, row counts per
    local day (`days`) and fingerprints per local day (`inputs`, DuckDB only, see `inputs`).
    """

    definition: str | None = None      # `definition_stamp`: a different one means a full build
    watermarks: dict | None = None     # model -> latest change time seen
    bounds: dict | None = None         # model -> [first, last] time of its rows
    first: str | None = None           # the data's first and last local day (None: no rows)
    last: str | None = None
    days: dict | None = None           # model -> local day -> rows
    inputs: dict | None = None         # model -> local day -> fingerprint
    loads: dict | None = None          # watched model -> load stamp of its table (see `loads`)
    sums_from_days: bool = False       # every stored period equals the sum of its stored days
    built_at: str | None = None

    @classmethod
    def from_json(cls, text: str) -> RollupState:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})   # others (an older version's) are dropped

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({k: v for k, v in data.items() if not (k in _OPTIONAL and v is None)}, sort_keys=True)

    def moved_loads(self, now_stamps: dict[str, str | None]) -> set[str]:
        """Watched models loaded since this state was left (see `loads.moved`)."""
        return loads.moved({"loads": self.loads} if self.loads is not None else {}, now_stamps)

    def but(self, **changes) -> RollupState:
        """A copy with some fields changed."""
        return replace(self, **changes)


def state_key(name: str) -> str:
    return f"rollup:{name}"


def stored_text(warehouse, name: str) -> str | None:
    """The rollup's stored state as JSON text (None before its first build)."""
    return read_state(warehouse, state_key(name))


def load_state(warehouse, rollup_def: RollupDef) -> RollupState | None:
    text = stored_text(warehouse, rollup_def.name)
    return RollupState.from_json(text) if text else None


def put_state(tx, rollup_def: RollupDef, state: RollupState) -> None:
    """Record the state (inside a transaction), stamped with the time of writing."""
    write_state(tx, state_key(rollup_def.name), state.but(built_at=now().isoformat()).to_json())


def save_state_alone(warehouse, rollup_def: RollupDef, state: RollupState) -> None:
    """The state alone: changes were found, none that moves the rollup's rows."""
    with warehouse.transaction() as tx:
        put_state(tx, rollup_def, state)


def definition_stamp(engine, rollup_def: RollupDef, related: set[str] | None = None) -> str:
    """What the stored numbers were built from: the definition and when its lookups were loaded."""
    related = loads.related_models(engine, rollup_def) if related is None else related
    return rollup_def.fingerprint + "/" + lookup_stamp(engine, rollup_def, related)


def lookup_stamp(engine, rollup_def: RollupDef, related: set[str]) -> str:
    """When the joined lookup tables were last loaded (seeds, ingests): a reload means a full build."""
    lookups = sorted(engine.catalog.model(m).table for m in related
                     if m not in rollup_def.models and not engine.catalog.model(m).updated)
    warehouse = engine.warehouse
    if not lookups or not warehouse.has_table("_tally_state"):
        return ""
    return ",".join(f"{t}={read_state(warehouse, f'table:{t}') or ''}" for t in lookups)
