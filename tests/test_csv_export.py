"""CSV output escapes text a spreadsheet would run as a formula (issue 14), and nothing else."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pyarrow as pa
import pytest

from tally.delivery.tabular import to_csv


def _cells(table: pa.Table) -> list[list[str]]:
    return list(csv.reader(io.StringIO(to_csv(table))))


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3+cmd|x",
                                  "@SUM(A1:A2)", "\tleading tab", "=1+1"])
def test_formula_looking_text_gets_a_leading_quote(text):
    assert _cells(pa.table({"shop": [text]}))[1] == ["'" + text]


@pytest.mark.parametrize("text", ["-5", "+3.5", "-0.25", "shop=A", "a-b", "", "Ünïcode", "1e5"])
def test_plain_text_and_numbers_written_as_text_stay_as_they_are(text):
    assert _cells(pa.table({"shop": [text]}))[1] == [text]


def test_numbers_dates_and_nulls_are_not_escaped():
    table = pa.table({"n": [-5], "d": pa.array([Decimal("-1234567890123456.78")], pa.decimal128(18, 2)),
                      "f": [-0.5], "day": [dt.date(2026, 1, 2)], "none": pa.array([None], pa.string())})
    assert _cells(table)[1] == ["-5", "-1234567890123456.78", "-0.5", "2026-01-02", ""]


def test_a_header_that_looks_like_a_formula_is_escaped_too():
    assert _cells(pa.table({"=x": [1]}))[0] == ["'=x"]


def test_a_field_with_a_carriage_return_is_quoted():
    """Once: Python's writer, ending rows in \\n, left a bare \\r unquoted and a reader split the row."""
    import csv
    import io

    import pyarrow as pa

    from tally.delivery.tabular import to_csv

    text = to_csv(pa.table({"note": ["a\rb", "c\nd", "plain"], "n": [1, 2, 3]}))
    assert text.endswith("plain,3\n") and "\r\n" not in text.replace('"a\rb"', "")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["note", "n"], ["a\rb", "1"], ["c\nd", "2"],
                                                                ["plain", "3"]]
