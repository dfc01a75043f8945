"""Build the DuckDB SQL that types, cleans and checks raw rows, naming the first rule each row breaks.

Identifiers and values reach the SQL only through sqlglot's quoting; check expressions are the
allowlisted trees of `tally.project.expr`, rendered by sqlglot.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import sqlglot.expressions as sge

from tally.errors import SourceError
from tally.project.expr import parse_row_expr
from tally.sources.config import SourceConfig
from tally.warehouse.sqltext import quote_ident, sql_literal
from tally.warehouse.types import arrow_type

TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
NUMBER_NOISE = r"[\s\p{Sc}]"       # spaces and currency symbols: "₦45,750.00"
THOUSANDS = r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?"
WHOLE = r"[+-]?(\d+|\d{1,3}(,\d{3})+)"
PLAIN_INTEGER = r"[+-]?[0-9]+"
INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT")
RESERVED = "_tally_"                 # Tally's own columns in the checked rows start with it
INTERNAL = ("_tally_row", "_tally_file")   # columns a connector adds: a row's file line and file index
# what datetime in Python (and so every later query) can hold: a day of margin for any time zone
FIRST_DAY, LAST_DAY = "0001-01-02", "9999-12-30"
# a time of day written 24:xx, or a UTC offset past ±14:59 or with minutes past 59 ("-99:00")
BAD_CLOCK = r"[T ]24:|\d:\d\d(:\d\d(\.\d+)?)?\s*[+-]((1[5-9]|[2-9]\d)(:?\d\d)?|\d\d:?[6-9]\d)$"


def refuse_reserved(names, where: str = "the source") -> None:
    """SourceError for a column named like Tally's own (`_tally_rule`): it would take their place."""
    taken = [n for n in names if str(n).startswith(RESERVED)]
    if taken:
        raise SourceError(f"{where} has column(s) {', '.join(map(repr, taken))}: names starting with "
                          f"{RESERVED!r} are reserved for Tally's own columns; rename them in the source")


def wide_decimal(kind: str) -> str:
    """The DECIMAL a declared DECIMAL(p,s) is first read as: same integer digits, every place up to 38,
    so a value with more places than declared is seen (and rejected) instead of rounded (places beyond
    the 18th or 38th digit in all are not seen)."""
    precision, scale = (int(x) for x in kind[kind.index("(") + 1:-1].split(","))
    width = 18 if precision <= 18 else 38   # 18 digits fit an int64: DuckDB parses them several times faster
    return f"DECIMAL({width},{width - (precision - scale)})"


def duck_type(kind: str) -> str:
    """The DuckDB type for a declared column type."""
    t = arrow_type(kind)
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    return {pa.string(): "VARCHAR", pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER",
            pa.int64(): "BIGINT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN",
            pa.date32(): "DATE"}[t]


@dataclass(frozen=True)
class Plan:
    """The checked-rows SQL and what it will produce."""

    sql: str                      # SELECT typed columns, _tally_row, _tally_raw, _tally_rule, _tally_skip
    columns: tuple[str, ...]      # the typed columns loaded into the table
    new_columns: tuple[str, ...]  # source columns that were not declared
    cursor_kind: str | None = None  # the cursor's type (DATE, TIMESTAMPTZ, ...)
    kinds: tuple[tuple[str, str], ...] = ()   # (column, DuckDB type) of every loaded column


def mapping(config: SourceConfig, raw_columns: list[str], raw_types: dict[str, str],
            kinds: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Target column -> (source column, DuckDB type); SourceError if a declared column is missing.

    Without `columns:`, a column's type is `kinds` (inferred, or kept from the stored table), else
    the reader's own."""
    source_of = {target: source for source, target in config.rename.items()}
    if not config.columns:
        kinds = kinds or {}
        targets = {c: config.rename.get(c, c) for c in raw_columns if c not in INTERNAL}
        loaded_as: dict[str, str] = {}
        for column, target in targets.items():
            if target in loaded_as:   # the dict below would keep only one of them
                raise SourceError(f"columns {loaded_as[target]!r} and {column!r} would both load as {target!r}; "
                                  "rename one of them (rename:)")
            loaded_as[target] = column
        return {t: (c, kinds.get(t, raw_types[c])) for c, t in targets.items()}
    missing = [f"{source_of.get(c, c)}" for c in config.columns if source_of.get(c, c) not in raw_columns]
    if missing:
        raise SourceError(f"declared column(s) missing from the source: {', '.join(missing)} "
                          f"(it has: {', '.join(raw_columns)}); nothing was loaded")
    return {c: (source_of.get(c, c), duck_type(kind)) for c, kind in config.columns.items()}


def cleaned_text(config: SourceConfig, col: str) -> str:
    """A text value trimmed (when the source trims) with '' as NULL.

    TRIM runs only where it can change something: a value starting or ending with a space, or holding
    any non-ASCII character (TRIM also removes Unicode spaces); most values skip it.
    """
    if not config.trim:
        return f"NULLIF({col}, '')"
    edge = f"starts_with({col}, ' ') OR ends_with({col}, ' ') OR strlen({col}) <> length({col})"
    return f"NULLIF(CASE WHEN {edge} THEN TRIM({col}) ELSE {col} END, '')"


def typed_value(config: SourceConfig, target: str, col: str, kind: str, raw_type: str) -> str:
    """The typed expression for one column read as `raw_type`.

    Plain values take a fast path (a plain integer, a timestamp DuckDB reads as is); the cleaning
    (trim, currency symbols, thousands separators) runs only for the values that need it.
    """
    if kind.startswith("DECIMAL") and raw_type not in ("DOUBLE", "FLOAT"):
        kind = wide_decimal(kind)   # rounded to the declared places in `range_rule`, where a loss is refused
    if raw_type != "VARCHAR":
        if raw_type == kind:
            return col
        if kind in INTEGERS and (raw_type in ("DOUBLE", "FLOAT") or raw_type.startswith("DECIMAL")):
            return f"CASE WHEN {col} = floor({col}) THEN TRY_CAST({col} AS {kind}) END"  # 1.5 is no integer
        return f"TRY_CAST({col} AS {kind})"
    clean = cleaned_text(config, col)
    fmt = config.formats.get(target)
    if kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
        # commas only as thousands separators ("1,250.00"); "1.250,50" is not read as 1.25
        bare = f"REGEXP_REPLACE({clean}, {sql_literal(NUMBER_NOISE)}, '', 'g')"
        grouped = f"regexp_full_match({bare}, {sql_literal(THOUSANDS)})"
        if kind in INTEGERS:  # digits only: DuckDB would read "1.5" as 2 and "0x10" as 16
            return (f"CASE WHEN regexp_full_match({col}, {sql_literal(PLAIN_INTEGER)}) THEN TRY_CAST({col} AS {kind}) "
                    f"WHEN regexp_full_match({bare}, {sql_literal(WHOLE)}) THEN TRY_CAST(replace({bare}, ',', '') "
                    f"AS {kind}) END")
        return (f"CASE WHEN {grouped} THEN TRY_CAST(replace({bare}, ',', '') AS {kind}) "
                f"ELSE TRY_CAST({bare} AS {kind}) END")
    if kind in ("DATE", "TIMESTAMPTZ") and fmt:
        return f"CAST(TRY_STRPTIME({clean}, {sql_literal(fmt)}) AS {kind})"
    if kind == "BOOLEAN":
        words = lambda ws: ", ".join(sql_literal(w) for w in ws)  # noqa: E731
        return (f"CASE WHEN LOWER({clean}) IN ({words(TRUE_WORDS)}) THEN TRUE "
                f"WHEN LOWER({clean}) IN ({words(FALSE_WORDS)}) THEN FALSE END")
    if kind == "VARCHAR":
        return clean
    # DuckDB's cast reads most values as they are; only those it refuses are cleaned and tried again
    return f"COALESCE(TRY_CAST({col} AS {kind}), TRY_CAST({clean} AS {kind}))"


def range_rule(config: SourceConfig, target: str, kind: str, raw_type: str, value: str,
              given: str) -> tuple[str, str] | None:
    """(condition a typed value must meet, the rule's reason) for kinds whose cast accepts too much.

    DuckDB reads `infinity`, year 10000, `epoch`, `24:00` and offsets like `-99:00` as times, `1e309`
    and `NaN` as floats, and rounds `1.005` into DECIMAL(12,2); each would load, and fail or mislead
    later. `value` is the typed value, `given` the raw one."""
    if kind in ("FLOAT", "DOUBLE"):
        return f"isfinite({value})", "is not a finite number"
    if kind.startswith("DECIMAL"):
        places = int(kind[kind.index(",") + 1:-1])
        if raw_type in ("DOUBLE", "FLOAT"):
            return f"CAST({value} AS DOUBLE) = {given}", f"has more than {places} decimal places"
        return f"{value} = round({value}, {places})", f"has more than {places} decimal places"
    if kind in ("DATE", "TIMESTAMPTZ"):
        cast = "DATE" if kind == "DATE" else "TIMESTAMPTZ"
        suffix = "" if kind == "DATE" else " 00:00:00+00"
        cond = f"{value} BETWEEN {cast} '{FIRST_DAY}{suffix}' AND {cast} '{LAST_DAY}{suffix}'"
        if raw_type == "VARCHAR" and target not in config.formats:
            # words (epoch, infinity) start with a letter; a clock check only where a clock could be wrong
            cond += (f" AND ascii(ltrim({given})) BETWEEN 48 AND 57 AND NOT ((contains({given}, '24:') "
                     f"OR (strlen({given}) > 20 AND NOT ends_with({given}, 'Z'))) "
                     f"AND regexp_matches({given}, {sql_literal(BAD_CLOCK)}))")
        return cond, "is out of range (years 1-9999, hours 0-23, UTC offsets within ±14:59)"
    return None


def build(config: SourceConfig, raw: str, raw_columns: list[str], raw_types: dict[str, str],
          watermark: str | None, cursor_limit: dt.datetime | None = None,
          kinds: dict[str, str] | None = None) -> Plan:
    """The SQL over relation `raw` giving every row typed, with the first broken rule or NULL.

    Layered so that each value is typed once: the typed values and the raw ones first, then the
    type rules (a cleaned value that did not type) and defaults, then the checks. The raw row is kept
    as JSON only for rows that break a rule; duplicates are marked afterwards (`dedupe_statements`),
    on the materialized rows.
    """
    columns = mapping(config, raw_columns, raw_types, kinds)
    source_columns = [c for c in raw_columns if c not in INTERNAL]
    refuse_reserved(source_columns)
    used_sources = {source for source, _ in columns.values()}
    new_columns = tuple(c for c in source_columns if c not in used_sources)
    if new_columns and config.on_new_columns == "fail":
        raise SourceError(f"the source has new column(s) not declared: {', '.join(new_columns)}")
    if new_columns and config.on_new_columns == "add":
        for c in new_columns:
            columns[config.rename.get(c, c)] = (c, "VARCHAR")
    refuse_reserved(columns, "the source's target table")
    raw_name = {c: f"_tally_raw_{i}" for i, c in enumerate(source_columns)}
    typed_parts, value_parts, type_rules = _column_parts(config, columns, raw_types, raw_name)
    skip = "FALSE"
    if config.cursor and watermark is not None:
        kind = columns[config.cursor][1]
        # with a key, a row at the watermark is re-read (the merge replaces it): a row updated in the same
        # instant as the last loaded one is not lost; without a key it would be loaded twice
        op = "<" if config.primary_key else "<="
        skip = f"COALESCE(t.{quote_ident(config.cursor)} {op} CAST({sql_literal(watermark)} AS {kind}), FALSE)"
    row = "r._tally_row" if "_tally_row" in raw_columns else "CAST(NULL AS BIGINT)"
    file = "r._tally_file" if "_tally_file" in raw_columns else "CAST(NULL AS BIGINT)"
    passthrough = [f"r.{quote_ident(c)} AS {quote_ident(raw_name[c])}" for c in source_columns]
    raw_cols = ", ".join(f"t.{quote_ident(raw_name[c])}" for c in source_columns)
    typed_sql = (f"SELECT {', '.join(typed_parts + passthrough)}, {row} AS _tally_row, "
                 f"CAST({file} AS BIGINT) AS _tally_file FROM {raw} AS r")
    valued_sql = (f"SELECT {', '.join(value_parts)}{', ' if raw_cols else ''}{raw_cols}, t._tally_row, t._tally_file, "
                  f"{_case(type_rules)} AS _tally_type_rule FROM ({typed_sql}) AS t")
    rules = _future_cursor_rule(config, columns, cursor_limit) + _check_rules(config, columns)
    ruled = (f"SELECT t.*, COALESCE(t._tally_type_rule, {_case(rules)}) AS _tally_rule, "
             f"{skip} AS _tally_skip FROM ({valued_sql}) AS t")
    raw_json = ", ".join(f"{quote_ident(c)} := {quote_ident(raw_name[c])}" for c in source_columns)
    hidden = ", ".join(["_tally_type_rule"] + [quote_ident(raw_name[c]) for c in source_columns])
    sql = (f"SELECT * EXCLUDE ({hidden}), CASE WHEN _tally_rule IS NOT NULL "
           f"THEN CAST(to_json(struct_pack({raw_json})) AS VARCHAR) END AS _tally_raw FROM ({ruled}) AS u")
    return Plan(sql=sql, columns=tuple(columns), new_columns=new_columns,
                cursor_kind=columns[config.cursor][1] if config.cursor else None,
                kinds=tuple((c, kind) for c, (_, kind) in columns.items()))


def _column_parts(config: SourceConfig, columns: dict[str, tuple[str, str]], raw_types: dict[str, str],
                  raw_name: dict[str, str]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Per loaded column: its typed value (first layer), its checked value with its default (second
    layer), and the type rules a value that did not type or is out of range breaks."""
    typed_parts, value_parts, type_rules = [], [], []
    for target, (source, kind) in columns.items():
        raw_type = raw_types.get(source, "VARCHAR")
        typed = typed_value(config, target, f"r.{quote_ident(source)}", kind, raw_type)
        typed_parts.append(f"{typed} AS {quote_ident(target)}")
        default = config.defaults.get(target)
        value = f"t.{quote_ident(target)}"
        given = f"t.{quote_ident(raw_name[source])}" if source in raw_name else "NULL"
        ranged = range_rule(config, target, kind, raw_type, value, given)
        if ranged:
            type_rules.append((f"{value} IS NOT NULL AND NOT COALESCE({ranged[0]}, FALSE)",
                               f"type: {target} {ranged[1]}"))
            value = f"CASE WHEN {ranged[0]} THEN CAST({value} AS {kind}) END"
        value_parts.append(f"COALESCE({value}, CAST({sql_literal(default)} AS {kind})) AS {quote_ident(target)}"
                           if default is not None
                           else f"{value} AS {quote_ident(target)}")
        if raw_type != kind:
            given = cleaned_text(config, given) if raw_type == "VARCHAR" else given
            type_rules.append((f"t.{quote_ident(target)} IS NULL AND {given} IS NOT NULL",
                               f"type: {target} is not a valid {kind.lower()}"))
    return typed_parts, value_parts, type_rules


def instant_as(kind: str, instant: dt.datetime) -> str:
    """SQL for a UTC instant as a value of a DATE or TIMESTAMPTZ column (a date in the session's zone)."""
    return f"CAST(CAST({sql_literal(instant.isoformat())} AS TIMESTAMPTZ) AS {kind})"


def _future_cursor_rule(config: SourceConfig, columns: dict, limit: dt.datetime | None) -> list[tuple[str, str]]:
    """A date/timestamp cursor later than the load's time (+ tolerance) would move the watermark past
    rows still to come: such a row is rejected now and read again by a later load."""
    if not config.cursor or limit is None or columns[config.cursor][1] not in ("DATE", "TIMESTAMPTZ"):
        return []
    cursor = f"t.{quote_ident(config.cursor)}"
    return [(f"{cursor} > {instant_as(columns[config.cursor][1], limit)}",
             f"future_cursor: {config.cursor} is later than the load time + cursor_tolerance "
             f"({config.cursor_tolerance}); a later load reads it again")]


def _case(rules: list[tuple[str, str]]) -> str:
    """The text of the first rule whose condition holds, else NULL."""
    if not rules:
        return "CAST(NULL AS VARCHAR)"
    return "CASE " + " ".join(f"WHEN {cond} THEN {sql_literal(text)}" for cond, text in rules) + " END"


def _check_rules(config: SourceConfig, columns: dict) -> list[tuple[str, str]]:
    def col(name: str) -> str:
        if name not in columns:
            raise SourceError(f"a check names column {name!r}, which the source does not load "
                              f"(columns: {', '.join(columns)})")
        return f"t.{quote_ident(name)}"

    rules = []
    for check in config.checks:
        kind = check.rule
        if kind == "not_null":
            rules += [(f"{col(c)} IS NULL", f"not_null: {c}") for c in check.not_null]
        elif kind in ("min", "max"):
            op = "<" if kind == "min" else ">"
            rules += [(f"{col(c)} {op} {sql_literal(v)}", f"{kind}: {c} {'>=' if kind == 'min' else '<='} {v}")
                      for c, v in getattr(check, kind).items()]
        elif kind == "accepted_values":
            for c, values in check.accepted_values.items():
                listed = ", ".join(sql_literal(v) for v in values)
                rules.append((f"{col(c)} IS NOT NULL AND CAST({col(c)} AS VARCHAR) NOT IN "
                              f"({', '.join(sql_literal(str(v)) for v in values)})",
                              f"accepted_values: {c} in [{listed}]"))
        elif kind == "regex":
            rules += [(f"{col(c)} IS NOT NULL AND NOT regexp_full_match(CAST({col(c)} AS VARCHAR), {sql_literal(p)})",
                       f"regex: {c} ~ {p}") for c, p in check.regex.items()]
        elif kind == "expression":
            tree = parse_row_expr(check.expression).tree.copy()
            for node in tree.find_all(sge.Column):
                col(node.name)
                node.set("table", sge.to_identifier("t"))
                node.set("this", sge.to_identifier(node.name, quoted=True))
            rules.append((f"NOT COALESCE(({tree.sql('duckdb')}), FALSE)", f"check: {check.expression}"))
        elif kind == "exists_in":
            for c, target in check.exists_in.items():
                table, key = target.split(".")
                rules.append((f"{col(c)} IS NOT NULL AND NOT EXISTS "
                              f"(SELECT 1 FROM {quote_ident(exists_name(table, key))} "
                               f"AS e WHERE e.{quote_ident(key)} = {col(c)})", f"exists_in: {c} in {target}"))
    return rules


def exists_name(table: str, key: str) -> str:
    """The scratch relation holding the keys an `exists_in` check looks up."""
    return f"__tally_keys_{table}_{key}"


def dedupe_statements(config: SourceConfig, checked: str, raw_json: str) -> list[str]:
    """UPDATEs marking all but the highest-cursor row per primary key (and per `unique` set) as rejected.

    Only keys that really repeat are ranked, so a load without duplicates pays one hash aggregate.
    """
    # the later row of the files: by file, then line (set by check.fill_lines where rows were re-read
    # as text, so they rank among the others), then the order rows were read in
    order = ((f"c.{quote_ident(config.cursor)} DESC NULLS LAST, " if config.cursor else "")
             + "c._tally_file DESC NULLS LAST, c._tally_row DESC NULLS LAST, c.rowid DESC")
    statements = []
    for rule, keys, cols, live, repeated, match in _repeats(config, checked):
        partition = ", ".join(f"c.{quote_ident(k)}" for k in keys)
        ranked = (f"SELECT c.rowid AS id, ROW_NUMBER() OVER (PARTITION BY {partition} "
                  f"ORDER BY {order}) AS n FROM {quote_ident(checked)} AS c SEMI JOIN ({repeated}) AS d ON {match} "
                  f"WHERE c.{live.replace(' AND NOT ', ' AND NOT c.')}")
        statements.append(f"UPDATE {quote_ident(checked)} "
                          f"SET _tally_rule = {sql_literal(rule + ' (a later row was kept)')}, "
                          f"_tally_raw = {raw_json} WHERE rowid IN (SELECT id FROM ({ranked}) WHERE n > 1)")
    return statements


def _repeats(config: SourceConfig, checked: str):
    groups = [("duplicate_key", config.primary_key)] if config.primary_key else []
    groups += [(f"unique: {', '.join(check.unique)}", check.unique) for check in config.checks if check.unique]
    for rule, keys in groups:
        cols = ", ".join(quote_ident(k) for k in keys)
        live = "_tally_rule IS NULL AND NOT _tally_skip"
        repeated = f"SELECT {cols} FROM {quote_ident(checked)} WHERE {live} GROUP BY ALL HAVING count(*) > 1"
        match = " AND ".join(f"c.{quote_ident(k)} IS NOT DISTINCT FROM d.{quote_ident(k)}" for k in keys)
        yield rule, keys, cols, live, repeated, match


def repeated_rows(config: SourceConfig, checked: str) -> str:
    """A condition on the checked rows: the row's key (or `unique` set) repeats among the live rows."""
    parts = [f"rowid IN (SELECT c.rowid FROM {quote_ident(checked)} AS c SEMI JOIN ({repeated}) AS d ON {match} "
             f"WHERE c.{live.replace(' AND NOT ', ' AND NOT c.')})"
             for _, _, _, live, repeated, match in _repeats(config, checked)]
    return " OR ".join(parts) or "FALSE"


def typed_json(columns) -> str:
    """JSON of a checked row's typed values (for rejects found after typing, like duplicates)."""
    fields = ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in columns)
    return f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"
