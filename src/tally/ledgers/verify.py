"""Ledger verify: every stored entity row recomputed live and compared, exactly (to the cent)."""

from __future__ import annotations

from decimal import Decimal

from tally.ledgers import live, store
from tally.ledgers.definition import LedgerDef, definitions
from tally.rollups.verify import Mismatch


def verify(project, names=None) -> dict[str, list[Mismatch]]:
    """Mismatches per ledger (an empty list when stored equals live), in the shape rollup verify reports."""
    return {ldef.name: verify_one(project.warehouse, ldef) for ldef in definitions(project, names)}


def verify_one(warehouse, ldef: LedgerDef) -> list[Mismatch]:
    if not warehouse.has_table(ldef.table) or store.load_state(warehouse, ldef) is None:
        return [Mismatch(ldef.name, "-", "-", {}, "(table)", "missing", "run `tally ledger refresh`")]
    stored = {row[ldef.entity]: row for row in store.stored(warehouse, ldef).to_pylist()}
    computed = {row[ldef.entity]: row for row in live.values(ldef).to_pylist()}
    found = []
    for key in sorted(set(stored) | set(computed), key=lambda v: (str(type(v)), v)):
        have, want = stored.get(key), computed.get(key)
        if have is None or want is None:
            found.append(Mismatch(ldef.name, "-", "-", {ldef.entity: key}, "(row)",
                                  "missing" if have is None else "present", "present" if want else "missing"))
            continue
        for column in ldef.columns:
            if not same(have[column], want[column]):
                found.append(Mismatch(ldef.name, "-", "-", {ldef.entity: key}, column, have[column], want[column]))
    return found


def same(a, b) -> bool:
    """Equal values; decimals by value (a stored 10.50 is a live 10.5), floats to 1e-9 relative."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    if isinstance(a, (Decimal, int)) and isinstance(b, (Decimal, int)):
        return Decimal(a) == Decimal(b)
    return a == b
