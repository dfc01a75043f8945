"""Query rows as a terminal table that never cuts a number: labels wrap, else one block per row."""

from __future__ import annotations

import re

# rich and pyarrow are imported inside the functions: the CLI imports this module at start

PARTIAL_MARK = "*"
LABEL_MIN = 8          # a label column narrower than this reads worse than the vertical layout
SUFFIXES = {"_previous": "previous", "_change_pct": "change %", "_change": "change"}


def title_text(meta: dict) -> str:
    """The range (and comparison range) a query covered, and the snapshots it read."""
    title = f"{meta.get('from')} → {meta.get('to')} ({meta.get('timezone')})"
    if meta.get("compare"):
        title += f" vs {meta['compare']['from']} → {meta['compare']['to']}"
    for metric, stamp in (meta.get("as_of") or {}).items():   # a snapshot ignores the range: say when it is from
        title += f"\n{metric}: snapshot as of " + (f"its load at {stamp}" if stamp else "now (no load recorded)")
    return title


def metric_formats(project, names) -> dict[str, str]:
    """The display format of each column that is a metric of the project."""
    catalog = project.catalog
    return {name: catalog.info(name).format for name in names if name in catalog.names}


def print_rows(console, table, project, title: str = "", notes=(), partial=frozenset()) -> None:
    """Rows as a table fitted to the console: `partial` period labels get a mark, `notes` go below."""
    formats = metric_formats(project, table.column_names)
    symbol = project.config.currency.symbol
    totals = table.num_rows == 1 and all(name in formats or _base(name, formats) for name in table.column_names)
    grid = _totals_grid(table, formats, symbol) if totals else _rows_grid(table, formats, symbol, partial)
    headers, rows, numeric, groups = grid
    show_grid(console, headers, rows, numeric, title=title, groups=groups)
    for note in notes:
        console.print(note, highlight=False, markup=False)


def show_grid(console, headers: list[str], rows: list[list[str]], numeric: list[bool], title: str = "",
              groups: list[list[int]] | None = None) -> None:
    """A table when every number fits whole in the console's width; else the number columns split
    over several tables (each metric with its comparison columns stays together, the labels
    repeated); else one block of lines per row."""
    empty = [i for i in range(len(headers)) if numeric[i] and rows and all(row[i] == "" for row in rows)]
    if empty:   # a percentage's change %: left out of the view rather than shown as a blank column
        kept = [i for i in range(len(headers)) if i not in empty]
        renumber = {old: new for new, old in enumerate(kept)}
        headers, numeric = [headers[i] for i in kept], [numeric[i] for i in kept]
        rows = [[row[i] for i in kept] for row in rows]
        groups = [[renumber[i] for i in group if i in renumber] for group in groups or []]
    keys = [i for i in range(len(headers)) if not numeric[i]]
    # headers broken only between words (a table, else several), and only then anywhere: a header
    # folded into a column one letter wide is unreadable, and splitting the table keeps it whole
    for words in (True, False):
        widths = fit_widths(headers, rows, numeric, console.width, words)
        if widths is not None:
            _show_table(console, headers, rows, numeric, widths, title)
            return
        parts = _pack(headers, rows, numeric, keys, groups or [], console.width, words)
        if parts is not None:
            for number, (columns, widths) in enumerate(parts):
                _show_table(console, [headers[i] for i in columns], [[row[i] for i in columns] for row in rows],
                            [numeric[i] for i in columns], widths, title if number == 0 else "")
            return
    _show_vertical(console, headers, rows, numeric, title)


def _pack(headers, rows, numeric, keys: list[int], groups: list[list[int]], width: int, words: bool):
    """Groups of number columns packed into as few tables as fit, each with the label columns, or None."""
    if len(groups) < 2:
        return None
    parts: list[tuple[list[int], object]] = []
    current: list[int] = []
    for group in groups:
        trial = keys + current + group
        fits = fit_widths([headers[i] for i in trial], [[r[i] for i in trial] for r in rows],
                          [numeric[i] for i in trial], width, words)
        if fits is not None:
            current += group
            continue
        if not current:
            return None   # one metric's columns alone do not fit
        parts.append(keys + current)
        current = list(group)
        alone = keys + current
        if fit_widths([headers[i] for i in alone], [[r[i] for i in alone] for r in rows],
                      [numeric[i] for i in alone], width, words) is None:
            return None
    parts.append(keys + current)
    return [(cols, fit_widths([headers[i] for i in cols], [[r[i] for i in cols] for r in rows],
                              [numeric[i] for i in cols], width, words)) for cols in parts]


def _show_table(console, headers, rows, numeric, widths, title) -> None:
    from rich.table import Table
    from rich.text import Text

    view = Table(title=title or None, title_justify="left")
    for index, header in enumerate(headers):
        fixed = widths[index] if widths is not True else None
        view.add_column(wrap_header(header, fixed) if fixed else header, justify="right" if numeric[index] else "left", width=fixed,
                        overflow="fold")   # the widths hold every number: only labels and headers wrap
    for row in rows:
        view.add_row(*[Text(cell) for cell in row])
    console.print(view)


def wrap_header(header: str, width: int) -> str:
    """A header in lines of at most `width`, broken after a space or an underscore where it can be."""
    lines, line = [], ""
    for word in re.findall(r"[^\s_]*[_\s]*", header):
        if line and len(line.rstrip()) + len(word.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += word
    lines.append(line.rstrip())
    return "\n".join(part for part in lines if part)


def fit_widths(headers: list[str], rows: list[list[str]], numeric: list[bool], width: int, words: bool = True):
    """True when the table fits as it is; column widths that fit by wrapping labels and headers but
    keep every number whole (and, with `words`, every word of a number column's header); None when
    even that does not fit."""
    count = len(headers)
    border = 3 * count + 1   # rich's box: a rule and a space of padding either side of each column
    cells = [max([len(row[i]) for row in rows] or [0]) for i in range(count)]
    natural = [max(cells[i], len(headers[i])) for i in range(count)]
    if sum(natural) + border <= width or not any(numeric):   # text alone: rich wraps it well
        return True
    longest_word = [max(len(word) for word in (re.split(r"[\s_]+", headers[i]) or [""])) for i in range(count)]
    least = [max(cells[i], longest_word[i] if words else 1) if numeric[i] else min(natural[i], LABEL_MIN)
             for i in range(count)]
    spare = width - border - sum(least)
    if spare < 0:
        return None
    widths = list(least)
    for index in sorted(range(count), key=lambda i: numeric[i]):   # labels get room first, then headers
        grow = min(spare, natural[index] - widths[index])
        widths[index] += grow
        spare -= grow
    return widths


def _show_vertical(console, headers, rows, numeric, title) -> None:
    """psql's expanded display: a heading of the row's labels, then one `name  value` line per number."""
    if title:
        console.print(title, highlight=False, markup=False)
    keys = [i for i in range(len(headers)) if not numeric[i]]
    values = [i for i in range(len(headers)) if numeric[i]]
    name_width = max([len(headers[i]) for i in values] or [0])
    for number, row in enumerate(rows):
        heading = " · ".join(f"{headers[i]} {row[i]}" for i in keys) or f"row {number + 1}"
        console.print(f"── {heading}", highlight=False, markup=False)
        for i in (i for i in values if row[i]):
            console.print(f"  {headers[i]:<{name_width}}  {row[i]}", highlight=False, markup=False)


def _base(name: str, formats: dict) -> str | None:
    """The metric a comparison column belongs to (`revenue_change_pct` -> `revenue`), or None."""
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in formats:
            return name[: -len(suffix)]
    return None


def _rows_grid(table, formats: dict, symbol: str, partial) -> tuple:
    from tally.delivery import tabular

    headers, numeric, groups = [], [], {}
    for index, name in enumerate(table.column_names):
        base = _base(name, formats)
        headers.append(f"{base} {SUFFIXES[name[len(base):]]}" if base else name)
        numeric.append(name != "period" and (name in formats or base is not None))
        if numeric[-1]:
            groups.setdefault(base or name, []).append(index)
    rows = []
    for row in table.to_pylist():
        cells = [tabular.cell_text(k, v, formats, symbol) for k, v in row.items()]
        if partial and "period" in row and tabular.period_label(row["period"]) in partial:
            cells[table.column_names.index("period")] += f" {PARTIAL_MARK}"
        rows.append(cells)
    return headers, rows, numeric, list(groups.values())


def _totals_grid(table, formats: dict, symbol: str) -> tuple:
    """One total row reads better turned on its side: a line per metric."""
    from tally.delivery import tabular

    row = table.to_pylist()[0]
    compared = any(name.endswith("_previous") for name in row)
    headers = ["metric", "value"] + (["previous", "change", "change %"] if compared else [])
    rows = []
    for metric in formats:
        cells = [metric, tabular.cell_text(metric, row[metric], formats, symbol)]
        if compared:
            cells += [tabular.cell_text(f"{metric}{suffix}", row[f"{metric}{suffix}"], formats, symbol)
                      for suffix in ("_previous", "_change", "_change_pct")]
        rows.append(cells)
    return headers, rows, [False] + [True] * (len(headers) - 1), None
