"""Open an Ibis backend for a warehouse URL; the only place that knows URL schemes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from tally.errors import ConfigError, WarehouseError
from tally.redaction import redact_text, split_url
from tally.redaction import redact_url as redact
from tally.warehouse.dialects import SCHEMES, Dialect

__all__ = ["redact", "url_scheme", "dialect_of", "duckdb_settings", "duckdb_path", "open_backend",
           "server_credentials"]


def url_scheme(url: str) -> str:
    """`postgresql+psycopg://...` -> `postgresql`."""
    return split_url(url).scheme.split("+")[0].lower()


def server_credentials(url: str) -> dict:
    """host, port, user, password, database of a server URL; the password may hold any character
    unencoded, or come as `?password=`."""
    parts = split_url(url)
    host, _, port = parts.host_and_port.rpartition(":") if not parts.host_and_port.endswith("]") \
        else (parts.host_and_port, "", "")
    if not host:
        host, port = port, ""
    query = dict(parse_qsl(parts.query))
    kwargs = dict(host=unquote(host.strip("[]")) or "localhost", user=parts.user or query.get("user", ""),
                  password=parts.password if parts.password is not None else query.get("password", ""),
                  database=unquote(parts.path.lstrip("/")) or None)
    if port:
        if not port.isdigit():
            raise ConfigError(f"the warehouse URL {redact(url)!r} has a port that is not a number")
        kwargs["port"] = int(port)
    return kwargs


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


def _duckdb_read_only(path: str, settings: dict):
    """A read-only DuckDB connection; where this process already has the file open read-write
    (the Python API, tests), DuckDB allows only that configuration, and the process holds the
    lock anyway: then a read-write one."""
    import ibis

    try:
        return ibis.duckdb.connect(path, read_only=True, **settings)
    except Exception as exc:
        if "different configuration" not in str(exc):
            raise
    return ibis.duckdb.connect(path, **settings)


def open_backend(url: str, root: Path, read_only: bool = False):
    """Connect to the warehouse and put the session in UTC. `read_only` opens a DuckDB file
    read-only (many processes may read it at once; none may then write); a file that does not
    exist yet is then an error rather than a new empty warehouse."""
    import ibis

    dialect = dialect_of(url)
    try:
        if dialect.name == "duckdb":
            settings, _ = duckdb_settings(url)
            path = duckdb_path(url, root)
            if read_only and path != ":memory:":
                if not Path(path).exists():
                    raise WarehouseError(f"the warehouse {redact(url)} has no database file yet "
                                         "(run `tally ingest` or `tally seed` first)")
                backend = _duckdb_read_only(path, settings)
            else:
                backend = ibis.duckdb.connect(path, **settings)
        else:
            backend = getattr(ibis, dialect.name).connect(**server_credentials(url))
    except (ConfigError, WarehouseError):
        raise
    except Exception as exc:  # drivers raise many types; the user needs the reason, not the type
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WarehouseError(redact_text(f"cannot connect to {redact(url)}: {reason}", url)) from None
    backend.raw_sql(dialect.session_utc)
    return backend, dialect
