"""Issue 14: `--last` and `--period` ranges, in the project timezone, and one-line errors for bad values."""

from __future__ import annotations

import datetime as dt

import pytest

from tally.errors import QueryError
from tally.engine.ranges import resolve
from tests.cli_helpers import invoke, refused

TUESDAY = dt.date(2026, 9, 15)


@pytest.mark.parametrize("last, week_start, expected", [
    ("30d", 0, ("2026-08-17", "2026-09-16")),
    ("1d", 0, ("2026-09-15", "2026-09-16")),
    ("12w", 0, ("2026-06-29", "2026-09-16")),     # this week (from Monday 09-14) and the 11 before
    ("1w", 6, ("2026-09-13", "2026-09-16")),      # weeks starting Sunday
    ("6m", 0, ("2026-04-01", "2026-09-16")),
    ("13m", 0, ("2025-09-01", "2026-09-16")),
    ("1y", 0, ("2026-01-01", "2026-09-16")),
    ("2Y", 0, ("2025-01-01", "2026-09-16")),
])
def test_last(last, week_start, expected):
    assert resolve(last, None, None, None, "UTC", week_start, today=TUESDAY) == expected


@pytest.mark.parametrize("period, week_start, expected", [
    ("2026", 0, ("2026-01-01", "2027-01-01")),
    ("2026-Q3", 0, ("2026-07-01", "2026-10-01")),
    ("2026-q4", 0, ("2026-10-01", "2027-01-01")),
    ("2026-10", 0, ("2026-10-01", "2026-11-01")),
    ("2026-12", 0, ("2026-12-01", "2027-01-01")),
    ("2026-W05", 0, ("2026-01-26", "2026-02-02")),
    ("2026-W05", 6, ("2026-01-25", "2026-02-01")),
    ("2020-W53", 0, ("2020-12-28", "2021-01-04")),
    ("2026-10-05", 0, ("2026-10-05", "2026-10-06")),
])
def test_period(period, week_start, expected):
    assert resolve(None, period, None, None, "UTC", week_start) == expected


def test_last_is_in_the_project_timezone():
    """Just before midnight UTC it is already tomorrow in Istanbul."""
    now = dt.datetime.now(dt.timezone.utc)
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        from zoneinfo import ZoneInfo

        today = now.astimezone(ZoneInfo(zone)).date()
        start, end = resolve("1d", None, None, None, zone, 0)
        assert (start, end) in ((today.isoformat(), (today + dt.timedelta(days=1)).isoformat()),
                                ((today + dt.timedelta(days=1)).isoformat(), (today + dt.timedelta(days=2)).isoformat()))


@pytest.mark.parametrize("last, period, start, reason", [
    ("30x", None, None, "--last '30x': write a count and a unit"),
    ("0d", None, None, "--last '0d': write a count"),
    ("d", None, None, "--last 'd': write"),
    ("999999y", None, None, "outside the calendar"),
    (None, "2026-13", None, "month 13 is not 01 to 12"),
    (None, "2026-Q0", None, "--period '2026-Q0': write a year"),
    (None, "2026-W54", None, "2026 has no ISO week 54"),
    (None, "2026-02-30", None, "is not a calendar date"),
    (None, "9999", None, "outside the calendar"),
    (None, "last week", None, "--period 'last week': write a year"),
    ("3d", "2026", None, "--last and --period both give the range"),
    ("3d", None, "2026-01-01", "--last gives the whole range: drop --from/--to"),
    (None, "2026", "2026-01-01", "--period gives the whole range"),
])
def test_bad_values(last, period, start, reason):
    with pytest.raises(QueryError, match=None) as caught:
        resolve(last, period, start, None, "UTC", 0, today=TUESDAY)
    assert reason in caught.value.message and "\n" not in caught.value.message


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    from tally.demo import prepare

    directory = tmp_path_factory.mktemp("ranges") / "shop"
    project, _ = prepare("ecommerce", directory, 2000, seed=3)
    project.close()
    return directory


def test_cli_period_equals_from_to(shop_dir):
    import json

    def rows(*args):
        result = invoke("-p", shop_dir, "query", "revenue", "--grain", "week", *args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    assert rows("--period", "2026-Q3") == rows("--from", "2026-07-01", "--to", "2026-10-01")
    assert rows("--period", "2026-W36") == rows("--from", "2026-08-31", "--to", "2026-09-07")


@pytest.mark.parametrize("args", [["query", "revenue", "--last", "5q"], ["query", "revenue", "--period", "x"],
                                  ["query", "revenue", "--last", "3d", "--to", "2026-01-01"],
                                  ["rollup", "build", "--period", "2026-13"]])
def test_cli_bad_values_are_one_line(shop_dir, args):
    assert refused("-p", shop_dir, *args).startswith("error: --")


def test_rollup_build_takes_a_period(shop_dir):
    import json

    def built(*args):
        result = invoke("-p", shop_dir, "rollup", "build", "shop_reports", *args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return [(r["mode"], r["periods"], r["rows"]) for r in json.loads(result.stdout)]

    built("--full")
    assert built("--period", "2026-09") == built("--from", "2026-09-01", "--to", "2026-10-01")
    assert built("--period", "2026-09")[0][0] == "range"
