"""Parse config and CLI expressions with sqlglot and keep only an allowlisted subset.

Expressions never reach SQL as text: the engine rebuilds each allowed node with Ibis,
so identifiers are resolved against the model and values become escaped literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
import sqlglot.expressions as exp
from sqlglot.tokens import TokenType

from tally.errors import ExpressionError

ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
LOGIC = (exp.And, exp.Or, exp.Not)
FUNCTIONS = (exp.Coalesce, exp.Abs, exp.Round, exp.Lower, exp.Upper, exp.Nullif,
             exp.Greatest, exp.Least, exp.Trim, exp.Length)
STRUCTURE = (exp.Paren, exp.Neg, exp.Literal, exp.Boolean, exp.Null, exp.Column,
             exp.Identifier, exp.Case, exp.If, exp.In, exp.Is, exp.Between,
             exp.Like, exp.ILike)

ROW_NODES = ARITHMETIC + COMPARISONS + LOGIC + FUNCTIONS + STRUCTURE
"""What a row expression (measure value, measure filter, --where) may contain."""

FORMULA_NODES = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Paren, exp.Neg, exp.Literal, exp.Column,
                 exp.Identifier, exp.Null, exp.Coalesce, exp.Abs, exp.Round, exp.Nullif,
                 exp.Greatest, exp.Least)
"""What a derived metric formula may contain: arithmetic over metric names."""

_OPERANDS = {"this", "expression"}
ARGUMENTS: dict[type, set[str]] = {
    **{node: _OPERANDS for node in ARITHMETIC + COMPARISONS + (exp.And, exp.Or, exp.Nullif)},
    exp.Not: {"this"}, exp.Neg: {"this"}, exp.Paren: {"this"}, exp.Abs: {"this"}, exp.Lower: {"this"},
    exp.Upper: {"this"}, exp.Length: {"this"}, exp.Literal: {"this", "is_string"}, exp.Boolean: {"this"},
    exp.Null: set(), exp.Column: {"this", "table"}, exp.Identifier: {"this", "quoted"},
    exp.Coalesce: {"this", "expressions"}, exp.Round: {"this", "decimals"},
    exp.Greatest: {"this", "expressions", "ignore_nulls"}, exp.Least: {"this", "expressions", "ignore_nulls"},
    exp.Trim: {"this", "expression", "position"}, exp.Case: {"this", "ifs", "default"},
    exp.If: {"this", "true", "false"}, exp.In: {"this", "expressions"}, exp.Is: {"this", "expression"},
    exp.Between: {"this", "low", "high", "symmetric"}, exp.Like: {"this", "expression", "negate"},
    exp.ILike: {"this", "expression", "negate"},
}
"""The arguments each allowed node may carry: anything else (`length(a, b)`, `round(x, 2, 1)`) is
refused, since the engine would not translate it and the expression would lose part of its meaning."""


@dataclass(frozen=True)
class Expr:
    """A parsed, allowlisted expression and the names it refers to."""

    text: str
    tree: exp.Expression

    @property
    def references(self) -> tuple[str, ...]:
        """Names used, as written: `col` or `join.col`."""
        seen: dict[str, None] = {}
        for column in self.tree.find_all(exp.Column):
            seen[column_name(column)] = None
        return tuple(seen)


def column_name(column: exp.Column) -> str:
    """`join.col` for a qualified column, `col` otherwise."""
    parts = [part.name for part in column.parts]
    return ".".join(parts)


_PLAIN_NAMES = {"block": "a second statement after `;`", "subquery": "a subquery", "select": "a subquery",
                "star": "`*`", "command": "a SQL command", "drop": "a SQL command", "semicolon": "`;`"}


def _describe(node: exp.Expression) -> str:
    """What a disallowed node is, in words a user knows."""
    if isinstance(node, exp.Anonymous):
        return f"function {node.name}()"
    if isinstance(node, exp.Func) and not isinstance(node, exp.Query):
        return f"function {node.sql_name().lower()}()"
    plain = _PLAIN_NAMES.get(node.key)
    if plain:
        return plain
    return f"{node.key.upper()} ({node.sql()!r})"


def _parse_problem(exc: sqlglot.errors.ParseError) -> str:
    detail = exc.errors[0]["description"] if exc.errors else str(exc)
    if "Required keyword" in detail or "Expected" in detail and "expression" in detail:
        return "the expression is incomplete"
    return re.sub(r"\s*for <class '[^']+'>", "", detail)


MAX_DEPTH = 32
"""How deep an expression may nest (parentheses, operators, function calls; a chain of `and` / `or`
counts once). The parser and the query builders recurse once per level, and Python's stack holds
~40 parenthesised levels: past this an expression is refused, not a RecursionError."""
MAX_TOKENS = 20_000     # words and symbols: room for a 2,000-term `or` chain, not for a runaway one
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


def too_deep(text: str) -> ExpressionError:
    return ExpressionError(f"{_short(text)}: the expression nests deeper than {MAX_DEPTH} levels "
                           "(parentheses, operators and function calls; `a + b + c` is two levels); "
                           "split it into simpler dimensions or measures")


def _short(text: str) -> str:
    """The expression as quoted in a message: whole when short, its start otherwise."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"


def _tokens(text: str) -> None:
    """Refuse text the parser can't read in one piece: an unclosed quote, runaway nesting or length."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(text)
    except sqlglot.errors.TokenError:
        quotes = [q for q in ("'", '"') if text.count(q) % 2]
        what = f"a {quotes[0]} quote is not closed" if quotes else "it is not a complete expression"
        raise ExpressionError(f"cannot parse {_short(text)}: {what} (text values take single quotes: "
                              "status = 'paid')") from None
    if len(tokens) > MAX_TOKENS:
        raise ExpressionError(f"{_short(text)}: the expression is longer than {MAX_TOKENS} words and symbols")
    depth = 0
    for token in tokens:
        depth += (token.token_type in _OPEN) - (token.token_type in _CLOSE)
        if depth > MAX_DEPTH:
            raise too_deep(text)


_LEAVES = (exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null)


def _depth(tree: exp.Expression) -> int:
    """Nesting depth, without parentheses (the tokens bound those) and with `and` / `or` chains flat."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.iter_expressions():
            if isinstance(child, _LEAVES):
                continue
            same_chain = isinstance(child, (exp.And, exp.Or)) and type(child) is type(node)
            stack.append((child, depth if same_chain or isinstance(node, exp.Paren) else depth + 1))
    return deepest


@lru_cache(maxsize=4096)
def _parse(text: str, kind: str) -> Expr:
    allowed = FORMULA_NODES if kind == "formula" else ROW_NODES
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    _tokens(text)
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ExpressionError(f"cannot parse {_short(text)}: {_parse_problem(exc)}") from None
    except RecursionError:   # nesting the token count does not see (`not not not ... x`)
        raise too_deep(text) from None
    except (sqlglot.errors.SqlglotError, ValueError):   # sqlglot reads `-> 1e5` as a JSON path and fails
        raise ExpressionError(f"cannot parse {_short(text)}: it is not a valid expression") from None
    if _depth(tree) > MAX_DEPTH:
        raise too_deep(text)
    for node in tree.walk():
        if isinstance(node, exp.Star) or isinstance(node, exp.Query) or not isinstance(node, allowed):
            raise ExpressionError(f"{_describe(node)} is not allowed in {text!r}")
        if isinstance(node, exp.Column) and len(node.parts) > 2:
            raise ExpressionError(f"{column_name(node)!r} in {text!r}: use `column` or `join.column`")
    for node in tree.walk():   # after every node is known allowed: a subquery is named as such
        _check_arguments(node, text)
    return Expr(text=text, tree=tree)


def _check_arguments(node: exp.Expression, text: str) -> None:
    """Refuse arguments the engine would drop, and the forms whose meaning it does not give."""
    extra = [key for key, value in node.args.items()
             if key not in ARGUMENTS[type(node)] and value not in (None, False, [], "")]
    name = _describe(node) if isinstance(node, exp.Func) else node.key.upper()
    if extra:
        raise ExpressionError(f"{name}: more arguments than it takes ({', '.join(extra)}) in {text!r}")
    if isinstance(node, exp.Is) and not isinstance(node.expression, (exp.Null, exp.Boolean)):
        raise ExpressionError(f"`IS` takes NULL, TRUE or FALSE, not a value: {node.sql('duckdb')!r} in {text!r} "
                              "(use `=` or `<>` to compare with a value)")
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None \
            and literal_int(node.args["decimals"]) is None:
        raise ExpressionError(f"round(): the number of places must be a whole number, as in round(x, 2): "
                              f"{node.sql('duckdb')!r} in {text!r}")
    if isinstance(node, exp.Literal) and not node.is_string:
        _check_number(node, text)
    if isinstance(node, exp.Trim) and node.expression is not None:
        chars = node.expression
        if not (isinstance(chars, exp.Literal) and chars.is_string and len(chars.this) == 1):
            # one character strips the same in every warehouse (MySQL strips a multi-character
            # string as a whole, PostgreSQL and DuckDB any of its characters)
            raise ExpressionError(f"trim(): the character to strip must be one character in quotes, as in "
                                  f"trim(x, '0'): {node.sql('duckdb')!r} in {text!r}")


def _check_number(node: exp.Literal, text: str) -> None:
    """Whole numbers fit 64 bits and decimals 38 digits: what every warehouse and Arrow hold."""
    value = node.this
    if value.isdigit():
        limit = 2**63 if isinstance(node.parent, exp.Neg) else 2**63 - 1
        if int(value) > limit:
            raise ExpressionError(f"{value} in {_short(text)} is past the largest whole number (64 bits: "
                                  f"{2**63 - 1}); write it with a decimal point ({value}.0) for a decimal")
    elif "e" not in value.lower() and _precision(value) > 38:
        raise ExpressionError(f"{value} in {_short(text)} has more than 38 digits, the most a decimal holds")


def chain(node: exp.Expression) -> list[exp.Expression]:
    """The operands of an `and` / `or` chain in order (`a or b or c`: a, b, c), without recursion:
    a 500-term chain is a tree 500 levels deep, which builders walking it recursively can't hold."""
    operands, stack = [], [node]
    while stack:
        current = stack.pop()
        if type(current) is type(node):
            stack += [current.expression, current.this]
        else:
            operands.append(current)
    return operands


def _precision(value: str) -> int:
    """Digits a decimal literal needs: `0.001` needs 3, `120.5` 4."""
    whole, _, fraction = value.partition(".")
    return len(whole.lstrip("0")) + len(fraction)


def literal_int(node: exp.Expression) -> int | None:
    """The value of an integer literal (`2`, `-1`), or None for anything else."""
    negative = isinstance(node, exp.Neg)
    inner = node.this if negative else node
    if isinstance(inner, exp.Literal) and not inner.is_string and inner.this.isdigit():
        return -int(inner.this) if negative else int(inner.this)
    return None


def parse_row_expr(text: str) -> Expr:
    """Parse a row-level expression: columns, literals, arithmetic, comparisons, logic."""
    return _parse(text, "row")


def parse_formula(text: str) -> Expr:
    """Parse a derived-metric formula: arithmetic over metric names."""
    return _parse(str(text), "formula")
