"""A model's time column as an instant: the types a time column may have, and how a DATE is placed."""

from __future__ import annotations

import difflib

import ibis
import ibis.expr.datatypes as idt

from tally.errors import ConfigError

UTC_TS = idt.Timestamp(timezone="UTC")
DATE_HOUR = 12
"""A DATE is the instant 12:00 UTC of its day: on that same date in every zone within 12 hours of UTC."""


def time_column(table, model_name: str, column: str):
    """The time column of `model_name` in `table` as a timestamp: TIMESTAMP / TIMESTAMPTZ as stored,
    a DATE at 12:00 UTC of its day; any other type is refused."""
    value = model_column(table, model_name, column)
    dtype = value.type()
    if dtype.is_timestamp():
        return value
    if dtype.is_date():
        return (value.cast(idt.Timestamp()) + ibis.interval(hours=DATE_HOUR)).cast(UTC_TS)
    raise ConfigError(f"model {model_name!r}: time column {column!r} is {_type_name(dtype)}; a time column "
                      "must be DATE, TIMESTAMP or TIMESTAMPTZ (convert it in the source's `columns:`)")


def is_date(table, column: str, model_name: str) -> bool:
    return model_column(table, model_name, column).type().is_date()


def model_column(table, model_name: str, column: str, role: str = "time"):
    """A model's `time:` (or `updated:`) column, or a ConfigError naming the model, the column and
    those the table has (checked before any SQL is compiled: Ibis fails deep inside the query)."""
    if column in table.columns:
        return table[column]
    hint = difflib.get_close_matches(column, table.columns, n=1)
    raise ConfigError(f"model {model_name!r}: {role} column {column!r} is not a column of its table "
                      + (f"(did you mean {hint[0]!r}?) " if hint else "")
                      + f"(columns: {', '.join(table.columns)})")


def _type_name(dtype) -> str:
    names = {"string": "text", "int8": "an integer", "int16": "an integer", "int32": "an integer",
             "int64": "an integer", "float64": "a float", "float32": "a float", "boolean": "a boolean"}
    return names.get(str(dtype), f"of type {dtype}")
