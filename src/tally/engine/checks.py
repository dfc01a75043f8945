"""Before a query compiles: its `--where` and the model expressions it uses, checked against the
types of the warehouse tables (what tally.yml does not declare is known only there)."""

from __future__ import annotations

import sqlglot.expressions as exp

from tally.errors import ConfigError, ExpressionError, QueryError
from tally.project.expr import column_name, parse_row_expr
from tally.project.exprtypes import (ANY, TypeClash, check_measures, check_where, dimension_kinds, models_behind,
                                    warehouse_kind)


def check_query(engine, spec) -> None:
    """Refuse a type clash in what `spec` reads, with one line, before any SQL is built."""
    refs = engine.catalog.base_measures(spec.metrics)
    models = list(dict.fromkeys(ref.model for ref in refs))
    wanted = set(spec.by)
    if spec.where:
        wanted |= set(parse_row_expr(spec.where).references)
    kinds = {}
    try:
        for model in models:
            dims = [d for d in engine.catalog.model(model).dimensions if d in wanted]
            kinds[model] = _cached(engine, ("dimensions", model, tuple(dims)),
                                   lambda m=model, d=dims: dimension_kinds(engine.config, m, _tables(engine), d))
            names = tuple(ref.name for ref in refs if ref.model == model)
            _cached(engine, ("measures", model, names),
                    lambda m=model, n=names: check_measures(engine.config, m, _tables(engine), n))
        for name, rollup in engine.config.rollups.items():   # a rollup's filter is tally.yml's, not --where
            behind = models_behind(engine.config, rollup.metrics, owner(engine)) if rollup.where else set()
            for model in sorted(behind & set(models)):
                _cached(engine, ("rollup", name, model),
                        lambda r=rollup, n=name, m=model: _rollup_where(engine, n, r, m))
    except TypeClash as clash:
        locate = getattr(engine, "locate", None)
        raise (locate(clash.message, *clash.path) if locate else ConfigError(clash.message)) from None
    for name in spec.by:
        _not_a_dimension(engine, models, name, "--by")
    if spec.where:
        _check_where(engine, spec.where, models, kinds)


def _not_a_dimension(engine, models: list[str], name: str, option: str) -> None:
    """A column of a model's table that is no dimension: say how to declare it."""
    for model_name in models:
        model = engine.catalog.model(model_name)
        if name in model.dimensions or "." in name:
            continue
        if name in engine.warehouse.table(model.table).columns:
            raise QueryError(f"{option}: {name!r} is a column of table {model.table!r} but not a dimension of "
                             f"model {model_name!r}; to filter or group by it, declare it in tally.yml: "
                             f"`models: {{{model_name}: {{dimensions: {{{name}: {name}}}}}}}`")


def _check_where(engine, text: str, models: list[str], kinds: dict) -> None:
    tree = parse_row_expr(text).tree
    for model_name in models:
        model = engine.catalog.model(model_name)
        for column in tree.find_all(exp.Column):
            name = column_name(column)
            if name in model.dimensions:
                continue
            if column.this.args.get("quoted") and not column.table:
                raise QueryError(f"--where: \"{name}\" in double quotes is a name, and no dimension is called so; "
                                 f"text values take single quotes: '{name}'")
            _not_a_dimension(engine, [model_name], name, "--where")
        try:
            check_where(text, lambda dim, k=kinds.get(model_name, {}): k.get(dim, ANY))
        except ExpressionError as exc:
            raise ExpressionError(f"--where: {exc.message}") from None


def owner(engine) -> dict[str, str]:
    return {m: name for name, model in engine.config.models.items() for m in model.measures}


def _rollup_where(engine, name: str, rollup, model: str) -> bool:
    refs = parse_row_expr(rollup.where).references
    kinds = dimension_kinds(engine.config, model, _tables(engine), refs)
    try:
        check_where(rollup.where, lambda dim: kinds.get(dim, ANY))
    except ExpressionError as exc:
        raise TypeClash(("rollups", name, "where"),
                        f"rollup {name!r} (where: {rollup.where!r}): {exc.message}") from None
    return True


def _tables(engine):
    def kinds(table: str) -> dict[str, str]:
        schema = engine.warehouse.table(table).schema()
        return {name: warehouse_kind(dtype, engine.warehouse.dialect.tinyint_booleans) for name, dtype in schema.items()}
    return kinds


def _cached(engine, key, check):
    cache = engine.__dict__.setdefault("_type_checks", {})
    if key not in cache:
        cache[key] = check()
    return cache[key]
