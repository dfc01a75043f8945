"""Issue 14: every mistake is one line (exit 2/1), the API raises only TallyError, the Lambda handler never raises."""

from __future__ import annotations

import re

import pytest

from tally.demo import prepare
from tally.sources.seeds import read_seed

from tests.cli_helpers import ok, refused
from tests.engine import reference

START, END = "2026-03-01", "2026-05-01"


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("errors") / "shop"
    project, _ = prepare("ecommerce", directory, 2000, seed=5)
    project.close()
    return directory


# -- 1. --limit on a total ---------------------------------------------------------------------

def test_limit_on_a_total_keeps_the_one_row(ecommerce):
    project, tables = ecommerce
    seeds = project.config.seeds
    lookups = {file: read_seed(project.root, name, seeds[name]) for file, name in
               (("costs", "product_costs"), ("desi", "product_desi"), ("shipping_rates", "shipping_rates"))}
    wanted = reference.kpis(reference.in_range(reference.lines(tables, lookups), START, END),
                            reference.in_range(reference.refunds(tables), START, END))
    rows = project.query(["revenue", "orders"], start=START, end=END, limit=5).to_pylist()
    assert len(rows) == 1
    assert rows[0]["orders"] == wanted["orders"]
    assert round(float(rows[0]["revenue"]), 2) == round(float(wanted["revenue"]), 2)
    compared = project.query(["revenue"], start=START, end=END, limit=1, compare="previous_period").to_pylist()
    assert len(compared) == 1 and compared[0]["revenue"] == rows[0]["revenue"]


def test_cli_limit_without_order(shop_dir):
    result = ok("-p", shop_dir, "query", "revenue", "--limit", "5", "--format", "json")
    assert result.stdout.count("revenue") == 1 and result.stderr == ""


# -- 2. a wrong time: / updated: column ---------------------------------------------------------

def _broken_copy(project, tmp_path, old: str, new: str):
    from tally import Project

    text = (project.root / "tally.yml").read_text()
    assert old in text
    (tmp_path / "tally.yml").write_text(text.replace(old, new, 1))
    return Project.load(tmp_path, warehouse=project.warehouse_url)


@pytest.mark.parametrize("old, new, role", [("time: ordered_at", "time: orderd_at", "time"),
                                            ("updated: updated_at", "updated: updatd_at", "updated")])
def test_wrong_model_column_is_one_config_error(ecommerce, tmp_path, old, new, role):
    from tally.errors import ConfigError
    from tally.rollups import build

    project, _ = ecommerce
    broken = _broken_copy(project, tmp_path, old, new)
    try:
        with pytest.raises(ConfigError) as caught:
            if role == "time":
                broken.query(["revenue"], grain="day", start=START, end=END)
            else:
                build(broken, ["shop_reports"])
    finally:
        broken.close()
    message = caught.value.message
    wrong, right = new.split(": ")[1], old.split(": ")[1]
    assert f"model 'orders': {role} column '{wrong}' is not a column" in message
    assert f"did you mean '{right}'?" in message and "columns: order_id, line_no" in message
    assert "\n" not in message


def test_cli_wrong_time_column(shop_dir, tmp_path):
    text = (shop_dir / "tally.yml").read_text().replace("time: ordered_at", "time: ordered", 1)
    (tmp_path / "tally.yml").write_text(text.replace("duckdb:///warehouse.duckdb", f"duckdb:///{shop_dir}/warehouse.duckdb"))
    line = refused("-p", tmp_path, "query", "revenue", "--grain", "month")
    assert "time column 'ordered' is not a column of its table (did you mean 'ordered_at'?)" in line


# -- 3. dates out of range; rollup build's --from/--to read as query's ------------------------------

@pytest.mark.parametrize("args", [
    ["--from", "0001-01-01"], ["--to", "9999-12-31"], ["--from", "0999-12-31T23:00"],
    ["--from", "0001-01-01", "--to", "0002-01-01", "--compare", "previous_year"],
    ["--from", "9998-01-01", "--to", "9999-12-31", "--grain", "year"],
])
def test_query_dates_out_of_range(shop_dir, args):
    line = refused("-p", shop_dir, "query", "revenue", *args)
    assert "is out of range (supported dates are 1000-01-01 to 9000-01-01)" in line


@pytest.mark.parametrize("compare", ["previous_year", "previous_period"])
def test_comparison_before_the_first_date(shop_dir, compare):
    line = refused("-p", shop_dir, "query", "revenue", "--from", "1000-01-01", "--to", "1000-06-01",
                   "--compare", compare)
    assert f"--compare {compare}: the range compared with would start before 1000-01-01" in line


@pytest.mark.parametrize("args, reason", [
    (["--from", "0001-01-01"], "--from '0001-01-01' is out of range (supported dates are 1000-01-01 to 9000-01-01)"),
    (["--to", "9999-12-31"], "--to '9999-12-31' is out of range"),
    (["--from", "garbage"], "--from 'garbage' is not a date (YYYY-MM-DD)"),
    (["--from", "2026-13-01"], "--from '2026-13-01' is not a date"),
    (["--to", "2026-05-01T10:00"], "--to '2026-05-01T10:00' is not a date (YYYY-MM-DD)"),
    (["--from", "2026-05-01", "--to", "2026-01-01"], "--from 2026-05-01 must be before --to 2026-01-01"),
    (["--from", "2026-05-01", "--to", "2026-05-01"], "must be before"),
])
def test_rollup_build_range_refused(shop_dir, args, reason):
    line = refused("-p", shop_dir, "rollup", "build", *args)
    assert reason in line


def test_edge_dates_in_range_answer(ecommerce):
    from tally.errors import QueryError
    from tally.rollups import build

    project, _ = ecommerce
    for start, end in (("1000-01-01", "1000-02-01"), ("8999-12-01", "9000-01-01")):
        rows = project.query(["revenue", "orders"], grain="month", start=start, end=end).to_pylist()
        assert [(r["revenue"], r["orders"]) for r in rows] == [(0, 0)]
    import datetime as dt

    with pytest.raises(QueryError, match="supported dates"):
        project.query(["revenue"], start=dt.date(1, 1, 1))
    with pytest.raises(QueryError, match="supported dates"):
        project.query(["revenue"], grain="year", end=dt.datetime(9999, 12, 31, 23))
    with pytest.raises(QueryError, match="must be before"):
        build(project, ["shop_reports"], start="2026-05-01", end="2026-04-01")


# -- 4. the Lambda handler -----------------------------------------------------------------------

LAMBDA_EVENT = {"environment": "development", "statisticsType": "financial",
                "dateRange": {"start": "2024-01-01", "end": "2024-01-31"}}


@pytest.mark.parametrize("event, message", [
    ("[" * 100_000, "event: JSON nested too deeply to read"),
    ({"httpMethod": "POST", "body": "[" * 100_000}, "body: JSON nested too deeply to read"),
    ({**LAMBDA_EVENT, "dateRange": {"start": "2024-01-01", "end": "9999-12-31"}},
     "dateRange.end: 9999-12-31 is out of range (an event's days run from 1000-01-01 to 8999-12-31)"),
    ({**LAMBDA_EVENT, "dateRange": {"start": "0001-01-01", "end": "2024-01-31"}},
     "dateRange.start: 0001-01-01 is out of range"),
    ({**LAMBDA_EVENT, "dateRange": {"start": "2024-01-01", "end": "8999-12-31"}}, None),
])
def test_lambda_bad_events_are_a_fast_400(event, message, tmp_path, monkeypatch, capsys):
    import json
    import time

    from tally.aws import lambda_handler

    monkeypatch.setenv("TALLY_PROJECT", str(tmp_path))   # no project: a good event gets past the checks only
    clock = time.perf_counter()
    answer = lambda_handler(event, None)
    assert time.perf_counter() - clock < 2
    body = answer["body"] if isinstance(answer["body"], dict) else json.loads(answer["body"])
    if message is None:   # 8999-12-31 is a supported day: the event is read, the missing project refused
        assert answer["statusCode"] == 422 and body["error"]["code"] == "bad_config"
        return
    assert answer["statusCode"] == 400
    assert body["error"]["code"] == "bad_event" and message in body["error"]["message"]
    capsys.readouterr()


def test_lambda_handler_never_raises(monkeypatch, capsys):
    from tally import aws

    def broken(*args, **kwargs):
        raise TypeError("unforeseen")

    monkeypatch.setattr(aws, "parse_event", broken)
    answer = aws.lambda_handler(LAMBDA_EVENT, None)
    assert answer["statusCode"] == 400
    assert answer["body"]["error"]["message"] == "event: cannot be read (TypeError: unforeseen)"
    monkeypatch.setattr(aws, "EventLog", broken)
    answer = aws.lambda_handler(LAMBDA_EVENT, None)
    assert answer["statusCode"] == 500 and answer["body"]["error"]["code"] == "internal_error"
    capsys.readouterr()


# -- 5. the Python API raises only TallyError -------------------------------------------------------

BAD_QUERIES = [
    ((5,), {}, "metrics must be a name or a list of names"),
    (("revenue",), {"by": 5}, "dimensions must be a name or a list of names"),
    (("revenue",), {"by": {"shop": 1}}, "dimensions must be a name or a list of names"),
    (("revenue",), {"start": "0001-01-01"}, "out of range"),
    (("revenue",), {"where": 5}, "where must be text"),
    (("revenue",), {"where": ["status = 'paid'"]}, "where must be text"),
    (("revenue",), {"where": "status = 'a\x00'"}, "NUL character"),
    (("revenue",), {"order_by": 5}, "order must be a text"),
    (("revenue",), {"order_by": [("revenue",)]}, "cannot read order ('revenue',)"),
    (("revenue",), {"order_by": [()]}, "cannot read order ()"),
    (("revenue",), {"order_by": [7]}, "cannot read order 7"),
    (("revenue",), {"by": "shop", "limit": True}, "limit must be a positive integer"),
    (("revenue",), {"by": "shop", "limit": 10**30}, "limit must be a positive integer up to"),
    (("revenue",), {"timezone": 5}, "unknown timezone 5"),
    (("revenue",), {"timezone": ["UTC"]}, "unknown timezone ['UTC']"),
    (("revenue",), {"fill": "no"}, "fill must be True or False"),
    (("revenue",), {"foo": 1}, "unknown query argument(s) foo"),
]


@pytest.mark.parametrize("args, kwargs, reason", BAD_QUERIES, ids=[f"q{i}" for i in range(len(BAD_QUERIES))])
def test_api_bad_query_arguments(ecommerce, args, kwargs, reason):
    from tally.errors import InternalError, QueryError

    project, _ = ecommerce
    for method in (project.query, project.query_result):
        with pytest.raises(QueryError) as caught:
            method(*args, **kwargs)
        assert reason in caught.value.message and not isinstance(caught.value, InternalError)


def test_api_largest_limit_and_a_pair_order(ecommerce):
    project, _ = ecommerce
    rows = project.query(["revenue"], by="shop", order_by=[("revenue", True)], limit=2**63 - 1,
                         start=START, end=END).to_pylist()
    assert [r["revenue"] for r in rows] == sorted((r["revenue"] for r in rows), reverse=True) and len(rows) > 2


@pytest.mark.parametrize("call, reason", [
    (lambda P, p, u: P.load(5), "Project.load: path must be text"),
    (lambda P, p, u: P.load(None), "Project.load: path must be a project folder"),
    (lambda P, p, u: P.load(p.root, profile=5), "Project.load: profile must be text"),
    (lambda P, p, u: P.load(p.root, warehouse=5), "Project.load: warehouse must be text"),
    (lambda P, p, u: p.load_seeds(5), "seed names must be a name or a list of names"),
    (lambda P, p, u: p.load_seeds(["nope"]), "unknown seed(s) nope"),
    (lambda P, p, u: u.build(p, 5), "rollup names must be a name or a list of names"),
    (lambda P, p, u: u.build(p, "nope"), "unknown rollup(s) nope (rollups:"),
    (lambda P, p, u: u.build(p, start=5), "--from 5 is not a date (YYYY-MM-DD)"),
    (lambda P, p, u: u.verify(p, 5), "rollup names must be a name or a list of names"),
])
def test_api_bad_arguments(ecommerce, call, reason):
    import tally.rollups
    from tally import Project
    from tally.errors import InternalError, TallyError

    project, _ = ecommerce
    with pytest.raises(TallyError) as caught:
        call(Project, project, tally.rollups)
    assert reason in caught.value.message and not isinstance(caught.value, InternalError)


def test_api_ingest_bad_names(shop_dir):
    from tally import Project
    from tally.errors import ConfigError
    from tally.sources import ingest

    project = Project.load(shop_dir)
    try:
        for names, reason in ((5, "source names must be a name or a list of names"),
                              ("orders", "unknown source(s) orders (sources: none)")):
            with pytest.raises(ConfigError, match=re.escape(reason)):
                ingest(project, names)
    finally:
        project.close()


def test_unexpected_failures_become_an_internal_error(ecommerce, monkeypatch):
    from tally.errors import InternalError

    project, _ = ecommerce

    def broken(*args, **kwargs):
        raise ZeroDivisionError("postgresql://u:hunter2@db/x went wrong\nsecond line")

    monkeypatch.setattr(project.engine, "query", broken)
    with pytest.raises(InternalError) as caught:
        project.query("revenue")
    assert caught.value.message.startswith("internal error in query_result(): ZeroDivisionError: postgresql://u:")
    assert "hunter2" not in caught.value.message and "second line" not in caught.value.message
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_cli_seed_unknown_name(shop_dir):
    assert "unknown seed(s) nope" in refused("-p", shop_dir, "seed", "nope")


def test_cli_unexpected_failure_is_one_line(shop_dir, monkeypatch):
    import tally.delivery.answer

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(tally.delivery.answer, "run_query", broken)
    line = refused("-p", shop_dir, "query", "revenue", code=1)
    assert line.startswith("error: internal error in tally query: KeyError: 'boom' (a bug in Tally")


# -- found by tests/test_fuzz_cli.py ---------------------------------------------------------------

@pytest.mark.parametrize("order", [["-revenue", "-revenue"], ["revenue", "revenue desc"], ["period,-period"]])
def test_repeated_order_key(shop_dir, order):
    args = [a for name in order for a in ("--order", name)]
    line = refused("-p", shop_dir, "query", "revenue", "--grain", "month", *args)
    assert "is repeated in --order (sort by each name once)" in line


def test_file_system_failures_are_a_file_error(monkeypatch, tmp_path):
    import tally.app
    from tally import Project
    from tally.errors import FileError

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/shop/tally.yml")

    monkeypatch.setattr(tally.app, "load_config", denied)
    with pytest.raises(FileError, match=r"^load\(\): Permission denied: /srv/shop/tally.yml$"):
        Project.load(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = refused("init", blocker / "project", code=1)
    assert "internal error" not in line and "Not a directory" in line
