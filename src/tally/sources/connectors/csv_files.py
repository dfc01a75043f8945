"""CSV files (a glob, optionally gzipped), read by DuckDB's parallel reader.

With declared column types, DuckDB types values while parsing (the fast path); lines it cannot
type ("1,250.00", dates in other layouts) are re-read as text and cleaned by the shared checks,
and lines it cannot parse at all become rejects.
"""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
import uuid
from pathlib import Path

from tally.errors import SourceError
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext

CAPABILITIES = Capabilities(pushes_cursor=False, text_values=True)


class Options(BaseOptions):
    path: str
    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    encoding: str = "utf-8"
    header: bool = True
    skip_rows: int = 0


def files(root: Path, pattern: str) -> list[Path]:
    base = Path(pattern)
    found = sorted(base.parent.glob(base.name)) if base.is_absolute() else sorted(root.glob(pattern))
    return [f for f in found if f.is_file()]


def open_text(path: Path, encoding: str):
    """A text handle on a plain or gzipped file."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def header(path: Path, options: Options) -> list[str]:
    """The column names on the first (non-skipped) line of a file."""
    try:
        with open_text(path, options.encoding) as handle:
            for _ in range(options.skip_rows):
                handle.readline()
            row = next(csv.reader(handle, delimiter=options.delimiter, quotechar=options.quote), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    if not row:
        raise SourceError(f"{path} is empty: no header line")
    return [name.strip().lstrip("\ufeff") for name in row]


def _parse_types(ctx: ReadContext, names: list[str]) -> dict[str, str]:
    """The type DuckDB parses each column as: declared types where it can, text otherwise.

    Without `columns:` every value is read as text: the pipeline infers the types over all rows with
    the declared types' cleaning rules (DuckDB's own guess looks at a sample, rounds "1.5" into an
    integer and reads "€16.77" as text)."""
    from tally.sources.validate import duck_type, wide_decimal

    config = ctx.config
    if not config.columns:
        return {name: "VARCHAR" for name in names}
    targets = {source: config.rename.get(source, source) for source in names}
    kinds = {}
    for source, target in targets.items():
        kind = duck_type(config.columns[target]) if target in config.columns else "VARCHAR"
        if kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT"):
            # the reader rounds "1.5" into an INTEGER, and a DOUBLE would take "1e3": typed (and checked) as text
            kind = "VARCHAR"
        elif kind.startswith("DECIMAL"):
            kind = wide_decimal(kind)   # the reader would round "1.005" into DECIMAL(12,2): the checks refuse it
        elif kind in ("TIMESTAMPTZ", "DATE"):
            # DuckDB's reader turns a bad TIMESTAMPTZ into NULL silently and drops offsets from a naive
            # TIMESTAMP, and takes `epoch` and `infinity` as dates: they are typed by the checks instead
            kind = "VARCHAR"
        kinds[source] = kind
    return kinds


def read(options: Options, ctx: ReadContext) -> RawData:
    """The CSV files as one DuckDB relation, with what the reader could not parse.

    (Long: the RawData's callbacks share the reader's settings, its rejects table and scratch folder.)"""
    paths = files(ctx.root, options.path)
    if not paths:
        raise SourceError(f"no files match {options.path!r} (in {ctx.root})")
    if not options.header:
        raise SourceError("CSV sources need a header line naming the columns (`header: true`)")
    names = header(paths[0], options)
    from tally.sources.validate import refuse_reserved

    refuse_reserved(names, paths[0].name)
    for other in paths[1:]:
        if header(other, options) != names:
            raise SourceError(f"{other.name} has columns {header(other, options)}, unlike {paths[0].name} {names}")
    kinds = _parse_types(ctx, names)
    rejects = f"__tally_csv_rejects_{uuid.uuid4().hex[:8]}"
    base = dict(header=True, sep=options.delimiter, quotechar=options.quote, encoding=options.encoding)
    if options.escape:
        base["escapechar"] = options.escape
    kwargs = dict(base, skiprows=options.skip_rows, store_rejects=True, rejects_table=rejects,
                  rejects_scan=f"{rejects}_scan")
    if kinds:
        kwargs.update(auto_detect=False, columns=kinds)
    scratch = tempfile.TemporaryDirectory(prefix="tally-csv-")

    def relation(con):
        # file_index: which file a row came from, to find its line (check.fill_lines)
        return con.sql(f"SELECT *, file_index AS _tally_file FROM read_csv({_arguments(paths, kwargs)})")

    def failures(con) -> tuple[list[dict], list[tuple[int, str]]]:
        rows = con.execute(f'SELECT file_id, line, any_value(csv_line), min(error_message), '
                           f'bool_and(error_type = \'CAST\') FROM "{rejects}" '
                           "GROUP BY file_id, line ORDER BY file_id, line").fetchall()
        malformed = [{"row_number": line, "raw": (text or "").rstrip("\r\n"), "file_index": file_id,
                      "rule": f"malformed CSV line: {message.splitlines()[0]}"}
                     for file_id, line, text, message, cast in rows if not cast]
        untyped = [(file_id, line, (text or "").rstrip("\r\n")) for file_id, line, text, _, cast in rows if cast]
        return malformed, untyped

    def skipped(con) -> str:
        """SQL of the (file, line) of every line the reader left out: where the other rows' lines shift."""
        return f'SELECT DISTINCT file_id AS file, line FROM "{rejects}"'

    def as_text(con, lines: list[tuple[int, str]]):
        """The lines DuckDB could not type, re-read as text with their line numbers."""
        path = Path(scratch.name) / f"{uuid.uuid4().hex}.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter=options.delimiter, quotechar=options.quote,
                       lineterminator="\n").writerow(names + ["_tally_row", "_tally_file"])
            for file_id, line, text in lines:
                handle.write(f"{text}{options.delimiter}{line}{options.delimiter}{file_id}\n")
        columns = {name: "VARCHAR" for name in names} | {"_tally_row": "BIGINT", "_tally_file": "BIGINT"}
        return con.read_csv(str(path), **dict(base, encoding="utf-8", auto_detect=False, columns=columns))

    def cleanup(con) -> None:
        con.execute(f'DROP TABLE IF EXISTS "{rejects}"')
        con.execute(f'DROP TABLE IF EXISTS "{rejects}_scan"')
        scratch.cleanup()

    return RawData(relation=relation, failures=failures, as_text=as_text if kinds else None, cleanup=cleanup,
                   skipped=skipped, first_line=options.skip_rows + 2, details={"files": [str(p) for p in paths]})


def _arguments(paths: list[Path], kwargs: dict) -> str:
    """read_csv's arguments as SQL: every value a quoted literal."""
    from tally.warehouse.sqltext import sql_literal

    names = {"sep": "delim", "quotechar": "quote", "escapechar": "escape", "skiprows": "skip"}
    parts = ["[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"]
    for key, value in kwargs.items():
        if isinstance(value, dict):
            value = "{" + ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in value.items()) + "}"
        else:
            value = sql_literal(value)
        parts.append(f"{names.get(key, key)} = {value}")
    return ", ".join(parts)
