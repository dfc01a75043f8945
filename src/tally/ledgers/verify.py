"""Ledger verify: every stored entity row recomputed live and compared, exactly (to the cent)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from tally.ledgers import live, store
from tally.ledgers.definition import LedgerDef, definitions
from tally.project.ledgers import ROWS
from tally.rollups.verify import Mismatch


def verify(project, names=None) -> dict[str, list[Mismatch]]:
    """Mismatches per ledger (an empty list when stored equals live), in the shape rollup verify reports."""
    return {ldef.name: verify_one(project.warehouse, ldef) for ldef in definitions(project, names)}


def verify_one(warehouse, ldef: LedgerDef) -> list[Mismatch]:
    """Stored and live rows matched by entity in Arrow; only values that may differ reach Python."""
    if not warehouse.has_table(ldef.table) or store.load_state(warehouse, ldef) is None:
        return [Mismatch(ldef.name, "-", "-", {}, "(table)", "missing", "run `tally ledger refresh`")]
    joined = _joined(store.stored(warehouse, ldef), live.values(ldef), ldef)
    have, want = pc.is_valid(joined[ROWS + STORED]), pc.is_valid(joined[ROWS + LIVE])
    found = [Mismatch(ldef.name, "-", "-", {ldef.entity: row[ldef.entity]}, "(row)",
                      "present" if row[ROWS + STORED] is not None else "missing",
                      "present" if row[ROWS + LIVE] is not None else "missing")
             for row in joined.filter(pc.invert(pc.and_(have, want))).to_pylist()]
    both = joined.filter(pc.and_(have, want))
    for column in ldef.columns:
        a, b = both[column + STORED], both[column + LIVE]
        for row in both.filter(_maybe_differ(a, b)).select([ldef.entity, column + STORED, column + LIVE]).to_pylist():
            if not same(row[column + STORED], row[column + LIVE]):
                found.append(Mismatch(ldef.name, "-", "-", {ldef.entity: row[ldef.entity]}, column,
                                      row[column + STORED], row[column + LIVE]))
    return sorted(found, key=lambda m: (str(m.key), m.metric))


STORED, LIVE = "__stored", "__live"


def _joined(stored: pa.Table, computed: pa.Table, ldef: LedgerDef) -> pa.Table:
    """Stored and live rows side by side by entity (a full outer join: a row on one side only shows)."""
    values = [c for c in ldef.stored_columns if c != ldef.entity]
    key = stored.schema.field(ldef.entity).type
    if computed.schema.field(ldef.entity).type != key:
        computed = computed.set_column(computed.schema.get_field_index(ldef.entity), ldef.entity,
                                       computed[ldef.entity].cast(key))
    left = stored.select([ldef.entity, *values]).rename_columns([ldef.entity, *(v + STORED for v in values)])
    right = computed.select([ldef.entity, *values]).rename_columns([ldef.entity, *(v + LIVE for v in values)])
    return left.join(right, keys=ldef.entity, join_type="full outer")


def _maybe_differ(a, b):
    """True where two columns may hold different values (exactly equal elsewhere); every row when
    their types can't be compared in Arrow (then Python's `same` decides)."""
    try:
        if a.type != b.type:
            b = b.cast(a.type)
        unequal = pc.fill_null(pc.not_equal(a, b), False)
        return pc.or_(unequal, pc.xor(pc.is_null(a), pc.is_null(b)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([True] * len(a))


def same(a, b) -> bool:
    """Equal values; decimals by value (a stored 10.50 is a live 10.5), floats to 1e-9 relative."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    if isinstance(a, (Decimal, int)) and isinstance(b, (Decimal, int)):
        return Decimal(a) == Decimal(b)
    return a == b
