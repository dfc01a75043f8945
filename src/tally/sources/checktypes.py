"""Load-time checks of a source against its declared column types: checks, defaults, named columns.

What DuckDB would refuse (or fail on) only when the checks run — `status > 5` on a text column,
`lower(quantity)`, `min:` on a date, a default `abc` for a number — is found when tally.yml loads.
"""

from __future__ import annotations

import datetime as dt
import decimal

import sqlglot.expressions as sge

from tally.project.expr import parse_row_expr
from tally.sources.config import SourceConfig
from tally.sources.validate import INTEGERS, duck_type

NUMBER, TEXT, BOOL, DATE, TIME = "number", "text", "boolean", "date", "timestamp"
_RANGES = {"TINYINT": 7, "SMALLINT": 15, "INTEGER": 31, "BIGINT": 63}
BOOL_WORDS = ("true", "false", "t", "f", "1", "0")


class Problem(Exception):
    """What is wrong and the keys (inside the source) of the line to point at."""

    def __init__(self, message: str, *path):
        super().__init__(message)
        self.message, self.path = message, path


def kind_of(duck: str) -> str:
    if duck in INTEGERS or duck in ("FLOAT", "DOUBLE") or duck.startswith("DECIMAL"):
        return NUMBER
    return {"VARCHAR": TEXT, "BOOLEAN": BOOL, "DATE": DATE, "TIMESTAMPTZ": TIME}[duck]


def check_source(config: SourceConfig) -> None:
    """Raise Problem for the first part of the source its declared types show to be wrong."""
    if not config.columns:
        return   # types are inferred at ingest: nothing to check them against here
    kinds = {name: duck_type(kind) for name, kind in config.columns.items()}
    open_ended = config.on_new_columns == "add"   # undeclared columns may load too (as text)
    for column, value in config.defaults.items():
        if column not in kinds:
            if not open_ended:
                raise Problem(f"default for {column!r}, which is not a declared column "
                              f"(columns: {', '.join(kinds)})", "defaults", column)
            continue
        wrong = _default_problem(value, kinds[column])
        if wrong:
            raise Problem(f"default for {column!r} {wrong}", "defaults", column)
    for index, check in enumerate(config.checks):
        _check_problem(check, kinds, open_ended, ("checks", index))


def _default_problem(value, duck: str) -> str | None:
    """Why `value` cannot be a value of the DuckDB type `duck`, or None."""
    kind = kind_of(duck)
    if isinstance(value, (list, dict)):
        return f"must be one value, not a {type(value).__name__}"
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number for a {duck.lower()} column, not {value!r}"
        if duck in _RANGES and (not float(value).is_integer() or abs(value) >= 2 ** _RANGES[duck] + (value < 0)):
            return f"must be a whole number that fits {duck.lower()}, not {value!r}"
        if duck.startswith("DECIMAL"):
            precision, scale = (int(x) for x in duck[duck.index("(") + 1:-1].split(","))
            exact = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
            if not exact.is_finite() or exact != round(exact, scale) or abs(exact) >= 10 ** (precision - scale):
                return f"must fit {duck.lower()}, not {value!r}"
        elif not float(value) == float(value) or abs(float(value)) == float("inf"):
            return f"must be a finite number, not {value!r}"
    elif kind == BOOL and not isinstance(value, bool):
        return f"must be true or false for a boolean column, not {value!r}"
    elif kind in (DATE, TIME) and not _is_moment(value, kind):
        return f"must be a {kind} (YYYY-MM-DD{'' if kind == DATE else ' HH:MM:SS'}), not {value!r}"
    elif kind == TEXT and isinstance(value, (dt.date, bool)):
        return f"must be text for a text column (quote it), not {value!r}"
    return None


def _is_moment(value, kind: str) -> bool:
    if isinstance(value, dt.datetime):
        return kind == TIME
    if isinstance(value, dt.date):
        return True
    if not isinstance(value, str):
        return False
    try:
        (dt.date if kind == DATE else dt.datetime).fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _check_problem(check, kinds: dict[str, str], open_ended: bool, where: tuple) -> None:
    rule = check.rule
    if rule == "expression":
        tree = parse_row_expr(check.expression).tree
        Types(kinds, open_ended, check.expression, where).condition(tree)
        return
    value = getattr(check, rule)
    for column in value:
        if column not in kinds and not open_ended:
            raise Problem(f"{rule} names column {column!r}, which is not a declared column "
                          f"(columns: {', '.join(kinds)})", *where)
        if rule in ("min", "max") and column in kinds and kind_of(kinds[column]) != NUMBER:
            raise Problem(f"{rule} for {column!r} needs a number column; {column} is "
                          f"{kind_of(kinds[column])}", *where)


class Types:
    """The type of each node of a check expression; Problem where DuckDB would refuse or fail."""

    def __init__(self, kinds: dict[str, str], open_ended: bool, text: str, where: tuple):
        self.kinds, self.open_ended, self.text, self.where = kinds, open_ended, text, where

    def fail(self, message: str):
        raise Problem(f"check {self.text!r}: {message}", *self.where)

    def condition(self, node) -> None:
        kind = self.type(node)
        if kind not in (BOOL, NUMBER, None):
            self.fail(f"{node.sql('duckdb')} is {kind}, not a condition (true or false)")

    def type(self, node) -> str | None:   # noqa: C901 - one branch per node kind reads best
        # (Long: one branch per node kind, like project/exprtypes.)
        if isinstance(node, sge.Paren):
            return self.type(node.this)
        if isinstance(node, sge.Literal):
            return TEXT if node.is_string else NUMBER
        if isinstance(node, sge.Boolean):
            return BOOL
        if isinstance(node, sge.Null):
            return None
        if isinstance(node, sge.Column):
            if node.table or node.name not in self.kinds:
                if self.open_ended and not node.table:
                    return TEXT
                self.fail(f"{node.sql('duckdb')} is not a declared column (columns: {', '.join(self.kinds)})")
            return kind_of(self.kinds[node.name])
        if isinstance(node, (sge.And, sge.Or)):
            self.condition(node.this)
            self.condition(node.expression)
            return BOOL
        if isinstance(node, sge.Not):
            self.condition(node.this)
            return BOOL
        if isinstance(node, sge.Is):
            self.type(node.this)
            return BOOL
        if isinstance(node, sge.Neg):
            return self.want(node.this, NUMBER, "a minus sign")
        if isinstance(node, (sge.Add, sge.Sub, sge.Mul, sge.Div, sge.Mod)):
            left, right = self.type(node.this), self.type(node.expression)
            for side, kind in ((node.this, left), (node.expression, right)):
                if kind in (TEXT, BOOL):
                    self.fail(f"arithmetic on {side.sql('duckdb')}, which is {kind}")
            return NUMBER if left in (NUMBER, None) and right in (NUMBER, None) else None
        if isinstance(node, (sge.EQ, sge.NEQ, sge.GT, sge.GTE, sge.LT, sge.LTE)):
            self.same(node, node.this, [node.expression])
            return BOOL
        if isinstance(node, sge.In):
            self.same(node, node.this, node.expressions)
            return BOOL
        if isinstance(node, sge.Between):
            self.same(node, node.this, [node.args["low"], node.args["high"]])
            return BOOL
        if isinstance(node, (sge.Like, sge.ILike)):
            self.want(node.this, TEXT, node.key.upper())
            self.want(node.expression, TEXT, node.key.upper())
            return BOOL
        if isinstance(node, (sge.Lower, sge.Upper, sge.Trim)):
            return self.want(node.this, TEXT, f"{node.sql_name().lower()}()")
        if isinstance(node, sge.Length):
            self.want(node.this, TEXT, "length()")
            return NUMBER
        if isinstance(node, (sge.Abs, sge.Round)):
            return self.want(node.this, NUMBER, f"{node.sql_name().lower()}()")
        if isinstance(node, (sge.Coalesce, sge.Greatest, sge.Least, sge.Nullif)):
            rest = node.expressions if not isinstance(node, sge.Nullif) else [node.expression]
            return self.same(node, node.this, rest)
        if isinstance(node, (sge.Case, sge.If)):
            ifs = node.args.get("ifs") or [node]
            for branch in ifs:
                self.condition(branch.this)
            results = [b.args.get("true") for b in ifs] + [node.args.get("default") or node.args.get("false")]
            results = [r for r in results if r is not None]
            return self.same(node, results[0], results[1:])
        return None

    def want(self, node, kind: str, what: str) -> str:
        found = self.type(node)
        if found not in (kind, None):
            self.fail(f"{what} takes {kind}; {node.sql('duckdb')} is {found}")
        return kind

    def same(self, node, first, others) -> str | None:
        """The common type of values compared or combined; Problem when DuckDB could not compare them."""
        kinds = [(first, self.type(first))] + [(other, self.type(other)) for other in others]
        common = next((kind for value, kind in kinds if kind is not None and not _is_text_literal(value)), None)
        for value, kind in kinds:
            if kind is None or common is None or _comparable(common, kind, value):
                continue
            self.fail(f"{node.sql('duckdb')} compares {common} with {kind} ({value.sql('duckdb')})"
                      + (" (numbers take no quotes)" if common == NUMBER and kind == TEXT else "")
                      + (" (text takes single quotes)" if common == TEXT and kind == NUMBER else ""))
        return common or next((kind for _, kind in kinds if kind is not None), None)


def _is_text_literal(node) -> bool:
    return isinstance(node, sge.Literal) and node.is_string


def _comparable(common: str, kind: str, value) -> bool:
    if common == kind or {common, kind} <= {DATE, TIME} or {common, kind} == {NUMBER, BOOL}:
        return True
    if kind == TEXT and _is_text_literal(value):   # DuckDB reads a quoted literal as the other side's type
        text = value.this.strip()
        if common == NUMBER:
            try:
                float(text)
                return True
            except ValueError:
                return False
        if common == BOOL:
            return text.lower() in BOOL_WORDS
        return _is_moment(text, common)
    return False
