"""A query's answer: rows as an Arrow table plus what produced them (kept free of Ibis)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """Rows as an Arrow table plus what produced them."""

    table: Any   # pyarrow.Table
    meta: dict = field(default_factory=dict)

    def to_pylist(self) -> list[dict]:
        return self.table.to_pylist()
