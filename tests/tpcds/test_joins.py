"""Joins through joins, two paths to one model, and `--where` comparing two dimensions, against plain SQL.

Tally runs on each warehouse; the plain SQL (left joins, as Tally's joins are) runs in DuckDB on the same data."""

from __future__ import annotations

from decimal import Decimal

import pytest

# store_sales -> customer -> customer_address (current), and store_sales -> customer_address (billed)
FROM = ("FROM store_sales ss LEFT JOIN customer c ON ss.ss_customer_sk = c.c_customer_sk "
        "LEFT JOIN customer_address cur ON c.c_current_addr_sk = cur.ca_address_sk "
        "LEFT JOIN customer_address ca ON ss.ss_addr_sk = ca.ca_address_sk "
        "LEFT JOIN store s ON ss.ss_store_sk = s.s_store_sk")

CASES = {
    # a join through a join: `cur` joins on `c.c_current_addr_sk`
    "through": (["current_city"], None, "cur.ca_city", "TRUE"),
    # two paths to customer_address in one breakdown
    "two_paths": (["current_city", "bought_city"], None, "cur.ca_city, ca.ca_city", "TRUE"),
    # --where comparing two dimensions, each through its own path (NULL <> x is not true: row left out)
    "compare_paths": (["current_state"], "current_city <> bought_city", "cur.ca_state",
                      "cur.ca_city <> ca.ca_city"),
    "equal_paths": (["bought_state"], "current_state = bought_state", "ca.ca_state", "cur.ca_state = ca.ca_state"),
    # two dimensions of different joins and the fact itself
    "cross_models": (["current_state"], "current_zip <> s_zip and ss_list_price > ss_sales_price", "cur.ca_state",
                     "cur.ca_zip <> s.s_zip AND ss.ss_list_price > ss.ss_sales_price"),
}


@pytest.mark.parametrize("name", CASES)
def test_join_paths_match_plain_sql(tpcds, name):
    project, con = tpcds
    by, where, groups, condition = CASES[name]
    table = project.query(["sales", "ext_sales_price"], by=by, where=where)
    got = sorted((tuple(r[d] for d in by) + (r["sales"], r["ext_sales_price"]) for r in table.to_pylist()), key=repr)
    sql = (f"SELECT {groups}, count(*), coalesce(sum(ss.ss_ext_sales_price), 0) {FROM} "
           f"WHERE {condition} GROUP BY {groups}")
    expected = sorted((tuple(r) for r in con.execute(sql).fetchall()), key=repr)
    assert len(expected) > 1   # the data gives the breakdown something to separate
    assert [(*r[:-1], Decimal(r[-1])) for r in got] == [(*r[:-1], Decimal(r[-1])) for r in expected]
