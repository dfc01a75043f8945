"""Tables or SELECT queries in PostgreSQL, MySQL/MariaDB or SQLite, read through Ibis in batches past the watermark.

The watermark is pushed to the source as `cursor > watermark OR cursor IS NULL`: the rows the
pipeline keeps (it skips rows at or before the watermark and loads rows without a cursor value),
so pushing it only saves reading. `>=` would re-read rows at the watermark only for the pipeline to
skip them: a row committed later with a cursor value at or below the watermark is missed either
way, so the cursor should be set when a row is committed, not when its transaction began.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from datetime import datetime, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import sqlglot
import sqlglot.expressions as sge
from pydantic import Field, field_validator, model_validator

from tally.errors import SourceError, WarehouseError
from tally.lazy import LazyModule
from tally.sources.config import SourceConfig
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext
from tally.redaction import redact_text
from tally.warehouse.connect import duckdb_path, open_backend, redact, url_scheme
from tally.warehouse.types import arrow_type

ibis = LazyModule("ibis")   # validating a source's options must not load Ibis
CAPABILITIES = Capabilities(pushes_cursor=True, text_values=False)

# URL scheme -> Ibis backend and sqlglot dialect
BACKENDS = {"postgres": "postgres", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql",
            "sqlite": "sqlite"}
# The session refuses writes, whatever the SELECT calls. SQLite files are opened read-only instead.
READ_ONLY = {"postgres": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
             "mysql": "SET SESSION TRANSACTION READ ONLY"}
# Ibis describes a `query` on PostgreSQL through a temporary view (creating it needs write access but runs
# nothing), on MySQL by running it with LIMIT 0: the session turns read-only after, resp. before, that
DESCRIBES_BY_VIEW = frozenset({"postgres"})
# Backends whose values follow the row, not the column type (SQLite): read as text when `columns` are
# declared, so a bad value becomes a rejected row rather than a failed read
TEXT_READ = frozenset({"sqlite"})
# Statements a `query` may not contain anywhere (data-modifying CTEs, SELECT INTO, FOR UPDATE, ...)
WRITES = (sge.Insert, sge.Update, sge.Delete, sge.Merge, sge.Create, sge.Drop, sge.Alter, sge.Command,
          sge.Into, sge.Lock, sge.Copy, sge.TruncateTable, sge.Transaction, sge.Commit, sge.Set, sge.Grant,
          sge.Revoke, sge.Analyze, sge.Execute, sge.Pragma, sge.Use)
# Declared cursor types and source column types whose order agree, so the pushed filter is safe
_FAMILIES = {"numeric": ("is_numeric",), "temporal": ("is_timestamp", "is_date"), "string": ("is_string",)}

log = logging.getLogger("tally.ingest.sql")


class Options(BaseOptions):
    url: str = Field(repr=False)            # may carry a password: never shown
    source_table: str | None = None         # `name` or `schema.name`; default: the source's `table`
    query: str | None = None                # one SELECT, run by the source database
    batch_size: int = Field(50_000, gt=0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        backend_of(value)
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> Options:
        if self.source_table is not None and self.query is not None:
            raise ValueError("give `source_table` or `query` (one SELECT), not both")
        if self.query is not None:
            single_select(self.query, backend_of(self.url))
        return self


def backend_of(url: str) -> str:
    """The Ibis backend for a source URL, or ValueError naming the schemes."""
    scheme = url_scheme(url)
    if scheme not in BACKENDS:
        raise ValueError(f"url must start with one of {', '.join(f'{s}://' for s in BACKENDS)}, "
                         f"not {redact(url)[:30]!r}")
    return BACKENDS[scheme]


def single_select(query: str, dialect: str) -> sge.Query:
    """The parsed query if it is one SELECT (or UNION of SELECTs) that writes nothing; else ValueError."""
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise ValueError(f"query is not valid SQL: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or not isinstance(statements[0], sge.Query):
        kinds = ", ".join(type(s).__name__.upper() for s in statements) or "nothing"
        raise ValueError(f"query must be a single SELECT; it is {kinds}")
    writes = sorted({type(node).__name__.upper() for node in statements[0].find_all(*WRITES)})
    if writes:
        raise ValueError(f"query must only read; it contains {', '.join(writes)}")
    return statements[0]


def read(options: Options, ctx: ReadContext) -> RawData:
    backend = connect(options.url, ctx.root)
    what = f"table {_table(options, ctx)!r}" if options.query is None else "the query"
    try:
        if backend.name not in DESCRIBES_BY_VIEW:
            _read_only(backend)
        expr = _relation(backend, options, ctx)
        if backend.name in DESCRIBES_BY_VIEW:
            _read_only(backend)
        source_cursor = _source_column(ctx.config, ctx.config.cursor) if ctx.config.cursor else None
        if source_cursor and ctx.watermark is not None:
            expr = past_watermark(expr, source_cursor, ctx.watermark, ctx.config)
        if ctx.config.columns and backend.name in TEXT_READ:
            expr = expr.cast({column: "string" for column in expr.columns})
        reader = backend.to_pyarrow_batches(expr, chunk_size=options.batch_size)
    except Exception as exc:
        backend.disconnect()
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{what} in {redact(options.url)}: {_reason(exc, options.url)}") from None
    stream = _Stream(backend, reader, ctx.progress, f"{what} from {redact(options.url)}", options.url)
    return RawData(arrow=stream.reader(), cleanup=stream.close,
                   details={"url": redact(options.url), "read": what})


def connect(url: str, root: Path):
    """An Ibis backend on the source: servers with the session in UTC, SQLite files read-only."""
    if backend_of(url) == "sqlite":
        path = Path(duckdb_path(url, root)).resolve()   # same rule as duckdb:// URLs: relative to the project
        if not path.is_file():
            raise SourceError(f"no SQLite database at {path} (from {url})")
        try:
            # the reader may be pulled from the warehouse's worker threads, one at a time
            con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
            return ibis.sqlite.from_connection(con)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open SQLite database {path}: {exc}") from None
    try:
        return open_backend(url, root)[0]
    except WarehouseError as exc:
        raise SourceError(_scrub(exc.message, url)) from None


def _read_only(backend) -> None:
    if statement := READ_ONLY.get(backend.name):
        backend.raw_sql(statement).close()


def _table(options: Options, ctx: ReadContext) -> str:
    return options.source_table or ctx.config.table


def _relation(backend, options: Options, ctx: ReadContext):
    if options.query is not None:
        return backend.sql(options.query)
    database, _, name = _table(options, ctx).rpartition(".")
    if name not in backend.list_tables(database=database or None):
        raise SourceError(f"no table {_table(options, ctx)!r} in {redact(options.url)} "
                          "(set `source_table` when its name differs from `table`)")
    return backend.table(name, database=database or None)


def _source_column(config: SourceConfig, target: str) -> str:
    """The source's name for a loaded column (before `rename`)."""
    return {new: old for old, new in config.rename.items()}.get(target, target)


def past_watermark(expr, column: str, watermark: str, config: SourceConfig):
    """`expr` keeping rows whose cursor is past the watermark or missing (the rows the pipeline keeps)."""
    if column not in expr.columns:
        raise SourceError(f"the cursor column {column!r} is not in the source (it has: {', '.join(expr.columns)})")
    dtype = expr[column].type()
    declared = config.columns.get(config.cursor)
    if declared and not _same_family(dtype, arrow_type(declared)):
        log.info("cursor %s is %s in the source but declared %s: not filtered at the source",
                 column, dtype, declared)
        return expr
    try:
        value = watermark_value(watermark, dtype, config.data_timezone)
    except (ValueError, InvalidOperation):
        value = None
    if value is None:
        log.info("watermark %r does not compare with %s column %s: not filtered at the source",
                 watermark, dtype, column)
        return expr
    return expr.filter(expr[column].isnull() | (expr[column] > ibis.literal(value, type=dtype)))


def _same_family(dtype, declared: pa.DataType) -> bool:
    declared_dtype = ibis.dtype(declared)
    return any(any(getattr(dtype, test)() for test in tests) and any(getattr(declared_dtype, test)() for test in tests)
               for tests in _FAMILIES.values())


def watermark_value(text: str, dtype, zone: str) -> Any:
    """The watermark as a value of the column's type, rounded down so that `>` keeps every newer row.

    Naive source timestamps are read in the source's `data_timezone`, so the UTC watermark is
    turned into that zone's wall-clock time; None when the type does not compare.
    """
    if dtype.is_timestamp() or dtype.is_date():
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None and (dtype.is_date() or dtype.timezone is None):
            moment = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        elif moment.tzinfo is None and dtype.is_timestamp() and dtype.timezone is not None:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        if dtype.is_date():
            return moment.date()
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment
    if dtype.is_integer():
        return int(Decimal(text).to_integral_value(ROUND_FLOOR))
    if dtype.is_decimal():
        number = Decimal(text)
        return number.quantize(Decimal(1).scaleb(-dtype.scale), ROUND_FLOOR) if dtype.scale is not None else number
    if dtype.is_floating():
        return math.nextafter(float(text), -math.inf)
    if dtype.is_string():
        return text
    return None


class _Stream:
    """The batches as one RecordBatchReader: progress per batch, errors redacted, connection closed after."""

    def __init__(self, backend, reader: pa.RecordBatchReader, progress, what: str, url: str):
        self.backend, self.source, self.progress, self.what, self.url = backend, reader, progress, what, url
        self.batches = self._batches()
        self.closed = False

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.source.schema, self.batches)

    def _batches(self):
        rows = 0
        try:
            for batch in self.source:
                rows += batch.num_rows
                self.progress(rows)
                yield batch
        except Exception as exc:
            raise SourceError(f"reading {self.what} failed after {rows:,} rows: {_reason(exc, self.url)}; "
                              "nothing was loaded") from None
        finally:
            self._release()

    def close(self, _con=None) -> None:
        """The pipeline's cleanup: stop reading (if it had not ended) and release the connection."""
        self.batches.close()
        self._release()

    def _release(self) -> None:
        if not self.closed:
            self.closed = True
            self.source.close()
            self.backend.disconnect()


def _reason(exc: Exception, url: str) -> str:
    lines = str(exc).strip().splitlines()
    return _scrub(f"{type(exc).__name__}: {lines[0] if lines else ''}", url)


def _scrub(text: str, url: str) -> str:
    """Text with the URL's password masked, should a driver repeat it."""
    return redact_text(text, url)
