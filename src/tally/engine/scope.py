"""A model's rows with the joins a query needs, and names resolved to Ibis columns."""

from __future__ import annotations

import difflib

from tally.engine.translate import to_ibis
from tally.errors import QueryError
from tally.project.expr import parse_row_expr
from tally.project.schema import Join, ProjectConfig


PROBE = "__tally_probe"


class ModelScope:
    """Resolves `col` and `join.col` for one model, adding only the joins that are used."""

    def __init__(self, config: ProjectConfig, warehouse, model_name: str, base=None):
        self.config = config
        self.warehouse = warehouse
        self.name = model_name
        self.model = config.models[model_name]
        self.base = base if base is not None else warehouse.table(self.model.table)
        self.used: dict[str, tuple] = {}   # join alias -> (ibis table, predicates), in join order
        self._resolving: set[str] = set()

    def column(self, ref: str):
        """The Ibis column for `col` or `join.col`."""
        if "." in ref:
            alias, col = ref.split(".", 1)
            table = self._join_table(alias)
            return self._pick(table, col, f"{self.config.models[self.model.joins[alias].model].table}")
        return self._pick(self.base, ref, self.model.table)

    def value(self, text: str):
        """An Ibis value for a row expression of this model."""
        return to_ibis(parse_row_expr(text).tree, self.column)

    def condition(self, text: str):
        """A row filter; a bare 0/1 column (MySQL's BOOL is TINYINT) counts as a boolean."""
        value = self.value(text)
        return value != 0 if value.type().is_integer() else value

    def _pick(self, table, col: str, table_name: str):
        if col not in table.columns:
            hint = difflib.get_close_matches(col, table.columns, n=1)
            raise QueryError(f"model {self.name!r}: column {col!r} not found in table {table_name!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return table[col]

    def _join_table(self, alias: str):
        if alias not in self.model.joins:
            raise QueryError(f"model {self.name!r} has no join named {alias!r} "
                             f"(joins: {', '.join(self.model.joins) or 'none'})")
        if alias not in self.used:
            join = self.model.joins[alias]
            target = self.warehouse.table(self.config.models[join.model].table).view()
            if alias in self._resolving:
                raise QueryError(f"model {self.name!r}: join {alias!r} refers to itself through its condition")
            self._resolving.add(alias)
            if join.on is not None:
                self.used[alias] = (target, [self.column(local) == target[remote]
                                             for local, remote in join.keys.items()])
            else:
                self.used[alias] = self._range_join(join, target)  # may join what the range uses first
            self._resolving.discard(alias)
        return self.used[alias][0]

    def _range_join(self, join: Join, target) -> tuple:
        """(bands, predicates) for a join on `from <= value < to`.

        The band is looked up once per distinct value (a few hundred desi x quantity products, not
        millions of rows) and joined back on equality: databases run a range condition over every
        row as a slow inequality join, an equality as a hash join. The same rows either way, since
        a row's bands depend on its value alone.
        """
        value = self.value(join.range)
        probes = self.joined().select(**{PROBE: value}).distinct()
        bands = probes.join(target, [target[join.from_] <= probes[PROBE], probes[PROBE] < target[join.to]])
        return bands, [value == bands[PROBE]]

    def joined(self):
        """The base table left-joined to every join used so far (many-to-one, so no fan-out)."""
        relation = self.base
        for alias, (target, predicates) in self.used.items():
            relation = relation.left_join(target, predicates, rname=f"__{alias}__{{name}}")
        return relation
