"""`Scheduler`: the project's scheduled jobs on an APScheduler BackgroundScheduler, in this process.

Each tick calls `execute` (run_job) for the tick it fires for; leases make one scheduler run it when
several share a warehouse. On start, runs a killed process left `running` are marked abandoned, and a
tick missed while no scheduler ran is run once (`jobs: missed: skip` to skip it)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from typing import Callable

from tally.errors import ConfigError
from tally.jobs.records import JobRun, Records
from tally.jobs.registry import Job, jobs_of
from tally.jobs.run import execute
from tally.jobs.triggers import last_tick, trigger_for
from tally.warehouse.internal import now

log = logging.getLogger("tally.jobs")
MISSED = ("run_once", "skip")
WORKERS = 4   # ticks due together each start at once (and learn their tick); the work itself runs one at a time


def scheduled_jobs(project) -> list[Job]:
    """The project's jobs that have a schedule."""
    return [job for job in jobs_of(project).values() if job.schedule is not None]


class Scheduler:
    """Runs the project's scheduled jobs until `shutdown()`; `on_run` sees each finished run."""

    def __init__(self, project, missed: str | None = None, on_run: Callable[[JobRun], None] | None = None):
        missed = missed or project.config.jobs.missed
        if missed not in MISSED:
            raise ConfigError(f"missed must be one of {', '.join(MISSED)}, not {missed!r}")
        self.project, self.missed, self.on_run = project, missed, on_run or log_run
        self.records: Records | None = None
        self._scheduler = None

    def start(self) -> None:
        """Check every schedule, recover abandoned runs, then start ticking (in background threads)."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:
            return
        jobs = [(job, trigger_for(self.project, job)) for job in scheduled_jobs(self.project)]
        self.records = Records(self.project)
        self.records.ensure()
        self.recover()
        scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(WORKERS)}, timezone=dt.timezone.utc,
                                        job_defaults={"coalesce": True, "max_instances": 1,
                                                      "misfire_grace_time": None})
        for job, trigger in jobs:
            scheduler.add_job(self._tick, trigger, args=(job, trigger), id=job.id, name=job.id)
            if self.missed_tick(job, trigger):   # a one-off run: moving the job's next_run_time instead
                # would make APScheduler count its interval from now, off the anchored ticks
                scheduler.add_job(self._tick, "date", run_date=now(), args=(job, trigger),
                                  id=f"{job.id}@missed", name=job.id)
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started: %s", ", ".join(job.id for job, _ in jobs) or "no scheduled jobs")

    def shutdown(self, wait: bool = True) -> None:
        """Stop ticking; with `wait`, the runs under way finish (and record how they ended) first
        (without, they finish in the background, on connections left open until they do)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = None
        if self.records is not None and wait:
            self.records.close()
            self.records = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def next_runs(self) -> dict[str, dt.datetime | None]:
        """When each scheduled job next runs (UTC)."""
        if self._scheduler is None:
            return {}
        runs: dict[str, dt.datetime | None] = {}
        for job in self._scheduler.get_jobs():   # by job id (`name`): a pending missed run is the earlier
            when = job.next_run_time.astimezone(dt.timezone.utc) if job.next_run_time else None
            if job.name not in runs or (when and (runs[job.name] is None or when < runs[job.name])):
                runs[job.name] = when
        return runs

    def missed_tick(self, job: Job, trigger) -> dt.datetime | None:
        """The tick to run at start: the latest one, when the job ran before it and not since (never with `skip`)."""
        if self.missed == "skip":
            return None
        tick = last_tick(trigger, now())
        last = self.records.last_started(job.id)
        return tick if tick is not None and last is not None and last < tick else None

    def recover(self) -> list[str]:
        """Mark runs left `running` by a dead process abandoned (their lease expired); the job ids.
        A process that is the warehouse's only possible writer (`tally serve` or `tally scheduler` on
        an embedded file) knows every lease it finds is a dead one's: it frees them at once instead of
        waiting out the lease (a restart after kill -9 polls again right away)."""
        ttl = self.project.config.jobs.lease_seconds
        if self.project.warehouse.local_version() is not None:
            self.records.free_all()
        recovered = []
        for job_id in self.records.stale_jobs():
            holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
            if self.records.claim(job_id, holder, ttl) == "taken":   # marks its `running` rows abandoned
                self.records.release(job_id, holder)
                recovered.append(job_id)
                log.warning("job %s: a run left running by a stopped process is marked abandoned", job_id)
        return recovered

    def _tick(self, job: Job, trigger) -> None:
        tick = last_tick(trigger, now())
        try:
            run = execute(self.project, self.records, job, scheduled_for=tick, trigger="schedule")
        except Exception as exc:   # the warehouse is unreachable: the next tick tries again
            log.error("job %s: could not run the tick %s: %s", job.id, tick, exc)
            return
        if run.status != "skipped":
            self.on_run(run)


def log_run(run: JobRun) -> None:
    """One log line per run."""
    log.info("%s", describe_run(run))


def describe_run(run: JobRun) -> str:
    """`ingest:orders succeeded rows=120 1.20s tick=2026-12-07T01:00:00Z` (and the error when it failed)."""
    tick = f" tick={run.scheduled_for:%Y-%m-%dT%H:%M:%SZ}" if run.scheduled_for else ""
    seconds = f" {run.seconds:.2f}s" if run.seconds is not None else ""
    rows = f" rows={run.rows}" if run.rows is not None else ""
    error = f" error={run.error}" if run.error else ""
    return f"{run.job} {run.status}{rows}{seconds}{tick}{error}"
