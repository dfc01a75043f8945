"""Refuse model, metric and dimension names the CLI could not take back (`--by net revenue`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlglot.expressions as sge

from tally.errors import ExpressionError
from tally.project.expr import parse_row_expr

if TYPE_CHECKING:
    from tally.project.loader import LoadedConfig

ALLOWED = "letters, digits and _ only (like net_revenue)"


def cli_name(name: str) -> bool:
    """What `tally query` reads as one name: metrics and --by split at commas and spaces, --order takes a
    leading `-` as descending (tally.engine.spec); letters, digits and `_` pass through all of them."""
    return isinstance(name, str) and name.replace("_", "").isalnum()


def where_name(name: str) -> bool:
    """Whether `--where` reads `name` as that column (not an SQL word like `select`, `case` or `true`)."""
    try:
        tree = parse_row_expr(f"{name} = 1").tree
    except (ExpressionError, ValueError, RecursionError):   # sqlglot raises ValueError for some words (`grant`)
        return False
    return isinstance(tree, sge.EQ) and isinstance(tree.this, sge.Column) and tree.this.name == name


def check_names(loaded: LoadedConfig) -> None:
    """Every model, measure, metric and dimension name is one the CLI can query by."""
    config = loaded.config
    named = [("model", name, ("models", name)) for name in config.models]
    for model_name, model in config.models.items():
        named += [("metric", name, ("models", model_name, "measures", name)) for name in model.measures]
        named += [("dimension", name, ("models", model_name, "dimensions", name)) for name in model.dimensions]
    named += [("metric", name, ("metrics", name)) for name in config.metrics]
    for what, name, path in named:
        if not cli_name(name):
            raise loaded.error(f"{what} name {name!r} cannot be queried from the command line: use {ALLOWED}",
                               *path)
        if what == "dimension" and not where_name(name):
            raise loaded.error(f"dimension name {name!r} is an SQL word --where cannot filter by: rename it "
                               f"(for example {name}_name)", *path)
