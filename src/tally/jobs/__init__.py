"""Jobs: every ingest and rollup build as a job (`kind:name`) that the CLI, the scheduler and the
HTTP API run the same way (`run_job`), recorded in `_tally_job_runs`, never overlapping itself."""

from tally.jobs.listing import JobInfo, list_jobs, recent_runs
from tally.jobs.records import JobRun
from tally.jobs.registry import KINDS, Job, JobKind, jobs_of, register_kind, resolve
from tally.jobs.run import run_job
from tally.jobs.scheduler import Scheduler, describe_run

__all__ = ["JobInfo", "JobRun", "Job", "JobKind", "KINDS", "Scheduler", "describe_run", "jobs_of", "list_jobs",
           "recent_runs", "register_kind", "resolve", "run_job"]
