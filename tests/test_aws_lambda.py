"""`tally.aws.lambda_handler` with the statistics job's event: answers, rebuilt tables, bad events, logs."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from tally import Project
from tally.aws import lambda_handler
from tally.demo import prepare
from tally.app import read_project

ROWS, SEED = 3000, 5
# The seed's event, as its README shows it (one statisticsType of the four).
SEED_EVENT = {"environment": "development", "statisticsType": "financial",
              "dateRange": {"start": "2024-01-01", "end": "2024-01-31"}}
TABLES = {"user": "statistics_user", "business": "statistics_business", "system": "statistics_system",
          "financial": "statistics_financial"}
DB_VARIABLES = ("STATS_DB_USER", "STATS_DB_PASSWORD", "STATS_DB_HOST", "STATS_DB_NAME")


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("lambda") / "stats"
    project, _ = prepare("stats", directory, ROWS, seed=SEED)
    project.close()
    return directory


@pytest.fixture
def deployed(stats_dir, monkeypatch) -> Path:
    """The Lambda's environment: TALLY_PROJECT at the stats project, no database secrets set."""
    monkeypatch.setenv("TALLY_PROJECT", str(stats_dir))
    for name in DB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return stats_dir


def event(**changes) -> dict:
    """The seed's event with some keys replaced (a value of ... removes the key)."""
    result = copy.deepcopy(SEED_EVENT)
    for key, value in changes.items():
        if key in ("start", "end"):
            target = result["dateRange"]
        else:
            target, key = result, {"statistics_type": "statisticsType", "date_range": "dateRange"}.get(key, key)
        if value is ...:
            target.pop(key)
        else:
            target[key] = value
    return result


def stored(directory: Path, table: str, profile: str = "development") -> list[dict]:
    project = Project.load(directory, profile=profile)
    try:
        warehouse = project.warehouse
        return warehouse.run(warehouse.compile(warehouse.table(table))).to_pylist()
    finally:
        project.close()


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


# -- the seed's event ----------------------------------------------------------------------------


@pytest.mark.parametrize("statistics_type", list(TABLES))
def test_seed_event_rebuilds_the_category_for_january(deployed, statistics_type):
    answer = lambda_handler(event(statistics_type=statistics_type), None)
    assert answer["statusCode"] == 200, answer
    body = answer["body"]
    assert body["status"] == "ok"
    assert (body["environment"], body["statisticsType"]) == ("development", statistics_type)
    assert body["dateRange"] == {"start": "2024-01-01", "end": "2024-01-31"}
    assert body["rebuilt"] == {"from": "2024-01-01", "to": "2024-02-01"}  # the end day is included
    [rollup] = body["rollups"]
    assert (rollup["name"], rollup["table"], rollup["mode"]) == (f"{statistics_type}_statistics",
                                                                  TABLES[statistics_type], "range")
    # 31 days + 1 (the day after: its growth moves), 5 weeks + 1, January + February
    assert (rollup["periods"], rollup["rows"]) == (40, 40)
    assert body["rows"] == 40
    assert 0 < rollup["seconds"] <= body["seconds"]
    assert "ignored" not in body
    json.dumps(answer)  # the answer is plain JSON

    days = sorted(r["period_start"] for r in stored(deployed, TABLES[statistics_type]) if r["grain"] == "day")
    assert days[:31] == [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(31)]


def test_rebuilt_rows_hold_the_live_numbers(deployed):
    assert lambda_handler(SEED_EVENT, None)["statusCode"] == 200
    rows = {(r["grain"], r["period_start"]): r for r in stored(deployed, "statistics_financial")}
    live = Project(read_project(deployed), use_rollups=False)  # computed from the payments, not the rollup
    try:
        days = live.query(["revenue", "fees", "transactions"], grain="day", start="2024-01-01", end="2024-02-01")
        month = live.query(["revenue", "avg_transaction_value"], grain="month", start="2024-01-01", end="2024-02-01")
    finally:
        live.close()
    for day in days.to_pylist():
        row = rows[("day", day["period"])]
        assert (row["revenue"], row["fees"], row["transactions"]) == (day["revenue"], day["fees"], day["transactions"])
    [january] = month.to_pylist()
    assert rows[("month", dt.date(2024, 1, 1))]["revenue"] == january["revenue"]
    assert rows[("month", dt.date(2024, 2, 1))]["revenue_previous"] == january["revenue"]


def test_a_single_day_range(deployed):
    answer = lambda_handler(event(start="2024-03-15", end="2024-03-15"), None)
    assert answer["statusCode"] == 200
    assert answer["body"]["rebuilt"] == {"from": "2024-03-15", "to": "2024-03-16"}
    assert answer["body"]["rows"] == 2 + 2 + 2  # the day and the next, its week and the next, its month and the next


def test_unknown_keys_are_ignored_and_reported(deployed):
    answer = lambda_handler({**event(start="2024-02-01", end="2024-02-29"), "source": "aws.events",
                             "dateRange": {"start": "2024-02-01", "end": "2024-02-29", "timezone": "UTC"}}, None)
    assert answer["statusCode"] == 200
    assert answer["body"]["ignored"] == ["source", "dateRange.timezone"]


def test_event_as_a_json_string(deployed):
    answer = lambda_handler(json.dumps(SEED_EVENT), None)
    assert answer["statusCode"] == 200 and answer["body"]["rows"] == 40


@pytest.mark.parametrize("encode", [False, True])
def test_api_gateway_proxy_event_gets_a_text_body(deployed, encode):
    text = json.dumps(SEED_EVENT)
    body = base64.b64encode(text.encode()).decode() if encode else text
    answer = lambda_handler({"httpMethod": "POST", "path": "/statistics", "headers": {}, "body": body,
                             "isBase64Encoded": encode}, None)
    assert answer["statusCode"] == 200
    assert answer["headers"] == {"Content-Type": "application/json"}
    assert json.loads(answer["body"])["rows"] == 40


def test_project_folder_defaults_to_the_current_directory(deployed, monkeypatch):
    monkeypatch.delenv("TALLY_PROJECT")
    monkeypatch.chdir(deployed)
    assert lambda_handler(SEED_EVENT, None)["statusCode"] == 200


# -- bad events ----------------------------------------------------------------------------------


BAD_EVENTS = [
    ([SEED_EVENT], "event: expected a JSON object with environment, statisticsType, dateRange, got a JSON array"),
    (None, "event: expected a JSON object with environment, statisticsType, dateRange, got null"),
    (42, "got 42"),
    ({}, "environment: missing (one of production, staging, development); statisticsType: missing (one of user, "
         "business, system, financial); dateRange: missing (an object with start and end, YYYY-MM-DD, end included)"),
    (event(environment=...), "environment: missing (one of production, staging, development)"),
    (event(environment="prod"), "environment: 'prod' is not one of production, staging, development"),
    (event(environment="Production"), "environment: 'Production' is not one of"),
    (event(environment=["staging"]), "environment: a JSON array is not one of"),
    (event(statistics_type="revenue"), "statisticsType: 'revenue' is not one of user, business, system, financial"),
    (event(statistics_type=None), "statisticsType: null is not one of"),
    (event(date_range="2024-01"), "dateRange: expected an object with start and end, got '2024-01'"),
    (event(end=...), "dateRange.end: missing (YYYY-MM-DD)"),
    (event(start="2024-13-01"), "dateRange.start: '2024-13-01' is not a date (YYYY-MM-DD)"),
    (event(start="2024-02-30"), "dateRange.start: '2024-02-30' is not a date (YYYY-MM-DD)"),
    (event(start="01/02/2024"), "dateRange.start: '01/02/2024' is not a date (YYYY-MM-DD)"),
    (event(start="2024-1-1"), "dateRange.start: '2024-1-1' is not a date"),
    (event(end="2024-01-31T00:00:00Z"), "dateRange.end: '2024-01-31T00:00:00Z' is not a date"),
    (event(end=20240131), "dateRange.end: 20240131 is not a date"),
    (event(start="2024-02-01", end="2024-01-31"),
     "dateRange: start 2024-02-01 is after end 2024-01-31 (both days are included)"),
    ('{"environment": "development", ', "event: not valid JSON (Expecting property name enclosed in double quotes"),
    ("", "event: not valid JSON"),
    ('"development"', "event: expected a JSON object with environment, statisticsType, dateRange, got 'development'"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_EVENTS, ids=[f"bad{i}" for i in range(len(BAD_EVENTS))])
def test_bad_events_get_a_400_naming_the_problem(deployed, bad, message, capsys):
    answer = lambda_handler(bad, None)
    assert answer["statusCode"] == 400
    assert answer["body"]["status"] == "error"
    assert answer["body"]["error"]["code"] == "bad_event"
    assert message in answer["body"]["error"]["message"]
    assert "Traceback" not in json.dumps(answer)
    [line] = log_lines(capsys)
    assert (line["level"], line["event"]) == ("warning", "bad_event")


def test_every_problem_is_named_at_once(deployed):
    answer = lambda_handler({"environment": "dev", "statisticsType": "users",
                             "dateRange": {"start": "2024-13-01"}}, None)
    assert answer["body"]["error"]["message"] == (
        "environment: 'dev' is not one of production, staging, development; "
        "statisticsType: 'users' is not one of user, business, system, financial; "
        "dateRange.start: '2024-13-01' is not a date (YYYY-MM-DD); dateRange.end: missing (YYYY-MM-DD)")


@pytest.mark.parametrize(("body", "encoded", "message"), [
    ('{"environment": ', False, "body: not valid JSON"),
    ("not base64!", True, "body: isBase64Encoded is set but the body is not base64 of UTF-8 text"),
    (None, False, "body: empty; expected a JSON object with environment, statisticsType, dateRange"),
    ('["x"]', False, "event: expected a JSON object"),
])
def test_bad_api_gateway_bodies(deployed, body, encoded, message):
    answer = lambda_handler({"httpMethod": "POST", "body": body, "isBase64Encoded": encoded}, None)
    assert answer["statusCode"] == 400
    assert message in json.loads(answer["body"])["error"]["message"]


# -- failures after the event is read ------------------------------------------------------------


def test_a_missing_project_folder_is_a_clear_error(deployed, tmp_path, monkeypatch):
    monkeypatch.setenv("TALLY_PROJECT", str(tmp_path / "nowhere"))
    answer = lambda_handler(SEED_EVENT, None)
    assert answer["statusCode"] == 422
    assert answer["body"]["error"] == {"code": "bad_config", "message": f"project folder {tmp_path / 'nowhere'} "
                                                                       "does not exist (from TALLY_PROJECT)"}
    monkeypatch.delenv("TALLY_PROJECT")
    monkeypatch.chdir(tmp_path)
    answer = lambda_handler(SEED_EVENT, None)
    assert answer["body"]["error"]["message"] == (f"no tally.yml in project folder {tmp_path} "
                                                  "(from the current directory (TALLY_PROJECT is unset))")


def test_a_project_without_the_category_or_profile(tmp_path, monkeypatch):
    (tmp_path / "tally.yml").write_text("name: bare\nwarehouse: duckdb:///bare.duckdb\n"
                                        "profiles: {development: {}}\n")
    monkeypatch.setenv("TALLY_PROJECT", str(tmp_path))
    answer = lambda_handler(SEED_EVENT, None)
    assert answer["statusCode"] == 422
    assert answer["body"]["error"]["code"] == "bad_config"
    assert "no rollup in category 'financial'" in answer["body"]["error"]["message"]
    answer = lambda_handler(event(environment="staging"), None)
    assert answer["statusCode"] == 422
    assert "unknown profile 'staging' (profiles: development)" in answer["body"]["error"]["message"]


def test_production_without_its_secrets_names_the_variable(deployed):
    answer = lambda_handler(event(environment="production"), None)
    assert answer["statusCode"] == 422
    assert "environment variable STATS_DB_USER is not set" in answer["body"]["error"]["message"]


def test_an_unreachable_warehouse_is_a_503_without_the_password(deployed, monkeypatch, capsys):
    monkeypatch.setenv("STATS_DB_USER", "stats")
    monkeypatch.setenv("STATS_DB_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("STATS_DB_HOST", "127.0.0.1:1")  # nothing listens on port 1
    answer = lambda_handler(event(environment="production"), None)
    assert answer["statusCode"] == 503
    assert answer["body"]["error"]["code"] == "warehouse_error"
    assert "cannot connect to mysql://stats:***@127.0.0.1:1/statistics" in answer["body"]["error"]["message"]
    output = capsys.readouterr().out
    assert "hunter2-secret" not in output and "hunter2-secret" not in json.dumps(answer)


def test_an_unexpected_failure_is_a_500_with_one_line(deployed, monkeypatch, capsys):
    import tally.rollups

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line from mysql://stats:hunter2@db/statistics")

    monkeypatch.setattr(tally.rollups, "build", broken)
    answer = lambda_handler(SEED_EVENT, None)
    assert answer == {"statusCode": 500, "body": {"status": "error", "error": {
        "code": "internal_error", "message": "RuntimeError: disk on fire"}}}
    lines = log_lines(capsys)
    assert [line["event"] for line in lines] == ["start", "failed"]
    failed = lines[-1]
    assert (failed["level"], failed["code"], failed["error_type"]) == ("error", "internal_error", "RuntimeError")
    assert "Traceback" in failed["traceback"] and "broken" in failed["traceback"]
    assert "hunter2" not in json.dumps(lines)


# -- logs ----------------------------------------------------------------------------------------


def test_logs_are_json_lines_from_start_to_completion(deployed, capsys):
    context = SimpleNamespace(aws_request_id="req-123", get_remaining_time_in_millis=lambda: 899_000)
    answer = lambda_handler(event(statistics_type="system"), context)
    lines = log_lines(capsys)
    assert {line["request_id"] for line in lines} == {"req-123"}
    assert {line["logger"] for line in lines} == {"tally.aws"}
    names = [line["event"] for line in lines]
    assert names[0] == "start" and names[-1] == "complete"
    start, complete = lines[0], lines[-1]
    assert start["environment"] == "development" and start["statisticsType"] == "system"
    assert start["rebuild"] == {"from": "2024-01-01", "to": "2024-02-01"}
    assert start["remaining_ms"] == 899_000 and start["project"] == str(deployed)
    progress = [line for line in lines if line["event"] == "progress"]
    assert {line["rollup"] for line in progress} == {"system_statistics"}
    assert progress[-1]["fraction"] == 1.0 and progress[-1]["note"] == "done"
    assert (complete["rollups"], complete["rows"], complete["seconds"]) == (1, 40, answer["body"]["seconds"])
    [built] = [line for line in lines if line["event"] == "built"]
    assert built["warehouse"] == "duckdb:///stats-development.duckdb"
    dt.datetime.fromisoformat(start["time"])


def test_ranges_rebuilt_by_separate_invocations_on_a_new_warehouse(tmp_path, monkeypatch):
    project, _ = prepare("stats", tmp_path, ROWS, seed=SEED)
    project.close()
    monkeypatch.setenv("TALLY_PROJECT", str(tmp_path))
    assert lambda_handler(SEED_EVENT, None)["body"]["rows"] == 40
    march = lambda_handler(event(start="2024-03-01", end="2024-03-31"), None)  # each call loads the project anew
    assert march["body"]["rows"] == 32 + 6 + 2  # 5 weeks touch March (the first from Feb 26) + the next
    live = Project(read_project(tmp_path), use_rollups=False)
    try:
        [expected] = live.query(["revenue"], grain="month", start="2024-03-01", end="2024-04-01").to_pylist()
    finally:
        live.close()
    months = {r["period_start"]: r for r in stored(tmp_path, "statistics_financial") if r["grain"] == "month"}
    assert months[dt.date(2024, 3, 1)]["revenue"] == expected["revenue"] > 0


# -- the original deployment: MySQL (MariaDB) as production ---------------------------------------


def test_production_environment_on_mariadb(mariadb_db_url, tmp_path, monkeypatch):
    project, _ = prepare("stats", tmp_path, ROWS, seed=SEED, warehouse=mariadb_db_url)
    project.close()
    parts = urlsplit(mariadb_db_url)
    monkeypatch.setenv("TALLY_PROJECT", str(tmp_path))
    monkeypatch.setenv("STATS_DB_USER", parts.username)
    monkeypatch.setenv("STATS_DB_PASSWORD", parts.password)
    monkeypatch.setenv("STATS_DB_HOST", f"{parts.hostname}:{parts.port}")
    monkeypatch.setenv("STATS_DB_NAME", parts.path.lstrip("/"))
    answer = lambda_handler(event(environment="production", statistics_type="business"), None)
    assert answer["statusCode"] == 200, answer
    assert answer["body"]["rows"] == 40
    rows = stored(tmp_path, "statistics_business", profile="production")
    assert {r["period_start"] for r in rows if r["grain"] == "month"} == {dt.date(2024, 1, 1), dt.date(2024, 2, 1)}
    assert not (tmp_path / "stats-development.duckdb").exists()
    assert os.environ["STATS_DB_PASSWORD"] not in json.dumps(answer)


def test_each_error_class_carries_its_http_status():
    """The status an HTTP answer gives for an error lives on its class (once a map in aws.py)."""
    from tally import errors
    from tally.aws import BadEvent

    assert {cls.__name__: cls.http_status for cls in (errors.ConfigError, errors.QueryError, errors.ExpressionError,
                                                       errors.WarehouseError, errors.SourceError, errors.FileError,
                                                       errors.InternalError, BadEvent)} == {
        "ConfigError": 422, "QueryError": 422, "ExpressionError": 422, "WarehouseError": 503, "SourceError": 502,
        "FileError": 500, "InternalError": 500, "BadEvent": 400}
