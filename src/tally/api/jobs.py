"""`GET /api/v1/jobs` (the jobs and their recent runs, paged) and `POST /api/v1/jobs/{name}` (admin:
run one now) over `tally.jobs` (`list_jobs`, `recent_runs`, `run_job`): the same functions the CLI
and the scheduler call."""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import APIRouter, Depends, Path, Query

from tally.api.data import CURSOR, LIMIT, OFFSET, page, paging
from tally.errors import ConfigError


def jobs_module():
    import importlib

    try:
        jobs = importlib.import_module("tally.jobs")
    except ImportError:
        jobs = None
    if jobs is None or not hasattr(jobs, "run_job"):
        raise ConfigError("this Tally has no jobs yet")
    return jobs


def router(state, read, admin, prefix: str) -> APIRouter:
    api = APIRouter(prefix=prefix)

    @api.get("/jobs", dependencies=[Depends(read)], summary="The jobs, their schedules and recent runs",
             description="`runs` is a page of runs, newest first (`failed=true`: only failed ones).")
    def jobs(failed: bool = Query(False, description="true: only failed runs."),
             limit: int = Query(50, description=LIMIT), offset: int = Query(0, description=OFFSET),
             cursor: Optional[str] = Query(None, description=CURSOR)) -> dict[str, Any]:
        from tally.delivery.tabular import json_value

        scope = json.dumps(["jobs", failed])
        limit, offset = paging(state, limit, offset, cursor, scope)
        module = jobs_module()
        with state.lock:
            listed = [info.as_dict() for info in module.list_jobs(state.project)]
            runs = [run.as_dict() for run in module.recent_runs(state.project, failed, limit + 1, offset)]
        return {"jobs": [{k: json_value(v) for k, v in job.items()} for job in listed],
                "runs": page(runs[:limit], len(runs) > limit, limit, offset, scope)}

    @api.post("/jobs/{name}", dependencies=[Depends(admin)], summary="Run a job now (admin)",
              description="`name`: a job id (`ingest:orders`, `rollup:daily`) or a bare name. The answer is "
                          "the run: `status` succeeded, failed (with its error) or skipped (running elsewhere).")
    def run_now(name: str = Path(description="A job id (ingest:orders) or a bare name one kind alone has.")
                ) -> dict[str, Any]:
        return run(state, name)

    @api.post("/jobs/{kind}/{name}", dependencies=[Depends(admin)], summary="Run a job now (admin)")
    def run_kind(kind: str = Path(description="ingest or rollup."),
                 name: str = Path(description="A source (ingest) or rollup (rollup) of tally.yml.")) -> dict[str, Any]:
        return run(state, f"{kind}:{name}")

    return api


def run(state, job_id: str) -> dict:
    """Run outside the query lock (a long load must not stall answers); the project's warehouse and
    engine are made first, under it, so no two threads make them at once."""
    from tally.delivery.tabular import json_value

    module = jobs_module()
    with state.lock:
        state.project.engine
    done = module.run_job(state.project, job_id)
    return {k: json_value(v) for k, v in done.as_dict().items()}
