"""Every measure kind over every numeric column type, on every time column type and warehouse, equal
to a plain Python computation of the same rows; a text time column is refused with one line."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

import tally
from tally.errors import ConfigError

UTC = dt.timezone.utc
DAYS = [dt.date(2026, 3, 1), dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 4), dt.date(2026, 3, 4)]
VALUES = {  # column -> (arrow type, values)
    "i16": (pa.int16(), [3, -7, None, 12, 3]),
    "i32": (pa.int32(), [100000, 3, -2, None, 100000]),
    "i64": (pa.int64(), [2**40, -5, 7, 7, None]),
    "d2": (pa.decimal128(12, 2), [Decimal("10.25"), None, Decimal("-3.10"), Decimal("0.01"), Decimal("10.25")]),
    "d4": (pa.decimal128(18, 4), [Decimal("1.0001"), Decimal("99999.9999"), None, Decimal("-0.5"), Decimal("2")]),
    "d0": (pa.decimal128(20, 0), [Decimal("12345678901234567"), Decimal("1"), Decimal("1"), None, Decimal("-9")]),
    "f": (pa.float64(), [1.5, None, -0.25, 1e10, 1.5]),
}
KINDS = ["sum", "count", "count_distinct", "avg", "min", "max"]
TIME_TYPES = {"date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}


def _reference(kind: str, values: list):
    present = [v for v in values if v is not None]
    if kind == "count":
        return len(present)
    if kind == "count_distinct":
        return len(set(present))
    if not present:
        return 0 if kind == "sum" else None
    if kind == "sum":
        return sum(present)
    if kind == "avg":
        return float(sum(Decimal(str(v)) for v in present) / len(present))
    return min(present) if kind == "min" else max(present)


def _times(time_type):
    if pa.types.is_date(time_type):
        return DAYS
    return [dt.datetime.combine(d, dt.time(9, 30), tzinfo=UTC if time_type.tz else None) for d in DAYS]


def _project(tmp_path, url, time_name: str):
    table = f"h1_matrix_{time_name}"
    measures = "\n".join(f"      {kind}_{col}: {{{kind}: {col}}}" for col in VALUES for kind in KINDS)
    (tmp_path / "tally.yml").write_text(f"name: matrix\ntimezone: Europe/Berlin\nwarehouse: \"{url}\"\n"
                                        f"models:\n  m:\n    table: {table}\n    time: t\n    measures:\n{measures}\n")
    project = tally.Project.load(tmp_path)
    time_type = TIME_TYPES.get(time_name, pa.string())
    times = _times(time_type) if time_name in TIME_TYPES else [d.isoformat() for d in DAYS]
    data = {"t": pa.array(times, time_type)}
    data.update({col: pa.array(values, dtype) for col, (dtype, values) in VALUES.items()})
    project.warehouse.write_table(table, pa.table(data))
    return project


def _same(got, expected, kind):
    if expected is None:
        return got is None
    if kind == "avg" or isinstance(expected, float):
        return got == pytest.approx(float(expected), rel=1e-12)
    return got == expected and not isinstance(got, float)


@pytest.mark.parametrize("time_name", list(TIME_TYPES))
def test_every_measure_kind_and_column_type(tmp_path, session_warehouse_url, time_name):
    project = _project(tmp_path, session_warehouse_url, time_name)
    names = [f"{kind}_{col}" for col in VALUES for kind in KINDS]
    try:
        total = project.query(names).to_pylist()[0]
        daily = project.query(names, grain="day", start="2026-03-01", end="2026-03-05").to_pylist()
    finally:
        project.close()
    wrong = [(n, total[n]) for n in names
             if not _same(total[n], _reference(n.split("_", 1)[0] if not n.startswith("count_distinct")
                                               else "count_distinct", VALUES[n.rsplit("_", 1)[1]][1]),
                          n.split("_")[0])]
    assert not wrong
    for row in daily:
        picked = [i for i, d in enumerate(DAYS) if d == row["period"]]
        for name in names:
            kind = "count_distinct" if name.startswith("count_distinct") else name.split("_", 1)[0]
            col = name.rsplit("_", 1)[1]
            expected = _reference(kind, [VALUES[col][1][i] for i in picked])
            if not picked and kind not in ("sum", "count", "count_distinct"):
                expected = None
            if kind == "sum" and col == "f" and expected == 0:
                expected = 0.0   # an empty day's float sum is a float zero
            assert _same(row[name], expected, kind), (row["period"], name, row[name], expected)


def test_text_time_column_refused(tmp_path, session_warehouse_url):
    project = _project(tmp_path, session_warehouse_url, "text")
    try:
        with pytest.raises(ConfigError, match=r"model 'm': time column 't' is text; a time column must be DATE"):
            project.query(["sum_i16"])
    finally:
        project.close()
