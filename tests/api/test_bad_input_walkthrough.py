"""Bad input a new user sent in a walkthrough: each a clear JSON 4xx, never a warehouse error."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tally.api.security import hash_key
from tests.api.conftest import client, make_project

ADMIN = "tally_walkthrough-admin-key"


@pytest.mark.parametrize("path", ["/api/v1/rollups/h5_daily", "/api/v1/sources/h5_sales/rejects", "/api/v1/jobs"])
@pytest.mark.parametrize("offset", [10 ** 20, 2 ** 63, 10 ** 9 + 1])
def test_an_offset_past_any_table_is_a_bad_page(duck, path, offset):
    # 10**20 reached the warehouse as a number past BIGINT: 503 warehouse_error
    response = duck.get(path, params={"offset": offset})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_page"
    assert "offset" in response.json()["error"]["message"]


def test_a_cursor_carrying_a_huge_offset_is_refused(duck):
    scope = json.dumps(["rejects", "h5_sales"])
    text = json.dumps({"o": 10 ** 20, "s": hashlib.sha256(scope.encode()).hexdigest()[:12]})
    cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    response = duck.get("/api/v1/sources/h5_sales/rejects", params={"cursor": cursor})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_page", response.text


def test_the_largest_offset_still_answers_an_empty_page(duck):
    page = duck.get("/api/v1/rollups/h5_daily", params={"offset": 10 ** 9}).json()
    assert page["rows"] == [] and page["next"] is None


def test_running_an_unknown_job_is_404(tmp_path):
    from tally import Project

    keys = f'api: {{keys: {{ops: {{hash: "{hash_key(ADMIN)}", scopes: [read, admin]}}}}}}\n'
    project = Project.load(make_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", api=keys, build=False))
    try:
        http = client(project)
        for path in ("/api/v1/jobs/nope", "/api/v1/jobs/ingest/nope", "/api/v1/jobs/bogus:h5_sales"):
            response = http.post(path, headers={"X-API-Key": ADMIN})
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "not_found"
    finally:
        project.close()


@pytest.mark.parametrize("limit", [-1, 0])
def test_a_query_limit_below_one_is_a_bad_page_in_the_api_range(duck, limit):
    # it said "limit must be a positive integer up to 9223372036854775807" (422): not this API's bound
    response = duck.get("/api/v1/query", params={"metrics": "revenue", "limit": limit})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_page" and "1 to" in error["message"] and "922337" not in error["message"]


@pytest.mark.parametrize("params, word", [
    ({"metrics": "revenue", "from": "2026-13-45"}, "from '2026-13-45'"),
    ({"metrics": "revenue", "where": "shop ==="}, "where: cannot parse"),
    ({"metrics": "revenue", "last": "abc"}, "last 'abc'"),
    ({"metrics": "revenue", "period": "2026-Q9"}, "period '2026-Q9'"),
    ({"metrics": "revenue", "from": "2026-10-01", "to": "2026-09-01"}, "from 2026-10-01 must be before to 2026-09-01"),
])
def test_query_errors_name_the_api_parameter_not_the_cli_option(duck, params, word):
    message = duck.get("/api/v1/query", params=params).json()["error"]["message"]
    assert "--" not in message and word in message, message


def test_a_post_body_that_is_not_json_says_to_send_json(duck):
    # curl -d sends a form content type: the answer said "Input should be a valid dictionary"
    response = duck.post("/api/v1/query", content=b'{"metrics": ["revenue"]}',
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.json()["error"]["message"]
    good = duck.post("/api/v1/query", content=b'{"metrics": ["revenue"]}', headers={"Content-Type": "application/json"})
    assert good.status_code == 200


@pytest.mark.parametrize("zone", ["America", "a" * 300])
def test_a_timezone_that_is_a_folder_or_too_long_is_a_422(duck, zone):
    # ZoneInfo raised IsADirectoryError / OSError (name too long): a 500 file_error
    response = duck.get("/api/v1/query", params={"metrics": "revenue", "timezone": zone})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "bad_query" and "unknown timezone" in response.json()["error"]["message"]


@pytest.mark.parametrize("where", ["timezone: America", "sources: {h5_sales: {schedule: {every: 1h, timezone: America}}}"])
def test_a_folder_timezone_in_tally_yml_is_a_config_error(tmp_path, where):
    import yaml

    from tally import Project
    from tally.errors import ConfigError
    from tests.api.conftest import CONFIG

    config = yaml.safe_load(CONFIG.format(url="duckdb:///w.duckdb", api=""))
    for key, value in yaml.safe_load(where).items():
        if isinstance(value, dict):
            config[key]["h5_sales"].update(value["h5_sales"])
        else:
            config[key] = value
    (tmp_path / "tally.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown timezone 'America'"):
        Project.load(tmp_path).config


def test_an_internal_error_is_logged_with_its_traceback_and_says_where_to_look(duck, monkeypatch, caplog):
    # a 500 from an api_boundary InternalError left no trace in the server log and told the HTTP
    # client "--debug shows where"
    import logging

    import tally.rollups.stored as stored
    from tally.errors import api_boundary

    @api_boundary
    def describe(project):
        raise ValueError("boom in describe")

    monkeypatch.setattr(stored, "describe", describe)
    with caplog.at_level(logging.ERROR, logger="tally.api"):
        response = duck.get("/api/v1/rollups")
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "internal_error" and "--debug" not in message
    assert "server log" in message
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name == "tally.api")
    assert "Traceback" in logged and "boom in describe" in logged and "GET /api/v1/rollups" in logged
