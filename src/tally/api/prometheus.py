"""`GET /metrics`: Prometheus text from the app's own registry (the scheduler adds its job metrics
to `state.registry`): request latency by route template and status, and per source the rows
loaded and rejected and the data lag, read from `_tally_loads` at scrape time."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LOADS_SQL = ("SELECT source, sum(rows_loaded) AS loaded, sum(rows_rejected) AS rejected, "
             "max(ended_at) AS last_ok FROM _tally_loads WHERE status = 'ok' GROUP BY source")   # fixed text
SCRAPE_WAIT = 2.0   # seconds a scrape waits for the warehouse
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


RUNS_SQL = "SELECT job, status, count(*) AS n FROM _tally_job_runs GROUP BY job, status"   # fixed text
LAST_RUN_SQL = ("SELECT r.job, r.status, r.started_at, r.ended_at FROM _tally_job_runs r JOIN "
                "(SELECT job, max(started_at) AS s FROM _tally_job_runs WHERE ended_at IS NOT NULL GROUP BY job) m "
                "ON r.job = m.job AND r.started_at = m.s")


def registry_for(state) -> tuple[CollectorRegistry, Histogram]:
    """A registry of the app's own (not the process-wide default: two apps in one process don't clash)."""
    registry = CollectorRegistry()
    latency = Histogram("tally_http_request_duration_seconds", "HTTP request latency by route template",
                        ["method", "route", "status"], registry=registry, buckets=BUCKETS)
    registry.register(LoadCollector(state))
    registry.register(JobCollector(state))
    return registry, latency


class LoadCollector:
    """Rows loaded / rejected per source (successful loads) and seconds since each source's last one."""

    def __init__(self, state):
        self.state = state

    def describe(self):
        return []   # collected at scrape time only (no warehouse read at registration)

    def collect(self):
        loaded = CounterMetricFamily("tally_source_rows_loaded", "Rows loaded by successful ingests", labels=["source"])
        rejected = CounterMetricFamily("tally_source_rows_rejected", "Rows rejected by successful ingests",
                                       labels=["source"])
        lag = GaugeMetricFamily("tally_source_data_lag_seconds", "Seconds since the source's last successful load",
                                labels=["source"])
        for row in self._rows():
            loaded.add_metric([row["source"]], float(row["loaded"] or 0))
            rejected.add_metric([row["source"]], float(row["rejected"] or 0))
            if row["last_ok"] is not None:
                lag.add_metric([row["source"]], max(0.0, time.time() - _epoch(row["last_ok"])))
        yield from (loaded, rejected, lag)

    def _rows(self) -> list[dict]:
        return read(self.state, "_tally_loads", LOADS_SQL)


class JobCollector:
    """Job outcomes (runs per job and status, from `_tally_job_runs`) and each job's last finished
    run: its duration, when it ended, and whether it succeeded."""

    def __init__(self, state):
        self.state = state

    def describe(self):
        return []

    def collect(self):
        runs = CounterMetricFamily("tally_job_runs", "Job runs by outcome", labels=["job", "status"])
        seconds = GaugeMetricFamily("tally_job_last_duration_seconds", "Duration of the job's last finished run",
                                    labels=["job"])
        ended = GaugeMetricFamily("tally_job_last_end_timestamp_seconds", "When the job's last run ended (Unix time)",
                                  labels=["job"])
        ok = GaugeMetricFamily("tally_job_last_success", "1 when the job's last finished run succeeded",
                               labels=["job"])
        for row in read(self.state, "_tally_job_runs", RUNS_SQL):
            runs.add_metric([row["job"], row["status"]], float(row["n"]))
        for row in read(self.state, "_tally_job_runs", LAST_RUN_SQL):
            seconds.add_metric([row["job"]], max(0.0, _epoch(row["ended_at"]) - _epoch(row["started_at"])))
            ended.add_metric([row["job"]], _epoch(row["ended_at"]))
            ok.add_metric([row["job"]], 1.0 if row["status"] == "succeeded" else 0.0)
        yield from (runs, seconds, ended, ok)


def read(state, table: str, sql: str) -> list[dict]:
    """Rows of a fixed statement over one of Tally's tables ([] before it exists, or when the
    warehouse is busy or unreachable: a scrape never waits long or fails on it; /readyz reports it)."""
    from tally.warehouse import CompiledQuery

    if not state.lock.acquire(timeout=SCRAPE_WAIT):   # a long query holds the warehouse
        return []
    try:
        reader = state.project.reader
        if not reader.has_table(table):
            return []
        return reader.run(CompiledQuery(sql=sql, params=())).to_pylist()
    except Exception:
        return []
    finally:
        state.lock.release()


def _epoch(stamp) -> float:
    import datetime as dt

    if isinstance(stamp, str):
        stamp = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if stamp.tzinfo is None:   # MySQL gives its naive UTC DATETIME
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


class Timing:
    """ASGI middleware: each request's latency, labelled by its route template (not its path:
    `/api/v1/rollups/{name}`, so label values stay few) and status."""

    def __init__(self, app, latency: Histogram):
        self.app, self.latency = app, latency

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        begun, status = time.perf_counter(), 500

        async def tracked(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.latency.labels(scope.get("method", ""), template, str(status)).observe(time.perf_counter() - begun)
