"""GET /api/v1/jobs and POST /api/v1/jobs/{name} over the real tally.jobs: a run through the API is
recorded and listed like one by `tally run`, and moves the data its job loads."""

from __future__ import annotations

import pytest

from tally.api.security import hash_key
from tests.api.conftest import client, make_project, write_rows

ADMIN = "tally_jobs-admin-key"


@pytest.fixture
def api(tmp_path):
    from tally import Project

    keys = f'api: {{keys: {{ops: {{hash: "{hash_key(ADMIN)}", scopes: [read, admin]}}}}}}\n'
    directory = make_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", api=keys)
    project = Project.load(directory)
    yield directory, client(project)
    project.close()


def test_run_a_job_and_list_it(api):
    directory, http = api
    admin = {"X-API-Key": ADMIN}
    params = {"metrics": "revenue", "from": "2026-09-01", "to": "2026-10-01", "live": True}
    before = http.get("/api/v1/query", params=params, headers=admin).json()["rows"]
    write_rows(directory, "b.csv", [(20, "2026-09-05 10:00:00", "4.00", "a")])
    done = http.post("/api/v1/jobs/ingest:h5_sales", headers=admin)
    assert done.status_code == 200, done.text
    run = done.json()
    assert run["status"] == "succeeded" and run["job"] == "ingest:h5_sales" and run["trigger"] == "manual"
    after = http.get("/api/v1/query", params=params, headers=admin).json()["rows"]
    assert after[0]["revenue"] == pytest.approx(before[0]["revenue"] + 4.0)
    assert http.post("/api/v1/jobs/rollup/h5_daily", headers=admin).json()["status"] == "succeeded"
    listed = http.get("/api/v1/jobs", headers=admin).json()
    ids = {job["id"] for job in listed["jobs"]}
    assert {"ingest:h5_sales", "rollup:h5_daily"} <= ids
    runs = listed["runs"]["rows"]
    assert [r["job"] for r in runs[:2]] == ["rollup:h5_daily", "ingest:h5_sales"]
    assert run["run_id"] in {r["run_id"] for r in runs}
    assert http.get("/api/v1/jobs", params={"failed": True}, headers=admin).json()["runs"]["rows"] == []
    one = http.get("/api/v1/jobs", params={"limit": 1}, headers=admin).json()["runs"]
    assert len(one["rows"]) == 1 and one["next"]


def test_unknown_job_is_4xx(api):
    _, http = api
    response = http.post("/api/v1/jobs/ingest:nope", headers={"X-API-Key": ADMIN})
    assert 400 <= response.status_code < 500 and set(response.json()) == {"error"}


def test_job_outcomes_in_prometheus(api):
    from prometheus_client.parser import text_string_to_metric_families

    _, http = api
    admin = {"X-API-Key": ADMIN}
    assert http.post("/api/v1/jobs/ingest:h5_sales", headers=admin).json()["status"] == "succeeded"
    assert http.post("/api/v1/jobs/ingest:h5_sales", headers=admin).json()["status"] == "succeeded"
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics", headers=admin).text)}
    runs = {(s.labels["job"], s.labels["status"]): s.value for s in families["tally_job_runs"].samples
            if s.name == "tally_job_runs_total"}
    assert runs == {("ingest:h5_sales", "succeeded"): 2.0}
    (duration,) = families["tally_job_last_duration_seconds"].samples
    assert duration.labels == {"job": "ingest:h5_sales"} and 0 <= duration.value < 600
    (success,) = families["tally_job_last_success"].samples
    assert success.value == 1.0


def test_job_metrics_read_on_every_warehouse(session_warehouse_url, tmp_path):
    """The fixed statements behind the job and load metrics run on DuckDB, PostgreSQL and MariaDB."""
    from prometheus_client.parser import text_string_to_metric_families

    from tally import Project

    project = Project.load(make_project(tmp_path, session_warehouse_url, build=False))
    http = client(project)
    assert http.post("/api/v1/jobs/ingest:h5_sales").json()["status"] == "succeeded"
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    runs = {(s.labels["job"], s.labels["status"]): s.value for s in families["tally_job_runs"].samples
            if s.name == "tally_job_runs_total"}
    assert runs[("ingest:h5_sales", "succeeded")] >= 1
    durations = {s.labels["job"]: s.value for s in families["tally_job_last_duration_seconds"].samples}
    assert 0 <= durations["ingest:h5_sales"] < 600
    loaded = {s.labels["source"] for s in families["tally_source_rows_loaded"].samples}
    assert "h5_sales" in loaded
    project.close()
