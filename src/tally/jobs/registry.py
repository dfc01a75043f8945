"""Job kinds and job ids (`{kind}:{name}`): what can run, on which schedule, and the plain function
that does the work. A later layer adds its kind with `register_kind` (ledgers: `ledger`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tally.errors import ConfigError, NotFoundError, SourceError
from tally.project.schedules import Schedule


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its targets (name -> schedule, None when run by hand only) and its work
    (`run(project, name)` returns the rows it wrote and raises a TallyError when it fails)."""

    name: str
    section: str           # the tally.yml section its targets are in (errors point at their lines)
    targets: Callable[[object], dict[str, Schedule | None]]
    run: Callable[[object, str], int]
    default_zone: Callable[[object, str], str] = lambda project, name: project.config.timezone


@dataclass(frozen=True)
class Job:
    """One runnable job of a project."""

    kind: str
    name: str
    schedule: Schedule | None
    timezone: str          # the zone its schedule is read in

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


KINDS: dict[str, JobKind] = {}


def register_kind(kind: JobKind) -> None:
    """Make a kind of job known to run_job, the scheduler and `tally jobs`."""
    KINDS[kind.name] = kind


def jobs_of(project) -> dict[str, Job]:
    """Every job of the project by id, scheduled or not, kinds in registration order."""
    found = {}
    for kind in KINDS.values():
        for name, schedule in kind.targets(project).items():
            zone = schedule.zone(kind.default_zone(project, name)) if schedule else project.config.timezone
            job = Job(kind.name, name, schedule, zone)
            found[job.id] = job
    return found


def resolve(project, job_id: str) -> Job:
    """The job named `kind:name`, or by a bare name when one kind alone has it; NotFoundError for no such job."""
    if not isinstance(job_id, str) or not job_id.strip():
        raise ConfigError(f"a job is named kind:name (like ingest:orders), not {job_id!r}")
    jobs = jobs_of(project)
    if job_id in jobs:
        return jobs[job_id]
    matches = [job for job in jobs.values() if job.name == job_id]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(f"job {job_id!r} is ambiguous: say {' or '.join(job.id for job in matches)}")
    known = ", ".join(jobs) or "none (add sources or rollups to tally.yml)"
    raise NotFoundError(f"unknown job {job_id!r} (jobs: {known})")


def _ingest(project, name: str) -> int:
    # Project.ingest: the ledgers over the loaded table are refreshed in the same job
    result = project.ingest([name])[0]
    if result.status != "ok":
        raise SourceError(result.error or f"source {name} failed")
    return result.rows_loaded


def _rollup(project, name: str) -> int:
    from tally.rollups import build

    return sum(result.rows for result in build(project, [name]))


def _rollup_zone(project, name: str) -> str:
    return project.config.rollups[name].timezone or project.config.timezone


register_kind(JobKind("ingest", "sources", lambda project: {name: c.schedule for name, c in project.sources.items()}, _ingest))
register_kind(JobKind("rollup", "rollups", lambda project: {name: r.schedule for name, r in project.config.rollups.items()},
                      _rollup, _rollup_zone))
