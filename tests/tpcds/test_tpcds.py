"""TPC-DS store_sales queries: Tally's answers equal DuckDB running the official SQL on the same data."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from tests.tpcds import data
from tests.tpcds.cases import CASES


def same(tally_value, sql_value) -> bool:
    """Exact for exact types (integers, decimals, text, dates); floats (avg, ratios) to 1e-9 relative."""
    if isinstance(tally_value, float) or isinstance(sql_value, float):
        if tally_value is None or sql_value is None:
            return tally_value is sql_value
        return math.isclose(float(tally_value), float(sql_value), rel_tol=1e-9, abs_tol=1e-12)
    return tally_value == sql_value


def zero_for_null(row: tuple, sums: tuple[int, ...]) -> tuple:
    """SQL's sum over no rows is NULL; Tally's is 0 (docs/tpcds.md): compare sums with that rule."""
    return tuple((Decimal(0) if v is None else v) if i in sums else v for i, v in enumerate(row))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_query_matches_official_sql(tpcds, case):
    project, con = tpcds
    sql = data.official_query(con, case.number)
    if case.edit:
        assert case.edit[0] in sql
        sql = sql.replace(*case.edit)
    expected = [zero_for_null(r, case.sums) for r in con.execute(sql).fetchall()]
    got = [zero_for_null(r, case.sums) for r in case.tally(project)]
    assert len(got) == len(expected), f"{len(got)} rows from Tally, {len(expected)} from the official SQL"
    for number, (mine, theirs) in enumerate(zip(got, expected)):
        assert len(mine) == len(theirs) and all(map(same, mine, theirs)), f"row {number}: {mine} != {theirs}"


def test_zips_have_five_characters(tpcds):
    """q19 compares SUBSTRING(zip, 1, 5); Tally, having no substring, compares whole zips: equal only if so."""
    _, con = tpcds
    lengths = con.execute("SELECT DISTINCT length(ca_zip) FROM customer_address WHERE ca_zip IS NOT NULL "
                          "UNION SELECT DISTINCT length(s_zip) FROM store WHERE s_zip IS NOT NULL").fetchall()
    assert lengths == [(5,)]
