"""A DB-API cursor that fails to close never hides the error that ended the work: after Ctrl-C in a
MariaDB query, close() raises "Commands out of sync", and the user saw "the warehouse refused a
query" instead of the interrupt."""

from __future__ import annotations

import pytest

from tally.warehouse.rawsql import fetch_rows


class OutOfSync(Exception):
    pass


class Cursor:
    def __init__(self, fail):
        self.fail, self.closed = fail, False
        self.description = [("n",)]

    def execute(self, sql, values=None):
        if self.fail:
            raise self.fail

    def fetchall(self):
        return [(1,)]

    def close(self):
        self.closed = True
        if self.fail:
            raise OutOfSync("(2014, 'Commands out of sync; you can't run this command now')")


class Connection:
    def __init__(self, fail=None):
        self.cursors, self.fail = [], fail

    def cursor(self):
        self.cursors.append(Cursor(self.fail))
        return self.cursors[-1]


def test_an_interrupt_during_a_query_stays_an_interrupt():
    con = Connection(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fetch_rows(con, "postgres", "SELECT 1", {})
    assert con.cursors[0].closed


def test_a_query_that_works_closes_its_cursor_and_answers():
    con = Connection()
    assert fetch_rows(con, "postgres", "SELECT 1 AS n", {}) == (["n"], [(1,)])
    assert con.cursors[0].closed
