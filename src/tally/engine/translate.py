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
from tally.project.expr import chain, column_name, literal_int

Resolve = Callable[[str], object]

_COMPARE = {
    exp.EQ: lambda a, b: a == b, exp.NEQ: lambda a, b: a != b, exp.GT: lambda a, b: a > b,
    exp.GTE: lambda a, b: a >= b, exp.LT: lambda a, b: a < b, exp.LTE: lambda a, b: a <= b,
    exp.And: lambda a, b: a & b, exp.Or: lambda a, b: a | b,
}
_ARITH = {exp.Add: lambda a, b: a + b, exp.Sub: lambda a, b: a - b, exp.Mul: lambda a, b: a * b,
          exp.Mod: lambda a, b: a % b}
MAX_PRECISION = 38          # the widest decimal Arrow (and so every answer) holds
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}


@ibis.udf.scalar.builtin
def ltrim(value: str, chars: str) -> str:
    """LTRIM(value, chars); sqlglot writes TRIM(LEADING chars FROM value) where that is the syntax."""


@ibis.udf.scalar.builtin
def rtrim(value: str, chars: str) -> str:
    """RTRIM(value, chars); sqlglot writes TRIM(TRAILING chars FROM value) where that is the syntax."""


def _literal(node: exp.Literal):
    """A literal's Python value: text, int, exact Decimal (`1.50`), or float (`1e3`)."""
    if node.is_string:
        return node.this
    text = node.this
    if text.lstrip("-").isdigit():
        return int(text)
    if "e" in text.lower():
        return float(text)
    return decimal.Decimal(text)


def decimal_type(value: decimal.Decimal) -> tuple[int, int]:
    """(precision, scale) of an exact literal: `1.50` is (3, 2)."""
    sign, digits, exponent = value.as_tuple()
    scale = max(-exponent, 0)
    return max(len(digits), scale, 1) + max(exponent, 0), scale


def _ibis_literal(value):
    if isinstance(value, bool) or isinstance(value, str):
        return ibis.literal(value)
    if isinstance(value, int):
        if -2**63 <= value < 2**63:
            return ibis.literal(value, "int64")
        value = decimal.Decimal(value)
    if isinstance(value, float):
        return ibis.literal(value, "float64")
    precision, scale = decimal_type(value)
    return ibis.literal(value, idt.Decimal(min(precision, MAX_PRECISION), scale))


def numeric_kind(dtype) -> str | None:
    """'int', 'decimal' or 'float' for an Ibis numeric type, None for anything else."""
    if dtype.is_integer():
        return "int"
    if dtype.is_decimal():
        return "decimal" if dtype.scale is not None else "float"   # unknown scale: no exact type to keep
    if dtype.is_floating():
        return "float"
    return None


def _digits(dtype) -> tuple[int, int]:
    """(digits before the point, scale) an integer or decimal type holds."""
    if dtype.is_integer():
        return _INT_DIGITS.get(dtype.nbytes * 8, 19), 0
    precision = dtype.precision if dtype.precision is not None else MAX_PRECISION
    return precision - dtype.scale, dtype.scale


def result_type(op: type, left, right) -> idt.DataType:
    """The type of `left op right` (Ibis types): see "Arithmetic and types" in docs/configuration.md."""
    kinds = {numeric_kind(left), numeric_kind(right)}
    if op is exp.Div or "float" in kinds or None in kinds:
        return idt.float64
    if kinds == {"int"}:
        return idt.int64
    (ia, sa), (ib, sb) = _digits(left), _digits(right)
    if op is exp.Mul:
        scale = min(sa + sb, MAX_PRECISION)
        whole = ia + ib
    else:
        scale = max(sa, sb)
        whole = max(ia, ib) + (op is not exp.Mod)
    return idt.Decimal(min(whole + scale, MAX_PRECISION), scale)


def _arith(op: type, a, b):
    """`a op b` typed by `result_type`, not by the warehouse: every warehouse returns the same type."""
    target = result_type(op, a.type(), b.type())
    if op is exp.Div:
        return a.cast("float64") / b.cast("float64").nullif(0)
    if op is exp.Mod:
        b = b.nullif(0)     # x % 0 is NULL everywhere (PostgreSQL would raise)
    if target.is_floating():
        a, b = a.cast("float64"), b.cast("float64")
    elif target.is_integer():
        a, b = a.cast("int64"), b.cast("int64")
    elif op is not exp.Mul:
        a, b = a.cast(target), b.cast(target)     # Ibis refuses to add two different decimal types
    else:
        return _product(a, b, target)
    return _ARITH[op](a, b).cast(target)


def _product(a, b, target: idt.DataType):
    """`a * b` of decimals, exact, as `target`.

    Ibis multiplies only equal decimal types, and DuckDB multiplies two 18-digit decimals in 64 bits
    (an overflow error past 18 digits), while two 38-digit ones take ~100x longer. So operands small
    enough that their product fits 18 digits (every price and quantity) take the 64-bit path, and
    only the others the 38-digit one."""
    places = max(_digits(a.type())[1], _digits(b.type())[1])
    wide = idt.Decimal(MAX_PRECISION, places)
    slow = (a.cast(wide) * b.cast(wide)).cast(target)
    whole = 9 - places    # |a|, |b| < 10^whole: the product's unscaled value is below 10^18
    if whole < 1:
        return slow
    narrow = idt.Decimal(18, places)
    fast = (a.cast(narrow) * b.cast(narrow)).cast(target)
    return ibis.ifelse((a.abs() < 10 ** whole) & (b.abs() < 10 ** whole), fast, slow)


def common_type(values) -> idt.DataType | None:
    """The one numeric type that holds every value (a float if any is), None if some are not numbers."""
    types = [v.type() for v in values if not v.type().is_null()]
    kinds = {numeric_kind(t) for t in types}
    if not types or None in kinds:
        return None
    if "float" in kinds:
        return idt.float64
    if kinds == {"int"}:
        return idt.int64
    whole = max(_digits(t)[0] for t in types)
    scale = max(_digits(t)[1] for t in types)
    return idt.Decimal(min(whole + scale, MAX_PRECISION), scale)


def _unified(values: list) -> list:
    target = common_type(values)
    return values if target is None else [v.cast(target) for v in values]


def _round(node: exp.Round, value):
    digits = node.args.get("decimals")
    places = literal_int(digits) if digits is not None else 0
    kind = numeric_kind(value.type())
    if kind == "int":
        return value.cast("int64") if places >= 0 else value.round(places).cast("int64")
    if kind == "decimal":
        whole, scale = _digits(value.type())
        kept = min(scale, max(places, 0))
        return value.round(places).cast(idt.Decimal(min(whole + kept + 1, MAX_PRECISION), kept))
    return value.cast("float64").round(places).cast("float64")


def _trim(node: exp.Trim, value):
    """trim / ltrim / rtrim, of spaces (SQL's default, not all whitespace) or of the one character given."""
    chars = node.expression.this if node.expression is not None else " "
    position = (node.args.get("position") or "BOTH").upper()
    if position in ("BOTH", "LEADING"):
        value = ltrim(value, chars)
    if position in ("BOTH", "TRAILING"):
        value = rtrim(value, chars)
    return value


def truth(value):
    """A true/false value; a 0/1 integer (MySQL's BOOL is a TINYINT) is true when it is not 0."""
    return value != 0 if value.type().is_integer() else value


def to_condition(node: exp.Expression, resolve: Resolve):
    """An Ibis true/false value for a filter's tree (`--where`, a measure's `where`)."""
    return truth(to_ibis(node, resolve))


def to_ibis(node: exp.Expression, resolve: Resolve):
    """An Ibis value for an allowlisted tree; `resolve` maps a name to an Ibis value.

    (Long: one branch per allowlisted node kind; split up, the allowlist would be harder to read whole.)"""
    rec = lambda child: to_ibis(child, resolve)  # noqa: E731
    if isinstance(node, exp.Column):
        return resolve(column_name(node))
    if isinstance(node, exp.Literal):
        return _ibis_literal(_literal(node))
    if isinstance(node, exp.Boolean):
        return ibis.literal(node.this)
    if isinstance(node, exp.Null):
        return ibis.null()
    if isinstance(node, exp.Paren):
        return rec(node.this)
    if isinstance(node, exp.Neg):
        return -rec(node.this)
    if isinstance(node, exp.Not):
        return ~truth(rec(node.this))
    if type(node) in _ARITH or isinstance(node, exp.Div):
        return _arith(type(node), rec(node.this), rec(node.expression))
    if isinstance(node, (exp.And, exp.Or)):
        return _balanced(_COMPARE[type(node)], [truth(rec(operand)) for operand in chain(node)])
    if type(node) in _COMPARE:
        left, right = rec(node.this), rec(node.expression)
        if left.type().is_boolean() or right.type().is_boolean():   # a 0/1 flag compared with true/false
            left, right = truth(left), truth(right)
        return _COMPARE[type(node)](left, right)
    if isinstance(node, exp.In):
        return rec(node.this).isin([rec(item) for item in node.expressions])
    if isinstance(node, exp.Between):
        value, low, high = rec(node.this), rec(node.args["low"]), rec(node.args["high"])
        if node.args.get("symmetric"):   # SQL: (x BETWEEN a AND b) OR (x BETWEEN b AND a)
            return value.between(low, high) | value.between(high, low)
        return value.between(low, high)
    if isinstance(node, exp.Is):
        if isinstance(node.expression, exp.Boolean):  # `x IS TRUE`: true only when x is, never null
            return truth(rec(node.this)).fill_null(not node.expression.this) == node.expression.this
        if isinstance(node.expression, exp.Null):
            return rec(node.this).isnull()
        raise ExpressionError(f"{node.sql()!r}: `IS` takes NULL, TRUE or FALSE")
    if isinstance(node, (exp.Like, exp.ILike)):
        value = rec(node.this)
        matched = value.ilike(rec(node.expression)) if isinstance(node, exp.ILike) else value.like(rec(node.expression))
        return ~matched if node.args.get("negate") else matched
    if isinstance(node, exp.Coalesce):
        return ibis.coalesce(*_unified([rec(node.this), *[rec(e) for e in node.expressions]]))
    if isinstance(node, exp.Nullif):
        value, other = _unified([rec(node.this), rec(node.expression)])
        return value.nullif(other)
    if isinstance(node, exp.Abs):
        return rec(node.this).abs()
    if isinstance(node, exp.Round):
        return _round(node, rec(node.this))
    if isinstance(node, exp.Lower):
        return rec(node.this).lower()
    if isinstance(node, exp.Upper):
        return rec(node.this).upper()
    if isinstance(node, exp.Trim):
        return _trim(node, rec(node.this))
    if isinstance(node, exp.Length):
        return rec(node.this).length()
    if isinstance(node, (exp.Greatest, exp.Least)):
        values = _unified([rec(node.this), *[rec(e) for e in node.expressions]])
        # NULLs are skipped, as in PostgreSQL and DuckDB (MySQL would answer NULL): each argument
        # falls back to the others, so a NULL one never wins and all NULL gives NULL
        values = [ibis.coalesce(v, *[o for j, o in enumerate(values) if j != i]) if len(values) > 1 else v
                  for i, v in enumerate(values)]
        return ibis.greatest(*values) if isinstance(node, exp.Greatest) else ibis.least(*values)
    if isinstance(node, (exp.Case, exp.If)):
        return _case(node, rec)
    raise ExpressionError(f"{node.sql()!r} is not supported here")


def _balanced(combine, values: list):
    """`a op b op c ...` as a balanced tree: log2(n) levels deep for Ibis and SQL generation, not n."""
    while len(values) > 1:
        pairs = [combine(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]


def _case(node, rec):
    if isinstance(node, exp.If):
        conditions = [truth(rec(node.this))]
        results = [rec(node.args["true"])]
        default = node.args.get("false")
    else:
        subject = node.this
        conditions = [(rec(subject) == rec(w.this)) if subject else truth(rec(w.this)) for w in node.args["ifs"]]
        results = [rec(w.args["true"]) for w in node.args["ifs"]]
        default = node.args.get("default")
    values = _unified(results + ([rec(default)] if default is not None else []))
    branches = list(zip(conditions, values[:len(results)]))
    return ibis.cases(*branches, else_=values[-1] if default is not None else None)


# -- after aggregation: derived metrics over Arrow columns -------------------

_EXACT = decimal.Context(prec=80)   # room for any product of two 38-digit decimals, rounded by nothing


def _ibis_type(array) -> idt.DataType:
    return idt.DataType.from_pyarrow(array.type) if not pa.types.is_null(array.type) else idt.null


def _arrow_arith(op: type, a, b):
    """`a op b` over Arrow columns with the same result types as in SQL (`result_type`)."""
    ta, tb = _ibis_type(a), _ibis_type(b)
    if ta.is_null() or tb.is_null():
        other = tb if ta.is_null() else ta
        target = idt.float64 if other.is_null() else result_type(op, other, other)
        return pa.nulls(len(a), target.to_pyarrow())
    target = result_type(op, ta, tb)
    if op is exp.Div:
        a, b = pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
        return pc.divide(a, pc.if_else(pc.equal(b, 0.0), pa.scalar(None, pa.float64()), b))
    if target.is_decimal():
        return _arrow_exact(op, a, b, target.to_pyarrow())
    arrow = target.to_pyarrow()
    a, b = pc.cast(a, arrow), pc.cast(b, arrow)
    return {exp.Add: pc.add, exp.Sub: pc.subtract, exp.Mul: pc.multiply}[op](a, b)


def _arrow_exact(op: type, a, b, target: pa.DataType):
    """Decimal `a op b`, exact. The operands are narrowed to the digits their values use, so the
    arithmetic runs in Arrow's 128-bit decimals (or 256-bit ones); in Python only past those."""
    fn = {exp.Add: pc.add_checked, exp.Sub: pc.subtract_checked, exp.Mul: pc.multiply_checked}[op]
    try:
        (pa_, sa), (pb, sb) = _used_digits(a), _used_digits(b)
        width = pa_ + pb + 1 if op is exp.Mul else max(pa_ - sa, pb - sb) + max(sa, sb) + 1
        kind = pa.decimal128 if width <= MAX_PRECISION else pa.decimal256
        return pc.cast(fn(pc.cast(a, kind(pa_, sa)), pc.cast(b, kind(pb, sb))), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        exact = {exp.Add: _EXACT.add, exp.Sub: _EXACT.subtract, exp.Mul: _EXACT.multiply}[op]
        values = [None if x is None or y is None else exact(decimal.Decimal(x), decimal.Decimal(y))
                  for x, y in zip(a.to_pylist(), b.to_pylist())]
        return pa.array(values, target)


def _used_digits(array) -> tuple[int, int]:
    """(precision, scale) that holds every value of an integer or decimal Arrow column."""
    scale = 0 if pa.types.is_integer(array.type) else array.type.scale
    bounds = pc.min_max(array)
    top = max((abs(int(v.as_py())) for v in (bounds["min"], bounds["max"]) if v.is_valid), default=0)
    return max(len(str(top)) + scale, scale + 1), scale


def _arrow_unified(values: list) -> list:
    types = [_ibis_type(v) for v in values]
    known = [t for t in types if not t.is_null()]
    kinds = {numeric_kind(t) for t in known}
    if not known or None in kinds:
        return values
    if "float" in kinds:
        target = idt.float64
    elif kinds == {"int"}:
        target = idt.int64
    else:
        whole, scale = max(_digits(t)[0] for t in known), max(_digits(t)[1] for t in known)
        target = idt.Decimal(min(whole + scale, MAX_PRECISION), scale)
    return [pc.cast(v, target.to_pyarrow()) for v in values]


def _arrow_literal(value, length: int):
    if isinstance(value, int) and -2**63 <= value < 2**63:
        return pa.array([value] * length, pa.int64())
    if isinstance(value, float):
        return pa.array([value] * length, pa.float64())
    value = decimal.Decimal(value)
    precision, scale = decimal_type(value)
    return pa.array([value] * length, pa.decimal128(min(precision, MAX_PRECISION), scale))


def to_arrow(node: exp.Expression, resolve: Resolve, length: int):
    """Evaluate a formula over Arrow columns, typed as the same arithmetic is in SQL; x/0 is null."""
    rec = lambda child: to_arrow(child, resolve, length)  # noqa: E731
    if isinstance(node, exp.Column):
        return resolve(column_name(node))
    if isinstance(node, exp.Literal):
        return _arrow_literal(_literal(node), length)
    if isinstance(node, exp.Null):
        return pa.nulls(length)
    if isinstance(node, exp.Paren):
        return rec(node.this)
    if isinstance(node, exp.Neg):
        return pc.negate(rec(node.this))
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        return _arrow_arith(type(node), rec(node.this), rec(node.expression))
    if isinstance(node, exp.Coalesce):
        return pc.coalesce(*_arrow_unified([rec(node.this), *[rec(e) for e in node.expressions]]))
    if isinstance(node, exp.Abs):
        return pc.abs(rec(node.this))
    if isinstance(node, exp.Round):
        value = rec(node.this)
        digits = node.args.get("decimals")
        places = literal_int(digits) if digits is not None else 0
        if pa.types.is_integer(value.type) and places >= 0:
            return value
        rounded = pc.round(value, places, round_mode="half_away_from_zero")  # SQL's rounding of exact values
        if pa.types.is_decimal(value.type):
            return pc.cast(rounded, pa.decimal128(value.type.precision, min(value.type.scale, max(places, 0))))
        return rounded
    if isinstance(node, exp.Nullif):
        a, b = _arrow_unified([rec(node.this), rec(node.expression)])
        return pc.if_else(pc.equal(a, b), pa.scalar(None, a.type), a)
    if isinstance(node, (exp.Greatest, exp.Least)):
        values = _arrow_unified([rec(node.this), *[rec(e) for e in node.expressions]])
        fn = pc.max_element_wise if isinstance(node, exp.Greatest) else pc.min_element_wise
        return fn(*values)
    raise ExpressionError(f"{node.sql()!r} is not supported in a metric formula")


def arrow_type_of(dtype: idt.DataType) -> pa.DataType:
    return dtype.to_pyarrow()
