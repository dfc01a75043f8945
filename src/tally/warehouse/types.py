"""Column type names used in tally.yml (`int64`, `decimal(12,2)`, `timestamp`) as Arrow types."""

from __future__ import annotations

import re

import pyarrow as pa

from tally.errors import ConfigError

_SIMPLE = {
    "string": pa.string(), "text": pa.string(), "str": pa.string(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "int": pa.int64(), "integer": pa.int64(), "bigint": pa.int64(),
    "float32": pa.float32(), "float64": pa.float64(), "float": pa.float64(), "double": pa.float64(),
    "bool": pa.bool_(), "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"), "timestamptz": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type for a declared column type; ConfigError naming the accepted ones."""
    text = str(name).strip().lower()
    if text in _SIMPLE:
        return _SIMPLE[text]
    match = _DECIMAL.match(text)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if 0 < precision <= 38 and scale <= precision:
            return pa.decimal128(precision, scale)
    raise ConfigError(f"unknown column type {name!r} (use one of: {', '.join(sorted(_SIMPLE))}, decimal(p,s))")
