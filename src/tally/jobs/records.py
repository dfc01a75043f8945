"""Job bookkeeping in the warehouse: a lease row per job (`_tally_job_leases`) and a row per run
(`_tally_job_runs`), written on a connection of their own so they commit apart from the job's work.

A lease is taken by a conditional UPDATE (free or expired) or, for a job never run, an INSERT the
primary key lets only one process win, in the same transaction as the run's `running` row: whoever
sees the lease taken also sees that row, so a tick another scheduler ran is never run again."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import asdict, dataclass

from tally.warehouse.internal import ensure_internal_tables, insert_rows, now
from tally.warehouse.sqltext import bind_value, warehouse_ident

RUNS, LEASES = "_tally_job_runs", "_tally_job_leases"
RELEASED = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)   # a released lease's expiry: free to anyone
CLAIM_ATTEMPTS = 4
RAN = ("running", "succeeded", "failed")   # a tick with one of these was run (abandoned ones run again)
COLUMNS = ("run_id", "job", "kind", "name", "trigger", "scheduled_for", "started_at", "ended_at", "status", "rows",
           "error")


@dataclass
class JobRun:
    """One run of one job, as `_tally_job_runs` holds it (`rows`: rows the job wrote)."""

    run_id: str
    job: str
    kind: str
    name: str
    trigger: str                      # "schedule" or "manual"
    scheduled_for: dt.datetime | None  # the tick it ran for (UTC); None for a run by hand
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    status: str = "running"           # running | succeeded | failed | skipped | abandoned
    rows: int | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


class _Done(Exception):
    """The tick was run already: roll the claim back."""


def _utc(value):
    """A time read back from the warehouse as aware UTC (MySQL gives naive UTC)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    return value


class _Quoted(dict):
    """{name} -> the name quoted for the warehouse's dialect."""

    def __init__(self, dialect):
        super().__init__(runs=warehouse_ident(RUNS, dialect), leases=warehouse_ident(LEASES, dialect))
        self.dialect = dialect

    def __missing__(self, name: str) -> str:
        return warehouse_ident(name, self.dialect)


class Records:
    """The job tables of one project's warehouse; thread-safe (the scheduler, its runs and their
    lease renewals share one)."""

    def __init__(self, project):
        from tally.warehouse.connect import dialect_of

        self.project = project
        if dialect_of(project.warehouse_url).thread_connections:
            self.warehouse, self._own = project.warehouse, False   # each thread has its own connection
        else:
            from tally.warehouse import Warehouse

            self.warehouse, self._own = Warehouse(project.warehouse_url, project.root), True
        self.dialect = self.warehouse.dialect
        self._lock = threading.RLock()
        self._ready = False

    def close(self) -> None:
        if self._own:
            self.warehouse.close()

    def _sql(self, template: str) -> str:
        """`template` with each {name} quoted for the warehouse ({runs}, {leases}: the tables) and each
        ? the driver's marker. Only Tally's own names and markers reach the text; values are bound."""
        return template.format_map(_Quoted(self.dialect)).replace("?", self.dialect.placeholder)

    def _bind(self, *values) -> list:
        return [bind_value(self.warehouse, value) for value in values]

    def ensure(self) -> None:
        """Create the job tables on first use (two processes creating them at once: the loser checks)."""
        if self._ready:
            return
        with self._lock:
            try:
                ensure_internal_tables(self.warehouse, {RUNS, LEASES})
            except Exception:
                if not all(self.warehouse.has_table(name) for name in (RUNS, LEASES)):
                    raise
            self._ready = True

    def claim(self, job_id: str, holder: str, ttl: float, run: JobRun | None = None) -> str:
        """Take the job's lease for `holder`: "taken" (then any run left `running` is abandoned and `run`
        recorded), "held" (someone has it) or "done" (`run`'s tick was run already)."""
        self.ensure()
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            try:
                return self._claim(job_id, holder, ttl, run)
            except Exception:
                # a lost race (a duplicate key, a write conflict, a deadlock): once the winner has
                # committed, the next attempt finds the lease held; anything else fails every attempt
                if attempt == CLAIM_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def _claim(self, job_id: str, holder: str, ttl: float, run: JobRun | None) -> str:
        with self._lock:
            try:
                with self.warehouse.transaction() as tx:
                    if not self._take(tx, job_id, holder, ttl):
                        return "held"
                    if run is not None and run.scheduled_for is not None and tx.fetch(self._sql(
                            "SELECT count(*) FROM {runs} WHERE {job} = ? AND {scheduled_for} = ? AND {status} IN (?, ?, ?)"),
                            self._bind(job_id, run.scheduled_for, *RAN))[0][0]:
                        raise _Done
                    tx.execute(self._sql("UPDATE {runs} SET {status} = ?, {ended_at} = ? WHERE {job} = ? AND {status} = ?"),
                               self._bind("abandoned", now(), job_id, "running"))
                    if run is not None:
                        insert_rows(tx, RUNS, [self._row(run, holder)])
                    return "taken"
            except _Done:
                return "done"

    def _take(self, tx, job_id: str, holder: str, ttl: float) -> bool:
        at = now()
        until = at + dt.timedelta(seconds=ttl)
        if tx.changed(self._sql("UPDATE {leases} SET {holder} = ?, {expires_at} = ?, {version} = {version} + 1 "
                                "WHERE {job} = ? AND {expires_at} < ?"), self._bind(holder, until, job_id, at)):
            return True
        if tx.fetch(self._sql("SELECT count(*) FROM {leases} WHERE {job} = ?"), self._bind(job_id))[0][0]:
            return False
        tx.execute(self._sql("INSERT INTO {leases} ({job}, {holder}, {expires_at}, {version}) VALUES (?, ?, ?, 0)"),
                   self._bind(job_id, holder, until))
        return True

    def renew(self, job_id: str, holder: str, ttl: float) -> bool:
        """Push the lease's expiry on; False when `holder` no longer has it."""
        with self._lock, self.warehouse.transaction() as tx:
            return tx.changed(self._sql("UPDATE {leases} SET {expires_at} = ?, {version} = {version} + 1 "
                                        "WHERE {job} = ? AND {holder} = ?"),
                              self._bind(now() + dt.timedelta(seconds=ttl), job_id, holder)) > 0

    def finish(self, run: JobRun, holder: str) -> None:
        """Record the run's outcome and release its lease, in one transaction."""
        with self._lock, self.warehouse.transaction() as tx:
            tx.execute(self._sql("UPDATE {runs} SET {status} = ?, {ended_at} = ?, {rows} = ?, {error} = ? "
                                 "WHERE {run_id} = ?"),
                       self._bind(run.status, run.ended_at, run.rows, run.error, run.run_id))
            self._release(tx, run.job, holder)

    def free_all(self) -> None:
        """Expire every lease: only for the sole process that can write the warehouse (an embedded file
        it holds read-write), where any lease found at start was held by a process now dead."""
        self.ensure()
        with self._lock, self.warehouse.transaction() as tx:
            tx.execute(self._sql("UPDATE {leases} SET {expires_at} = ?, {version} = {version} + 1"),
                       self._bind(RELEASED))

    def release(self, job_id: str, holder: str) -> None:
        with self._lock, self.warehouse.transaction() as tx:
            self._release(tx, job_id, holder)

    def _release(self, tx, job_id: str, holder: str) -> None:
        tx.execute(self._sql("UPDATE {leases} SET {expires_at} = ?, {version} = {version} + 1 "
                             "WHERE {job} = ? AND {holder} = ?"), self._bind(RELEASED, job_id, holder))

    def record(self, run: JobRun) -> None:
        """Store a run that took no lease (a run by hand refused because the job is running)."""
        self.ensure()
        with self._lock, self.warehouse.transaction() as tx:
            insert_rows(tx, RUNS, [self._row(run, None)])

    def _row(self, run: JobRun, holder: str | None) -> dict:
        return {**{column: getattr(run, column) for column in COLUMNS}, "holder": holder}

    def holder_of(self, job_id: str) -> tuple[str, dt.datetime] | None:
        """Who holds the job's lease and until when (None: no lease row)."""
        rows = self._read("SELECT {holder}, {expires_at} FROM {leases} WHERE {job} = ?", job_id)
        return (rows[0][0], _utc(rows[0][1])) if rows else None

    def stale_jobs(self) -> list[str]:
        """Jobs with a run left `running` whose lease has expired (the process running it died)."""
        return [row[0] for row in self._read(
            "SELECT DISTINCT r.{job} FROM {runs} r LEFT JOIN {leases} l ON l.{job} = r.{job} "
            "WHERE r.{status} = ? AND (l.{job} IS NULL OR l.{expires_at} < ?)", "running", now())]

    def last_started(self, job_id: str) -> dt.datetime | None:
        """When the job's latest run that counts (not skipped, not abandoned) started."""
        rows = self._read("SELECT max({started_at}) FROM {runs} WHERE {job} = ? AND {status} IN (?, ?, ?)",
                          job_id, *RAN)
        return _utc(rows[0][0]) if rows else None

    def ticks(self, job_id: str) -> list[dt.datetime]:
        """The ticks the job ran for (one entry per run row with a tick)."""
        return [_utc(row[0]) for row in self._read(
            "SELECT {scheduled_for} FROM {runs} WHERE {job} = ? AND {scheduled_for} IS NOT NULL AND {status} IN (?, ?, ?)",
            job_id, *RAN)]

    def runs(self, *, failed: bool = False, limit: int = 50, offset: int = 0, job: str | None = None) -> list[JobRun]:
        """Runs newest first; only failed ones with `failed`, only one job's with `job`."""
        where, values = [], []
        if failed:
            where.append("{status} = ?")
            values.append("failed")
        if job is not None:
            where.append("{job} = ?")
            values.append(job)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(f"SELECT {self._columns('')} FROM {{runs}}{clause} ORDER BY {{started_at}} DESC, "
                          f"{{run_id}} LIMIT {int(limit)} OFFSET {int(offset)}", *values)
        return [self._run(row) for row in rows]

    def latest(self) -> dict[str, JobRun]:
        """Each job's latest run (skipped ones aside), by job id."""
        rows = self._read(f"SELECT {self._columns('r.')} FROM {{runs}} r JOIN (SELECT {{job}}, max({{started_at}}) "
                          "AS {latest} FROM {runs} WHERE {status} <> ? GROUP BY {job}) l "
                          "ON r.{job} = l.{job} AND r.{started_at} = l.{latest}", "skipped")
        return {run.job: run for run in map(self._run, rows)}

    def _columns(self, prefix: str) -> str:
        return ", ".join(f"{prefix}{{{column}}}" for column in COLUMNS)

    @staticmethod
    def _run(row: tuple) -> JobRun:
        return JobRun(**{column: _utc(value) for column, value in zip(COLUMNS, row)})

    def _read(self, template: str, *values) -> list[tuple]:
        with self._lock:
            if not self._ready and not self.warehouse.has_table(RUNS):
                return []
            with self.warehouse.transaction() as tx:
                return tx.fetch(self._sql(template), self._bind(*values))
