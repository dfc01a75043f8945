"""Progress of a source's run: the callback's shape, and DuckDB's own progress of a long statement."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable

Progress = Callable[[str, float | None, str], None]     # (source, fraction done or None, message)


def no_progress(name: str, fraction: float | None, message: str) -> None:
    """The progress callback of a run nobody watches."""


@contextmanager
def track_progress(con, name: str, progress: Progress):
    """Report DuckDB's own progress of the long statement from a side thread."""
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            try:
                fraction = con.query_progress()
            except Exception:  # the statement may just have finished
                return
            if fraction is not None and fraction >= 0:
                progress(name, min(fraction / 100.0, 1.0), "checking")

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
