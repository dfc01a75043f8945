"""What `tally jobs` and the HTTP API show: the jobs with their schedules, and the recent runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tally.errors import QueryError, api_boundary
from tally.jobs.records import JobRun, Records
from tally.jobs.registry import jobs_of
from tally.jobs.triggers import next_tick, trigger_for
from tally.warehouse.internal import now

MAX_LIMIT = 10_000


@dataclass
class JobInfo:
    """One job: its id, schedule (None: by hand only), next tick and latest run."""

    id: str
    kind: str
    name: str
    schedule: str | None
    timezone: str | None
    next_run: dt.datetime | None
    last_run: JobRun | None

    def as_dict(self) -> dict:
        last = self.last_run
        return {"id": self.id, "kind": self.kind, "name": self.name, "schedule": self.schedule,
                "timezone": self.timezone, "next_run": self.next_run,
                "last_started_at": last.started_at if last else None, "last_status": last.status if last else None,
                "last_rows": last.rows if last else None, "last_error": last.error if last else None}


@api_boundary
def list_jobs(project) -> list[JobInfo]:
    """Every job of the project (scheduled or not) with its next tick and latest run."""
    records = Records(project)
    try:
        latest = records.latest()
    finally:
        records.close()
    at = now()
    found = []
    for job in jobs_of(project).values():
        upcoming = next_tick(trigger_for(project, job), at) if job.schedule else None
        found.append(JobInfo(job.id, job.kind, job.name, job.schedule.text if job.schedule else None,
                             job.timezone if job.schedule else None,
                             upcoming.astimezone(dt.timezone.utc) if upcoming else None, latest.get(job.id)))
    return found


@api_boundary
def recent_runs(project, failed: bool = False, limit: int = 50, offset: int = 0) -> list[JobRun]:
    """Job runs newest first (only failed ones with `failed`), `limit` of them from `offset`."""
    for name, value, low, high in (("limit", limit, 1, MAX_LIMIT), ("offset", offset, 0, 10**9)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise QueryError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    records = Records(project)
    try:
        return records.runs(failed=bool(failed), limit=limit, offset=offset)
    finally:
        records.close()
