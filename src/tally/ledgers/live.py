"""A ledger's values computed live by the engine: for every entity, some entities, or as of a past time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.timegrid import FIRST_DATE
from tally.ledgers.definition import LedgerDef
from tally.project.ledgers import ROWS
from tally.warehouse.sqltext import sql_literal

CHUNK = 2000   # entities per query: a `where entity in (...)` far below the expression's token limit


def values(ldef: LedgerDef, entities=None, *, end: dt.datetime | None = None) -> pa.Table:
    """One row per entity (none for a NULL entity): the entity, buckets, formulas and row count, exact.

    `entities`: only these (None: all); `end`: only rows whose time is before it (an as-of answer)."""
    if entities is None:
        return _query(ldef, None, end)
    entities = sorted(entities, key=lambda v: (str(type(v)), v))
    parts = [_query(ldef, _where(ldef, entities[i:i + CHUNK]), end) for i in range(0, len(entities), CHUNK)]
    if not parts:
        return _query(ldef, _where(ldef, []), end).slice(0, 0)
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def total_rows(ldef: LedgerDef) -> int:
    """The model's rows a ledger counts (with a time and an entity), live."""
    table = ldef.engine.query([ROWS]).table
    return int(table[ROWS][0].as_py() or 0) if table.num_rows else 0


def listable(value) -> bool:
    """Whether an entity value can be named in a `where ... in (...)` (numbers and text)."""
    return isinstance(value, (int, str, Decimal)) and not isinstance(value, bool)


def _where(ldef: LedgerDef, entities: list) -> str:
    if not entities:
        return f"{ldef.entity} is null and {ldef.entity} is not null"   # no entity: no rows
    return f"{ldef.entity} in ({', '.join(sql_literal(v) if isinstance(v, str) else str(v) for v in entities)})"


def _query(ldef: LedgerDef, where: str | None, end: dt.datetime | None) -> pa.Table:
    kwargs = {"by": [ldef.entity], "where": where}
    if end is not None:   # an explicit start too: an end before the data's first day stays the end
        kwargs.update(start=FIRST_DATE + dt.timedelta(days=1), end=end)
    table = ldef.engine.query([*ldef.columns, ROWS], **kwargs).table
    table = table.select(ldef.stored_columns)
    return table.filter(pc.is_valid(table[ldef.entity]))
