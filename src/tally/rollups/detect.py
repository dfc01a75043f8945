"""Change detection: what the models look like now, and which local days changed since the last build."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from tally.engine import changes
from tally.rollups import inputs, loads
from tally.rollups.definition import RollupDef
from tally.rollups.state import RollupState, definition_stamp


class RunScans:
    """Model facts read once per build run and shared by its rollups: a model's time bounds, day
    counts, changed days and fingerprints are the same for every rollup reading it (in one zone)."""

    def __init__(self, rollups: list[RollupDef] = ()):
        self.rollups = list(rollups)          # every rollup of the run (fingerprints are read for all at once)
        self.found: dict = {}                 # (what, model, ...) -> the answer
        self.day_summed: dict = {}            # see `compute.day_summed`

    def once(self, key, compute):
        if key not in self.found:
            self.found[key] = compute()
        return self.found[key]

    def bounds(self, model: str, default=None):
        """The model's time bounds as read by `snapshot` (`default` before)."""
        return self.found.get(("bounds", model), default)


def snapshot(engine, rollup_def: RollupDef, scans: RunScans, stored: RollupState | None = None) -> RollupState:
    """What the models look like now: change watermarks and the data's span (rows per local day
    come with the mode: `read_all_days`, or `changed_days` reading just the changed days). What the
    last build saw (`stored`) lets both be read from the rows beyond it."""
    known = (stored.bounds if stored else None) or {}
    marks = (stored.watermarks if stored else None) or {}
    found = {m: scans.once(("bounds", m), lambda m=m: changes.bounds(engine, m, known.get(m)))
             for m in sorted(rollup_def.models)}
    spans = [s for s in found.values() if s]
    zone = ZoneInfo(rollup_def.zone)
    first = min(s[0] for s in spans).astimezone(zone).date() if spans else None
    last = max(s[1] for s in spans).astimezone(zone).date() if spans else None
    related = loads.related_models(engine, rollup_def)
    return RollupState(
        definition=definition_stamp(engine, rollup_def, related),
        loads=loads.stamps(engine, rollup_def),
        watermarks={m: scans.once(("updated", m), lambda m=m: changes.max_updated(engine, m, marks.get(m)))
                    for m in sorted(related)},
        bounds={m: [s[0].isoformat(), s[1].isoformat()] for m, s in found.items() if s},
        first=first.isoformat() if first else None,
        last=last.isoformat() if last else None,
    )


def read_all_days(engine, rollup_def: RollupDef, current: RollupState, scans: RunScans) -> None:
    """Every local day's row counts into `current` (a full build)."""
    current.days = {m: scans.once(("days", m, rollup_def.zone),
                                  lambda m=m: changes.day_counts(engine, m, rollup_def.zone, scans.found[("bounds", m)]))
                    for m in sorted(rollup_def.models)}


def changed_days(engine, rollup_def: RollupDef, stored: RollupState, current: RollupState,
                 scans: RunScans) -> set[dt.date]:
    """Days whose rows changed (by change time, directly or through joins) or whose row count moved.
    Puts the row counts as of now in `current`: those of the changed days when the counts of the
    rest show no deletion (see `changes.days_now`), else every day's.

    Rollups of one run built from the same state share the scan of each model (`scans`).
    """
    days: set[str] = set()
    watermarks = stored.watermarks or {}
    current.days = {}
    for model in sorted(rollup_def.models):
        mark = json.dumps(watermarks, sort_keys=True)
        found = scans.once(("changed", model, rollup_def.zone, mark),
                           lambda: changes.changed_days(engine, model, rollup_def.zone, watermarks,
                                                        scans.bounds(model, False)))
        before = (stored.days or {}).get(model, {})
        after = None
        if watermarks.get(model):   # every row changed since is in a `found` day
            after = scans.once(("days", model, rollup_def.zone, mark, json.dumps(before, sort_keys=True)),
                               lambda: changes.days_now(engine, model, rollup_def.zone, scans.bounds(model), before, found))
        if after is None:
            after = scans.once(("days", model, rollup_def.zone),
                               lambda: changes.day_counts(engine, model, rollup_def.zone, scans.found[("bounds", model)]))
        current.days[model] = after
        days |= found | {d for d in set(before) | set(after) if before.get(d) != after.get(d)}
    return {dt.date.fromisoformat(d) for d in days}


def fingerprints_comparable(engine, rollup_def: RollupDef, stored: RollupState, reloaded: set[str]) -> bool:
    """Whether the days a load changed in place can be found by fingerprint (else: a full build)."""
    return (inputs.supported(engine.warehouse) and stored.inputs is not None
            and reloaded <= rollup_def.models)   # a joined model's fingerprints are its rows' keys, not its values


def input_changes(engine, rollup_def: RollupDef, stored: RollupState, current: RollupState, flagged: set[dt.date],
                  scans: RunScans, reloaded: set[str] = frozenset()) -> set[dt.date]:
    """The flagged days whose fingerprint of what the rollup reads moved (see `inputs`); all of
    them where fingerprints aren't kept. Every day of a `reloaded` model (loaded since, without a
    change time: see `loads`) is compared. Puts the fingerprints as of now in `current`."""
    if not inputs.supported(engine.warehouse):
        return flagged
    before = stored.inputs
    if before is None:   # none kept yet (built by an older version): from now on
        read_all_inputs(engine, rollup_def, current, scans)
        return flagged
    if not flagged and not reloaded:
        current.inputs = before
        return flagged
    days = sorted(flagged)
    isos = {d.isoformat() for d in days}
    now, changed = {}, set()
    for m in sorted(rollup_def.models):
        old = before.get(m, {})
        if m in reloaded:   # a row may have changed in place on any day
            now[m] = _fingerprints(engine, rollup_def, m, None, scans)
            changed |= {d for d in set(old) | set(now[m]) if old.get(d) != now[m].get(d)}
        else:
            found = _fingerprints(engine, rollup_def, m, days, scans)
            now[m] = {**{d: v for d, v in old.items() if d not in isos}, **found}
            changed |= {d for d in isos if old.get(d) != found.get(d)}
    current.inputs = now
    return {dt.date.fromisoformat(d) for d in changed}


def read_all_inputs(engine, rollup_def: RollupDef, current: RollupState, scans: RunScans) -> None:
    """Every day's fingerprints into `current` (a full build; or the first build that keeps them)."""
    if inputs.supported(engine.warehouse):
        current.inputs = {m: _fingerprints(engine, rollup_def, m, None, scans) for m in sorted(rollup_def.models)}


def _fingerprints(engine, rollup_def: RollupDef, model: str, days: list[dt.date] | None, scans: RunScans) -> dict[str, str]:
    """The model's fingerprints for `rollup_def` (see `inputs`), read in one pass with those of the run's
    other rollups in the same zone that read the model (each would read the same days)."""
    key = ("inputs", model, rollup_def.zone, None if days is None else tuple(days))
    done = scans.found.get(key, {})
    if rollup_def.name not in done:
        peers = [r for r in scans.rollups if r.zone == rollup_def.zone and model in r.models
                 and r.name != rollup_def.name and r.name not in done]
        found = inputs.fingerprints(engine, [rollup_def, *peers], model, scans.bounds(model), days)
        scans.found[key] = {**done, **found}
    return scans.found[key][rollup_def.name]
