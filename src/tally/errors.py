"""Typed errors for users: each says what is wrong, where, and how to fix it."""

from __future__ import annotations


class TallyError(Exception):
    """Base of every error Tally reports to a user (exit code 2 unless said otherwise)."""

    exit_code = 2
    code = "error"
    http_status = 422   # an answer over HTTP: a request Tally understood but cannot serve

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(TallyError):
    """The project folder or tally.yml is invalid; carries the file and line."""

    code = "bad_config"

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.file, self.line, self.reason = file, line, message
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class QueryError(TallyError):
    """A query asks for something the model can't answer (unknown metric, bad date, fan-out)."""

    code = "bad_query"


class ExpressionError(TallyError):
    """An expression (measure, filter, --where) is not valid or uses something not allowed."""

    code = "bad_expression"


class NotFoundError(TallyError):
    """Something asked for by name or key does not exist (an unknown ledger, an entity with no rows)."""

    code = "not_found"
    http_status = 404


class WarehouseError(TallyError):
    """The warehouse can't be reached or refused an operation."""

    exit_code = 1
    code = "warehouse_error"
    http_status = 503


class SourceError(TallyError):
    """A source could not be read or loaded (missing file, missing column, HTTP failure)."""

    exit_code = 1
    code = "source_error"
    http_status = 502


class FileError(TallyError):
    """A file or folder can't be read or written (missing folder, permissions, disk full)."""

    exit_code = 1
    code = "file_error"
    http_status = 500


class InternalError(TallyError):
    """Something failed that no check foresaw: a bug to report (the cause is chained for --debug)."""

    exit_code = 1
    code = "internal_error"
    http_status = 500


def api_boundary(fn):
    """Let only TallyError out of a public API function: anything else becomes an InternalError
    naming its type and first line (secrets redacted), chained to the original."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TallyError:
            raise
        except Exception as exc:
            raise internal_error(exc, f"{fn.__name__}()") from exc
    return wrapper


def internal_error(exc: Exception, where: str) -> TallyError:
    """A FileError for an OSError (the machine's state, not a bug), else an InternalError: the
    exception's type and first line, secrets redacted."""
    from tally.redaction import redact_text

    if isinstance(exc, OSError) and exc.strerror:
        path = f": {exc.filename}" if exc.filename else ""
        return FileError(redact_text(f"{where}: {exc.strerror}{path}"))
    lines = str(exc).strip().splitlines()
    first = redact_text(lines[0] if lines else "(no message)")
    return InternalError(f"internal error in {where}: {type(exc).__name__}: {first} "
                         "(a bug in Tally: please report it; --debug shows where)")
