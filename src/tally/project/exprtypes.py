"""Type-check allowlisted expressions against column types, so a mismatch is refused before any SQL.

Kinds are coarse, as the engine's rules are (docs/configuration.md, "Types in expressions"): a whole
number, a number (decimal or float), text, true/false, a date or time, NULL, or unknown (a column
whose type is not known yet: it is checked again once the warehouse table is read).
"""

from __future__ import annotations

from typing import Callable

import sqlglot.expressions as exp

from tally.errors import ExpressionError
from tally.project.expr import ARITHMETIC, COMPARISONS, chain, column_name

INTEGER, NUMBER, TEXT, BOOLEAN, TIME, NULL, ANY = "integer", "number", "text", "boolean", "time", "null", "any"
FLAG = "flag"   # MySQL's BOOL is a TINYINT: 0/1 that reads as a number and as true/false
NUMERIC = (INTEGER, NUMBER, FLAG)
_WORDS = {INTEGER: "a whole number", NUMBER: "a number", TEXT: "text", BOOLEAN: "true/false",
          TIME: "a date/time", FLAG: "a 0/1 flag"}

Columns = Callable[[str], str]
"""A name as written (`col`, `join.col`) -> its kind (ANY when unknown)."""


def declared_kind(name: str) -> str:
    """The kind of a declared column type (`int64`, `decimal(12,2)`, `string`, ...)."""
    text = str(name).strip().lower()
    if text.startswith(("int", "bigint")):
        return INTEGER
    if text.startswith(("decimal", "float", "double")):
        return NUMBER
    if text in ("string", "text", "str"):
        return TEXT
    if text in ("bool", "boolean"):
        return BOOLEAN
    if text.startswith(("date", "timestamp")):
        return TIME
    return ANY


def warehouse_kind(dtype, dialect: str = "") -> str:
    """The kind of an Ibis type read from a warehouse table."""
    if dtype.is_boolean():
        return BOOLEAN
    if dtype.is_integer():
        return FLAG if dialect == "mysql" and dtype.nbytes == 1 else INTEGER
    if dtype.is_numeric():
        return NUMBER
    if dtype.is_string():
        return TEXT
    if dtype.is_temporal():
        return TIME
    if dtype.is_null():
        return NULL
    return ANY


def _word(kind: str) -> str:
    return _WORDS.get(kind, kind)


def _sql(node: exp.Expression) -> str:
    text = node.sql("duckdb")
    return text if len(text) <= 60 else text[:57] + "..."


def _same_family(a: str, b: str) -> bool:
    """Values that can stand for each other (one column of a CASE, the arguments of coalesce)."""
    if ANY in (a, b) or NULL in (a, b) or a == b:
        return True
    if a in NUMERIC and b in NUMERIC:
        return True
    return FLAG in (a, b) and BOOLEAN in (a, b)


def _comparable(a: str, b: str, left: exp.Expression, right: exp.Expression) -> bool:
    if _same_family(a, b) or {a, b} <= {BOOLEAN, INTEGER, FLAG}:   # `is_enabled = 1`
        return True
    # a date compared with a quoted date: `day >= '2026-01-01'`
    return {a, b} == {TIME, TEXT} and any(isinstance(n, exp.Literal) and n.is_string for n in (left, right))


class Checker:
    """Infers the kind of each node of a tree, raising ExpressionError at the first clash."""

    def __init__(self, columns: Columns):
        self.columns = columns

    def kind(self, node: exp.Expression) -> str:
        """The kind of `node`'s value; ExpressionError naming the part whose types clash.

        (Long: one branch per allowlisted node kind, in the same order as engine/translate.to_ibis.)"""
        if isinstance(node, exp.Column):
            return self.columns(column_name(node))
        if isinstance(node, exp.Literal):
            if node.is_string:
                return TEXT
            return INTEGER if node.this.isdigit() else NUMBER
        if isinstance(node, exp.Boolean):
            return BOOLEAN
        if isinstance(node, exp.Null):
            return NULL
        if isinstance(node, exp.Paren):
            return self.kind(node.this)
        if isinstance(node, exp.Neg):
            return self._numeric(node, node.this, "-")
        if isinstance(node, (exp.And, exp.Or)):
            for operand in chain(node):
                self.condition(operand, lambda: f"{_sql(node)}: {node.key.upper()} takes true/false conditions")
            return BOOLEAN
        if isinstance(node, exp.Not):
            self.condition(node.this, lambda: f"{_sql(node)}: NOT takes a true/false condition")
            return BOOLEAN
        if isinstance(node, ARITHMETIC):
            left = self._numeric(node, node.this, _OPS[type(node)])
            right = self._numeric(node, node.expression, _OPS[type(node)])
            if isinstance(node, exp.Div) or NUMBER in (left, right) or ANY in (left, right):
                return NUMBER if ANY not in (left, right) else ANY
            return INTEGER
        if isinstance(node, COMPARISONS):
            self._compare(node, node.this, node.expression)
            return BOOLEAN
        if isinstance(node, exp.In):
            for item in node.expressions:
                self._compare(node, node.this, item)
            return BOOLEAN
        if isinstance(node, exp.Between):
            for bound in (node.args["low"], node.args["high"]):
                self._compare(node, node.this, bound)
            return BOOLEAN
        if isinstance(node, exp.Is):
            if isinstance(node.expression, exp.Boolean):
                self.condition(node.this, lambda: f"{_sql(node)}: IS {node.expression.sql().upper()} takes a "
                                                  "true/false condition")
            else:
                self.kind(node.this)
            return BOOLEAN
        if isinstance(node, (exp.Like, exp.ILike)):
            for side in (node.this, node.expression):
                self._want(node, side, (TEXT,), f"{node.key.upper()} matches text")
            return BOOLEAN
        if isinstance(node, (exp.Lower, exp.Upper, exp.Trim)):
            self._want(node, node.this, (TEXT,), f"{_fn(node)}() takes text")
            return TEXT
        if isinstance(node, exp.Length):
            self._want(node, node.this, (TEXT,), "length() takes text")
            return INTEGER
        if isinstance(node, exp.Abs):
            return self._numeric(node, node.this, "abs()")
        if isinstance(node, exp.Round):
            kind = self._numeric(node, node.this, "round()")
            return kind if kind in (ANY, NULL) else (INTEGER if kind in (INTEGER, FLAG) else NUMBER)
        if isinstance(node, (exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least)):
            args = [node.this, *node.expressions] if not isinstance(node, exp.Nullif) else [node.this, node.expression]
            return self._one_kind(node, args, f"the arguments of {_fn(node)}()")
        if isinstance(node, exp.If):
            self.condition(node.this, lambda: f"{_sql(node)}: IF takes a true/false condition")
            results = [node.args["true"]] + ([node.args["false"]] if node.args.get("false") else [])
            return self._one_kind(node, results, "the results of IF")
        if isinstance(node, exp.Case):
            for when in node.args["ifs"]:
                if node.this is not None:
                    self._compare(node, node.this, when.this)
                else:
                    self.condition(when.this, lambda: f"{_sql(node)}: WHEN takes a true/false condition")
            results = [when.args["true"] for when in node.args["ifs"]]
            results += [node.args["default"]] if node.args.get("default") is not None else []
            return self._one_kind(node, results, "the results of CASE")
        return ANY

    def condition(self, node: exp.Expression, rule: Callable[[], str] | None = None, integers: bool = False) -> None:
        """`node` must be true/false (`integers`: a whole number counts too, compared with 0);
        `rule` says what wants it, for a part of a larger expression (built only for a message)."""
        kind = self.kind(node)
        allowed = (BOOLEAN, FLAG, NULL, ANY) + ((INTEGER,) if integers else ())
        if kind in allowed:
            return
        if rule:
            raise ExpressionError(f"{rule()}, and {_sql(node)} is {_word(kind)}")
        raise ExpressionError(f"{_sql(node)} is {_word(kind)}, not a true/false condition "
                              "(compare it: status = 'paid', amount > 0)")

    def _numeric(self, node: exp.Expression, operand: exp.Expression, op: str) -> str:
        return self._want(node, operand, NUMERIC, f"{op} takes numbers")

    def _want(self, node: exp.Expression, operand: exp.Expression, kinds: tuple, rule: str) -> str:
        kind = self.kind(operand)
        if kind not in kinds + (NULL, ANY):
            raise ExpressionError(f"{_sql(node)}: {rule}, and {_sql(operand)} is {_word(kind)}")
        return kind

    def _compare(self, node: exp.Expression, left: exp.Expression, right: exp.Expression) -> None:
        a, b = self.kind(left), self.kind(right)
        if not _comparable(a, b, left, right):
            number = left if b == TEXT else right
            hint = (f" (text values take single quotes: '{number.this}')"
                    if TEXT in (a, b) and isinstance(number, exp.Literal) and not number.is_string else "")
            raise ExpressionError(f"{_sql(node)} compares {_word(a)} ({_sql(left)}) with {_word(b)} ({_sql(right)})"
                                  + hint)

    def _one_kind(self, node: exp.Expression, values: list, what: str) -> str:
        kinds = [(value, self.kind(value)) for value in values]
        known = [(value, kind) for value, kind in kinds if kind not in (ANY, NULL)]
        for value, kind in known[1:]:
            if not _same_family(known[0][1], kind):
                raise ExpressionError(f"{_sql(node)}: {what} mix {_word(known[0][1])} ({_sql(known[0][0])}) "
                                      f"and {_word(kind)} ({_sql(value)})")
        if any(kind == ANY for _, kind in kinds) or not known:
            return ANY if any(kind == ANY for _, kind in kinds) else NULL
        found = {kind for _, kind in known}
        return NUMBER if NUMBER in found else known[0][1]


_OPS = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}


def _fn(node: exp.Expression) -> str:
    return node.sql_name().lower() if isinstance(node, exp.Func) else node.key


AGGREGATE_KINDS = {"sum": NUMERIC + (BOOLEAN,), "avg": NUMERIC + (BOOLEAN,),
                   "min": NUMERIC + (TEXT, TIME, BOOLEAN), "max": NUMERIC + (TEXT, TIME, BOOLEAN)}


def measure_kind(aggregation: str, value_kind: str) -> str:
    """The kind of an aggregate's result."""
    if aggregation in ("count", "count_distinct"):
        return INTEGER
    if aggregation == "avg":
        return NUMBER
    if aggregation == "sum":
        return value_kind if value_kind in (INTEGER, NUMBER, ANY) else INTEGER
    return value_kind


# -- a model's expressions ----------------------------------------------------

Tables = Callable[[str], "dict[str, str] | None"]
"""A table name -> its columns' kinds, or None when its types are not known."""


class TypeClash(Exception):
    """An expression of tally.yml whose types clash: the config path it sits at and the message."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def _parse(text: str):
    from tally.project.expr import parse_row_expr

    return parse_row_expr(text).tree


def _columns(config, model, tables: Tables) -> Columns:
    """Resolve `col` and `join.col` of `model` to kinds; ANY where a type (or the join) is unknown."""
    def kinds_of(table: str) -> dict:
        return tables(table) or {}

    def resolve(ref: str) -> str:
        if "." in ref:
            alias, col = ref.split(".", 1)
            join = model.joins.get(alias)
            if join is None or join.model not in config.models:
                return ANY
            return kinds_of(config.models[join.model].table).get(col, ANY)
        return kinds_of(model.table).get(ref, ANY)
    return resolve


def _at(path: tuple, what: str, check: Callable[[], str]) -> str:
    try:
        return check()
    except ExpressionError as exc:
        raise TypeClash(path, f"{what}: {exc.message}") from None


def dimension_kinds(config, name: str, tables: Tables, only=None) -> dict[str, str]:
    """The kind of each dimension of model `name` (or of those in `only`); TypeClash on a clash."""
    model = config.models[name]
    checker = Checker(_columns(config, model, tables))
    return {dim: _at(("models", name, "dimensions", dim), f"dimension {dim!r} of model {name!r} "
                     f"({model.dimensions[dim].expr!r})", lambda d=dim: checker.kind(_parse(model.dimensions[d].expr)))
            for dim in (only if only is not None else model.dimensions) if dim in model.dimensions}


def check_measures(config, name: str, tables: Tables, only=None) -> dict[str, str]:
    """Check the measures of model `name` (or those in `only`) and its range joins; their result kinds."""
    model = config.models[name]
    checker = Checker(_columns(config, model, tables))
    for alias, join in model.joins.items():
        if join.range is not None and join.model in config.models:
            path, label = ("models", name, "joins", alias, "range"), f"join {alias!r} of model {name!r}"
            value = _at(path, f"{label} ({join.range!r})", lambda j=join: checker.kind(_parse(j.range)))
            bounds = tables(config.models[join.model].table) or {}
            for bound in (join.from_, join.to):
                kind = bounds.get(bound, ANY)
                if not _comparable(value, kind, exp.Null(), exp.Null()):
                    raise TypeClash(path, f"{label}: the range {join.range!r} is {_word(value)}, and the bound "
                                          f"{bound!r} of model {join.model!r} is {_word(kind)}")
    kinds = {}
    for measure_name in (only if only is not None else model.measures):
        measure = model.measures[measure_name]
        where = ("models", name, "measures", measure_name)
        label = f"measure {measure_name!r} of model {name!r}"
        value_kind = ANY
        if measure.value != "*":
            value_kind = _at((*where, measure.aggregation), f"{label} ({measure.aggregation}: {measure.value!r})",
                             lambda m=measure: checker.kind(_parse(m.value)))
            wanted = AGGREGATE_KINDS.get(measure.aggregation)
            if wanted and value_kind not in wanted + (NULL, ANY):
                takes = "numbers" if measure.aggregation in ("sum", "avg") else "numbers, text or dates"
                raise TypeClash((*where, measure.aggregation), f"{label}: {measure.aggregation} takes {takes}, "
                                                               f"and {measure.value!r} is {_word(value_kind)}")
        if measure.where is not None:
            _at((*where, "where"), f"{label} (where: {measure.where!r})",
                lambda m=measure: checker.condition(_parse(m.where), integers=True))
        kinds[measure_name] = measure_kind(measure.aggregation, value_kind)
    return kinds


def check_where(text: str, dimensions: Columns) -> None:
    """A filter over dimensions (`--where`, a rollup's `where`) is a true/false condition whose
    comparisons match the dimensions' kinds."""
    Checker(dimensions).condition(_parse(text))


def check_formulas(config, measure_kinds: dict[str, str]) -> None:
    """Derived metrics do arithmetic: every metric they use must be a number."""
    from tally.project.expr import parse_formula

    kinds = dict(measure_kinds)
    pending = list(config.metrics)
    while pending:   # metrics over metrics: each once its inputs are known (cycles are refused earlier)
        progress = False
        for name in list(pending):
            refs = parse_formula(config.metrics[name].formula).references
            if all(ref in kinds or ref not in config.metrics for ref in refs):
                checker = Checker(lambda ref: kinds.get(ref, ANY))
                kinds[name] = _at(("metrics", name), f"metric {name!r} ({config.metrics[name].formula!r})",
                                  lambda n=name: checker.kind(parse_formula(config.metrics[n].formula).tree))
                pending.remove(name)
                progress = True
        if not progress:
            return


def check_config(loaded) -> None:
    """Check every expression of tally.yml against the column types the config declares (seeds' and
    sources' `columns:`); a table typed only in the warehouse is checked when a query first reads it."""
    config = loaded.config
    declared: dict[str, dict[str, str]] = {}
    for name, seed in config.seeds.items():
        if seed.columns:
            declared[seed.table or name] = {col: declared_kind(kind) for col, kind in seed.columns.items()}
    for source in config.sources.values():
        if isinstance(source, dict) and isinstance(source.get("columns"), dict) and source.get("table"):
            declared[str(source["table"])] = {str(col): declared_kind(kind) for col, kind in source["columns"].items()}
    try:
        measures, dimensions = {}, {}
        for name in config.models:
            dimensions[name] = dimension_kinds(config, name, declared.get)
            measures.update(check_measures(config, name, declared.get))
        check_formulas(config, measures)
        owner = {m: name for name, model in config.models.items() for m in model.measures}
        for name, rollup in config.rollups.items():
            if rollup.where is None:
                continue
            for model_name in models_behind(config, rollup.metrics, owner):
                kinds = dimensions[model_name]
                _at(("rollups", name, "where"), f"rollup {name!r} (where: {rollup.where!r})",
                    lambda k=kinds: check_where(rollup.where, lambda d: k.get(d, ANY)))
    except TypeClash as clash:
        raise loaded.error(clash.message, *clash.path) from None


def models_behind(config, metrics, owner: dict[str, str]) -> set[str]:
    from tally.project.expr import parse_formula

    found, stack, seen = set(), list(metrics), set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in owner:
            found.add(owner[name])
        elif name in config.metrics:
            stack.extend(parse_formula(config.metrics[name].formula).references)
    return found
