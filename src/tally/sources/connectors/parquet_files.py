"""Parquet files (a glob), read by DuckDB with their own types; files may add columns over time."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tally.errors import SourceError
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext
from tally.sources.connectors.csv_files import files

CAPABILITIES = Capabilities(pushes_cursor=False, text_values=False)


class Options(BaseOptions):
    path: str


def _rows(path) -> int:
    """The file's row count from its footer, read now so a broken file fails with its name."""
    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path} is not a readable Parquet file: {exc}") from None


def read(options: Options, ctx: ReadContext) -> RawData:
    paths = files(ctx.root, options.path)
    if not paths:
        raise SourceError(f"no files match {options.path!r} (in {ctx.root})")
    ctx.progress(sum(_rows(p) for p in paths))

    def relation(con):
        # union_by_name: a column missing from older files reads as NULL there instead of failing
        return con.read_parquet([str(p) for p in paths], union_by_name=True)

    return RawData(relation=relation, details={"files": [str(p) for p in paths]})
