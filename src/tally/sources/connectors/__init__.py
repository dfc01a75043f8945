"""Connector registry: kind -> module. Modules load only when a source of that kind runs."""

from __future__ import annotations

import importlib
from types import ModuleType

from tally.errors import ConfigError

REGISTRY = {
    "csv": "tally.sources.connectors.csv_files",
    "excel": "tally.sources.connectors.excel_files",
    "parquet": "tally.sources.connectors.parquet_files",
    "json": "tally.sources.connectors.json_files",
    "ndjson": "tally.sources.connectors.json_files",
    "http": "tally.sources.connectors.http_api",
    "sql": "tally.sources.connectors.sql_database",
    "mongodb": "tally.sources.connectors.mongodb",
}


def connector(kind: str) -> ModuleType:
    """The connector module for a source kind (it has `Options`, `CAPABILITIES` and `read`)."""
    if kind not in REGISTRY:
        raise ConfigError(f"unknown source kind {kind!r} (kinds: {', '.join(sorted(REGISTRY))})")
    return importlib.import_module(REGISTRY[kind])
