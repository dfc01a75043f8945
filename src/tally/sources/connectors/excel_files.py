"""Excel and OpenDocument workbooks (xlsx, xlsm, xlsb, xls, ods; a glob) read with python-calamine."""

from __future__ import annotations

from pathlib import Path

from pydantic import NonNegativeInt

from tally.errors import SourceError
from tally.sources.connectors.base import Capabilities, Options as BaseOptions, RawData, ReadContext
from tally.sources.connectors.csv_files import files
from tally.sources.connectors.json_files import arrow_table, empty_table

CAPABILITIES = Capabilities(pushes_cursor=False, text_values=True)


class Options(BaseOptions):
    """`sheet`: a name, or a 0-based index (quote a name that looks like a number: `sheet: "2024"`).
    `header_row`: 0-based row of the column names in the sheet (Excel row number - 1).
    `skip_rows`: data rows to skip after the header (units, notes)."""

    path: str
    sheet: NonNegativeInt | str = 0
    header_row: NonNegativeInt = 0
    skip_rows: NonNegativeInt = 0


def _sheet(path: Path, options: Options):
    """The chosen sheet of one workbook, or a SourceError naming the sheets it has."""
    from python_calamine import CalamineError, CalamineWorkbook   # heavy: only when an Excel source runs

    try:
        with CalamineWorkbook.from_path(str(path)) as workbook:
            names = workbook.sheet_names
            sheet = options.sheet
            if isinstance(sheet, int) and sheet >= len(names) or isinstance(sheet, str) and sheet not in names:
                what = f"sheet index {sheet}" if isinstance(sheet, int) else f"sheet {sheet!r}"
                raise SourceError(f"{path} has no {what} (sheets: {', '.join(map(repr, names)) or 'none'})")
            pick = workbook.get_sheet_by_index if isinstance(sheet, int) else workbook.get_sheet_by_name
            return pick(sheet).to_python(skip_empty_area=False)   # from A1: `header_row` is the sheet's row
    except (CalamineError, OSError, ValueError) as exc:
        raise SourceError(f"cannot read workbook {path}: {exc}") from None


def _cell(value):
    """Empty cells are null; whole numbers (Excel stores every number as a float) are ints."""
    if value == "":
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _names(header: list, path: Path, row: int) -> list[str | None]:
    """Column names from the header cells; None for an empty one (kept only if its column holds data)."""
    names = [None if cell in ("", None) else str(_cell(cell)).strip() or None for cell in header]
    for index, name in enumerate(names):
        if name is not None and name in names[:index]:
            raise SourceError(f"{path}: column {name!r} appears twice in header row {row}")
    return names


def _letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _read_file(path: Path, options: Options) -> dict[str, list]:
    """One workbook's chosen sheet as columns of cell values, blank rows dropped."""
    rows = _sheet(path, options)
    if len(rows) <= options.header_row:
        raise SourceError(f"{path}, sheet {options.sheet!r}: no header row {options.header_row} "
                          f"(the sheet has {len(rows)} row(s))")
    names = _names(rows[options.header_row], path, options.header_row)
    data = [[_cell(v) for v in row] for row in rows[options.header_row + 1 + options.skip_rows:]]
    data = [row for row in data if any(v is not None for v in row)]   # a blank row holds no record
    columns = {}
    for index, name in enumerate(names):
        values = [row[index] if index < len(row) else None for row in data]
        if name is None and all(v is None for v in values):
            continue                                                  # an unused column of the sheet
        columns[name or f"column_{_letter(index)}"] = values
    return columns


def _formats(ctx: ReadContext, names) -> dict[str, str]:
    """strptime formats by source column (the config keys them by target): dates render as declared."""
    config = ctx.config
    return {name: config.formats[config.rename.get(name, name)] for name in names
            if config.rename.get(name, name) in config.formats}


def read(options: Options, ctx: ReadContext) -> RawData:
    paths = files(ctx.root, options.path)
    if not paths:
        raise SourceError(f"no files match {options.path!r} (in {ctx.root})")
    columns: dict[str, list] = {}
    first = None
    for path in paths:
        found = _read_file(path, options)
        if first and list(found) != list(columns):
            raise SourceError(f"{path.name} has columns {list(found)}, unlike {first.name} {list(columns)}")
        first = first or (path if found else None)
        for name, values in found.items():
            columns.setdefault(name, []).extend(values)
        ctx.progress(len(next(iter(columns.values()), [])))
    if not columns:
        table = empty_table(ctx, f"{paths[0]}, sheet {options.sheet!r}")
    else:
        table = arrow_table(columns, bool(ctx.config.columns), _formats(ctx, columns))
    return RawData(arrow=table, details={"files": [str(p) for p in paths]})
