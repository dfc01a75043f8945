"""MongoDB collections: a filtered, projected find() past the watermark, nested fields flattened by dotted path.

The watermark is pushed as `{cursor: {"$gt": watermark}}` for values of the BSON type the watermark
has, and every document whose cursor is missing or of another type is read too: a superset of the
rows the pipeline keeps (it types the values, skips those at or before the watermark, and loads
rows without one). Tests and examples talk to mongomock through `CLIENT_FACTORY`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
from pydantic import Field, field_validator

from tally.errors import SourceError
from tally.sources.config import SourceConfig
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext, dig
from tally.redaction import redact_text
from tally.warehouse.connect import redact
from tally.warehouse.types import arrow_type

CAPABILITIES = Capabilities(pushes_cursor=True, text_values=False)

# Builds the client from (url, **options); None means pymongo.MongoClient. Tests set a mongomock client.
CLIENT_FACTORY: Callable[..., Any] | None = None

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MISSING = object()


class Options(BaseOptions):
    url: str = Field(repr=False)                # may carry a password: never shown
    database: str
    collection: str
    filter: dict[str, Any] = {}                 # a find() filter; extended JSON ({"$date": ...}) allowed
    projection: list[str] | dict[str, Any] | None = None
    fields: dict[str, str] = {}                 # column -> dotted path into each document (`meta.utility`)
    batch_size: int = Field(10_000, gt=0)
    timeout: float = Field(30.0, gt=0)          # seconds to find a server

    @field_validator("url")
    @classmethod
    def _mongodb_url(cls, value: str) -> str:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(f"url must start with mongodb:// or mongodb+srv://, not {redact(value)[:20]!r}")
        return value


def read(options: Options, ctx: ReadContext) -> RawData:
    declared = [_source_name(ctx.config, column) for column in ctx.config.columns]
    path = _cursor_path(options, ctx.config)
    query = _query(options, path, ctx)
    projection = _projection(options.projection, [p for p in [path, *options.fields.values()] if p])
    where = f"{options.database}.{options.collection} at {redact(options.url)}"
    tables, count = [], 0
    client = None
    try:
        client = _client(options)
        found = client[options.database][options.collection].find(query, projection, batch_size=options.batch_size)
        for docs in _chunks(found, options.batch_size):
            tables.append(_table([_row(doc, options.fields) for doc in docs], declared))
            count += len(docs)
            ctx.progress(count)
    except SourceError:
        raise
    except Exception as exc:  # pymongo and mongomock raise many types; the user needs the reason
        raise SourceError(f"MongoDB {where}: {_reason(exc, options.url)}; nothing was loaded") from None
    finally:
        if client is not None:
            client.close()
    return RawData(arrow=_combine(tables) if tables else _empty([*declared, *options.fields]),
                   details={"collection": where, "documents": count})


def _client(options: Options):
    """A client from CLIENT_FACTORY, else pymongo's (imported only when a mongodb source runs)."""
    factory = CLIENT_FACTORY
    if factory is None:
        try:
            from pymongo import MongoClient
        except ImportError:
            raise SourceError("the mongodb source needs the pymongo package: pip install pymongo") from None
        factory = MongoClient
    return factory(options.url, serverSelectionTimeoutMS=int(options.timeout * 1000), tz_aware=True)


def _source_name(config: SourceConfig, column: str) -> str:
    """The source's name for a loaded column (before `rename`)."""
    return {new: old for old, new in config.rename.items()}.get(column, column)


def _cursor_path(options: Options, config: SourceConfig) -> str | None:
    """Where the cursor column lives in a document: its `fields` path, else its own name."""
    if not config.cursor:
        return None
    source = _source_name(config, config.cursor)
    return options.fields.get(source, source)


def _query(options: Options, path: str | None, ctx: ReadContext) -> dict:
    """The user's filter (extended JSON turned into BSON values) and the cursor past the watermark."""
    query = _bson(options.filter)
    if path is None or ctx.watermark is None:
        return query
    past = past_watermark(path, ctx.watermark, ctx.config.columns.get(ctx.config.cursor))
    if past is None:
        return query
    return {"$and": [query, past]} if query else past


def _bson(value: dict) -> dict:
    """Extended JSON in the filter (`{"$date": ...}`, `{"$oid": ...}`) as BSON values."""
    try:
        from bson import json_util
    except ImportError:  # pymongo absent (a custom CLIENT_FACTORY): plain values only
        return dict(value)
    return json_util.loads(json_util.dumps(value))


def past_watermark(path: str, watermark: str, declared: str | None) -> dict | None:
    """`path` past the watermark where it holds the watermark's BSON type(s); other values all pass."""
    conditions = watermark_conditions(watermark, declared)
    if not conditions:
        return None
    passes = {"$nor": [{path: {"$type": kind}} for kind, _ in conditions]}
    return {"$or": [*({path: {"$gt": value}} for _, value in conditions), passes]}


def watermark_conditions(text: str, declared: str | None) -> list[tuple[str, Any]]:
    """(BSON type, value) pairs the watermark compares as: by the declared type, else by its look."""
    family = _family(text, declared)
    try:
        if family == "date":
            moment = datetime.fromisoformat(text)
            return [("date", moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc))]
        if family == "number":
            return [("number", _number_below(text))]
    except (ValueError, InvalidOperation):
        return []
    if family != "string":
        return []
    pairs: list[tuple[str, Any]] = [("string", text)]
    if _OBJECT_ID.match(text):          # `_id` as the cursor: ObjectIds and their hex text sort alike
        from bson import ObjectId
        pairs.append(("objectId", ObjectId(text)))
    return pairs


def _family(text: str, declared: str | None) -> str | None:
    if declared is None:
        return "date" if _ISO_DATE.match(text) else "number" if _is_number(text) else "string"
    kind = arrow_type(declared)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "date"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    return "string" if pa.types.is_string(kind) else None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number_below(text: str) -> int | float:
    """The watermark as an int, or the float just below it (so `$gt` never drops a row it should keep)."""
    number = Decimal(text)
    if number == number.to_integral_value():
        return int(number)
    return math.nextafter(float(number), -math.inf)


def _projection(projection, paths: list[str]) -> dict | None:
    """The projection, with the cursor and `fields` paths added when it lists what to include."""
    if projection is None:
        return None
    spec = {p: 1 for p in projection} if isinstance(projection, list) else dict(projection)
    if any(v not in (0, False) for k, v in spec.items() if k != "_id"):
        for path in paths:
            if not any(path == p or path.startswith(f"{p}.") or p.startswith(f"{path}.") for p in spec):
                spec[path] = 1
    return spec


def _chunks(documents: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(documents)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _row(doc: dict, fields: dict[str, str]) -> dict:
    """The document's own keys plus each `fields` column taken from its path, as plain values."""
    row = {key: plain(value) for key, value in doc.items()}
    for column, path in fields.items():
        value = dig(doc, path, _MISSING)
        row[column] = None if value is _MISSING else plain(value)
    return row


def plain(value: Any) -> Any:
    """A BSON value as a plain one: datetimes in UTC, Decimal128 as Decimal, ObjectIds and nested values as text."""
    if value is None or isinstance(value, (str, bool, int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if hasattr(value, "to_decimal"):            # bson.Decimal128
        return value.to_decimal()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _json_value(value: Any) -> Any:
    value = plain(value)
    return value.isoformat() if isinstance(value, datetime) else str(value)


def as_text(value: Any) -> str | None:
    """A plain value as the text a CSV would hold, for the shared validation to type."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return repr(value) if isinstance(value, float) else str(value)


def _table(rows: list[dict], declared: list[str]) -> pa.Table:
    """One batch: text columns when types are declared (typed by the shared validation), else Arrow's types."""
    names = list(dict.fromkeys(itertools.chain(declared, *rows)))
    columns = {name: [row.get(name) for row in rows] for name in names}
    if declared:
        return pa.table({name: pa.array([as_text(v) for v in values], pa.string()) for name, values in columns.items()})
    return pa.table({name: _native(values) for name, values in columns.items()})


def _empty(names: list[str]) -> pa.Table:
    """No documents: the declared and `fields` columns, as text (no columns at all: nothing to load)."""
    return pa.table({name: pa.array([], pa.string()) for name in dict.fromkeys(names)})


def _native(values: list) -> pa.Array:
    """Values as Arrow infers them; mixed kinds (a number here, "1,250.00" there) as text."""
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError):
        return pa.array([as_text(v) for v in values], pa.string())


def _combine(tables: list[pa.Table]) -> pa.Table:
    """The batches as one table: missing columns null, a column typed differently across batches as text."""
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        kinds: dict[str, set] = {}
        for t in tables:
            for f in t.schema:
                if not pa.types.is_null(f.type):
                    kinds.setdefault(f.name, set()).add(f.type)
        mixed = {name for name, types in kinds.items() if len(types) > 1}
        table = pa.concat_tables([_as_text_columns(t, mixed) for t in tables], promote_options="permissive")
    nulls = [i for i, f in enumerate(table.schema) if pa.types.is_null(f.type)]
    for i in nulls:
        table = table.set_column(i, table.schema.field(i).name, pa.nulls(table.num_rows, pa.string()))
    return table


def _as_text_columns(table: pa.Table, names: set[str]) -> pa.Table:
    for i, f in enumerate(table.schema):
        if f.name in names:
            values = [as_text(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(values, pa.string()))
    return table


def _reason(exc: Exception, url: str) -> str:
    """The driver's first line, with the URL's password masked should it repeat it."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return redact_text(text, url)
