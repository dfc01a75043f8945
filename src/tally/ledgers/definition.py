"""A ledger as refresh and lookups see it: its table, entity, columns, and the engine that computes it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from tally.errors import ConfigError, NotFoundError
from tally.project.ledgers import ROWS, Ledger, engine_config
from tally.project.references import loaded_tables
from tally.warehouse.internal import read_state


@dataclass(frozen=True)
class LedgerDef:
    name: str
    ledger: Ledger
    table: str
    engine: object = None   # an Engine over `engine_config` (see `definitions`): buckets as measures

    @property
    def model(self) -> str:
        return self.ledger.model

    @property
    def entity(self) -> str:
        return self.ledger.entity

    @property
    def columns(self) -> list[str]:
        """Value columns: buckets, then formulas."""
        return self.ledger.columns()

    @property
    def stored_columns(self) -> list[str]:
        """Every column of the table: the entity, the values, the row count."""
        return [self.entity, *self.columns, ROWS]

    @property
    def related(self) -> list[str]:
        """The ledger's model and the models it joins."""
        return list(self.engine.config.models)

    @cached_property
    def entity_type(self):
        """The Ibis type of the entity's values (how an entity given as text is read)."""
        from tally.engine.entities import dimension_type

        return dimension_type(self.engine, self.model, self.entity)

    @cached_property
    def fingerprint(self) -> str:
        """Changes with anything that shapes the stored numbers (then a full refresh is due)."""
        config = self.engine.config
        text = json.dumps({"ledger": self.ledger.model_dump(), "table": self.table,
                           "models": {k: m.model_dump() for k, m in config.models.items()}},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def load_stamps(self) -> dict[str, str | None]:
        """Per related model without a change time: its table's last load stamp (None: nothing stamps
        it, so its rows may change unseen; "" before any load). A moved stamp means a full refresh."""
        from tally.engine.entities import change_checks

        engine = self.engine
        watched = {owner for _, _, owner in change_checks(engine, self.model)}
        loaded = loaded_tables(engine.config)
        has_state = engine.warehouse.has_table("_tally_state")
        found = {}
        for model in sorted(set(self.related) - watched):
            table = engine.catalog.model(model).table
            if table not in loaded:
                found[model] = None
            else:
                found[model] = (read_state(engine.warehouse, f"table:{table}") or "") if has_state else ""
        return found


def definitions(project, names=None, *, missing=ConfigError) -> list[LedgerDef]:
    """The ledgers to work on, by name or all; an unknown name raises `missing`."""
    config = project.config
    if names is not None and not isinstance(names, (str, list, tuple)):
        raise ConfigError(f"ledger names must be a name or a list of names, not {names!r}")
    chosen = [names] if isinstance(names, str) else list(names or config.ledgers)
    unknown = [n for n in chosen if n not in config.ledgers]
    if unknown:
        known = ", ".join(config.ledgers) or "none"
        raise missing(f"unknown ledger(s) {', '.join(map(str, unknown))} (ledgers: {known})")
    return [definition(project, name) for name in chosen]


def definition(project, name: str) -> LedgerDef:
    """One ledger's definition, its engine made once per project (compiled queries are kept on it)."""
    cache = project.__dict__.setdefault("_ledger_defs", {})
    if name not in cache:
        if name not in project.config.ledgers:
            raise NotFoundError(f"unknown ledger {name!r} (ledgers: {', '.join(project.config.ledgers) or 'none'})")
        from tally.engine.engine import Engine

        config = engine_config(project.config, name)
        engine = Engine(config, project.warehouse)
        engine.locate = project.loaded.error
        ledger = project.config.ledgers[name]
        cache[name] = LedgerDef(name, ledger, ledger.table_name(name), engine)
    return cache[name]
