"""`tally init DIR --from-csv FILE`: draft `sources:` and `models:` from a CSV file's header and values."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tally.errors import ConfigError, TallyError
from tally.commands.init import project_name, target_dir
from tally.project.loader import CONFIG_FILE

MAX_DIMENSION_VALUES = 50          # a text column with at most this many distinct values is a dimension
NUMBERS = ("BIGINT", "DOUBLE")     # and DECIMAL(p,s): summed
TIMES = ("TIMESTAMPTZ", "DATE")
# a time column is guessed by its name: the earlier a hint in this list, the better
TIME_HINTS = ("ordered", "created", "placed", "purchased", "booked", "paid", "sold", "date", "time", "day", "_at",
              "_on", "at", "on")
CHANGE_HINTS = ("updated", "modified", "changed", "last_seen", "synced")
TAKEN = {"period"}                 # names the query output uses for itself


@dataclass
class Column:
    raw: str          # the header as the CSV reader names it
    name: str         # its name in the warehouse (snake_case, unique, usable in expressions)
    kind: str         # DuckDB type inferred over every row (allowing a few strays)
    filled: int       # non-empty values
    distinct: int     # distinct non-empty values
    strays: int = 0   # values the kind does not fit (a draft takes a type nearly all values fit)


def snake(text: str) -> str:
    """`Order ID` -> `order_id`, `Total (€)` -> `total`, `2nd` -> `c_2nd`."""
    name = re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_") or "column"
    return f"c_{name}" if name[0].isdigit() else name


def usable(name: str) -> bool:
    """Whether `name` reads as itself in a row expression and a formula (not a keyword like `select`)."""
    from tally.project.expr import parse_formula, parse_row_expr

    try:
        return parse_row_expr(name).references == (name,) and parse_formula(name).references == (name,)
    except TallyError:
        return False


def unique_names(raws: list[str], taken: set[str] | None = None) -> dict[str, str]:
    """Raw header -> a snake_case name no other column has, that is not a keyword nor reserved."""
    taken = set(taken or ()) | TAKEN
    names = {}
    for raw in raws:
        base = snake(raw)
        if base.startswith("_tally_") or base.startswith("tally_"):
            base = f"c_{base.lstrip('_')}"
        if not usable(base):
            base = f"{base}_col"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[raw] = name
    return names


def sniff_delimiter(csv_file: Path) -> str:
    """The field separator DuckDB's sniffer finds (`,` when it cannot tell)."""
    import duckdb

    try:
        with duckdb.connect() as con:
            found = con.execute("SELECT Delimiter FROM sniff_csv(?)", [str(csv_file)]).fetchone()
    except duckdb.Error:
        return ","
    return found[0] if found and found[0] in (",", ";", "\t", "|") else ","


def profile(root: Path, path: str, delimiter: str = ",") -> list[Column]:
    """Read the CSV as `tally ingest` would (same reader, same type inference) and count its values."""
    import duckdb

    from tally.sources import infer, validate
    from tally.sources.config import SourceConfig
    from tally.sources.connectors import connector
    from tally.sources.connectors.base import ReadContext
    from tally.warehouse.sqltext import quote_ident

    config = SourceConfig.model_validate({"kind": "csv", "table": "draft", "path": path, "delimiter": delimiter})
    module = connector("csv")
    options = module.Options.model_validate(config.options)
    _refuse_case_twins(module.header(root / path, options))
    raw = module.read(options, ReadContext(root=root, name="draft", config=config, watermark=None))
    con = duckdb.connect()
    try:
        con.register("__draft", raw.relation(con))
        raw_types = {row[0]: row[1] for row in con.execute('DESCRIBE "__draft"').fetchall()}
        strays: dict[str, int] = {}
        kinds = infer.infer(con, config, "__draft", raw_types, {}, strays)
        heads = [name for name in raw_types if name not in validate.INTERNAL]
        if not heads:
            raise ConfigError(f"{path} has no columns")
        parts = [f"count(NULLIF(trim(CAST({quote_ident(h)} AS VARCHAR)), '')), "
                 f"count(DISTINCT NULLIF(trim(CAST({quote_ident(h)} AS VARCHAR)), ''))" for h in heads]
        counts = con.execute(f"SELECT count(*), {', '.join(parts)} FROM \"__draft\"").fetchone()
    except duckdb.Error as exc:
        raise ConfigError(f"DuckDB cannot read it: {str(exc).strip().splitlines()[0]}") from None
    finally:
        if raw.cleanup:
            raw.cleanup(con)
        con.close()
    if not counts[0]:
        raise ConfigError(f"{path} has a header but no rows: nothing to infer types from")
    names = unique_names(heads)
    return [Column(h, names[h], kinds[h], counts[1 + 2 * i], counts[2 + 2 * i], strays.get(h, 0))
            for i, h in enumerate(heads)]


def _refuse_case_twins(header: list[str]) -> None:
    """Headers equal but for case (or repeated): DuckDB's reader takes them for one name and fails."""
    seen: dict[str, str] = {}
    for name in header:
        twin = seen.setdefault(name.lower(), name)
        if twin is not name:
            raise ConfigError(f"columns {twin!r} and {name!r} differ only in case, which DuckDB reads as the same "
                              "name: rename one of them in the file's header")


def _hint_rank(name: str, hints: tuple[str, ...]) -> int | None:
    for rank, hint in enumerate(hints):
        if hint in name if len(hint) > 2 else (name.endswith(hint) or name.startswith(f"{hint}_")):
            return rank
    return None


def guess_time(columns: list[Column]) -> tuple[Column | None, Column | None]:
    """(the time column, the change-time column): dates and timestamps, chosen by name."""
    times = [c for c in columns if c.kind in TIMES and c.filled]
    changes = [c for c in times if c.kind == "TIMESTAMPTZ" and _hint_rank(c.name, CHANGE_HINTS) is not None]
    others = [c for c in times if c not in changes]
    ranked = sorted(others, key=lambda c: (_hint_rank(c.name, TIME_HINTS) is None,
                                           _hint_rank(c.name, TIME_HINTS) or 0, -c.filled))
    return (ranked[0] if ranked else None), (changes[0] if changes else None)


def guess_key(columns: list[Column], rows: int) -> Column | None:
    """An id-like integer or text column with a distinct value on every row."""
    for column in columns:
        if (column.name == "id" or column.name.endswith("_id")) and column.filled == rows == column.distinct \
                and column.kind in ("BIGINT", "VARCHAR"):
            return column
    return None


def _y(value: str) -> str:
    """A YAML scalar that stays text whatever it holds (JSON strings are YAML double-quoted scalars)."""
    return json.dumps(value, ensure_ascii=False)


def draft_yaml(name: str, source: str, path: str, columns: list[Column], rows: int, delimiter: str = ",") -> str:
    """The commented tally.yml text for the profiled columns.

    (Long: the YAML is written top to bottom in the order a reader meets it.)"""
    from tally.sources.infer import type_name

    time, changed = guess_time(columns)
    key = guess_key(columns, rows)
    numbers = [c for c in columns if (c.kind in NUMBERS or c.kind.startswith("DECIMAL")) and c is not key
               and not c.name.endswith("_id") and c.name != "id"]
    # few distinct values, repeated (a text column distinct on most rows is an identifier or free text)
    dimensions = [c for c in columns if c.kind in ("VARCHAR", "BOOLEAN") and 0 < c.distinct <= MAX_DIMENSION_VALUES
                  and (c.distinct <= c.filled // 2 or c.filled < 20) and c is not key]
    left_out = [c for c in columns if c.kind == "VARCHAR" and c not in dimensions and c.distinct and c is not key]
    measure_names = unique_names([f"total_{c.name}" for c in numbers] + ["row_count"],
                                 taken={c.name for c in dimensions})
    out = [f"# tally.yml drafted by `tally init --from-csv` from {Path(path).name} ({rows:,} rows): check the",
           "# inferred types and the guessed time column, then `tally ingest` and `tally query row_count`.",
           f"name: {_y(name)}", "timezone: UTC                      # day/week/month boundaries are computed here",
           "warehouse: duckdb:///warehouse.duckdb", "", "sources:", f"  {source}:", "    kind: csv",
           f"    path: {_y(path)}", f"    table: {source}"]
    if delimiter != ",":
        out.append(f"    delimiter: {_y(delimiter)}")
    if key:
        out.append(f"    primary_key: [{key.name}]".ljust(37) + "# distinct on every row: a row seen again replaces it")
    if changed:
        out.append(f"    cursor: {changed.name}".ljust(37) + "# later loads read only rows changed since the last")
    renamed = [c for c in columns if c.raw != c.name]
    if renamed:
        out.append("    rename:                          # header -> a name usable in expressions")
        out += [f"      {_y(c.raw)}: {c.name}" for c in renamed]
    out.append("    columns:                         # inferred over every row: edit where the guess is wrong")
    for c in columns:
        note = "  # every value empty: read as text" if not c.filled else ""
        if c.strays:
            note = (f"  # {c.strays:,} value(s) do not read as {type_name(c.kind)}: ingest rejects those rows "
                    f"(`tally preview {source}` lists them)")
        out.append(f"      {c.name}: {type_name(c.kind)}{note}")
    out += ["", "models:", f"  {source}:", f"    table: {source}"]
    if time:
        out.append(f"    time: {time.name}".ljust(37) + "# measures are dated by this column (a guess)")
    else:
        out.append("    # no date or timestamp column was found: metrics are totals over all rows; add")
        out.append("    # `time: COLUMN` (a date or timestamp column) to break them down by day, week or month")
    if changed and time:
        out.append(f"    updated: {changed.name}".ljust(37) + "# change time: rollup refreshes recompute what it touches")
    if key:
        out.append(f"    primary_key: [{key.name}]")
    if dimensions:
        out.append("    dimensions:                      # text columns with few distinct values: break down by them")
        out += [f"      {c.name}: {c.name}".ljust(37) + f"# {c.distinct} distinct value(s)" for c in dimensions]
    for c in left_out:
        out.append(f"    # {c.name}: {c.distinct:,} distinct values, left out of the dimensions")
    out.append("    measures:")
    for c, measure in zip(numbers, list(measure_names.values())[:-1]):
        fmt = "integer" if c.kind == "BIGINT" else "number"
        out.append(f"      {measure}: {{sum: {c.name}, format: {fmt}}}")
    out.append(f"      {measure_names['row_count']}: {{count: \"*\", format: integer}}   # rows")
    first = next(iter(measure_names.values()))
    out += ["", "# Derived metrics: arithmetic over metrics, computed after aggregation, e.g.",
            "# metrics:", f"#   per_row: {{formula: {first} / {measure_names['row_count']}}}"]
    if time:
        out += ["", "# Rollups store metrics per period for fast answers (`tally rollup build`), e.g.",
                "# rollups:", f"#   monthly: {{metrics: [{measure_names['row_count']}], grains: [day, month]}}"]
    return "\n".join(out) + "\n"


def write_draft(directory: Path, csv_file: Path) -> str:
    """Profile the CSV, then write the drafted tally.yml and copy the CSV into `directory`/data (unless it
    is inside already); nothing is written when the CSV cannot be read."""
    directory = target_dir(directory)
    if not csv_file.is_file():
        raise ConfigError(f"--from-csv {csv_file}: no such file")
    delimiter = sniff_delimiter(csv_file)
    try:
        columns = profile(csv_file.resolve().parent, csv_file.name, delimiter)
        rows = _rows(csv_file, delimiter)
    except TallyError as exc:
        hint = "; save the file as UTF-8 first" if "codec can't decode" in exc.message else ""
        raise ConfigError(f"--from-csv {csv_file}: {exc.message}{hint}") from None
    inside = csv_file.resolve().is_relative_to(directory.resolve())
    relative = csv_file.resolve().relative_to(directory.resolve()) if inside else Path("data") / csv_file.name
    directory.mkdir(parents=True, exist_ok=True)
    if not inside:
        (directory / "data").mkdir(exist_ok=True)
        shutil.copyfile(csv_file, directory / relative)
    path = relative.as_posix()
    source = unique_names([Path(path).stem])[Path(path).stem]
    (directory / CONFIG_FILE).write_text(draft_yaml(project_name(directory), source, path, columns, rows, delimiter),
                                         encoding="utf-8")
    time, _ = guess_time(columns)
    where = "read from" if inside else "copied to"
    return (f"Created {directory / CONFIG_FILE} from {csv_file} ({where} {directory / relative}); time column: "
            f"{time.name if time else 'none found'}. Next:\n  tally -p {directory} ingest\n"
            f"  tally -p {directory} query row_count" + (" --grain month" if time else ""))


def _rows(csv_file: Path, delimiter: str) -> int:
    """Rows of the file as the reader counts them (for the header comment)."""
    import duckdb

    with duckdb.connect() as con:
        return con.execute("SELECT count(*) FROM read_csv(?, header = true, all_varchar = true, delim = ?, "
                           "ignore_errors = true)", [str(csv_file), delimiter]).fetchone()[0]
