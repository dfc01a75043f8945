"""API keys (401 without, 403 without the scope, 200 with), the loopback rule, `tally apikey create`,
CORS for configured origins only, the request size limit, and secrets kept out of answers."""

from __future__ import annotations

import logging
import re

import pytest
from typer.testing import CliRunner

from tally.api.security import check_bind, hash_key
from tally.cli import app as cli_app
from tally.errors import ConfigError
from tally.project.api_config import ApiConfig
from tests.api.conftest import client

READ_KEY, ADMIN_KEY = "tally_read-key-for-tests", "tally_admin-key-for-tests"
KEYS = {"keys": {"dash": {"hash": hash_key(READ_KEY), "scopes": ["read"]},
                 "ops": {"hash": hash_key(ADMIN_KEY), "scopes": ["read", "admin"]}}}


@pytest.fixture(scope="module")
def keyed(duck_dir):
    from fastapi import Depends

    from tally import Project

    project = Project.load(duck_dir)
    api = client(project, settings=KEYS)
    app = api.app

    @app.post("/api/v1/test-admin", dependencies=[Depends(app.state.admin)])
    def admin_only() -> dict:   # stands in for POST /api/v1/jobs/{name} until the scheduler lands
        return {"ran": True}

    yield api
    project.close()


@pytest.mark.parametrize("path", ["/api/v1/metrics", "/api/v1/query?metrics=revenue", "/api/v1/rollups",
                                  "/api/v1/rollups/h5_daily", "/api/v1/sources", "/api/v1/sources/h5_sales/rejects",
                                  "/metrics"])
def test_read_routes_need_a_key(keyed, path):
    response = keyed.get(path)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert keyed.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert keyed.get(path, headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
    assert keyed.get(path, headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_admin_route_needs_the_admin_scope(keyed):
    assert keyed.post("/api/v1/test-admin").status_code == 401
    forbidden = keyed.post("/api/v1/test-admin", headers={"X-API-Key": READ_KEY})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert "dash" in forbidden.json()["error"]["message"]
    assert keyed.post("/api/v1/test-admin", headers={"X-API-Key": ADMIN_KEY}).json() == {"ran": True}


def test_health_and_docs_stay_open(keyed):
    for path in ("/healthz", "/readyz", "/api/docs", "/api/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_openapi_declares_both_ways_to_send_a_key(keyed):
    schemes = keyed.get("/api/openapi.json").json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


def test_no_key_configured_binds_loopback_only():
    open_api = ApiConfig()
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, open_api)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ConfigError, match="loopback only"):
            check_bind(host, open_api)
    check_bind("0.0.0.0", ApiConfig.model_validate(KEYS))


def test_apikey_create_prints_a_key_whose_line_validates(tmp_path):
    result = CliRunner().invoke(cli_app, ["apikey", "create", "grafana", "--scope", "admin"])
    assert result.exit_code == 0, result.output
    key = re.search(r"^\s+(tally_\S+)$", result.stdout, re.MULTILINE).group(1)
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("grafana:"))
    import yaml

    entry = yaml.safe_load(line.strip())["grafana"]
    assert entry == {"hash": hash_key(key), "scopes": ["read", "admin"]}
    ApiConfig.model_validate({"keys": {"grafana": entry}})
    second = CliRunner().invoke(cli_app, ["apikey", "create", "grafana"])
    assert key not in second.stdout and "scopes: [read]" in second.stdout   # a new key each time
    assert CliRunner().invoke(cli_app, ["apikey", "create", "no spaces!"]).exit_code == 2


def test_a_plain_key_pasted_as_hash_is_refused_without_echoing_it(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        ApiConfig.model_validate({"keys": {"x": {"hash": "tally_supersecretvalue"}}})
    assert "supersecretvalue" not in str(caught.value).split("input_value")[0]


def test_cors_header_only_for_a_configured_origin(duck_dir):
    from tally import Project

    project = Project.load(duck_dir)
    api = client(project, settings={"cors": {"origins": ["https://dash.example.com"]}})
    allowed = api.get("/api/v1/metrics", headers={"Origin": "https://dash.example.com"})
    assert allowed.headers.get("access-control-allow-origin") == "https://dash.example.com"
    other = api.get("/api/v1/metrics", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers
    preflight = api.options("/api/v1/query", headers={"Origin": "https://dash.example.com",
                                                       "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    plain = client(project).get("/api/v1/metrics", headers={"Origin": "https://dash.example.com"})
    assert "access-control-allow-origin" not in plain.headers
    project.close()


def test_request_body_limit(duck_dir):
    from tally import Project

    project = Project.load(duck_dir)
    api = client(project, settings={"max_request_bytes": 200})
    big = api.post("/api/v1/query", json={"metrics": ["revenue"], "where": "shop = '" + "a" * 500 + "'"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    def chunks():   # no Content-Length: counted as it streams
        yield b'{"metrics": ["revenue"], "where": "'
        for _ in range(10):
            yield b"x" * 50
        yield b'"}'

    streamed = api.post("/api/v1/query", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "request_too_large"
    assert api.post("/api/v1/query", json={"metrics": "revenue"}).status_code == 200
    project.close()


def test_page_size_limit(duck_dir):
    from tally import Project

    project = Project.load(duck_dir)
    api = client(project, settings={"max_page_size": 2})
    assert api.get("/api/v1/rollups/h5_daily", params={"limit": 3}).status_code == 400
    assert len(api.get("/api/v1/rollups/h5_daily", params={"limit": 2}).json()["rows"]) == 2
    too_many = api.get("/api/v1/query", params={"metrics": "revenue", "grain": "day", "from": "2026-09-01",
                                                "to": "2026-09-10"})
    assert too_many.status_code == 422 and "max_page_size" in too_many.json()["error"]["message"]
    project.close()


def test_unexpected_errors_are_500_without_traceback_or_secret(duck_dir, monkeypatch, caplog):
    from tally import Project
    from tally.delivery import answer

    def boom(*args, **kwargs):
        raise RuntimeError("driver said: could not connect to postgresql://admin:hunter22@db.internal/x")

    monkeypatch.setattr(answer, "answer", boom)
    project = Project.load(duck_dir)
    api = client(project, settings={"cache": "none"})
    with caplog.at_level(logging.ERROR, logger="tally.api"):
        response = api.get("/api/v1/query", params={"metrics": "revenue", "to": "2026-09-05"})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error",
                                          "message": "internal error: RuntimeError (the server log has the details)"}}
    logged = caplog.text
    assert "RuntimeError" in logged and "hunter22" not in logged
    assert "hunter22" not in api.get("/metrics").text
    project.close()


def test_running_a_job_needs_the_admin_scope(keyed):
    for path in ("/api/v1/jobs/ingest:h5_sales", "/api/v1/jobs/ingest/h5_sales"):
        assert keyed.post(path).status_code == 401
        assert keyed.post(path, headers={"X-API-Key": READ_KEY}).status_code == 403
        assert keyed.post(path, headers={"X-API-Key": ADMIN_KEY}).status_code not in (401, 403)
    assert keyed.get("/api/v1/jobs").status_code == 401
    assert keyed.get("/api/v1/jobs", headers={"X-API-Key": READ_KEY}).status_code not in (401, 403)
