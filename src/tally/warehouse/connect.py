"""Open an Ibis backend for a warehouse URL; the only place that knows URL schemes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import ibis

from tally.errors import ConfigError, WarehouseError
from tally.warehouse.dialects import SCHEMES, Dialect


def redact(url: str) -> str:
    """The URL with any password replaced, safe for logs and errors."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def url_scheme(url: str) -> str:
    """`postgresql+psycopg://...` -> `postgresql`."""
    return urlsplit(url).scheme.split("+")[0].lower()


def dialect_of(url: str) -> Dialect:
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        raise ConfigError(f"unsupported warehouse URL scheme {scheme!r} in {redact(url)!r} "
                          f"(use one of: {', '.join(sorted(SCHEMES))})")
    return SCHEMES[scheme]


# DuckDB settings a warehouse URL may carry (`duckdb:///w.duckdb?memory_limit=4GB&threads=2`), and
# Tally's own: the buffer budgets of an ingest's load and of a rollup build (spilled to disk beyond)
DUCKDB_SETTINGS = ("memory_limit", "threads", "temp_directory", "max_temp_directory_size")
DUCKDB_TALLY_SETTINGS = {"load_memory_limit": "1GB", "build_memory_limit": "1.5GB"}


def duckdb_settings(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(DuckDB settings, Tally settings) from a duckdb:// URL's query; ConfigError for unknown keys."""
    query = urlsplit(url).query
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"the warehouse URL {redact(url)!r} has a malformed query string "
                          "(write settings as ?name=value&name=value)") from None
    engine, tally = {}, dict(DUCKDB_TALLY_SETTINGS)
    for key, value in pairs:
        if key in DUCKDB_SETTINGS:
            engine[key] = value
        elif key in DUCKDB_TALLY_SETTINGS:
            tally[key] = value
        else:
            known = ", ".join((*DUCKDB_SETTINGS, *DUCKDB_TALLY_SETTINGS))
            raise ConfigError(f"unknown setting {key!r} in the warehouse URL {redact(url)!r} (known: {known})")
    return engine, tally


def duckdb_path(url: str, root: Path) -> str:
    """`duckdb:///file.duckdb` is relative to the project folder; `duckdb:////abs` is absolute."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if rest in ("", ":memory:", "/:memory:"):
        return ":memory:"
    path = Path(rest[1:] if rest.startswith("/") else rest)
    return str(path if path.is_absolute() else (root / path))


def open_backend(url: str, root: Path):
    """Connect to the warehouse and put the session in UTC."""
    dialect = dialect_of(url)
    try:
        if dialect.name == "duckdb":
            settings, _ = duckdb_settings(url)
            backend = ibis.duckdb.connect(duckdb_path(url, root), **settings)
        else:
            parts = urlsplit(url)
            kwargs = dict(host=parts.hostname or "localhost", user=unquote(parts.username or ""),
                          password=unquote(parts.password or ""), database=parts.path.lstrip("/") or None)
            if parts.port:
                kwargs["port"] = parts.port
            backend = getattr(ibis, dialect.name).connect(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # drivers raise many types; the user needs the reason, not the type
        raise WarehouseError(f"cannot connect to {redact(url)}: {str(exc).strip().splitlines()[0]}") from None
    backend.raw_sql(dialect.session_utc)
    return backend, dialect
