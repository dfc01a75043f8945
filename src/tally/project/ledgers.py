"""The `ledgers:` section of tally.yml: per-entity buckets and formulas, checked at load with their line."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from tally.errors import ExpressionError
from tally.project.expr import parse_formula, parse_row_expr
from tally.project.names import cli_name, where_name

if TYPE_CHECKING:   # schema.py imports this module for its `ledgers` field: its classes are imported late
    from tally.project.loader import LoadedConfig
    from tally.project.schema import Measure, ProjectConfig

AGGREGATIONS = ("sum", "count", "count_distinct", "avg", "min", "max")   # schema.AGGREGATIONS (a test holds them equal)

ROWS = "_tally_rows"   # a ledger table's own column: the entity's rows (what a refresh checks deletions by)
INTERNAL = "_tally_"


def _parsed(value: str | None, parse) -> str | None:
    if value is not None:
        try:
            parse(value)
        except ExpressionError as exc:
            raise ValueError(exc.message) from None
    return value


class Strict(BaseModel):
    """As schema.Strict: unknown keys are errors, values are immutable after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Bucket(Strict):
    """A named filtered measure of the ledger's model: an aggregation, or an existing measure, with a `where`."""

    sum: str | None = None
    count: str | None = None
    count_distinct: str | None = None
    avg: str | None = None
    min: str | None = None
    max: str | None = None
    measure: str | None = None
    where: str | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Bucket:
        given = [name for name in (*AGGREGATIONS, "measure") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a bucket needs exactly one of {', '.join(AGGREGATIONS)} or measure; "
                             f"got {given or 'none'}")
        for name in AGGREGATIONS:
            value = getattr(self, name)
            if value is not None and not (name == "count" and value == "*"):
                _parsed(value, parse_row_expr)
        _parsed(self.where, parse_row_expr)
        return self

    def as_measure(self, model) -> Measure:
        """The bucket as a measure of `model` (a named measure with the bucket's `where` added to its own)."""
        from tally.project.schema import Measure

        if self.measure is None:
            fields = {name: getattr(self, name) for name in AGGREGATIONS if getattr(self, name) is not None}
            return Measure(**fields, where=self.where, label=self.label)
        base = model.measures[self.measure]
        where = base.where
        if self.where:
            where = f"({base.where}) and ({self.where})" if base.where else self.where
        return base.model_copy(update={"where": where})


class Ledger(Strict):
    """One row per entity of a model: buckets (filtered measures) and formulas over them, stored."""

    model: str
    entity: str
    buckets: dict[str, Bucket]
    formulas: dict[str, str] = {}
    table: str | None = None

    @field_validator("formulas")
    @classmethod
    def _formulas(cls, value: dict[str, str]) -> dict[str, str]:
        for formula in value.values():
            _parsed(str(formula), parse_formula)
        return {k: str(v) for k, v in value.items()}

    @field_validator("buckets")
    @classmethod
    def _some(cls, value: dict) -> dict:
        if not value:
            raise ValueError("a ledger needs at least one bucket")
        return value

    def table_name(self, name: str) -> str:
        return self.table or f"ledger_{name}"

    def columns(self) -> list[str]:
        """The value columns, in order: buckets, then formulas."""
        return [*self.buckets, *self.formulas]


def engine_config(config: ProjectConfig, name: str) -> ProjectConfig:
    """The config the engine answers a ledger with: its model's measures are the buckets (and the row
    count), its entity a dimension, its metrics the formulas; the models it joins stay as they are."""
    from tally.project.schema import Dimension, Measure, Metric

    ledger = config.ledgers[name]
    model = config.models[ledger.model]
    measures = {bucket: spec.as_measure(model) for bucket, spec in ledger.buckets.items()}
    measures[ROWS] = Measure(count=entity_expr(config, name))
    dimensions = {**model.dimensions, ledger.entity: Dimension(expr=entity_expr(config, name))}
    models = {m: (config.models[m].model_copy(update={"measures": {}}) if m != ledger.model else
                  model.model_copy(update={"measures": measures, "dimensions": dimensions}))
              for m in _related(config, ledger.model)}
    metrics = {f: Metric(formula=text) for f, text in ledger.formulas.items()}
    return config.model_copy(update={"models": models, "metrics": metrics, "rollups": {}})


def entity_expr(config: ProjectConfig, name: str) -> str:
    """The entity's row expression: its dimension's, or the column itself."""
    ledger = config.ledgers[name]
    dimension = config.models[ledger.model].dimensions.get(ledger.entity)
    return dimension.expr if dimension else ledger.entity


def _related(config: ProjectConfig, model: str) -> list[str]:
    found, stack = [], [model]
    while stack:
        current = stack.pop()
        if current not in found and current in config.models:
            found.append(current)
            stack += [j.model for j in config.models[current].joins.values()]
    return found


def check_ledgers(loaded: LoadedConfig) -> None:
    """Every ledger's model, entity, buckets, formulas and table resolve; each error at its line."""
    config = loaded.config
    tables: dict[str, str] = {}
    for name, ledger in config.ledgers.items():
        where = ("ledgers", name)
        if ledger.model not in config.models:
            raise loaded.error(f"ledger {name!r}: unknown model {ledger.model!r} (models: "
                               f"{', '.join(config.models) or 'none'})", *where, "model")
        model = config.models[ledger.model]
        if ledger.entity not in model.dimensions and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ledger.entity):
            raise loaded.error(f"ledger {name!r}: entity {ledger.entity!r} is not a dimension of model "
                               f"{ledger.model!r} ({', '.join(model.dimensions) or 'none'}) nor a column name",
                               *where, "entity")
        _check_names(loaded, name, ledger)
        for bucket, spec in ledger.buckets.items():
            if spec.measure is not None and spec.measure not in model.measures:
                raise loaded.error(f"ledger {name!r}: bucket {bucket!r} names unknown measure {spec.measure!r} of "
                                   f"model {ledger.model!r} ({', '.join(model.measures) or 'none'})",
                                   *where, "buckets", bucket, "measure")
        _check_formulas(loaded, name, ledger)
        table = ledger.table_name(name)
        taken = {m.table for m in config.models.values()} | {r.table or n for n, r in config.rollups.items()}
        if table in taken or table in tables or table.lower().startswith(INTERNAL):
            raise loaded.error(f"ledger {name!r}: table {table!r} is already used (a model, rollup or ledger "
                               "table, or Tally's own): set `table:`", *where)
        tables[table] = name
        _check_types(loaded, name)


def _check_names(loaded: LoadedConfig, name: str, ledger: Ledger) -> None:
    where = ("ledgers", name)
    if not cli_name(name):
        raise loaded.error(f"ledger name {name!r}: use letters, digits and _ only", *where)
    seen = {ledger.entity}
    for kind, names in (("buckets", ledger.buckets), ("formulas", ledger.formulas)):
        for column in names:
            if column in seen or column.startswith("_") or not cli_name(column) or not where_name(column):
                raise loaded.error(f"ledger {name!r}: {kind[:-1]} name {column!r} repeats another name or is not "
                                   "a plain name (letters, digits and _, not starting with _)", *where, kind, column)
            seen.add(column)


def _check_formulas(loaded: LoadedConfig, name: str, ledger: Ledger) -> None:
    """Formulas use buckets and earlier formulas only (so no cycle can form)."""
    known = set(ledger.buckets)
    for formula, text in ledger.formulas.items():
        for ref in parse_formula(text).references:
            if ref not in known:
                raise loaded.error(f"ledger {name!r}: formula {formula!r} uses unknown bucket {ref!r} "
                                   f"(buckets and formulas above it: {', '.join(sorted(known))})",
                                   "ledgers", name, "formulas", formula)
        known.add(formula)


def _check_types(loaded: LoadedConfig, name: str) -> None:
    """Buckets and formulas type-checked as measures and metrics are, against the declared columns."""
    from tally.project.exprtypes import TypeClash, check_formulas, check_measures, declared_kinds

    config = engine_config(loaded.config, name)
    ledger = loaded.config.ledgers[name]
    try:
        kinds = check_measures(config, ledger.model, declared_kinds(loaded.config).get)
        check_formulas(config, kinds)
    except TypeClash as clash:
        path = clash.path
        if path[:1] == ("models",) and len(path) > 3:
            path = ("ledgers", name, "buckets", path[3])
        elif path[:1] == ("metrics",):
            path = ("ledgers", name, "formulas", *path[1:])
        raise loaded.error(f"ledger {name!r}: {clash.message}", *path) from None
