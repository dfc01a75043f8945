"""Helpers of the rollup tests: ecommerce projects built on a warehouse, stored rows, late changes."""

from __future__ import annotations

import datetime as dt
import math
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

import tally.rollups
from tally import Project
from tally.demo import prepare

UTC = dt.timezone.utc
ROWS = 3000
SEED = 11
ROLLUPS = ["shop_reports", "listing_reports", "product_reports"]
DIMENSION = {"shop_reports": "shop", "listing_reports": "listing", "product_reports": "sku"}
GRAINS = ["day", "week", "month", "quarter", "year"]


def open_project(directory: Path, url: str | None = None, *, routed: bool = False) -> Project:
    """The project; `routed=False` answers every query live (never from a stored rollup)."""
    project = Project.load(directory, warehouse=url)
    project.use_rollups = routed  # read when the engine is first built
    return project


@contextmanager
def opened(directory: Path, url: str | None = None, *, routed: bool = False):
    project = open_project(directory, url, routed=routed)
    try:
        yield project
    finally:
        project.close()


def make_shop(directory: Path, url: str | None, rows: int = ROWS, seed: int = SEED, build: bool = True) -> Path:
    """A fresh ecommerce project in `directory` on `url`, fully built unless told otherwise."""
    project, _ = prepare("ecommerce", directory, rows, seed=seed, warehouse=url)
    project.close()
    if build:
        with opened(directory, url) as project:
            results = tally.rollups.build(project)
            assert [r.mode for r in results] == ["full"] * len(ROLLUPS)
    return directory


def sort_key(row: dict, keys: list[str]):
    return tuple((value is None, value if value is not None else 0) for value in (row[k] for k in keys))


def stored_table(project: Project, name: str, *, grain: str | None = None, built_at: bool = False) -> pa.Table:
    """A rollup table, sorted by grain, period and dimension (built_at dropped unless asked)."""
    warehouse = project.warehouse
    warehouse.forget(name)
    table = warehouse.table(name)
    if grain is not None:
        table = table.filter(table.grain == grain)
    if not built_at:
        table = table.drop("built_at")
    table = table.order_by(["grain", "period_start", DIMENSION.get(name, "shop")])
    return warehouse.run(warehouse.compile(table))


def stored(project: Project, name: str, *, grain: str | None = None, built_at: bool = False) -> list[dict]:
    return stored_table(project, name, grain=grain, built_at=built_at).to_pylist()


def all_stored(project: Project, built_at: bool = False) -> dict[str, pa.Table]:
    return {name: stored_table(project, name, built_at=built_at) for name in ROLLUPS}


def same_value(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(str(a)).quantize(Decimal("0.01")) == Decimal(str(b)).quantize(Decimal("0.01"))
    return a == b


def assert_same_rows(actual, wanted, what: str = "") -> None:
    """Rows (lists of dicts or Arrow tables) equal cell by cell (money to the cent, ratios to 1e-9)."""
    if isinstance(actual, pa.Table) and isinstance(wanted, pa.Table):
        if actual.equals(wanted):
            return
        actual, wanted = actual.to_pylist(), wanted.to_pylist()
    assert len(actual) == len(wanted), f"{what}: {len(actual)} rows, wanted {len(wanted)}"
    problems = []
    for a, b in zip(actual, wanted):
        assert a.keys() == b.keys(), what
        bad = {k: (a[k], b[k]) for k in a if not same_value(a[k], b[k])}
        if bad:
            problems.append((a.get("grain"), a.get("period_start"), bad))
    assert not problems, f"{what}: {len(problems)} rows differ, first: {problems[:5]}"


def assert_same_tables(actual: dict, wanted: dict) -> None:
    assert actual.keys() == wanted.keys()
    for name in wanted:
        assert_same_rows(actual[name], wanted[name], name)


def mismatches(report: dict) -> dict[str, list]:
    return {name: found for name, found in report.items() if found}


def to_db(project: Project, value: dt.datetime):
    """A timestamp as the warehouse's driver wants it (MySQL: naive UTC)."""
    if project.warehouse.dialect.naive_params:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def from_db(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def execute(project: Project, sql: str, params=()) -> list[tuple]:
    """Run one statement through the project's warehouse (as the shop's own app would); `?` markers."""
    warehouse = project.warehouse
    if warehouse.dialect.name != "duckdb":
        sql = sql.replace("?", "%s")
    with warehouse.transaction() as tx:
        cursor = tx.execute(sql, [to_db(project, p) if isinstance(p, dt.datetime) else p for p in params])
        rows = cursor.fetchall() if cursor.description else []
    return [tuple(from_db(v) if isinstance(v, dt.datetime) else v for v in row) for row in rows]


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


class Clock:
    """Change times after everything in the data (the generator stops at 2026-11-01), always increasing."""

    def __init__(self, start: dt.datetime | None = None):
        self.value = max(start or utc(2026, 11, 1), dt.datetime.now(UTC))

    def __call__(self) -> dt.datetime:
        self.value = max(self.value + dt.timedelta(seconds=1), dt.datetime.now(UTC).replace(microsecond=0))
        return self.value


ORDER_COLUMNS = ["order_id", "line_no", "shop_id", "listing_id", "sku", "customer_id", "status", "quantity",
                 "unit_price", "discount", "ordered_at", "updated_at"]


def order_lines(project: Project, where: str = "1 = 1", params=(), limit: int = 5) -> list[dict]:
    rows = execute(project, f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE {where} "
                            f"ORDER BY order_id, line_no LIMIT {int(limit)}", params)
    return [dict(zip(ORDER_COLUMNS, row)) for row in rows]


def insert_line(project: Project, line: dict) -> None:
    execute(project, f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' * len(ORDER_COLUMNS))})",
            [line[c] for c in ORDER_COLUMNS])


def next_id(project: Project, table: str, column: str) -> int:
    return int(execute(project, f"SELECT MAX({column}) FROM {table}")[0][0]) + 1


def insert_refund(project: Project, line: dict, amount: Decimal, refunded_at: dt.datetime,
                  updated_at: dt.datetime) -> int:
    refund_id = next_id(project, "order_refunds", "refund_id")
    execute(project, "INSERT INTO order_refunds (refund_id, order_id, line_no, amount, refunded_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
            [refund_id, line["order_id"], line["line_no"], amount, refunded_at, updated_at])
    return refund_id


def in_month(month: dt.date) -> tuple[str, list]:
    """A WHERE clause for order lines ordered in a (UTC) month, not cancelled."""
    end = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return ("ordered_at >= ? AND ordered_at < ? AND status <> 'cancelled'",
            [utc(month.year, month.month, 2), utc(end.year, end.month, 1)])


def change_storm(project: Project, clock: Clock) -> dict:
    """The changes a live shop database sees after a build: late rows dated in old months, refunds
    paid back weeks after their order, cancellations, deletions (orphaning refunds), a line moved to
    another shop. Every change stamps `updated_at` with the current time, as the app would."""
    done = {}
    # late orders: copies of old lines under new ids, dated in several old months, some on local
    # day / week / year boundaries (Istanbul is UTC+3)
    new_order = next_id(project, "orders", "order_id")
    templates = order_lines(project, *in_month(dt.date(2025, 2, 1)), limit=6)
    late_times = [utc(2025, 1, 15, 10), utc(2025, 5, 31, 21, 30), utc(2025, 12, 31, 22, 15),
                  utc(2026, 3, 10, 12), utc(2024, 12, 29, 20, 59), utc(2025, 9, 30, 21, 0)]
    late = []
    for i, (line, when) in enumerate(zip(templates, late_times)):
        copy = dict(line, order_id=new_order + i, line_no=1, ordered_at=when, updated_at=clock(), status="paid")
        if i == 3:
            copy["shop_id"] = 21  # a shop the rollup has never seen
        insert_line(project, copy)
        late.append(copy)
    done["late"] = late
    # backdated refunds: paid back 3-6 weeks after orders of old months (so in a later month)
    refunded = []
    for month, days in ((dt.date(2025, 3, 1), 25), (dt.date(2025, 8, 1), 40), (dt.date(2025, 11, 1), 33)):
        where, params = in_month(month)
        for line in order_lines(project, where + " AND NOT EXISTS (SELECT 1 FROM order_refunds r WHERE "
                                         "r.order_id = orders.order_id AND r.line_no = orders.line_no)",
                                params, limit=2):
            amount = (line["unit_price"] * line["quantity"] - line["discount"]) / 2
            insert_refund(project, line, Decimal(amount).quantize(Decimal("0.01")),
                          line["ordered_at"] + dt.timedelta(days=days), clock())
            refunded.append(line)
    insert_refund(project, late[0], Decimal("5.00"), late[0]["ordered_at"] + dt.timedelta(days=20), clock())
    done["refunded"] = refunded
    # cancellations of old orders
    where, params = in_month(dt.date(2025, 4, 1))
    cancel = sorted({line["order_id"] for line in order_lines(project, where, params, limit=8)})
    for order_id in cancel:
        execute(project, "UPDATE orders SET status = 'cancelled', updated_at = ? WHERE order_id = ?",
                [clock(), order_id])
    done["cancelled"] = cancel
    # deletions: orders with refunds (left orphaned) and without
    where, params = in_month(dt.date(2025, 7, 1))
    with_refund = [row[0] for row in execute(
        project, f"SELECT DISTINCT o.order_id FROM orders o JOIN order_refunds r ON r.order_id = o.order_id "
                 f"WHERE o.{where.replace(' AND ', ' AND o.')} ORDER BY 1 LIMIT 2", params)]
    plain = sorted({line["order_id"] for line in order_lines(project, where, params, limit=3)})
    deleted = sorted(set(with_refund) | set(plain))
    assert with_refund, "the data should hold a refunded order in July 2025"
    for order_id in deleted:
        execute(project, "DELETE FROM orders WHERE order_id = ?", [order_id])
    done["deleted"] = deleted
    # a refunded line moves to another shop: its refund (dated in a later period) moves with it
    moved = execute(project, "SELECT o.order_id, o.shop_id FROM orders o JOIN order_refunds r "
                             "ON r.order_id = o.order_id AND r.line_no = o.line_no "
                             "WHERE o.ordered_at >= ? AND o.ordered_at < ? ORDER BY 1 LIMIT 1",
                    [utc(2025, 10, 1), utc(2025, 11, 1)])
    order_id, shop_id = moved[0]
    execute(project, "UPDATE orders SET shop_id = ?, updated_at = ? WHERE order_id = ?",
            [shop_id % 20 + 1, clock(), order_id])
    done["moved"] = order_id
    return done


def edit_config(directory: Path, old: str, new: str) -> None:
    path = directory / "tally.yml"
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
