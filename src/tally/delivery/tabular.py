"""Render query rows as JSON, CSV or a terminal table, with numbers formatted by metric format."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import re
import secrets

import pyarrow as pa


def json_value(value):
    """A JSON-ready value: Decimals as numbers, dates as ISO strings, NaN as null."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def rows_for_json(table: pa.Table) -> list[dict]:
    return [{k: json_value(v) for k, v in row.items()} for row in table.to_pylist()]


def decimal_text(value: decimal.Decimal) -> str:
    """Every digit of an exact decimal, never in exponent notation: `1234567890123456.78`."""
    return format(value, "f")


def to_json(table: pa.Table) -> str:
    """Rows as JSON; decimals are written as numbers with every digit (a float would round them)."""
    marker = f"__tally_decimal_{secrets.token_hex(8)}_"
    exact: list[str] = []

    def value(v):
        if isinstance(v, decimal.Decimal) and v.is_finite():
            exact.append(decimal_text(v))
            return f"{marker}{len(exact) - 1}"
        return json_value(v)

    rows = [{k: value(v) for k, v in row.items()} for row in table.to_pylist()]
    text = json.dumps(rows, ensure_ascii=False, indent=2)
    return re.sub(rf'"{marker}(\d+)"', lambda m: exact[int(m.group(1))], text) if exact else text


# text a spreadsheet would run as a formula (=, +, -, @, or a tab / carriage return first); a plain
# number written as text ("-5", "+3.5") is data and stays as it is
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def csv_text(value: str) -> str:
    """A text cell made safe for spreadsheets: formula-looking text gets a leading `'`, as OWASP advises."""
    if value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class CsvRows:
    """A csv writer whose rows end in \n and whose fields holding \r or \n are quoted: Python 3.11's
    writer quotes only the characters of its line terminator, so a bare \r once went out unquoted."""

    def __init__(self, out):
        self.out, self.row = out, io.StringIO()
        self.writer = csv.writer(self.row, lineterminator="\r\n")

    def writerow(self, cells: list) -> None:
        self.row.seek(0)
        self.row.truncate()
        self.writer.writerow(cells)
        self.out.write(self.row.getvalue()[:-2] + "\n")


def to_csv(table: pa.Table) -> str:
    out = io.StringIO()
    writer = CsvRows(out)
    writer.writerow([csv_text(name) for name in table.column_names])
    for row in table.to_pylist():
        writer.writerow(["" if v is None else decimal_text(v) if isinstance(v, decimal.Decimal)
                         else csv_text(v) if isinstance(v, str) else json_value(v) for v in row.values()])
    return out.getvalue()


def format_number(value, kind: str, symbol: str = "$") -> str:
    """Human text for a metric value: money with the currency symbol, percent, integer, number."""
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    exact = isinstance(value, decimal.Decimal)
    if kind == "money":
        sign = "-" if value < 0 else ""
        # a decimal keeps every digit (rounded to cents, or more places when it has them)
        places = max(2, -value.as_tuple().exponent) if exact else 2
        return f"{sign}{symbol}{abs(value if exact else float(value)):,.{places}f}"
    if kind == "percent":
        return f"{float(value) * 100:,.1f}%"
    if kind == "integer" or isinstance(value, int):
        return f"{int(value):,}"
    if exact:
        return f"{value:,f}"
    return f"{float(value):,.2f}"


def format_change_pct(value) -> str:
    if value is None:
        return "—"
    return f"{value:+,.1f}%"


def format_points(value) -> str:
    """The change of a percentage in percentage points: 0.305 -> 0.300 is `-0.5 pp`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value) * 100:+,.1f} pp"


def period_label(value) -> str:
    """A period as text: the label `--format json` prints and `--meta` lists as partial."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def cell_text(column: str, value, formats: dict[str, str], symbol: str) -> str:
    """How one cell reads in a table: metrics by their format, keys as plain text. A percentage's
    change reads in points, and its change % (a percent of a percent) is left out."""
    base = column
    for suffix in ("_previous", "_change_pct", "_change"):
        if column.endswith(suffix) and column[: -len(suffix)] in formats:
            base = column[: -len(suffix)]
            if suffix == "_change_pct":
                return "" if formats[base] == "percent" else format_change_pct(value)
            if suffix == "_change" and formats[base] == "percent":
                return format_points(value)
            break
    if base in formats:
        return format_number(value, formats[base], symbol)
    if value is None:
        return "—"
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def records_to_csv(records: list[dict], names: list[str] | None = None) -> str:
    """Job summaries (ingest, rollup build, verify) as CSV: one line per record, the keys as the
    header; lists and mappings as JSON text; text cells made safe for spreadsheets."""
    names = names or list(dict.fromkeys(key for record in records for key in record))

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, decimal.Decimal):
            return decimal_text(value)
        if isinstance(value, (dict, list, tuple)):
            return csv_text(json.dumps(value, default=str, ensure_ascii=False, sort_keys=True))
        if isinstance(value, str):
            return csv_text(value)
        return json_value(value)

    out = io.StringIO()
    writer = CsvRows(out)
    writer.writerow([csv_text(name) for name in names])
    for record in records:
        writer.writerow([cell(record.get(name)) for name in names])
    return out.getvalue()
