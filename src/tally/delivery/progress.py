"""One progress display for long jobs (ingest, rollup build): a bar per item on stderr, gone when done."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

# rich is imported inside the function: the CLI imports this module's callers at start

ReportProgress = Callable[[str, "float | None", str], None]   # progress(name, fraction done 0..1, note)


@contextmanager
def progress_bars(console, show: bool = True, time_left: bool = False) -> Iterator[ReportProgress]:
    """A `progress(name, fraction, note)` callable for the core's jobs, drawing one bar per name on
    `console` while the block runs; silent unless `show` and the console is a terminal. `time_left`
    adds an estimate (ingest's fractions grow steadily; a rollup's jump)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description:<18}"), BarColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn(), *([TimeRemainingColumn()] if time_left else [])]
    with Progress(*columns, console=console, transient=True, disable=not show or not console.is_terminal) as bars:
        tasks: dict[str, int] = {}

        def progress(name: str, fraction: float | None, note: str) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=1.0, note="")
            bars.update(tasks[name], completed=fraction, note=note)

        yield progress
