"""JSON and NDJSON files (a glob, optionally gzipped): records found by a dotted path, nested values flattened."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from tally.errors import SourceError
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext, dig
from tally.sources.connectors.csv_files import files, open_text

CAPABILITIES = Capabilities(pushes_cursor=False, text_values=True)
PROGRESS_EVERY = 50_000
_MISSING = object()
MAX_DEPTH = 100           # a record nested deeper is rejected (`too_deep`): Python's parser would overflow its stack
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_DEEP = "_tally_too_deep"  # the key of the stand-in for a record cut out of a document (its line as value)


class Options(BaseOptions):
    """`records`: dotted path to the list of records in each document (json: default, the document is
    the list; ndjson: default, each line is one record). `fields`: extra columns taken from nested
    paths, beside the top-level keys (a field named like a top-level key replaces it)."""

    path: str
    records: str | None = None
    fields: dict[str, str] = {}


# -- values shared with the Excel connector -------------------------------------------------------

def as_text(value: Any, fmt: str | None = None) -> str | None:
    """A cell or JSON value as the text a CSV would hold, so the shared validation types it alike."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))                       # 3.0 read for an int column is "3"
        return format(decimal.Decimal(repr(value)), "f")   # no exponent: 1e-05 -> "0.00001"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        if fmt and not isinstance(value, dt.time):
            return value.strftime(fmt)                   # the column's declared `formats` entry
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def native_column(values: list) -> pa.Array:
    """Values as Arrow infers them; a column mixing kinds (1250 and "1,250.00") falls back to text."""
    values = [json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (dict, list)) else v
              for v in values]
    if any(isinstance(v, dt.datetime) for v in values):
        # a reader may give a midnight timestamp as a date; Arrow would silently cut the others to dates
        values = [dt.datetime.combine(v, dt.time()) if type(v) is dt.date else v for v in values]
    try:
        array = pa.array(values)
        return array.cast(pa.string()) if pa.types.is_null(array.type) else array   # all empty: text
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([as_text(v) for v in values], pa.string())


def arrow_table(columns: dict[str, list], text: bool, formats: dict[str, str] | None = None) -> pa.Table:
    """Columns of values as an Arrow table: all text (dates rendered with `formats` by column), or native."""
    formats = formats or {}
    if text:
        return pa.table({name: pa.array([as_text(v, formats.get(name)) for v in values], pa.string())
                         for name, values in columns.items()})
    return pa.table({name: native_column(values) for name, values in columns.items()})


def empty_table(ctx: ReadContext, what: str) -> pa.Table:
    """No rows: the declared columns, all text and empty, so an empty drop loads nothing and fails nothing."""
    if not ctx.config.columns:
        raise SourceError(f"{what}: no rows, and the source declares no `columns` to give an empty table")
    source_of = {target: source for source, target in ctx.config.rename.items()}
    return pa.table({source_of.get(c, c): pa.array([], pa.string()) for c in ctx.config.columns})


# -- JSON documents -------------------------------------------------------------------------------

def deeper_than(text: str, limit: int) -> bool:
    """Whether brackets in `text` nest more than `limit` deep (strings ignored); C-speed regex passes only."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):   # each pass removes the innermost level
        brackets, found = _INNERMOST.subn("", brackets)
        if not found:   # unclosed brackets left: the parser would descend into each before failing
            return brackets.count("[") + brackets.count("{") > limit
    return bool(brackets)


def too_deep(where: str) -> str:
    return f"too_deep: JSON nested deeper than {MAX_DEPTH} levels ({where})"


def _cut_deep_records(text: str, level: int) -> str:
    """`text` with each record (a container opened at depth `level`) nested too deep replaced by a stand-in
    naming its line, so the rest of the document still parses."""
    parts, depth, start, deepest, kept = [], 0, None, 0, 0
    for token in _TOKEN.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            if depth == level:
                start, deepest = token.start(), depth
            deepest = max(deepest, depth)
        elif mark in "]}":
            if depth == level and start is not None:
                if deepest - level + 1 > MAX_DEPTH:
                    line = text.count("\n", 0, start) + 1
                    parts += [text[kept:start], json.dumps({_DEEP: line})]
                    kept = token.end()
                start = None
            depth -= 1
    return "".join(parts) + text[kept:]


def _document(path: Path, text: str, options: Options) -> Any:
    """The parsed json document; records nested too deep become stand-ins, rejected by `_rows`."""
    level = 2 + (len(options.records.split(".")) if options.records else 0)
    if deeper_than(text, MAX_DEPTH + level - 1):
        text = _cut_deep_records(text, level)
        if deeper_than(text, MAX_DEPTH + level - 1):
            raise SourceError(f"{path}: JSON nested deeper than {MAX_DEPTH} levels outside the records")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise SourceError(f"{path}: JSON nested too deep to read") from None


def _documents(path: Path, options: Options, kind: str, bad: list[dict]) -> Iterator[tuple[int, Any]]:
    """(line, document): the whole file for json; each non-blank line for ndjson, bad lines into `bad`."""
    try:
        with open_text(path, "utf-8-sig") as handle:
            if kind == "json":
                yield 1, _document(path, handle.read(), options)
                return
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if deeper_than(line, MAX_DEPTH):
                    bad.append({"file": str(path), "row_number": number, "raw": line[:1000].rstrip("\r\n"),
                                "rule": too_deep(f"{path.name}:{number}")})
                    continue
                try:
                    document = json.loads(line)
                except RecursionError:
                    bad.append({"file": str(path), "row_number": number, "raw": line[:1000].rstrip("\r\n"),
                                "rule": too_deep(f"{path.name}:{number}")})
                    continue
                except json.JSONDecodeError as exc:
                    bad.append({"file": str(path), "row_number": number, "raw": line.rstrip("\r\n"),
                                "rule": f"malformed JSON line ({path.name}:{number}): {exc.msg}"})
                    continue
                yield number, document
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


def _records(document: Any, options: Options, kind: str, where: str) -> list[dict]:
    """The records of one document, each an object."""
    if options.records:
        found = dig(document, options.records, _MISSING)
        if found is _MISSING:
            keys = ", ".join(document) if isinstance(document, dict) else type(document).__name__
            raise SourceError(f"{where}: no `records` path {options.records!r} (top-level keys: {keys})")
        document = found
    elif isinstance(document, dict):
        if kind == "ndjson":
            return [document]
        raise SourceError(f"{where}: the document is an object, not a list of records; set `records` to the "
                          f"dotted path of the list (top-level keys: {', '.join(document)})")
    if not isinstance(document, list):
        raise SourceError(f"{where}: records must be a list of objects, found {type(document).__name__}")
    for index, record in enumerate(document):
        if not isinstance(record, dict):
            raise SourceError(f"{where}: record {index} is {type(record).__name__}, not an object")
    return document


def _flatten(record: dict, fields: dict[str, str]) -> dict:
    return {**record, **{name: dig(record, path) for name, path in fields.items()}} if fields else record


def _rows(path: Path, options: Options, kind: str, bad: list[dict]) -> Iterator[dict]:
    """The flattened records of one file; for ndjson a line that is not a record is one more reject."""
    for line, document in _documents(path, options, kind, bad):
        try:
            records = _records(document, options, kind, f"{path.name}:{line}" if kind == "ndjson" else str(path))
        except SourceError as exc:
            if kind != "ndjson":
                raise
            bad.append({"file": str(path), "row_number": line, "raw": json.dumps(document, ensure_ascii=False), "rule": exc.message})
            continue
        for record in records:
            if kind == "json" and len(record) == 1 and _DEEP in record:
                at = record[_DEEP]
                bad.append({"file": str(path), "row_number": at, "raw": f"(a record nested deeper than {MAX_DEPTH} levels)",
                            "rule": too_deep(f"{path.name}:{at}")})
                continue
            yield _flatten(record, options.fields)


def read(options: Options, ctx: ReadContext) -> RawData:
    paths = files(ctx.root, options.path)
    if not paths:
        raise SourceError(f"no files match {options.path!r} (in {ctx.root})")
    rows, names, bad = [], {}, []
    for path in paths:
        for row in _rows(path, options, ctx.config.kind, bad):
            names.update(dict.fromkeys(row))
            rows.append(row)
            if len(rows) % PROGRESS_EVERY == 0:
                ctx.progress(len(rows))
    ctx.progress(len(rows))
    columns = {name: [row.get(name) for row in rows] for name in names}
    table = arrow_table(columns, bool(ctx.config.columns)) if rows else empty_table(ctx, repr(options.path))
    return RawData(arrow=table, malformed=(lambda con: bad) if bad else None,
                   details={"files": [str(p) for p in paths]})
