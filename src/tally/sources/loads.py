"""What a run of a source records: its result, the load record, the watermark and the table's stamp."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field

from tally.sources.config import SourceConfig
from tally.sources.progress import Progress, no_progress
from tally.sources.rejects import record_rejects
from tally.warehouse.internal import insert_rows, now, write_state
from tally.warehouse.txn import ident


@dataclass
class LoadResult:
    """What one run of one source did (printed by `tally ingest`, stored in _tally_loads)."""

    source: str
    load_id: str
    status: str = "ok"
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_skipped: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    new_columns: list[str] = field(default_factory=list)
    inferred_types: dict[str, str] = field(default_factory=dict)   # column -> type, for sources without `columns:`
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SourceRun:
    """One run of one source: what every stage of it reads, and the result it fills in."""

    name: str
    config: SourceConfig
    result: LoadResult
    started: dt.datetime
    watermark: str | None = None     # the rows at or before it are skipped (None: every row is read)
    full_refresh: bool = False
    dry_run: bool = False
    progress: Progress = no_progress


def state_key(name: str) -> str:
    return f"source:{name}"


def load_row(result: LoadResult, started, status: str) -> dict:
    """The run's row of _tally_loads."""
    return {"load_id": result.load_id, "source": result.source, "started_at": started, "ended_at": now(),
            "rows_read": result.rows_read, "rows_loaded": result.rows_loaded, "rows_rejected": result.rows_rejected,
            "rows_skipped": result.rows_skipped, "watermark_before": result.watermark_before,
            "watermark_after": result.watermark_after, "status": status, "error": result.error}


def record_failure(warehouse, result: LoadResult, started) -> None:
    with warehouse.transaction() as tx:
        insert_rows(tx, "_tally_loads", [load_row(result, started, "failed")])


def chained(tx, key: str, loaded: str) -> str:
    """"<this load>/<chain>": the same rows as the last load keep the stamp; any other load gives a
    new chain, never an earlier stamp again (A, B, A must not read as unchanged since A)."""
    marker = tx.dialect.placeholder
    row = tx.execute(f"SELECT value FROM {ident('_tally_state').sql(tx.dialect.name)} WHERE "
                     f"{ident('key').sql(tx.dialect.name)} = {marker}", [key]).fetchone()
    previous = row[0] if row else ""
    if previous.split("/")[0] == loaded:
        return previous
    return loaded + "/" + hashlib.sha256(previous.encode()).hexdigest()[:16]


def record_load(tx, run: SourceRun, rejects: list, table: str, stamp: str) -> None:
    """Inside the load's transaction: rejects not yet recorded, the watermark and the load record."""
    result = run.result
    record_rejects(tx, run.name, result.load_id, rejects)
    write_state(tx, state_key(run.name), result.watermark_after)
    if result.rows_loaded:   # rollups over this table see the load (rows may have changed in place)
        write_state(tx, f"table:{table}", chained(tx, f"table:{table}", stamp))
    insert_rows(tx, "_tally_loads", [load_row(result, run.started, "ok")])
