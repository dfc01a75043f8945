"""What a connector gives the pipeline: raw rows as an Arrow stream, or a DuckDB relation over files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from tally.sources.config import SourceConfig


class Options(BaseModel):
    """Base of each connector's own options (the keys of a source beside the shared ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Capabilities:
    pushes_cursor: bool = False   # asks the source for rows past the watermark (HTTP, SQL, MongoDB)
    text_values: bool = True      # values arrive as text to be typed (CSV, Excel) rather than typed


@dataclass
class ReadContext:
    """What a connector may use while reading."""

    root: Path
    name: str
    config: SourceConfig
    watermark: str | None
    progress: Callable[[int], None] = lambda rows: None
    log: Any = None


@dataclass
class RawData:
    """Raw rows: either an Arrow table / reader, or a function building a DuckDB relation itself."""

    arrow: pa.Table | pa.RecordBatchReader | None = None
    relation: Callable[[Any], Any] | None = None     # con -> DuckDBPyRelation (files DuckDB reads directly)
    malformed: Callable[[Any], list[dict]] | None = None   # con -> rows the reader could not parse
    # con -> (rows it could not parse, [(file, line, text)] it parsed but could not type): CSV's fast path
    failures: Callable[[Any], tuple[list[dict], list[tuple[int, int, str]]]] | None = None
    as_text: Callable[[Any, list], Any] | None = None      # (con, [(file, line, text)]) -> relation of text values
    # files read by line (CSV): the relation carries `_tally_file`; skipped(con) is SQL of the (file, line)
    # the reader left out, and first_line the line of a file's first row: together they give each row its line
    skipped: Callable[[Any], str] | None = None
    first_line: int = 1
    cleanup: Callable[[Any], None] | None = None
    details: dict = field(default_factory=dict)


def dig(value: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path (`meta.utility`, `items.0.sku`), or `default` where it is absent."""
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return default
    return value
