"""Warehouse layer: the only code that knows which database is behind Tally."""

from tally.redaction import redact_url as redact

__all__ = ["CompiledQuery", "Warehouse", "redact"]


def __getattr__(name: str):
    """CompiledQuery and Warehouse load Ibis: imported when first asked for, not with the package."""
    if name in ("CompiledQuery", "Warehouse"):
        from tally.warehouse import base

        return getattr(base, name)
    raise AttributeError(f"module 'tally.warehouse' has no attribute {name!r}")
