"""Run one source: read, type and check in DuckDB, then merge into the warehouse in one transaction."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import logging
import threading
import time
import uuid
from pathlib import Path
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable

import pyarrow as pa

from tally.errors import SourceError, TallyError
from tally.lazy import LazyModule
from tally.sources import infer, validate
from tally.sources.config import SourceConfig, source_configs  # noqa: F401  (its old home)
from tally.sources.connectors import connector
from tally.sources.connectors.base import ReadContext
from tally.warehouse.internal import ensure_internal_tables, insert_rows, now, read_state, write_state
from tally.warehouse.txn import create_table_sql, ident, merge_sql

duckdb = LazyModule("duckdb")   # loaded when a load or a query needs it, not with the CLI

log = logging.getLogger("tally.ingest")
Progress = Callable[[str, float | None, str], None]     # (source, fraction done or None, message)


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


def state_key(name: str) -> str:
    return f"source:{name}"


def run_source(project, name: str, config: SourceConfig, *, full_refresh: bool = False, dry_run: bool = False,
               progress: Progress | None = None, peek: Callable | None = None) -> LoadResult:
    """Load one source; on failure record it in _tally_loads and return status 'failed'.

    `peek(con, checked, plan, malformed)` sees the checked rows before they are merged (`tally preview`)."""
    warehouse = project.warehouse
    progress = progress or (lambda *args: None)
    result = LoadResult(source=name, load_id=uuid.uuid4().hex, dry_run=dry_run)
    started, clock = now(), time.perf_counter()
    if not dry_run:
        ensure_internal_tables(warehouse)
    has_state = warehouse.has_table("_tally_state")
    result.watermark_before = read_state(warehouse, state_key(name)) if has_state else None
    watermark = None if full_refresh else result.watermark_before
    try:
        _warn_future_watermark(config, watermark, started, result)
        _load(project, name, config, watermark, result, full_refresh, dry_run, progress, started, peek)
    except TallyError as exc:
        result.status, result.error = "failed", exc.message
    except Exception as exc:  # a connector or driver failure: record it, keep other sources running
        log.debug("source %s failed", name, exc_info=True)
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - clock
    if result.status == "failed":  # nothing was committed: say so
        result.rows_read = result.rows_loaded = result.rows_rejected = result.rows_skipped = 0
        result.watermark_after = result.watermark_before
    if result.status == "failed" and not dry_run:
        _record_failure(warehouse, result, started)
    log.info("ingest source=%s status=%s read=%d loaded=%d rejected=%d skipped=%d seconds=%.2f",
             name, result.status, result.rows_read, result.rows_loaded, result.rows_rejected,
             result.rows_skipped, result.seconds)
    for warning in result.warnings:
        log.warning("ingest source=%s warning=%s", name, warning)
    return result


def _warn_future_watermark(config: SourceConfig, watermark: str | None, started: dt.datetime,
                           result: LoadResult) -> None:
    """A watermark later than this load's time (kept from before cursors were limited) hides every row
    stamped up to it: say so, and how to load them."""
    slack = config.cursor_slack or dt.timedelta(0)
    if watermark is None or not config.cursor:
        return
    try:
        mark = dt.datetime.fromisoformat(watermark)
    except ValueError:
        return   # a numeric cursor: it has no time to be compared with
    mark = mark if mark.tzinfo else mark.replace(tzinfo=dt.timezone.utc)
    if mark > started + slack:
        result.warnings.append(f"the watermark {watermark} is later than this load's time: rows whose {config.cursor} "
                               f"is before it are skipped; `tally ingest {result.source} --full-refresh` loads them")


def _previous_load(warehouse, name: str) -> dt.datetime | None:
    """When the source's last successful load started (None before the first)."""
    if not warehouse.has_table("_tally_loads"):
        return None
    loads = warehouse.table("_tally_loads")
    expr = loads.filter([loads.source == name, loads.status == "ok"]).started_at.max()
    value = warehouse.run(warehouse.compile(expr.name("started_at").as_table())).column(0)[0].as_py()
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _record_failure(warehouse, result: LoadResult, started) -> None:
    with warehouse.transaction() as tx:
        insert_rows(tx, "_tally_loads", [_load_row(result, started, "failed")])


def _load_row(result: LoadResult, started, status: str) -> dict:
    return {"load_id": result.load_id, "source": result.source, "started_at": started, "ended_at": now(),
            "rows_read": result.rows_read, "rows_loaded": result.rows_loaded, "rows_rejected": result.rows_rejected,
            "rows_skipped": result.rows_skipped, "watermark_before": result.watermark_before,
            "watermark_after": result.watermark_after, "status": status, "error": result.error}


@contextmanager
def _session_timezone(con, zone: str):
    """Naive timestamps in the source are read in its data timezone, then kept as UTC instants."""
    con.execute(f"SET TimeZone = {validate.lit(zone)}")
    try:
        yield
    finally:
        con.execute("SET TimeZone = 'UTC'")


def _load(project, name, config, watermark, result, full_refresh, dry_run, progress, started, peek=None) -> None:
    warehouse = project.warehouse
    module = connector(config.kind)
    options = module.Options.model_validate(config.options)
    in_warehouse = warehouse.dialect.local_duckdb
    con = warehouse._cursor() if in_warehouse else duckdb.connect()
    if not in_warehouse:
        con.execute("SET enable_progress_bar = false")
    progress(name, None, "reading")
    ctx = ReadContext(root=project.root, name=name, config=config, watermark=watermark,
                      progress=lambda rows: progress(name, None, f"read {rows:,} rows"))
    raw = module.read(options, ctx)
    if in_warehouse:
        _drop_leftovers(con)
    tag = result.load_id[:10]
    raw_view, checked = f"__tally_raw_{tag}", f"__tally_checked_{tag}"
    guard = _ReaderGuard()
    budget = ExitStack()   # the load's staging rows stay within the warehouse's load_memory_limit
    budget.enter_context(warehouse.memory_budget("load_memory_limit"))
    try:
        if raw.relation is None and len(raw.arrow.schema) == 0:
            return  # the source had nothing at all to say: an empty, successful load
        relation = raw.relation(con) if raw.relation else con.from_arrow(guard.wrap(raw.arrow))
        _prepare_exists_checks(warehouse, config, con, in_warehouse)
        slack = config.cursor_slack
        limit = started + slack if slack is not None else None
        stored = infer.stored_kinds(warehouse, config.table)
        infers = not config.columns and module.CAPABILITIES.text_values
        rebuild = []   # the columns whose stored type this full refresh replaces

        def vet(plan) -> None:
            """A stored column of another type than the rows' is refused; a full refresh rebuilds the table."""
            if config.columns or infers:
                rebuild.extend(_refuse_other_types(name, config, stored, plan, warehouse.dialect.name, full_refresh))

        plan = _check_into(con, relation, raw_view, checked, config, watermark, name, progress, create=True,
                           limit=limit, keep=({} if full_refresh else stored) if infers else None, vet=vet)
        result.new_columns = list(plan.new_columns)
        if infers:
            result.inferred_types = {column: infer.type_name(kind) for column, kind in plan.kinds}
        files = source_files(project.root, config)
        malformed = raw.malformed(con) if raw.malformed else []
        parsed = None   # rows of the reader's own pass: the rest were re-read as text, with their lines
        if raw.failures:
            malformed, untyped = raw.failures(con)
            if untyped:
                parsed = con.execute(f"SELECT count(*) FROM {validate.q(checked)}").fetchone()[0]
                _check_into(con, raw.as_text(con, untyped), f"{raw_view}_text", checked, config, watermark,
                            name, progress, create=False, limit=limit, kinds=dict(plan.kinds))
        if parsed is not None:   # repeated keys are ranked by file line: the re-read rows sit among the others
            _fill_lines(con, checked, raw, parsed, validate.repeated_rows(config, checked))
        for statement in validate.dedupe_statements(config, checked, validate.typed_json(plan.columns)):
            con.execute(statement)
        if raw.skipped is not None:
            _fill_lines(con, checked, raw, parsed, "_tally_rule IS NOT NULL")
        malformed = with_files(malformed, files)
        _count(con, checked, result, malformed, config, watermark)
        if peek is not None:
            peek(con, checked, plan, malformed)
        if result.rows_skipped and plan.cursor_kind in ("DATE", "TIMESTAMPTZ"):
            _warn_skipped_newer(con, checked, config, plan, _previous_load(warehouse, name), result)
        if _replaces_table(config, full_refresh) and result.rows_rejected and not result.rows_loaded:
            # replacing the table with nothing is not a load: keep what it holds, and say why
            raise SourceError(f"every row read was rejected ({result.rows_rejected}), and this load replaces "
                              f"table {config.table!r}: the table was left as it was")
        if dry_run:
            return
        progress(name, None, "merging")
        if in_warehouse:
            _merge_in_duckdb(warehouse, con, name, config, plan, checked, malformed, result, full_refresh, started,
                             bool(rebuild), files)
        else:
            _merge_via_arrow(warehouse, con, name, config, plan, checked, malformed, result, full_refresh, started,
                             bool(rebuild), files)
    except Exception:
        if guard.error is not None:  # the connector failed while DuckDB pulled rows: report its own error
            raise guard.error from None
        raise
    finally:
        budget.close()
        con.execute(f"DROP VIEW IF EXISTS {validate.q(raw_view)}")
        con.execute(f"DROP VIEW IF EXISTS {validate.q(raw_view + '_text')}")
        con.execute(f"DROP TABLE IF EXISTS {validate.q(checked)}")
        if raw.cleanup:
            raw.cleanup(con)
        if not in_warehouse:
            con.close()


def _check_into(con, relation, view: str, checked: str, config, watermark, name, progress, *, create: bool,
                limit: dt.datetime | None = None, kinds: dict[str, str] | None = None,
                keep: dict[str, str] | None = None, vet: Callable | None = None):
    """Type and check a relation's rows into the `checked` table (created, or appended to by name).

    `kinds` types a source without `columns:` (the first pass's, for rows re-read as text); with
    `keep` (the stored types it keeps) they are inferred from the rows. `vet(plan)` may refuse the
    plan before any row is checked."""
    con.register(view, relation)   # a temporary view: a run killed here leaves nothing in the warehouse
    described = con.execute(f"DESCRIBE {validate.q(view)}").fetchall()
    raw_types = {row[0]: row[1] for row in described}
    if keep is not None:
        with _session_timezone(con, config.data_timezone):
            kinds = infer.infer(con, config, view, raw_types, keep)
    plan = validate.build(config, validate.q(view), [row[0] for row in described], raw_types, watermark, limit,
                          kinds)
    if vet is not None:
        vet(plan)
    with _session_timezone(con, config.data_timezone), _track_progress(con, name, progress):
        if create:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {validate.q(checked)} AS {plan.sql}")
        else:
            con.execute(f"INSERT INTO {validate.q(checked)} BY NAME {plan.sql}")
    return plan


def _refuse_other_types(name: str, config, stored: dict[str, str], plan, dialect: str,
                        full_refresh: bool) -> list[str]:
    """The loaded columns the table stores as another type: a SourceError, unless this load rebuilds it."""
    wrong = infer.mismatches(stored, dict(plan.kinds), dialect)
    if wrong and not full_refresh:
        raise SourceError(f"table {config.table!r} stores column(s) as another type than this load's: "
                          f"{'; '.join(wrong)}; run `tally ingest {name} --full-refresh` to rebuild the table "
                          "with the declared types (nothing was loaded)")
    return wrong


def _fill_lines(con, checked: str, raw, parsed: int | None, needed: str) -> None:
    """Set `_tally_row` to the file line of the reader's rows that match `needed` (SQL over the checked rows).

    The reader's rows of a file keep the file's order (rowids of one file are consecutive), and the
    lines it left out (malformed, or re-read as text) are known: the k-th row of a file sits at
    first_line + k + the number of lines left out before it. Only the few rows that need a line get
    one (rejects, repeated keys): a load pays nothing for the others."""
    q = validate.q
    first = int(raw.first_line)
    own, own_m = ("TRUE", "TRUE") if parsed is None else (f"rowid < {int(parsed)}", f"m.rowid < {int(parsed)}")
    gaps = (f"SELECT file, line - {first} - (row_number() OVER (PARTITION BY file ORDER BY line) - 1) AS a "
            f"FROM ({raw.skipped(con)})")
    lines = (f"SELECT m.rowid AS id, {first} + (m.rowid - s.start) + (SELECT count(*) FROM ({gaps}) AS g "
             f"WHERE g.file = m._tally_file AND g.a <= m.rowid - s.start) AS line "
             f"FROM {q(checked)} AS m JOIN (SELECT _tally_file AS file, min(rowid) AS start FROM {q(checked)} "
             f"WHERE {own} GROUP BY ALL) AS s ON m._tally_file = s.file "
             f"WHERE {own_m} AND m._tally_row IS NULL "
             f"AND m.rowid IN (SELECT rowid FROM {q(checked)} WHERE {needed})")
    con.execute(f"UPDATE {q(checked)} AS c SET _tally_row = x.line FROM ({lines}) AS x WHERE c.rowid = x.id")


def _drop_leftovers(con) -> None:
    """Views a killed run of an earlier version left behind (they were not temporary then)."""
    for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                               "AND view_name LIKE '\\_\\_tally\\_raw\\_%' ESCAPE '\\'").fetchall():
        con.execute(f"DROP VIEW IF EXISTS {validate.q(name)}")


class _ReaderGuard:
    """Remembers an error a connector raised inside DuckDB's pull of its Arrow stream."""

    def __init__(self):
        self.error: Exception | None = None

    def wrap(self, data):
        if not isinstance(data, pa.RecordBatchReader):
            return data

        def batches():
            try:
                yield from data
            except Exception as exc:
                self.error = exc
                raise

        return pa.RecordBatchReader.from_batches(data.schema, batches())


@contextmanager
def _track_progress(con, name: str, progress: Progress):
    """Report DuckDB's own progress of the long statement from a side thread."""
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            try:
                fraction = con.query_progress()
            except Exception:  # the statement may just have finished
                return
            if fraction is not None and fraction >= 0:
                progress(name, min(fraction / 100.0, 1.0), "checking")

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _prepare_exists_checks(warehouse, config: SourceConfig, con, in_warehouse: bool) -> None:
    """Make the looked-up keys of `exists_in` checks visible to the checking SQL."""
    for check in config.checks:
        for _, target in (check.exists_in or {}).items():
            table, key = target.split(".")
            view = validate.exists_name(table, key)
            if in_warehouse:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {validate.q(view)} AS "
                            f"SELECT DISTINCT {validate.q(key)} FROM {validate.q(table)}")
            else:
                source = warehouse.table(table)
                keys = warehouse.run(warehouse.compile(source.select(key).distinct()))
                con.register(view, keys)


def _count(con, checked: str, result: LoadResult, malformed: list, config: SourceConfig, watermark) -> None:
    q = validate.q
    read, rejected, skipped, top = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE _tally_rule IS NOT NULL AND NOT _tally_skip), "
        "count(*) FILTER (WHERE _tally_skip), "
        + (f"max({q(config.cursor)}) FILTER (WHERE _tally_rule IS NULL AND NOT _tally_skip)" if config.cursor
           else "NULL")
        + f" FROM {q(checked)}").fetchone()
    result.rows_read = read - skipped + len(malformed)
    result.rows_skipped = skipped
    result.rows_rejected = rejected + len(malformed)
    result.rows_loaded = read - rejected - skipped
    result.watermark_after = _later(watermark, top)


def _warn_skipped_newer(con, checked: str, config: SourceConfig, plan, previous: dt.datetime | None,
                        result: LoadResult) -> None:
    """Skipped rows (at or before the watermark) stamped after the previous load began were not there to
    be loaded then: they are new rows the watermark hides."""
    if previous is None:
        return
    with _session_timezone(con, config.data_timezone):
        newer = con.execute(f"SELECT count(*) FROM {validate.q(checked)} WHERE _tally_skip AND "
                            f"{validate.q(config.cursor)} > {validate.instant_as(plan.cursor_kind, previous)}"
                            ).fetchone()[0]
    if newer:
        result.warnings.append(f"{newer:,} skipped row(s) have a {config.cursor} later than the previous load "
                               f"({previous.isoformat(timespec='seconds')}) but not later than the watermark "
                               f"{result.watermark_before}: they were never loaded; `tally ingest {result.source} "
                               "--full-refresh` loads them")


def _later(watermark: str | None, top) -> str | None:
    if top is None:
        return watermark
    text = top.isoformat() if hasattr(top, "isoformat") else str(top)
    return text if watermark is None or top_greater(text, watermark, top) else watermark


def top_greater(text: str, watermark: str, top) -> bool:
    if isinstance(top, (int, float, decimal.Decimal)):
        return decimal.Decimal(text) > decimal.Decimal(watermark)
    return text > watermark  # ISO timestamps and dates sort as text


def source_files(root, config: SourceConfig) -> tuple[str, ...]:
    """The files a file source reads (relative to the project when inside it), in its readers' file order."""
    pattern = config.options.get("path")
    if not isinstance(pattern, str):
        return ()
    from tally.sources.connectors.csv_files import files

    root = Path(root).resolve()
    found = (p.resolve() for p in files(root, pattern))
    return tuple(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in found)


def with_files(rows: list[dict], files: tuple[str, ...]) -> list[dict]:
    """Reject rows with their `file`: from a reader's file index, a path, or the source's only file."""
    only = files[0] if len(files) == 1 else None
    out = []
    for row in rows:
        row = dict(row)
        index, path = row.pop("file_index", None), row.get("file")
        if index is not None and 0 <= index < len(files):
            row["file"] = files[index]
        elif path is not None:
            row["file"] = next((f for f in files if Path(path).resolve().as_posix().endswith("/" + f)), path)
        else:
            row["file"] = only
        out.append(row)
    return out


def _replaces_table(config: SourceConfig, full_refresh: bool) -> bool:
    """A full refresh, or a source with neither key nor cursor, replaces its table; others merge or append."""
    return full_refresh or (not config.primary_key and not config.cursor)


def _stamp(con, plan, checked: str, config: SourceConfig, full_refresh: bool) -> str:
    """What the load wrote, as text: its mode, row count and the sum of its rows' hashes. Loading the
    same rows again leaves the table (and so this stamp) as it was: a rerun changes nothing."""
    cols = ", ".join(validate.q(c) for c in plan.columns)
    count, digest = con.execute(f"SELECT count(*), CAST(sum(hash({cols})) AS VARCHAR) "
                                f"FROM ({_stage_select(plan, checked)})").fetchone()
    return f"{'replace' if _replaces_table(config, full_refresh) else 'merge'}:{count}:{digest or 0}"


def _chained(tx, key: str, loaded: str) -> str:
    """"<this load>/<chain>": the same rows as the last load keep the stamp; any other load gives a
    new chain, never an earlier stamp again (A, B, A must not read as unchanged since A)."""
    marker = tx.dialect.placeholder
    row = tx.execute(f"SELECT value FROM {ident('_tally_state').sql(tx.dialect.name)} WHERE "
                     f"{ident('key').sql(tx.dialect.name)} = {marker}", [key]).fetchone()
    previous = row[0] if row else ""
    if previous.split("/")[0] == loaded:
        return previous
    return loaded + "/" + hashlib.sha256(previous.encode()).hexdigest()[:16]


def _stage_select(plan, checked: str) -> str:
    cols = ", ".join(validate.q(c) for c in plan.columns)
    return f"SELECT {cols} FROM {validate.q(checked)} WHERE _tally_rule IS NULL AND NOT _tally_skip"


def _merge_in_duckdb(warehouse, con, name, config, plan, checked, malformed, result, full_refresh, started,
                     rebuild: bool = False, files: tuple = ()) -> None:
    q = validate.q
    target = config.table
    stage = f"__tally_stage_{result.load_id[:10]}"
    stamp = _stamp(con, plan, checked, config, full_refresh)
    with warehouse.transaction() as tx:
        tx.execute(f"CREATE OR REPLACE TEMP VIEW {q(stage)} AS {_stage_select(plan, checked)}")
        if rebuild:   # the table is made again with the rows' types, in this transaction
            tx.execute(f"DROP TABLE IF EXISTS {q(target)}")
        tx.execute(f"CREATE TABLE IF NOT EXISTS {q(target)} AS SELECT * FROM {q(stage)} LIMIT 0")
        existing = {row[0] for row in tx.execute(f"DESCRIBE {q(target)}").fetchall()}
        for column in plan.columns:
            if column not in existing:
                kind = tx.execute(f"SELECT typeof({q(column)}) FROM {q(checked)} LIMIT 1").fetchone()
                tx.execute(f"ALTER TABLE {q(target)} ADD COLUMN {q(column)} {kind[0] if kind else 'VARCHAR'}")
        if _replaces_table(config, full_refresh):
            tx.execute(f"DELETE FROM {q(target)}")
        for statement in merge_sql(target, stage, [] if full_refresh else config.primary_key, plan.columns,
                                   "duckdb"):
            tx.execute(statement)
        # a row's file: its reader's file index into the source's files (the only one when it reads one)
        tx.execute(f"INSERT INTO {q('_tally_rejects')} (load_id, source, row_number, raw, rule, rejected_at, file) "
                   f"SELECT ?, ?, COALESCE(_tally_row, rowid + 1), _tally_raw, _tally_rule, ?, "
                   f"COALESCE(list_extract(?::VARCHAR[], CAST(_tally_file AS BIGINT) + 1), ?) "
                   f"FROM {q(checked)} AS c WHERE _tally_rule IS NOT NULL AND NOT _tally_skip AND NOT EXISTS "
                   f"(SELECT 1 FROM {q('_tally_rejects')} AS x WHERE x.source = ? AND x.raw = c._tally_raw "
                   f"AND x.rule = c._tally_rule)",
                   [result.load_id, name, now(), list(files), files[0] if len(files) == 1 else None, name])
        _finish(tx, name, malformed, result, started, target, stamp)
        tx.execute(f"DROP VIEW IF EXISTS {q(stage)}")
    warehouse.forget(target)


def _merge_via_arrow(warehouse, con, name, config, plan, checked, malformed, result, full_refresh, started,
                     rebuild: bool = False, files: tuple = ()) -> None:
    q = validate.q
    good = con.execute(_stage_select(plan, checked)).to_arrow_table()
    stamp = _stamp(con, plan, checked, config, full_refresh)
    rejects = with_files(con.execute(
        f"SELECT COALESCE(_tally_row, rowid + 1) AS row_number, _tally_raw AS raw, _tally_rule AS rule, "
        f"_tally_file AS file_index FROM {q(checked)} WHERE _tally_rule IS NOT NULL AND NOT _tally_skip"
    ).to_arrow_table().to_pylist(), files)
    target, dialect = config.table, warehouse.dialect
    stage = f"tally_stage_{result.load_id[:10]}"
    storable = warehouse._storable(good.schema.empty_table()).schema
    if rebuild and not dialect.transactional_ddl:
        _rebuild_by_rename(warehouse, name, config, plan, good, malformed + rejects, result, started,
                           stamp)
        return
    if not dialect.transactional_ddl:
        warehouse.ensure_table(target, good.schema)
    if not rebuild:
        warehouse.add_missing_columns(target, good.schema)
    with warehouse.transaction() as tx:
        if rebuild:   # the table is made again with the rows' types, in this transaction
            tx.execute(f"DROP TABLE IF EXISTS {ident(target).sql(dialect.name)}")
        if dialect.transactional_ddl:
            tx.execute(create_table_sql(target, storable, dialect.name, collation=dialect.table_collation))
        tx.execute(create_table_sql(stage, storable, dialect.name, temporary=True))
        tx.insert_arrow(stage, good)
        if _replaces_table(config, full_refresh):
            tx.execute(f"DELETE FROM {ident(target).sql(dialect.name)}")
        for statement in merge_sql(target, stage, [] if full_refresh else config.primary_key, plan.columns,
                                   dialect.name):
            tx.execute(statement)
        _finish(tx, name, malformed + rejects, result, started, target, stamp)
        tx.execute(f"DROP TABLE {ident(stage).sql(dialect.name)}")
    warehouse.forget(target)


def _rebuild_by_rename(warehouse, name, config, plan, good: pa.Table, rejects: list, result, started,
                       stamp) -> None:
    """A full refresh that changes column types where DDL commits by itself (MySQL): the rows fill a new
    table out of sight, and one RENAME TABLE swaps it in, so readers see the old table or the new one,
    never a half-written one. A failure before the swap leaves the old table as it was."""
    target, dialect = config.table, warehouse.dialect.name
    tag = result.load_id[:10]
    new, old, stage = f"__tally_new_{tag}", f"__tally_old_{tag}", f"tally_stage_{tag}"
    storable = warehouse._storable(good.schema.empty_table()).schema
    warehouse.ensure_table(new, good.schema)
    try:
        with warehouse.transaction() as tx:
            tx.execute(create_table_sql(stage, storable, dialect, temporary=True))
            tx.insert_arrow(stage, good)
            for statement in merge_sql(new, stage, [], plan.columns, dialect):
                tx.execute(statement)
            tx.execute(f"DROP TABLE {ident(stage).sql(dialect)}")
        warehouse.execute_sql(f"RENAME TABLE {ident(target).sql(dialect)} TO {ident(old).sql(dialect)}, "
                              f"{ident(new).sql(dialect)} TO {ident(target).sql(dialect)}")
    except BaseException:
        warehouse.drop_table(new)
        raise
    warehouse.forget(target)
    # after the swap: a run killed here leaves the new rows without their load record, and the
    # watermark where it was (the next load reads from there again)
    with warehouse.transaction() as tx:
        _finish(tx, name, rejects, result, started, target, stamp)
    warehouse.drop_table(old)


def _unrecorded(tx, name: str, rows: list[dict]) -> list[dict]:
    """Rejects not already stored for this source: re-reading the same bad row records it once.

    Counted as a multiset of (raw, rule): two identical bad lines of one file are two rejects (as
    `rows_rejected` counts them), and reading that file again records neither a second time."""
    marker = tx.dialect.placeholder
    table = ident("_tally_rejects").sql(tx.dialect.name)
    stored: Counter = Counter()
    raws = list(dict.fromkeys(row["raw"] for row in rows))
    for start in range(0, len(raws), 500):
        chunk = raws[start:start + 500]
        sql = (f"SELECT raw, rule FROM {table} WHERE source = {marker} "
               f"AND raw IN ({', '.join([marker] * len(chunk))})")
        stored.update(tuple(r) for r in tx.execute(sql, [name, *chunk]).fetchall())
    fresh = []
    for row in rows:
        key = (row["raw"], row["rule"])
        if stored[key]:
            stored[key] -= 1
        else:
            fresh.append(row)
    return fresh


def _finish(tx, name: str, rejects: list, result: LoadResult, started, table: str, loaded: str) -> None:
    """Inside the load's transaction: rejects not yet recorded, the watermark and the load record."""
    rejects = _unrecorded(tx, name, rejects) if rejects else []
    if rejects:
        stamp = now()
        insert_rows(tx, "_tally_rejects", [{"load_id": result.load_id, "source": name, "rejected_at": stamp, **row}
                                           for row in rejects])
    write_state(tx, state_key(name), result.watermark_after)
    if result.rows_loaded:   # rollups over this table see the load (rows may have changed in place)
        write_state(tx, f"table:{table}", _chained(tx, f"table:{table}", loaded))
    insert_rows(tx, "_tally_loads", [_load_row(result, started, "ok")])
