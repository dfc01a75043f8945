"""Column types for sources without `columns:`, and the stored table's types a load must match.

A text column's type is inferred by the same cleaning casts a declared type uses (`validate.typed_value`):
the first candidate every non-empty value types under wins. A table that exists keeps its types.
"""

from __future__ import annotations

from tally.sources import validate
from tally.sources.config import SourceConfig
from tally.warehouse.dialects import Dialect
from tally.warehouse.sqltext import quote_ident, sql_literal

# a leading zero ("007", "01234"): an identifier or a code, kept as text rather than read as a number
LEADING_ZERO = r"^[+-]?0[0-9]"
PLAIN_DECIMAL = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"    # digits and a point: no exponent, no words
NAMES = {"VARCHAR": "string", "TINYINT": "int8", "SMALLINT": "int16", "INTEGER": "int32", "BIGINT": "int64",
         "FLOAT": "float32", "DOUBLE": "float64", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMPTZ": "timestamp",
         "TIMESTAMP": "timestamp"}


def type_name(kind: str) -> str:
    """A DuckDB type as written in tally.yml (`decimal(18,2)`, `timestamp`)."""
    return kind.lower() if kind.startswith("DECIMAL") else NAMES.get(kind, kind.lower())


def _counts(config: SourceConfig, target: str, source: str) -> list[str]:
    """Aggregates over the raw rows: non-empty values, then how many type under each candidate."""
    col = quote_ident(source)
    clean = validate.cleaned_text(config, col)
    bare = f"REGEXP_REPLACE({clean}, {sql_literal(validate.NUMBER_NOISE)}, '', 'g')"
    plain = f"replace({bare}, ',', '')"
    numeric = f"NOT regexp_matches({bare}, {sql_literal(LEADING_ZERO)})"

    def typed(kind: str) -> str:
        return validate.typed_value(config, target, col, kind, "VARCHAR")

    def ranged(kind: str) -> str:
        return validate.range_rule(config, target, kind, "VARCHAR", typed(kind), col)[0]

    decimal = (f"{typed('DOUBLE')} IS NOT NULL AND regexp_full_match({plain}, {sql_literal(PLAIN_DECIMAL)}) "
               f"AND {numeric}")
    places = f"CASE WHEN {decimal} THEN strlen(split_part({plain}, '.', 2)) END"
    whole = f"regexp_replace(split_part({plain}, '.', 1), '[^0-9]', '', 'g')"
    digits = f"CASE WHEN {decimal} THEN strlen(ltrim({whole}, '0')) END"
    return [f"count({clean})",
            f"count(*) FILTER (WHERE {typed('BIGINT')} IS NOT NULL AND {numeric})",
            f"count(*) FILTER (WHERE {decimal})", f"max({places})", f"max({digits})",
            f"count(*) FILTER (WHERE {ranged('DOUBLE')} AND {numeric})",
            f"count(*) FILTER (WHERE {typed('BOOLEAN')} IS NOT NULL)",
            # DuckDB reads '2024-01-05 10:00' as a date too: a date has no clock
            f"count(*) FILTER (WHERE {ranged('DATE')} AND NOT contains({clean}, ':'))",
            f"count(*) FILTER (WHERE {ranged('TIMESTAMPTZ')})"]


ROUGH_SHARE = 0.02   # a draft's guess: a type that all but this share of a column's values fit
ROUGH_ROWS = 50      # ... among at least this many values (fewer are too few to call the rest strays)


def _rough_pick(filled, ints, decimals, places, digits, doubles, booleans, dates, stamps) -> tuple[str, int]:
    """(a type nearly every value fits, how many do not): for a draft, where a stray 'n/a' or a broken
    date should not turn a column of amounts or times into text; ingest then rejects the strays."""
    kind = _pick(filled, ints, decimals, places, digits, doubles, booleans, dates, stamps)
    if kind != "VARCHAR" or filled < ROUGH_ROWS:
        return kind, 0
    enough = filled * (1 - ROUGH_SHARE)
    if decimals >= enough and places and (digits or 0) + places <= 38 and decimals > ints:
        return f"DECIMAL({18 if (digits or 0) + places <= 18 else 38},{places})", filled - decimals
    for count, kind in ((ints, "BIGINT"), (doubles, "DOUBLE"), (dates, "DATE"), (stamps, "TIMESTAMPTZ")):
        if count >= enough:
            return kind, filled - count
    return "VARCHAR", 0


def _pick(filled, ints, decimals, places, digits, doubles, booleans, dates, stamps) -> str:
    if not filled:
        return "VARCHAR"   # nothing to go by: text takes any value a later load brings
    if ints == filled:
        return "BIGINT"
    if decimals == filled and places and (digits or 0) + places <= 38:
        # 18 digits where they fit (an int64 underneath), else 38: later loads with larger amounts still fit
        return f"DECIMAL({18 if (digits or 0) + places <= 18 else 38},{places})"
    for count, kind in ((doubles, "DOUBLE"), (booleans, "BOOLEAN"), (dates, "DATE"), (stamps, "TIMESTAMPTZ")):
        if count == filled:
            return kind
    return "VARCHAR"


def infer(con, config: SourceConfig, view: str, raw_types: dict[str, str], stored: dict[str, str],
          strays: dict[str, int] | None = None) -> dict[str, str]:
    """Target column -> DuckDB type for a source without `columns:`: the stored table's type where it has
    the column (so loads stay alike; values that do not fit it are rejected), else inferred over every
    row for text columns, else the reader's type. Given `strays` (a draft), a type that all but a few
    values fit is taken, and how many do not is put there."""
    kinds, text = {}, []
    for source, raw_type in raw_types.items():
        if source in validate.INTERNAL:
            continue
        target = config.rename.get(source, source)
        if target in stored and stored[target] != "TINYINT":
            kinds[target] = stored[target]
        elif raw_type == "VARCHAR":
            text.append((target, source))   # a TINYINT may be a boolean MySQL stores as a number: see the values
        else:
            kinds[target] = stored.get(target, raw_type)
    if text:
        parts = [part for target, source in text for part in _counts(config, target, source)]
        row = con.execute(f"SELECT {', '.join(parts)} FROM {quote_ident(view)}").fetchone()
        width = len(parts) // len(text)
        for i, (target, _) in enumerate(text):
            counts = row[i * width:(i + 1) * width]
            kind = _pick(*counts)
            if strays is not None:
                kind, strays[target] = _rough_pick(*counts)
            kinds[target] = kind if target not in stored or kind == "BOOLEAN" else stored[target]
    return kinds


# -- the stored table ----------------------------------------------------------------------------

def stored_kind(dtype) -> str | None:
    """The DuckDB type values are typed as to fit a stored column (None: a type Tally does not declare)."""
    if dtype.is_string():
        return "VARCHAR"
    if dtype.is_boolean():
        return "BOOLEAN"
    if dtype.is_integer():
        return {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER"}.get(dtype.nbytes * 8, "BIGINT")
    if dtype.is_decimal():
        if dtype.precision is None or dtype.scale is None:
            return "DECIMAL(38,10)"   # PostgreSQL's unconstrained numeric
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    if dtype.is_floating():
        return "FLOAT" if dtype.nbytes == 4 else "DOUBLE"
    if dtype.is_date():
        return "DATE"
    if dtype.is_timestamp():
        return "TIMESTAMPTZ"   # MySQL keeps UTC instants in naive DATETIME columns
    return None


def family(kind: str) -> str:
    """What must agree between a stored column and the typed rows: widths and time zones may differ."""
    if kind in validate.INTEGERS:
        return "integer"
    if kind.startswith("DECIMAL"):
        return f"decimal(scale {kind[kind.index(',') + 1:-1]})"
    return {"VARCHAR": "string", "FLOAT": "floating", "DOUBLE": "floating", "BOOLEAN": "boolean", "DATE": "date",
            "TIMESTAMPTZ": "timestamp", "TIMESTAMP": "timestamp"}.get(kind, kind)


def fits(stored: str, kind: str, dialect: Dialect) -> bool:
    """Whether rows typed as `kind` belong in a column stored as `stored` (both DuckDB types)."""
    if dialect.tinyint_booleans and {stored, kind} == {"TINYINT", "BOOLEAN"}:
        return True   # the warehouse stores booleans as TINYINT(1)
    if stored == "DECIMAL(38,10)" and kind.startswith("DECIMAL"):
        return True
    return family(stored) == family(kind)


def stored_kinds(warehouse, table: str) -> dict[str, str]:
    """Column -> DuckDB type of the stored table ({} when it does not exist)."""
    if not warehouse.has_table(table):
        return {}
    warehouse.forget(table)
    schema = warehouse.table(table).schema()
    return {name: kind for name, dtype in schema.items() if (kind := stored_kind(dtype)) is not None}


def mismatches(stored: dict[str, str], kinds: dict[str, str], dialect: Dialect) -> list[str]:
    """'column (stored T, declared U)' for every loaded column whose stored type differs in kind."""
    return [f"{column} (stored as {type_name(stored[column])}, declared {type_name(kind)})"
            for column, kind in kinds.items() if column in stored and not fits(stored[column], kind, dialect)]
