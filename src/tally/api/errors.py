"""Every error as JSON `{"error": {"code", "message"}}`: TallyErrors by their `http_status`, bad
requests 400, anything unforeseen 500 with a one-line message (the traceback, redacted, only in the log)."""

from __future__ import annotations

import json
import logging
import re
import traceback

from pydantic import BaseModel

from tally.errors import TallyError
from tally.redaction import redact_text

log = logging.getLogger("tally.api")

# the core's messages name `tally query`'s options; over HTTP the same values are these parameters
_CLI_OPTION = re.compile(r"(?<![\w-])--(from|to|where|last|period|as-of|order|limit|grain|timezone|compare|by)\b")

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 406: "not_acceptable", 413: "request_too_large",
                415: "unsupported_media_type", 422: "unprocessable", 429: "too_many_requests",
                500: "internal_error", 501: "not_implemented", 503: "unavailable"}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False).encode()


def response(status: int, code: str, message: str, headers=None):
    from starlette.responses import Response

    return Response(body(code, message), status_code=status, media_type="application/json", headers=headers)


def install(app) -> None:
    """Register the handlers on a FastAPI app."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def tally_error(request, exc: TallyError):
        message = api_words(redact_text(exc.message))
        if exc.http_status >= 500 and exc.code in ("internal_error", "file_error"):
            # a bug (or the machine): its traceback, redacted, for whoever reads the server log
            log.error("error on %s %s: %s", request.method, request.url.path,
                      redact_text("".join(traceback.format_exception(exc))))
            message = message.replace("--debug shows where", "the server log has the details")
        return response(exc.http_status, exc.code, message)

    async def http_error(request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else STATUS_CODES.get(exc.status_code, "error")
        return response(exc.status_code, STATUS_CODES.get(exc.status_code, "error"), message,
                        headers=getattr(exc, "headers", None))

    async def invalid(request, exc: RequestValidationError):
        errors = exc.errors()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json" and any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors):
            # FastAPI reads a body of another content type (curl -d's form type) as no JSON at all
            return response(400, "bad_request", f"the body must be a JSON object sent with `Content-Type: "
                                                f"application/json` (not {kind or 'no content type'})")
        return response(400, "bad_request", validation_message(errors))

    app.add_exception_handler(TallyError, tally_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


def api_words(message: str) -> str:
    """`--from '2026-13-45' is not a date` as `from '2026-13-45' ...`: the parameter's name over HTTP."""
    return _CLI_OPTION.sub(lambda match: match.group(1).replace("-", "_"), message)


def validation_message(errors) -> str:
    """`query.limit: Input should be a valid integer; body.metrics: Field required` (values not echoed)."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


class CatchAll:
    """ASGI middleware: an exception no handler took becomes a 500 in the error shape, logged
    (redacted); the client sees no traceback. Outermost, so nothing re-raises it to the server."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:   # the last line of defence: one line out, the details to the log
            log.error("unexpected error on %s %s: %s", scope.get("method"), scope.get("path"),
                      redact_text("".join(traceback.format_exception(exc))))
            if started:
                raise
            await response(500, "internal_error", f"internal error: {type(exc).__name__} "
                           "(the server log has the details)")(scope, receive, send)
