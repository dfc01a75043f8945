"""API keys (only their SHA-256 is configured), scopes, the loopback rule and the request size limit.

Free of FastAPI at import: `tally apikey create` and `tally serve` use it before any app exists."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from tally.errors import ConfigError, TallyError

KEY_PREFIX = "tally_"
LOOPBACK_NAMES = ("localhost",)


class Unauthorized(TallyError):
    """No API key, or one that matches no configured hash."""

    code = "unauthorized"
    http_status = 401


class Forbidden(TallyError):
    """A valid key without the scope the route needs."""

    code = "forbidden"
    http_status = 403


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, with a prefix that secret scanners can spot."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What tally.yml stores for a key: `sha256:` and its hex digest."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings) -> None:
    """Refuse to serve beyond this machine with no API key configured (`settings`: the `api:` section)."""
    if getattr(settings, "keys", None) or is_loopback(host):
        return
    raise ConfigError(f"--host {host}: no API key is configured, so `tally serve` listens on loopback only "
                      "(127.0.0.1); create one with `tally apikey create NAME` and paste its line under "
                      "`api: keys:` in tally.yml to serve other machines")


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def authorize(keys: dict, key: str | None, scope: str) -> str | None:
    """The name of the configured key `key` is, if it holds `scope`; None when no key is configured.
    Every configured hash is compared, in constant time, whether or not one matched before."""
    if not keys:
        return None
    if key is None:
        raise Unauthorized("an API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`")
    digest = hash_key(key).encode()
    found = None
    for name, entry in keys.items():
        if hmac.compare_digest(digest, entry.hash.encode()):
            found = (name, entry)
    if found is None:
        raise Unauthorized("the API key is not valid")
    name, entry = found
    if scope not in entry.scopes and "admin" not in entry.scopes:
        raise Forbidden(f"key {name!r} lacks the {scope!r} scope this route needs")
    return name


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes (declared or streamed) is refused with 413."""

    def __init__(self, app, limit: int, refuse):
        self.app, self.limit, self.refuse = app, limit, refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self.refuse(scope, send, self.limit)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:   # FastAPI passes an HTTPException on while it reads a body
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"the request body is over {self.limit} bytes (api.max_request_bytes)")
            return message

        await self.app(scope, counted, send)
