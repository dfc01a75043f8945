"""Differential test of row expressions: expressions generated from the allowlist's grammar are run
through Tally (parse, allowlist, Ibis) and as plain SQL text (sqlglot's rendering for the warehouse)
on the same random rows, and must give the same value on every row.

Where SQL itself differs between warehouses, the text side is written in that warehouse's terms
(`BETWEEN SYMMETRIC` as its two-sided OR on MySQL, which has no such syntax). `/` and `%` are left
out: Tally defines x / 0 and x % 0 as NULL, where PostgreSQL raises. An expression a warehouse's
own SQL refuses is skipped (Hypothesis `reject`).
"""

from __future__ import annotations

import math
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlglot
import sqlglot.expressions as exp
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import tally
from tally.engine.translate import to_ibis
from tally.errors import TallyError
from tally.project.expr import parse_row_expr

TABLE = "h1_differential"
SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])

INTS = ["i", "j"]
DECIMALS = ["d", "e"]
FLOATS = ["f"]
TEXTS = ["s"]


def _rows(n: int = 24) -> pa.Table:
    import random

    rnd = random.Random(13)
    maybe = lambda value: None if rnd.random() < 0.15 else value  # noqa: E731
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "i": pa.array([maybe(rnd.randint(-20, 20)) for _ in range(n)], pa.int32()),
        "j": pa.array([maybe(rnd.randint(-1000, 1000)) for _ in range(n)], pa.int64()),
        "d": pa.array([maybe(Decimal(rnd.randint(-99999, 99999)) / 100) for _ in range(n)], pa.decimal128(10, 2)),
        "e": pa.array([maybe(Decimal(rnd.randint(-999999, 999999)) / 1000) for _ in range(n)], pa.decimal128(12, 3)),
        "f": pa.array([maybe(rnd.randint(-5000, 5000) / 7) for _ in range(n)], pa.float64()),
        "s": pa.array([maybe(rnd.choice(["", "a", "pp", "paid", "  ship ", "xax", "Shipped", "aap"]))
                       for _ in range(n)], pa.string()),
    })


# -- the grammar ---------------------------------------------------------------

def _number_literal():
    return st.one_of(st.integers(-30, 30).map(str),
                     st.decimals(-100, 100, places=2, allow_nan=False).map(lambda d: str(d)))


def numbers(depth: int = 2):
    leaf = st.one_of(st.sampled_from(INTS + DECIMALS + FLOATS), _number_literal())
    if depth == 0:
        return leaf
    sub = numbers(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda x: f"abs({x})"),
        sub.map(lambda x: f"-({x})"),
        st.tuples(sub, sub).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
        st.tuples(sub, sub).map(lambda t: f"nullif({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(INTS + DECIMALS), st.integers(-1, 3)).map(lambda t: f"round({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(["greatest", "least"]), sub, sub).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(conditions(0), sub, sub).map(lambda t: f"case when {t[0]} then {t[1]} else {t[2]} end"),
        texts(0).map(lambda x: f"length({x})"),
    )


def texts(depth: int = 1):
    leaf = st.one_of(st.just("s"), st.sampled_from(["'a'", "'pp'", "''"]))
    if depth == 0:
        return leaf
    sub = texts(depth - 1)
    char = st.sampled_from(["a", "p", " ", "x"])
    return st.one_of(
        leaf,
        st.tuples(st.sampled_from(["trim", "ltrim", "rtrim"]), sub, char).map(lambda t: f"{t[0]}({t[1]}, '{t[2]}')"),
        st.tuples(st.sampled_from(["both", "leading", "trailing"]), char, sub).map(
            lambda t: f"trim({t[0]} '{t[1]}' from {t[2]})"),
        sub.map(lambda x: f"trim({x})"),
        sub.map(lambda x: f"lower({x})"),
        sub.map(lambda x: f"upper({x})"),
        st.tuples(sub, sub).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
    )


def conditions(depth: int = 1):
    num = numbers(0) if depth == 0 else numbers(1)
    leaf = st.one_of(
        st.tuples(num, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), num).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(texts(1), st.sampled_from(["=", "<>"]), texts(1)).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(num, st.sampled_from(["", "not "]), st.sampled_from(["", "symmetric "]), num, num).map(
            lambda t: f"{t[0]} {t[1]}between {t[2]}{t[3]} and {t[4]}"),
        st.tuples(st.sampled_from(INTS + DECIMALS + FLOATS + TEXTS), st.sampled_from(["", "not "])).map(
            lambda t: f"{t[0]} is {t[1]}null"),
        st.tuples(st.sampled_from(INTS), st.lists(st.integers(-20, 20), min_size=1, max_size=3)).map(
            lambda t: f"{t[0]} in ({', '.join(map(str, t[1]))})"),
        st.tuples(texts(1), st.sampled_from(["", "not "]), st.sampled_from(["'a%'", "'%p%'", "'_'"])).map(
            lambda t: f"{t[0]} {t[1]}like {t[2]}"),
    )
    if depth == 0:
        return leaf
    sub = conditions(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        sub.map(lambda x: f"not ({x})"),
        st.tuples(sub, st.sampled_from(["true", "false"]), st.sampled_from(["", "not "])).map(
            lambda t: f"({t[0]}) is {t[2]}{t[1]}"),
    )


expressions = st.one_of(numbers(), texts(), conditions())


# -- running it both ways --------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory, session_warehouse_url):
    folder = tmp_path_factory.mktemp("differential")
    (folder / "tally.yml").write_text(f"name: diff\nwarehouse: \"{session_warehouse_url}\"\n")
    project = tally.Project.load(folder)
    project.warehouse.write_table(TABLE, _rows())
    yield project
    project.close()


def _mysql_text(tree: exp.Expression) -> exp.Expression:
    """The same SQL meaning in MySQL's terms: BETWEEN SYMMETRIC written out."""
    def rewrite(node):
        if isinstance(node, exp.Between) and node.args.get("symmetric"):
            low, high = node.args["low"], node.args["high"]
            one = exp.Between(this=node.this.copy(), low=low.copy(), high=high.copy())
            two = exp.Between(this=node.this.copy(), low=high.copy(), high=low.copy())
            return exp.Paren(this=exp.Or(this=one, expression=two))
        if isinstance(node, (exp.Greatest, exp.Least)) and len(node.expressions) == 1:
            # SQL's greatest/least skip NULLs (PostgreSQL, DuckDB); MySQL's answer NULL: say it plainly
            a, b = node.this, node.expressions[0]
            both = type(node)(this=a.copy(), expressions=[b.copy()])
            return exp.Case(ifs=[exp.If(this=exp.Is(this=a.copy(), expression=exp.Null()), true=b.copy()),
                                 exp.If(this=exp.Is(this=b.copy(), expression=exp.Null()), true=a.copy())],
                            default=both)
        return node
    return tree.transform(rewrite)


def _by_sql(project, text: str) -> list:
    warehouse = project.warehouse
    dialect = warehouse.backend.dialect
    tree = sqlglot.parse_one(text, read="duckdb")
    if warehouse.dialect.name == "mysql":
        tree = _mysql_text(tree)
    sql = f"SELECT id, {tree.sql(dialect=dialect)} AS v FROM {exp.to_identifier(TABLE).sql(dialect)} ORDER BY id"
    con = warehouse.backend.con
    cursor = con.cursor()
    try:
        if warehouse.dialect.name == "mysql":   # text compares case-sensitively, as in Tally's tables
            cursor.execute("SET NAMES utf8mb4 COLLATE utf8mb4_bin")
        cursor.execute(sql)
        return [row[1] for row in cursor.fetchall()]
    except Exception:
        if warehouse.dialect.name != "duckdb":
            con.rollback()
        reject()
    finally:
        cursor.close()
        if warehouse.dialect.name == "mysql":
            con.commit()


def _by_tally(project, text: str) -> list:
    table = project.warehouse.table(TABLE)
    value = to_ibis(parse_row_expr(text).tree, lambda name: table[name])
    query = project.warehouse.compile(table.select(table.id, v=value).order_by("id"))
    return project.warehouse.run(query).column("v").to_pylist()


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return Decimal(a) == Decimal(b)


@SETTINGS
@given(text=expressions)
def test_tally_means_what_sql_means(project, text):
    try:
        parse_row_expr(text)
    except TallyError:
        reject()   # not every generated text is allowed (a grammar wider than the allowlist is fine)
    expected = _by_sql(project, text)
    got = _by_tally(project, text)
    assert len(got) == len(expected)
    wrong = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected)) if not _equal(g, e)]
    assert not wrong, (text, wrong[:3])
