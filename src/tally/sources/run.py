"""Run one source: read, type and check in DuckDB, then merge into the warehouse in one transaction.

The stages live beside this module: `check` (rows typed and checked into a scratch table), `merge`
(into the warehouse), `rejects` (recorded once), `loads` (the run's result and records).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from contextlib import ExitStack
from typing import Callable

import pyarrow as pa

from tally.errors import SourceError, TallyError
from tally.lazy import LazyModule
from tally.sources import infer, validate
from tally.sources.check import (check_into, count_rows, fill_lines, prepare_exists_checks, refuse_other_types,
                                 warn_skipped_newer)
from tally.sources.config import SourceConfig
from tally.sources.connectors import connector
from tally.sources.connectors.base import ReadContext
from tally.sources.loads import LoadResult, SourceRun, record_failure, state_key
from tally.sources.merge import merge, replaces_table
from tally.sources.progress import Progress, no_progress
from tally.sources.rejects import source_files, with_files
from tally.warehouse.internal import ensure_internal_tables, now, read_state
from tally.warehouse.sqltext import quote_ident

duckdb = LazyModule("duckdb")   # loaded when a load or a query needs it, not with the CLI

log = logging.getLogger("tally.ingest")


def run_source(project, name: str, config: SourceConfig, *, full_refresh: bool = False, dry_run: bool = False,
               progress: Progress | None = None, peek: Callable | None = None) -> LoadResult:
    """Load one source; on failure record it in _tally_loads and return status 'failed'.

    `peek(con, checked, plan, malformed)` sees the checked rows before they are merged (`tally preview`)."""
    warehouse = project.warehouse
    result = LoadResult(source=name, load_id=uuid.uuid4().hex, dry_run=dry_run)
    started, clock = now(), time.perf_counter()
    if not dry_run:
        ensure_internal_tables(warehouse)
    has_state = warehouse.has_table("_tally_state")
    result.watermark_before = read_state(warehouse, state_key(name)) if has_state else None
    run = SourceRun(name, config, result, started, watermark=None if full_refresh else result.watermark_before,
                    full_refresh=full_refresh, dry_run=dry_run, progress=progress or no_progress)
    try:
        _warn_future_watermark(run)
        _load(project, run, peek)
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
        record_failure(warehouse, result, started)
    log.info("ingest source=%s status=%s read=%d loaded=%d rejected=%d skipped=%d seconds=%.2f",
             name, result.status, result.rows_read, result.rows_loaded, result.rows_rejected,
             result.rows_skipped, result.seconds)
    for warning in result.warnings:
        log.warning("ingest source=%s warning=%s", name, warning)
    return result


def _warn_future_watermark(run: SourceRun) -> None:
    """A watermark later than this load's time (kept from before cursors were limited) hides every row
    stamped up to it: say so, and how to load them."""
    config, watermark = run.config, run.watermark
    slack = config.cursor_slack or dt.timedelta(0)
    if watermark is None or not config.cursor:
        return
    try:
        mark = dt.datetime.fromisoformat(watermark)
    except ValueError:
        return   # a numeric cursor: it has no time to be compared with
    mark = mark if mark.tzinfo else mark.replace(tzinfo=dt.timezone.utc)
    if mark > run.started + slack:
        run.result.warnings.append(f"the watermark {watermark} is later than this load's time: rows whose "
                                   f"{config.cursor} is before it are skipped; `tally ingest {run.name} "
                                   "--full-refresh` loads them")


def _previous_load(warehouse, name: str) -> dt.datetime | None:
    """When the source's last successful load started (None before the first)."""
    if not warehouse.has_table("_tally_loads"):
        return None
    loads = warehouse.table("_tally_loads")
    expr = loads.filter([loads.source == name, loads.status == "ok"]).started_at.max()
    value = warehouse.run(warehouse.compile(expr.name("started_at").as_table())).column(0)[0].as_py()
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _load(project, run: SourceRun, peek: Callable | None) -> None:
    """Read the source, check its rows in DuckDB, then (unless a dry run) merge them into the warehouse."""
    warehouse, name = project.warehouse, run.name
    module = connector(run.config.kind)
    options = module.Options.model_validate(run.config.options)
    in_warehouse = warehouse.dialect.local_duckdb
    con = warehouse.cursor() if in_warehouse else duckdb.connect()
    if not in_warehouse:
        con.execute("SET enable_progress_bar = false")
    run.progress(name, None, "reading")
    ctx = ReadContext(root=project.root, name=name, config=run.config, watermark=run.watermark,
                      progress=lambda rows: run.progress(name, None, f"read {rows:,} rows"))
    raw = module.read(options, ctx)
    if in_warehouse:
        _drop_leftovers(con)
    tag = run.result.load_id[:10]
    raw_view, checked = f"__tally_raw_{tag}", f"__tally_checked_{tag}"
    guard = _ReaderGuard()
    budget = ExitStack()   # the load's staging rows stay within the warehouse's load_memory_limit
    budget.enter_context(warehouse.memory_budget("load_memory_limit"))
    try:
        if raw.relation is None and len(raw.arrow.schema) == 0:
            return  # the source had nothing at all to say: an empty, successful load
        relation = raw.relation(con) if raw.relation else con.from_arrow(guard.wrap(raw.arrow))
        prepare_exists_checks(warehouse, run.config, con, in_warehouse)
        plan, rebuild = _check(warehouse, con, run, module, relation, raw_view, checked)
        files = source_files(project.root, run.config)
        malformed = _mark_rows(con, run, raw, plan, raw_view, checked, files)
        if _settle(warehouse, con, run, plan, checked, malformed, peek):
            run.progress(name, None, "merging")
            merge(warehouse, con, run, plan, checked, malformed, rebuild, files)
    except Exception:
        if guard.error is not None:  # the connector failed while DuckDB pulled rows: report its own error
            raise guard.error from None
        raise
    finally:
        budget.close()
        con.execute(f"DROP VIEW IF EXISTS {quote_ident(raw_view)}")
        con.execute(f"DROP VIEW IF EXISTS {quote_ident(raw_view + '_text')}")
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(checked)}")
        if raw.cleanup:
            raw.cleanup(con)
        if not in_warehouse:
            con.close()


def _check(warehouse, con, run: SourceRun, module, relation, raw_view: str, checked: str):
    """The rows read, typed and checked into `checked`: (the plan, whether the table is rebuilt with new types)."""
    config, result = run.config, run.result
    stored = infer.stored_kinds(warehouse, config.table)
    infers = not config.columns and module.CAPABILITIES.text_values
    rebuild = []   # the columns whose stored type this full refresh replaces

    def vet(plan) -> None:
        """A stored column of another type than the rows' is refused; a full refresh rebuilds the table."""
        if config.columns or infers:
            rebuild.extend(refuse_other_types(run.name, config, stored, plan, warehouse.dialect,
                                              run.full_refresh))

    plan = check_into(con, relation, raw_view, checked, config, run.watermark, run.name, run.progress, create=True,
                      limit=_cursor_limit(run), keep=({} if run.full_refresh else stored) if infers else None, vet=vet)
    result.new_columns = list(plan.new_columns)
    if infers:
        result.inferred_types = {column: infer.type_name(kind) for column, kind in plan.kinds}
    return plan, bool(rebuild)


def _cursor_limit(run: SourceRun) -> dt.datetime | None:
    """The latest cursor a row may have (the load's time + tolerance); None: no limit."""
    slack = run.config.cursor_slack
    return run.started + slack if slack is not None else None


def _mark_rows(con, run: SourceRun, raw, plan, raw_view: str, checked: str, files: tuple) -> list[dict]:
    """Rows the reader parsed but could not type are checked as text; repeated keys are rejected, and
    rejects get their file lines. Returns the malformed rows (those no reader could parse), with files."""
    config = run.config
    malformed = raw.malformed(con) if raw.malformed else []
    parsed = None   # rows of the reader's own pass: the rest were re-read as text, with their lines
    if raw.failures:
        malformed, untyped = raw.failures(con)
        if untyped:
            parsed = con.execute(f"SELECT count(*) FROM {quote_ident(checked)}").fetchone()[0]
            check_into(con, raw.as_text(con, untyped), f"{raw_view}_text", checked, config, run.watermark,
                       run.name, run.progress, create=False, limit=_cursor_limit(run), kinds=dict(plan.kinds))
    if parsed is not None:   # repeated keys are ranked by file line: the re-read rows sit among the others
        fill_lines(con, checked, raw, parsed, validate.repeated_rows(config, checked))
    for statement in validate.dedupe_statements(config, checked, validate.typed_json(plan.columns)):
        con.execute(statement)
    if raw.skipped is not None:
        fill_lines(con, checked, raw, parsed, "_tally_rule IS NOT NULL")
    return with_files(malformed, files)


def _settle(warehouse, con, run: SourceRun, plan, checked: str, malformed: list, peek: Callable | None) -> bool:
    """Count what the load does, show it to `peek`, warn of hidden rows; whether to merge (not on a dry run).

    SourceError when every row was rejected and the load would replace the table with nothing."""
    config, result = run.config, run.result
    count_rows(con, checked, result, malformed, config, run.watermark)
    if peek is not None:
        peek(con, checked, plan, malformed)
    if result.rows_skipped and plan.cursor_kind in ("DATE", "TIMESTAMPTZ"):
        warn_skipped_newer(con, checked, config, plan, _previous_load(warehouse, run.name), result)
    if replaces_table(config, run.full_refresh) and result.rows_rejected and not result.rows_loaded:
        # replacing the table with nothing is not a load: keep what it holds, and say why
        raise SourceError(f"every row read was rejected ({result.rows_rejected}), and this load replaces "
                          f"table {config.table!r}: the table was left as it was")
    return not run.dry_run


def _drop_leftovers(con) -> None:
    """Views a killed run of an earlier version left behind (they were not temporary then)."""
    for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                               "AND view_name LIKE '\\_\\_tally\\_raw\\_%' ESCAPE '\\'").fetchall():
        con.execute(f"DROP VIEW IF EXISTS {quote_ident(name)}")


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
