"""Warehouse layer: the only code that knows which database is behind Tally."""

from tally.redaction import redact_url as redact

__all__ = ["CompiledQuery", "Warehouse", "redact"]


def __getattr__(name: str):
    """Warehouse loads Ibis: imported when first asked for, not with the package."""
    if name == "CompiledQuery":
        from tally.warehouse.rawsql import CompiledQuery

        return CompiledQuery
    if name == "Warehouse":
        from tally.warehouse.base import Warehouse

        return Warehouse
    raise AttributeError(f"module 'tally.warehouse' has no attribute {name!r}")
