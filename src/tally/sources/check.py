"""Checking a source's rows: type and check them into a scratch DuckDB table, give rejects their file
lines, and count what the load will do."""

from __future__ import annotations

import datetime as dt
import decimal
from contextlib import contextmanager
from typing import Callable

from tally.errors import SourceError
from tally.sources import infer, validate
from tally.sources.config import SourceConfig
from tally.sources.loads import LoadResult
from tally.sources.progress import Progress, track_progress
from tally.warehouse.dialects import Dialect
from tally.warehouse.sqltext import quote_ident, sql_literal


@contextmanager
def session_timezone(con, zone: str):
    """Naive timestamps in the source are read in its data timezone, then kept as UTC instants."""
    con.execute(f"SET TimeZone = {sql_literal(zone)}")
    try:
        yield
    finally:
        con.execute("SET TimeZone = 'UTC'")


def check_into(con, relation, view: str, checked: str, config, watermark, name, progress: Progress, *,
               create: bool, limit: dt.datetime | None = None, kinds: dict[str, str] | None = None,
               keep: dict[str, str] | None = None, vet: Callable | None = None):
    """Type and check a relation's rows into the `checked` table (created, or appended to by name).

    `kinds` types a source without `columns:` (the first pass's, for rows re-read as text); with
    `keep` (the stored types it keeps) they are inferred from the rows. `vet(plan)` may refuse the
    plan before any row is checked."""
    con.register(view, relation)   # a temporary view: a run killed here leaves nothing in the warehouse
    described = con.execute(f"DESCRIBE {quote_ident(view)}").fetchall()
    raw_types = {row[0]: row[1] for row in described}
    if keep is not None:
        with session_timezone(con, config.data_timezone):
            kinds = infer.infer(con, config, view, raw_types, keep)
    plan = validate.build(config, quote_ident(view), [row[0] for row in described], raw_types, watermark, limit,
                          kinds)
    if vet is not None:
        vet(plan)
    with session_timezone(con, config.data_timezone), track_progress(con, name, progress):
        if create:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(checked)} AS {plan.sql}")
        else:
            con.execute(f"INSERT INTO {quote_ident(checked)} BY NAME {plan.sql}")
    return plan


def refuse_other_types(name: str, config, stored: dict[str, str], plan, dialect: Dialect,
                       full_refresh: bool) -> list[str]:
    """The loaded columns the table stores as another type: a SourceError, unless this load rebuilds it."""
    wrong = infer.mismatches(stored, dict(plan.kinds), dialect)
    if wrong and not full_refresh:
        raise SourceError(f"table {config.table!r} stores column(s) as another type than this load's: "
                          f"{'; '.join(wrong)}; run `tally ingest {name} --full-refresh` to rebuild the table "
                          "with the declared types (nothing was loaded)")
    return wrong


def fill_lines(con, checked: str, raw, parsed: int | None, needed: str) -> None:
    """Set `_tally_row` to the file line of the reader's rows that match `needed` (SQL over the checked rows).

    The reader's rows of a file keep the file's order (rowids of one file are consecutive), and the
    lines it left out (malformed, or re-read as text) are known: the k-th row of a file sits at
    first_line + k + the number of lines left out before it. Only the few rows that need a line get
    one (rejects, repeated keys): a load pays nothing for the others."""
    q = quote_ident
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


def prepare_exists_checks(warehouse, config: SourceConfig, con, in_warehouse: bool) -> None:
    """Make the looked-up keys of `exists_in` checks visible to the checking SQL."""
    for check in config.checks:
        for _, target in (check.exists_in or {}).items():
            table, key = target.split(".")
            view = validate.exists_name(table, key)
            if in_warehouse:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(view)} AS "
                            f"SELECT DISTINCT {quote_ident(key)} FROM {quote_ident(table)}")
            else:
                source = warehouse.table(table)
                keys = warehouse.run(warehouse.compile(source.select(key).distinct()))
                con.register(view, keys)


def count_rows(con, checked: str, result: LoadResult, malformed: list, config: SourceConfig, watermark) -> None:
    """The result's row counts and new watermark, from the checked rows and the malformed ones."""
    q = quote_ident
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


def warn_skipped_newer(con, checked: str, config: SourceConfig, plan, previous: dt.datetime | None,
                       result: LoadResult) -> None:
    """Skipped rows (at or before the watermark) stamped after the previous load began were not there to
    be loaded then: they are new rows the watermark hides."""
    if previous is None:
        return
    with session_timezone(con, config.data_timezone):
        newer = con.execute(f"SELECT count(*) FROM {quote_ident(checked)} WHERE _tally_skip AND "
                            f"{quote_ident(config.cursor)} > {validate.instant_as(plan.cursor_kind, previous)}"
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
    return text if watermark is None or _top_greater(text, watermark, top) else watermark


def _top_greater(text: str, watermark: str, top) -> bool:
    if isinstance(top, (int, float, decimal.Decimal)):
        return decimal.Decimal(text) > decimal.Decimal(watermark)
    return text > watermark  # ISO timestamps and dates sort as text
