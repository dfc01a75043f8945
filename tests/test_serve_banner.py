"""The line `tally serve` prints at start says how many jobs its scheduler runs ("scheduler on" read
as if jobs would run on a project where none has a schedule)."""

from __future__ import annotations

from tally.serve.runner import scheduler_text


class Jobs:
    def __init__(self, count: int):
        self.count = count

    def next_runs(self) -> dict:
        return {f"ingest:s{i}": None for i in range(self.count)}


def test_the_banner_counts_scheduled_jobs():
    assert scheduler_text(None) == "scheduler off"
    assert scheduler_text(Jobs(0)) == "scheduler on (no job has a schedule)"
    assert scheduler_text(Jobs(1)) == "scheduler on (1 scheduled job)"
    assert scheduler_text(Jobs(3)) == "scheduler on (3 scheduled jobs)"
