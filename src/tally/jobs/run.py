"""`run_job`: the one plain function behind `tally run`, the scheduler and the HTTP API: take the
job's lease, record the run, do the work, record how it ended, release the lease."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
import weakref

from tally.errors import ConfigError, TallyError, api_boundary
from tally.jobs.records import JobRun, Records
from tally.jobs.registry import KINDS, Job, resolve
from tally.redaction import is_secret_name, redact_text
from tally.warehouse.internal import now

log = logging.getLogger("tally.jobs")
TRIGGERS = ("manual", "schedule")
# one job's work at a time per Project object: on PostgreSQL/MySQL a Project has one connection,
# which two threads' transactions would share
_WORK_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WORK_LOCKS_GUARD = threading.Lock()


@api_boundary
def run_job(project, job_id: str, *, scheduled_for: dt.datetime | None = None, trigger: str = "manual") -> JobRun:
    """Run one job now (`ingest:orders`, `rollup:daily`, or a bare name when only one kind has it).
    Returns its JobRun: succeeded, failed (with a one-line, redacted error), or skipped (another
    run holds the job's lease, or `scheduled_for`'s tick was run already)."""
    records = Records(project)
    try:
        return execute(project, records, resolve(project, job_id), scheduled_for=scheduled_for, trigger=trigger)
    finally:
        records.close()


def execute(project, records: Records, job: Job, *, scheduled_for=None, trigger: str = "manual") -> JobRun:
    """run_job on the caller's Records (the scheduler keeps one open)."""
    if trigger not in TRIGGERS:
        raise ConfigError(f"trigger must be one of {', '.join(TRIGGERS)}, not {trigger!r}")
    if scheduled_for is not None:
        if not isinstance(scheduled_for, dt.datetime):
            raise ConfigError(f"scheduled_for must be a datetime, not {scheduled_for!r}")
        zoned = scheduled_for if scheduled_for.tzinfo else scheduled_for.replace(tzinfo=dt.timezone.utc)
        scheduled_for = zoned.astimezone(dt.timezone.utc)   # a time without a zone is UTC
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    ttl = project.config.jobs.lease_seconds
    run = JobRun(run_id=uuid.uuid4().hex, job=job.id, kind=job.kind, name=job.name, trigger=trigger,
                 scheduled_for=scheduled_for, started_at=now())
    outcome = records.claim(job.id, holder, ttl, run)
    if outcome != "taken":
        run.status, run.ended_at = "skipped", now()
        run.error = ("this tick was run already" if outcome == "done"
                     else "the job is running elsewhere (its lease is held)")
        if trigger == "manual":   # a person asked: say why nothing ran (a scheduler's tick is not a run)
            records.record(run)
        return run
    with Heartbeat(records, job.id, holder, ttl):
        try:
            with work_lock(project):
                run.rows = KINDS[job.kind].run(project, job.name)
            run.status = "succeeded"
        except Exception as exc:   # a failed job is a record, not a crash of the scheduler
            log.debug("job %s failed", job.id, exc_info=True)
            run.status, run.error = "failed", error_line(project, exc)
        except BaseException as exc:   # Ctrl-C in `tally run`: its work rolled back; say so, then stop
            run.status, run.error, run.ended_at = "failed", f"interrupted ({type(exc).__name__})", now()
            records.finish(run, holder)
            raise
        run.ended_at = now()
        records.finish(run, holder)
    return run


def work_lock(project) -> threading.Lock:
    with _WORK_LOCKS_GUARD:
        return _WORK_LOCKS.setdefault(project, threading.Lock())


class Heartbeat:
    """Renews a lease every third of its length while the job runs (a dead process's lease expires)."""

    def __init__(self, records: Records, job_id: str, holder: str, ttl: float):
        self.records, self.job_id, self.holder, self.ttl = records, job_id, holder, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"tally-lease-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.records.renew(self.job_id, self.holder, self.ttl):
                    log.warning("job %s lost its lease (it ran past the lease without renewing it)", self.job_id)
                    return
            except Exception as exc:   # the warehouse is unreachable for a moment: try again next beat
                log.warning("job %s: renewing its lease failed: %s", self.job_id,
                            redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))


def error_line(project, exc: BaseException) -> str:
    """The failure as one line, with every secret of the project's config masked."""
    text = exc.message if isinstance(exc, TallyError) else f"{type(exc).__name__}: {exc}"
    line = (text.strip().splitlines() or ["(no message)"])[0]
    urls, secrets = [project.warehouse_url], []
    _collect(project.config.model_dump(), urls, secrets)
    line = redact_text(line, *urls)
    for secret in sorted(secrets, key=len, reverse=True):
        line = line.replace(secret, "***")
    return line[:1000]


# parts of tally.yml that name columns and measures, not secrets (`primary_key`, a measure called
# access_count): their text stays readable in errors
NOT_SECRETS = frozenset({"models", "metrics", "rollups", "seeds", "jobs", "columns", "rename", "formats", "checks",
                         "defaults", "primary_key", "cursor", "dimensions", "measures", "by"})


def _collect(value, urls: list, secrets: list, key: str = "") -> None:
    """URLs and secret-named values (password, token, api_key, Authorization...) in the config."""
    if isinstance(value, dict):
        for name, item in value.items():
            if str(name) not in NOT_SECRETS:
                _collect(item, urls, secrets, str(name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, urls, secrets)
    elif isinstance(value, str):
        if "://" in value:
            urls.append(value)
        if key and is_secret_name(key) and len(value) >= 3:
            secrets.append(value)
