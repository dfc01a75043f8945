"""Rebuild allowlisted expression trees as Ibis values (in SQL) or Arrow arrays (after it)."""

from __future__ import annotations

import decimal
from typing import Callable

import ibis
import ibis.expr.datatypes as idt
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot.expressions as exp

from tally.errors import ExpressionError
from tally.project.expr import column_name

Resolve = Callable[[str], object]

_BINARY = {
    exp.Add: lambda a, b: a + b, exp.Sub: lambda a, b: a - b, exp.Mul: lambda a, b: a * b,
    exp.Mod: lambda a, b: a % b, exp.EQ: lambda a, b: a == b, exp.NEQ: lambda a, b: a != b,
    exp.GT: lambda a, b: a > b, exp.GTE: lambda a, b: a >= b, exp.LT: lambda a, b: a < b,
    exp.LTE: lambda a, b: a <= b, exp.And: lambda a, b: a & b, exp.Or: lambda a, b: a | b,
}


def _literal(node: exp.Literal):
    if node.is_string:
        return node.this
    text = node.this
    return int(text) if text.lstrip("-").isdigit() else decimal.Decimal(text)


def to_ibis(node: exp.Expression, resolve: Resolve):
    """An Ibis value for an allowlisted tree; `resolve` maps a name to an Ibis value."""
    rec = lambda child: to_ibis(child, resolve)  # noqa: E731
    if isinstance(node, exp.Column):
        return resolve(column_name(node))
    if isinstance(node, exp.Literal):
        value = _literal(node)
        return ibis.literal(float(value) if isinstance(value, decimal.Decimal) else value)
    if isinstance(node, exp.Boolean):
        return ibis.literal(node.this)
    if isinstance(node, exp.Null):
        return ibis.null()
    if isinstance(node, exp.Paren):
        return rec(node.this)
    if isinstance(node, exp.Neg):
        return -rec(node.this)
    if isinstance(node, exp.Not):
        return ~rec(node.this)
    if isinstance(node, exp.Div):
        return rec(node.this).cast("float64") / rec(node.expression).cast("float64").nullif(0)
    if type(node) in _BINARY:
        return _BINARY[type(node)](rec(node.this), rec(node.expression))
    if isinstance(node, exp.In):
        return rec(node.this).isin([rec(item) for item in node.expressions])
    if isinstance(node, exp.Between):
        return rec(node.this).between(rec(node.args["low"]), rec(node.args["high"]))
    if isinstance(node, exp.Is):
        if isinstance(node.expression, exp.Boolean):  # `x IS TRUE`: true only when x is, never null
            return rec(node.this).fill_null(not node.expression.this) == node.expression.this
        return rec(node.this).isnull()
    if isinstance(node, (exp.Like, exp.ILike)):
        value = rec(node.this)
        matched = value.ilike(rec(node.expression)) if isinstance(node, exp.ILike) else value.like(rec(node.expression))
        return ~matched if node.args.get("negate") else matched
    if isinstance(node, exp.Coalesce):
        return ibis.coalesce(rec(node.this), *[rec(e) for e in node.expressions])
    if isinstance(node, exp.Nullif):
        return rec(node.this).nullif(rec(node.expression))
    if isinstance(node, exp.Abs):
        return rec(node.this).abs()
    if isinstance(node, exp.Round):
        digits = node.args.get("decimals")
        return rec(node.this).round(int(_literal(digits)) if digits is not None else 0)
    if isinstance(node, exp.Lower):
        return rec(node.this).lower()
    if isinstance(node, exp.Upper):
        return rec(node.this).upper()
    if isinstance(node, exp.Trim):
        return rec(node.this).strip()
    if isinstance(node, exp.Length):
        return rec(node.this).length()
    if isinstance(node, (exp.Greatest, exp.Least)):
        values = [rec(node.this), *[rec(e) for e in node.expressions]]
        return ibis.greatest(*values) if isinstance(node, exp.Greatest) else ibis.least(*values)
    if isinstance(node, (exp.Case, exp.If)):
        return _case(node, rec)
    raise ExpressionError(f"{node.sql()!r} is not supported here")


def _case(node, rec):
    if isinstance(node, exp.If):
        branches = [(rec(node.this), rec(node.args["true"]))]
        default = node.args.get("false")
    else:
        subject = node.this
        branches = [((rec(subject) == rec(w.this)) if subject else rec(w.this), rec(w.args["true"]))
                    for w in node.args["ifs"]]
        default = node.args.get("default")
    return ibis.cases(*branches, else_=rec(default) if default is not None else None)


# -- after aggregation: derived metrics over Arrow columns -------------------

def _numeric_pair(a, b, *, to_float: bool):
    types = {getattr(x, "type", None) for x in (a, b)}
    if to_float or any(t is not None and pa.types.is_floating(t) for t in types):
        return pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
    decimals = [t for t in types if t is not None and pa.types.is_decimal(t)]
    if decimals:
        scale = max(t.scale for t in decimals)
        target = pa.decimal128(37, scale)  # the sum needs one more digit; 38 is the most Arrow holds
        return pc.cast(a, target), pc.cast(b, target)
    return a, b


def to_arrow(node: exp.Expression, resolve: Resolve, length: int):
    """Evaluate a formula over Arrow columns: + and - keep decimals, * and / give floats, x/0 is null."""
    rec = lambda child: to_arrow(child, resolve, length)  # noqa: E731
    if isinstance(node, exp.Column):
        return resolve(column_name(node))
    if isinstance(node, exp.Literal):
        value = _literal(node)
        return pa.array([float(value) if isinstance(value, decimal.Decimal) else value] * length)
    if isinstance(node, exp.Null):
        return pa.nulls(length, pa.float64())
    if isinstance(node, exp.Paren):
        return rec(node.this)
    if isinstance(node, exp.Neg):
        return pc.negate(rec(node.this))
    if isinstance(node, (exp.Add, exp.Sub)):
        a, b = _numeric_pair(rec(node.this), rec(node.expression), to_float=False)
        return pc.add(a, b) if isinstance(node, exp.Add) else pc.subtract(a, b)
    if isinstance(node, exp.Mul):
        return pc.multiply(*_numeric_pair(rec(node.this), rec(node.expression), to_float=True))
    if isinstance(node, exp.Div):
        a, b = _numeric_pair(rec(node.this), rec(node.expression), to_float=True)
        return pc.divide(a, pc.if_else(pc.equal(b, 0.0), pa.scalar(None, pa.float64()), b))
    if isinstance(node, exp.Coalesce):
        values = [rec(node.this), *[rec(e) for e in node.expressions]]
        result = values[0]
        for value in values[1:]:
            result = pc.coalesce(*_numeric_pair(result, value, to_float=False))
        return result
    if isinstance(node, exp.Abs):
        return pc.abs(rec(node.this))
    if isinstance(node, exp.Round):
        digits = node.args.get("decimals")
        return pc.round(rec(node.this), int(_literal(digits)) if digits is not None else 0)
    if isinstance(node, exp.Nullif):
        a, b = rec(node.this), rec(node.expression)
        return pc.if_else(pc.equal(a, b), pa.scalar(None, a.type), a)
    if isinstance(node, (exp.Greatest, exp.Least)):
        values = [rec(node.this), *[rec(e) for e in node.expressions]]
        fn = pc.max_element_wise if isinstance(node, exp.Greatest) else pc.min_element_wise
        return fn(*values)
    raise ExpressionError(f"{node.sql()!r} is not supported in a metric formula")


def arrow_type_of(dtype: idt.DataType) -> pa.DataType:
    return dtype.to_pyarrow()
