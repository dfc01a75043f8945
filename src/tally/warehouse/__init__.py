"""Warehouse layer: the only code that knows which database is behind Tally."""

from tally.warehouse.base import CompiledQuery, Warehouse
from tally.warehouse.connect import redact

__all__ = ["CompiledQuery", "Warehouse", "redact"]
