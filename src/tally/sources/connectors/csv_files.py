"""CSV files (a glob, optionally gzipped), read by DuckDB's parallel reader; bad lines become rejects."""

from __future__ import annotations

import csv
import gzip
import io
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


def _open_text(path: Path, encoding: str):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def header(path: Path, options: Options) -> list[str]:
    """The column names on the first (non-skipped) line of a file."""
    try:
        with _open_text(path, options.encoding) as handle:
            for _ in range(options.skip_rows):
                handle.readline()
            row = next(csv.reader(handle, delimiter=options.delimiter, quotechar=options.quote), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    if not row:
        raise SourceError(f"{path} is empty: no header line")
    return [name.strip().lstrip("\ufeff") for name in row]


def read(options: Options, ctx: ReadContext) -> RawData:
    paths = files(ctx.root, options.path)
    if not paths:
        raise SourceError(f"no files match {options.path!r} (in {ctx.root})")
    names = header(paths[0], options) if options.header else None
    for other in paths[1:] if options.header else []:
        if header(other, options) != names:
            raise SourceError(f"{other.name} has columns {header(other, options)}, unlike {paths[0].name} {names}")
    if names is None:
        raise SourceError("CSV without a header needs `header: true` files (column names) for now")
    typed_reading = not ctx.config.columns
    rejects = f"__tally_csv_rejects_{uuid.uuid4().hex[:8]}"
    kwargs = dict(header=options.header, sep=options.delimiter, quotechar=options.quote, encoding=options.encoding,
                  skiprows=options.skip_rows, store_rejects=True, rejects_table=rejects,
                  rejects_scan=f"{rejects}_scan", filename=len(paths) > 1)
    if options.escape:
        kwargs["escapechar"] = options.escape
    if not typed_reading:
        kwargs.update(auto_detect=False, columns={name: "VARCHAR" for name in names})

    def relation(con):
        return con.read_csv([str(p) for p in paths], **kwargs)

    def malformed(con) -> list[dict]:
        rows = con.execute(f'SELECT file_id, line, any_value(csv_line), min(error_message) FROM "{rejects}" '
                           "GROUP BY file_id, line ORDER BY file_id, line").fetchall()
        return [{"row_number": line, "raw": text.rstrip("\r\n") if text else "",
                 "rule": f"malformed CSV line: {message.splitlines()[0]}"} for _, line, text, message in rows]

    def cleanup(con) -> None:
        con.execute(f'DROP TABLE IF EXISTS "{rejects}"')
        con.execute(f'DROP TABLE IF EXISTS "{rejects}_scan"')

    return RawData(relation=relation, malformed=malformed, cleanup=cleanup,
                   details={"files": [str(p) for p in paths]})
