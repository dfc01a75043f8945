"""`tally ledger refresh`: recompute the entities whose rows changed since the last refresh, or all of them.

What changed is found as rollups find it: rows with a change time past the watermark (`updated:`,
directly or through a join: `engine.entities`), and load stamps for models without one (`rollups.loads`:
a moved stamp means a full refresh). A row deleted, moved to another entity, or loaded late with an
old change time shows in the row count: the stored counts plus the recomputed entities' change must
equal the live count, else every entity is recomputed. Every write is one transaction.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine import changes
from tally.engine.entities import change_checks, changed_entities
from tally.ledgers import live, store
from tally.ledgers.definition import LedgerDef, definitions
from tally.ledgers.store import LedgerState
from tally.project.ledgers import ROWS


@dataclass
class LedgerResult:
    ledger: str
    table: str
    mode: str                 # full | incremental | unchanged
    entities: int = 0         # entities recomputed
    rows: int = 0             # entities stored after the refresh
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def refresh(project, names=None, *, full: bool = False) -> list[LedgerResult]:
    """Refresh the named ledgers (all by default); each commits whole or not at all."""
    return [refresh_one(project.warehouse, ldef, full=full) for ldef in definitions(project, names)]


def refresh_one(warehouse, ldef: LedgerDef, *, full: bool = False) -> LedgerResult:
    started = time.perf_counter()
    before = store.load_state(warehouse, ldef)
    engine = ldef.engine
    marks = (before.watermarks if before else None) or {}
    # read before the values: a row changed while they are computed is found again next time
    current = LedgerState(definition=ldef.fingerprint, loads=ldef.load_stamps(),
                          watermarks={owner: changes.max_updated(engine, owner, marks.get(owner))
                                      for owner in sorted({o for _, _, o in change_checks(engine, ldef.model)})})
    fresh = before is None or before.definition != current.definition
    stale_loads = before is not None and (before.loads != current.loads or None in current.loads.values())
    if full or fresh or stale_loads or not warehouse.has_table(ldef.table):
        result = _full(warehouse, ldef, current, fresh)
    else:
        result = _incremental(warehouse, ldef, before, current)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _full(warehouse, ldef: LedgerDef, current: LedgerState, fresh: bool) -> LedgerResult:
    rows = live.values(ldef)
    store.prepare_table(warehouse, ldef, rows.schema, fresh)
    store.forget_lookups(warehouse, ldef)
    current.rows = _count(rows)
    store.write(warehouse, ldef, rows, current)
    return LedgerResult(ldef.name, ldef.table, "full", rows.num_rows, rows.num_rows)


def _incremental(warehouse, ldef: LedgerDef, before: LedgerState, current: LedgerState) -> LedgerResult:
    """The changed entities' rows replaced; a full refresh when the row counts show a change the
    change times don't (a deletion, a row moved to another entity, a late row with an old change time)."""
    changed = changed_entities(ldef.engine, ldef.model, ldef.entity, before.watermarks)
    changed.discard(None)
    if not all(live.listable(v) for v in changed):
        return _full(warehouse, ldef, current, False)
    total = live.total_rows(ldef)
    new = live.values(ldef, changed) if changed else None
    old = store.stored(warehouse, ldef, changed) if changed else None
    if before.rows - _count(old) + _count(new) != total:
        return _full(warehouse, ldef, current, False)
    current.rows = total
    if not changed and current.watermarks == before.watermarks:
        return LedgerResult(ldef.name, ldef.table, "unchanged", 0, _stored_count(warehouse, ldef))
    store.write(warehouse, ldef, new, current, entities=changed)
    return LedgerResult(ldef.name, ldef.table, "incremental", len(changed), _stored_count(warehouse, ldef))


def _count(rows: pa.Table | None) -> int:
    return int(pc.sum(rows[ROWS]).as_py() or 0) if rows is not None and rows.num_rows else 0


def _stored_count(warehouse, ldef: LedgerDef) -> int:
    table = warehouse.table(ldef.table)
    return int(warehouse.run(warehouse.compile(table.count().name("n").as_table())).column(0)[0].as_py())


def after_ingest(project, results) -> list[LedgerResult]:
    """Refresh the ledgers reading a table a committed ingest loaded rows into (the ingest hook)."""
    if not project.config.ledgers:
        return []
    loaded = {project.sources[r.source].table for r in results
              if r.status == "ok" and not r.dry_run and r.rows_loaded and r.source in project.sources}
    if not loaded:
        return []
    chosen = [name for name, ledger in project.config.ledgers.items()
              if _tables(project, ledger.model) & loaded]
    return refresh(project, chosen) if chosen else []


def _tables(project, model: str) -> set[str]:
    """The tables a model reads: its own and those it joins."""
    models = project.config.models
    return {models[model].table} | {models[j.model].table for j in models[model].joins.values() if j.model in models}
