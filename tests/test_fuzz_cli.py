"""Random queries through `tally query` and `Project.query`: an answer, or one error line (exit 2 or 1).

Issue 14: whatever a user types (`--where` text, `--by`, `--order`, dates, `--last`/`--period`,
grains, timezones, `--limit`, metric names), the CLI answers or prints exactly one `error:` line and no traceback,
and the Python API returns a table or raises a TallyError that is not an InternalError (a bug).
Derandomized, so CI sees the same inputs every run.
"""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally import Project
from tally.demo import prepare
from tally.errors import InternalError, TallyError
from tests.cli_helpers import invoke

# TALLY_FUZZ_EXAMPLES=2000 explores further, with fresh random inputs each run
EXPLORE = int(os.environ.get("TALLY_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXPLORE or 60, deadline=None, derandomize=not EXPLORE, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

METRICS = ["revenue", "orders", "aov", "margin", "refunds", "stock", "gross_sales", "units", "profit"]
DIMENSIONS = ["shop", "status", "sku", "customer", "listing"]
WORDS = ["revenu", "colour", "", " ", "revenue,orders", "shop;drop", "period", "Revenue", "ünits", "a.b",
         "-revenue", "1", "__tally_probe"]

def mostly(valid, invalid):
    """Valid input nine times in ten: mistakes are reached anyway, answers need every part right."""
    return st.tuples(st.integers(0, 9), valid, invalid).map(lambda t: t[2] if t[0] == 9 else t[1])


names = st.one_of(st.sampled_from(WORDS), st.text(alphabet="abcdeorstuv_-;,. ()'1", max_size=12))
metric_lists = mostly(st.lists(st.sampled_from(METRICS), min_size=1, max_size=3, unique=True),
                      st.lists(st.one_of(st.sampled_from(METRICS), names), min_size=1, max_size=3))
by_lists = mostly(st.lists(st.sampled_from(DIMENSIONS), max_size=2, unique=True),
                  st.lists(st.one_of(st.sampled_from(DIMENSIONS), names), max_size=2))
orders = mostly(st.lists(st.sampled_from(["-revenue", "revenue desc", "orders asc", "period", "-shop", "status",
                                          "-orders", "aov", "-period"]), max_size=2),
                st.lists(st.one_of(st.sampled_from(["-", "revenue sideways", "-colour", "revenue,-orders"]), names),
                         max_size=2))
days = st.dates(min_value=dt.date(2024, 6, 1), max_value=dt.date(2027, 6, 1))
dates = mostly(st.one_of(st.none(), st.none(), days.map(str), days.map(lambda d: f"{d}T10:30"),
                         days.map(lambda d: f"{d} 23:00+05:30")),
               st.sampled_from(["0001-01-01", "9999-12-31", "0999-12-31T23:00", "9000-01-02", "2026-02-30",
                                "2026-13-01", "yesterday", "", "2026-1-1", "20260101", "2026-03-01T25:00"]))
grains = mostly(st.sampled_from([None, None, "hour", "day", "week", "month", "quarter", "year", "Month"]),
                st.sampled_from(["fortnight", "", "hours"]))
zones = mostly(st.sampled_from([None, "UTC", "Europe/Istanbul", "America/New_York", "Asia/Kolkata",
                                "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"]),
               st.sampled_from(["Mars/Base", "", "../etc/passwd", "utc", "Europe/Istanbul "]))
limits = mostly(st.one_of(st.none(), st.none(), st.integers(1, 12)),
                st.sampled_from([0, -3, 2**63 - 1, 2**63, 10**30]))
relative = st.one_of(st.none(), st.none(), st.none(), st.tuples(st.just("--last"), st.sampled_from(
    ["30d", "12w", "6m", "1y", "0d", "999999y", "3x", ""])), st.tuples(st.just("--period"), st.sampled_from(
    ["2026", "2026-Q3", "2026-10", "2026-W05", "2026-10-05", "0500", "9999", "2026-13", "last week"])))
extras = st.lists(st.sampled_from(["--live", "--meta"]), max_size=2, unique=True)
compares = mostly(st.sampled_from([None, None, "previous_period", "previous_year"]), st.just("last_week"))

# --where: well-formed filters over the dimensions (types mixed on purpose), and random text
values = st.one_of(st.sampled_from(["'paid'", "'cancelled'", "'x''y'", "1", "2.50", "1e3", "null", "true", "-1",
                                    "'%a%'", "(1, 2)", "('paid', 'shipped')"]),
                   st.integers(-10**6, 10**6).map(str))
comparisons = st.builds(lambda d, op, v: f"{d} {op} {v}", st.sampled_from(DIMENSIONS + ["colour", "orders.status"]),
                        st.sampled_from(["=", "<>", "!=", "<", ">=", "like", "in", "is", "is not"]), values)
wellformed = st.recursive(comparisons, lambda inner: st.one_of(
    st.builds(lambda a, b, op: f"{a} {op} {b}", inner, inner, st.sampled_from(["and", "or"])),
    inner.map(lambda a: f"not ({a})"), inner.map(lambda a: f"({a})")), max_leaves=4)
noise = st.text(alphabet="abcdehoprstu _=<>!()%*+-/,.0123456789'", max_size=30)
wheres = st.one_of(st.none(), st.none(), wellformed, wellformed, noise,
                   st.sampled_from(["", "status = 'paid'; drop table orders", "status in (select 1)",
                                    "read_csv('x') = 1", 'status = "paid"', "shop % 0 = 1", "status = 'a"]))

@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz") / "shop"
    project, _ = prepare("ecommerce", directory, 600, seed=11)
    project.close()
    return directory


@pytest.fixture(scope="module")
def project(shop_dir):
    loaded = Project.load(shop_dir)
    yield loaded
    loaded.close()


def cli_args(metrics, by, order, start, end, grain, zone, limit, compare, where, fmt, rel=None, flags=()) -> list[str]:
    args = ["query", "--format", fmt, *flags, *(rel or ())]
    for flag, value in (("--from", start), ("--to", end), ("--grain", grain), ("--timezone", zone),
                        ("--compare", compare), ("--where", where)):
        if value is not None:
            args += [flag, value]
    if limit is not None:
        args.append(f"--limit={limit}")
    for name in by:
        args += ["--by", name]
    for name in order:
        args += ["--order", name]
    return args + ["--", *metrics]


@given(metrics=metric_lists, by=by_lists, order=orders, start=dates, end=dates, grain=grains, zone=zones,
       limit=limits, compare=compares, where=wheres, fmt=st.sampled_from(["json", "table", "csv"]), rel=relative,
       flags=extras)
@FUZZ
def test_cli_answers_or_says_one_line(shop_dir, metrics, by, order, start, end, grain, zone, limit, compare,
                                      where, fmt, rel, flags):
    args = cli_args(metrics, by, order, start, end, grain, zone, limit, compare, where, fmt, rel, flags)
    result = invoke("-p", shop_dir, *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert "Traceback" not in result.stderr + result.stdout, args
    if result.exit_code == 0:
        assert result.stdout.strip(), args
        return
    assert result.exit_code in (1, 2), (args, result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    assert "internal error" not in lines[0], (args, lines[0])
    assert result.stdout == "", args


@given(metrics=st.one_of(metric_lists, st.sampled_from(METRICS)), by=by_lists, order=orders, start=dates,
       end=dates, grain=grains, zone=zones, limit=limits, compare=compares, where=wheres)
@FUZZ
def test_api_answers_or_raises_a_tally_error(project, metrics, by, order, start, end, grain, zone, limit, compare,
                                             where):
    try:
        result = project.query_result(metrics, by=by, order_by=order, start=start, end=end, grain=grain,
                                      timezone=zone, limit=limit, compare=compare, where=where)
    except InternalError as exc:
        pytest.fail(f"a bug, not a user error: {exc.message} ({metrics}, {by}, {order}, {start}, {end}, {grain}, "
                    f"{zone}, {limit}, {compare}, {where!r})")
    except TallyError as exc:
        assert exc.message and "\n" not in exc.message and not re.search(r"Traceback|<class ", exc.message)
        return
    assert result.table.num_rows >= 0 and "timezone" in result.meta
