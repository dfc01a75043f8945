"""The `api:` section of tally.yml: keys (hashed), CORS, request and page limits, the answer cache and
route aliases (a path and a JSON shape mapped onto a ledger lookup or listing)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HASH = re.compile(r"sha256:[0-9a-f]{64}")
PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SCOPES = ("read", "admin")


class Strict(BaseModel):
    """As in schema.py (which imports this module): unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ApiKey(Strict):
    """One API key: its SHA-256 (never the key itself) and what it may do."""

    hash: str
    scopes: list[Literal[SCOPES]] = ["read"]

    @field_validator("hash")
    @classmethod
    def _is_hash(cls, value: str) -> str:
        value = value.strip().lower()
        if not HASH.fullmatch(value):
            # never echo the value: it may be a key pasted by mistake
            raise ValueError("hash must be `sha256:` and 64 hex digits (`tally apikey create NAME` prints it)")
        return value

    @field_validator("scopes")
    @classmethod
    def _some_scope(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a key needs at least one scope: read or admin")
        return value


class Cors(Strict):
    """Browser origins allowed to call the API (none by default)."""

    origins: list[str] = []


class RouteAlias(Strict):
    """A route of your own over a ledger: `ledger_entity` (one entity, the path's one `{param}`) or
    `ledger_list` (entities, filtered and ordered), each row reshaped by `fields`."""

    path: str
    method: Literal["GET"] = "GET"
    target: Literal["ledger_entity", "ledger_list"]
    ledger: str
    fields: dict[str, str] = {}      # JSON key -> ledger field (the entity key or a bucket/formula); {} keeps all
    where: str | None = None          # ledger_list: which entities (a row expression over the ledger's fields)
    order: list[str] = []             # ledger_list: `-balance` or `balance desc`
    limit: int = Field(default=1000, ge=1)
    missing: Literal["not_found", "zeros"] = "not_found"   # ledger_entity: an entity with no rows

    @model_validator(mode="after")
    def _path_fits_target(self) -> RouteAlias:
        if not self.path.startswith("/") or "//" in self.path or "?" in self.path:
            raise ValueError(f"path {self.path!r} must start with / and hold no query string")
        params = PATH_PARAM.findall(self.path)
        if self.target == "ledger_entity" and len(params) != 1:
            raise ValueError(f"a ledger_entity route's path names the entity as one {{param}}: {self.path!r}")
        if self.target == "ledger_list" and params:
            raise ValueError(f"a ledger_list route's path takes no {{param}}: {self.path!r}")
        if self.path.startswith(("/api/", "/metrics", "/healthz", "/readyz")):
            raise ValueError(f"path {self.path!r} is Tally's own; pick another")
        return self


class ApiConfig(Strict):
    """How `tally serve` answers over HTTP."""

    keys: dict[str, ApiKey] = {}
    cors: Cors = Cors()
    max_request_bytes: int = Field(default=1_000_000, ge=1)
    max_page_size: int = Field(default=10_000, ge=1)
    cache: str = "memory"             # memory, none, or redis://host:port/db
    cache_entries: int = Field(default=10_000, ge=1)
    routes: dict[str, RouteAlias] = {}

    @field_validator("cache")
    @classmethod
    def _cache_kind(cls, value: str) -> str:
        if value in ("memory", "none") or value.startswith(("redis://", "rediss://", "unix://")):
            return value
        raise ValueError("cache must be memory, none, or a redis://host:port/db URL")
