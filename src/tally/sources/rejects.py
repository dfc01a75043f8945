"""Rejected rows: the file each came from, and recording each in _tally_rejects once.

A reject is stored once: reading the same bad row again (it is still in the file) does not add a second
one. Rejects are matched by source, raw row and rule as a multiset, on every warehouse: a file holding a
bad line twice has two rejects, and a new bad line equal to one stored earlier is recorded too.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tally.sources.config import SourceConfig
from tally.warehouse.internal import insert_rows, now
from tally.warehouse.sqltext import quote_ident
from tally.warehouse.txn import ident


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


def checked_rejects(con, checked: str, files: tuple[str, ...]) -> list[dict]:
    """The rows of the checked table that broke a rule, as reject rows with their files."""
    return with_files(con.execute(
        f"SELECT COALESCE(_tally_row, rowid + 1) AS row_number, _tally_raw AS raw, _tally_rule AS rule, "
        f"_tally_file AS file_index FROM {quote_ident(checked)} WHERE _tally_rule IS NOT NULL AND NOT _tally_skip"
    ).to_arrow_table().to_pylist(), files)


def unrecorded(tx, name: str, rows: list[dict]) -> list[dict]:
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


def record_rejects(tx, name: str, load_id: str, rows: list[dict]) -> None:
    """Store the rejects (row_number, raw, rule, file) that are not stored yet, in the load's transaction."""
    rows = unrecorded(tx, name, rows) if rows else []
    if rows:
        stamp = now()
        insert_rows(tx, "_tally_rejects", [{"load_id": load_id, "source": name, "rejected_at": stamp, **row}
                                           for row in rows])


def record_checked_in_duckdb(tx, name: str, load_id: str, checked: str, files: tuple[str, ...]) -> None:
    """`record_rejects` for the checked rows, in SQL: on a DuckDB warehouse the checked table sits
    beside _tally_rejects, and the rejects need not pass through Python.

    The same multiset as `unrecorded`: of n identical (raw, rule) rows, those past the k already stored
    are recorded (the later ones in the order the rows were checked, as `unrecorded` takes them), so a
    new bad row equal to a stored one is recorded too."""
    q = quote_ident
    # a row's file: its reader's file index into the source's files (the only one when it reads one)
    rejects = (f"SELECT COALESCE(_tally_row, rowid + 1) AS row_number, _tally_raw AS raw, _tally_rule AS rule, "
               f"COALESCE(list_extract(?::VARCHAR[], CAST(_tally_file AS BIGINT) + 1), ?) AS file, "
               f"row_number() OVER (PARTITION BY _tally_raw, _tally_rule ORDER BY rowid) AS copy "
               f"FROM {q(checked)} WHERE _tally_rule IS NOT NULL AND NOT _tally_skip")
    tx.execute(f"INSERT INTO {q('_tally_rejects')} (load_id, source, row_number, raw, rule, rejected_at, file) "
               f"SELECT ?, ?, c.row_number, c.raw, c.rule, ?, c.file FROM ({rejects}) AS c "
               f"WHERE c.copy > (SELECT count(*) FROM {q('_tally_rejects')} AS x WHERE x.source = ? "
               f"AND x.raw = c.raw AND x.rule = c.rule)",
               [load_id, name, now(), list(files), files[0] if len(files) == 1 else None, name])
