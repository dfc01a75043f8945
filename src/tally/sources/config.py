"""The `sources:` section: what every connector shares (table, keys, cursor, types, cleaning, checks)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tally.errors import ConfigError, ExpressionError
from tally.project.expr import parse_row_expr
from tally.project.schedules import Schedule, parse_duration
from tally.sources.regex import regex_problem
from tally.warehouse.types import arrow_type



class Check(BaseModel):
    """One rule rows must pass; exactly one key is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    not_null: list[str] | None = None
    unique: list[str] | None = None
    min: dict[str, float] | None = None
    max: dict[str, float] | None = None
    accepted_values: dict[str, list[Any]] | None = None
    regex: dict[str, str] | None = None
    expression: str | None = None
    exists_in: dict[str, str] | None = None   # {column: "table.column"}

    @model_validator(mode="after")
    def _one_rule(self) -> Check:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a check has exactly one rule of {', '.join(type(self).model_fields)}; got {given}")
        if self.expression is not None:
            try:
                parse_row_expr(self.expression)
            except ExpressionError as exc:
                raise ValueError(exc.message) from None
        for column, pattern in (self.regex or {}).items():
            problem = regex_problem(pattern)
            if problem:
                raise ValueError(f"regex for {column!r} {problem}")
        for column, bound in {**(self.min or {}), **(self.max or {})}.items():
            if not math.isfinite(bound):   # NaN compares false with everything: the check would pass every row
                raise ValueError(f"{self.rule} for {column!r} must be a finite number, not {bound}")
        if self.exists_in:
            for column, target in self.exists_in.items():
                if target.count(".") != 1:
                    raise ValueError(f"exists_in for {column!r}: write `table.column`, not {target!r}")
        return self

    @property
    def rule(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


class SourceConfig(BaseModel):
    """Options every source has; the connector's own options are validated by the connector."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str
    table: str
    primary_key: list[str] = []
    cursor: str | None = None
    columns: dict[str, str] = {}
    rename: dict[str, str] = {}
    trim: bool = True
    defaults: dict[str, Any] = {}
    formats: dict[str, str] = {}          # column -> strptime format for dates / timestamps
    data_timezone: str = "UTC"            # zone of timestamps that carry none
    checks: list[Check] = []
    schedule: Schedule | None = None      # when `tally scheduler` / `tally serve` loads it (tally.jobs)
    on_new_columns: Literal["ignore", "add", "fail"] = "ignore"
    # how far past the load's own time a date/timestamp cursor may be; later rows wait for a later load
    cursor_tolerance: str | None = "1h"
    description: str | None = Field(default=None)

    @field_validator("columns")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, kind in value.items():
            try:
                arrow_type(kind)
            except Exception as exc:
                raise ValueError(f"column {column!r}: {getattr(exc, 'reason', exc)}") from None
        return value

    @field_validator("data_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):   # OSError: a folder (America) or a name too long
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Istanbul)") from None
        return value

    @field_validator("rename")
    @classmethod
    def _one_name_each(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for source, target in value.items():
            if target in seen:   # one of the two columns would be silently dropped
                raise ValueError(f"{seen[target]!r} and {source!r} are both renamed to {target!r}")
            seen[target] = source
        return value

    @field_validator("cursor_tolerance")
    @classmethod
    def _tolerance(cls, value: str | None) -> str | None:
        if value is not None and str(value).strip().lower() != "none":
            parse_duration(value)
        return value

    @property
    def cursor_slack(self) -> dt.timedelta | None:
        """`cursor_tolerance` as a duration; None when cursors are not limited (`none`)."""
        if self.cursor_tolerance is None or str(self.cursor_tolerance).strip().lower() == "none":
            return None
        return dt.timedelta(seconds=parse_duration(self.cursor_tolerance))

    @model_validator(mode="after")
    def _keys_declared(self) -> SourceConfig:
        if self.columns:
            for name in [*self.primary_key, *([self.cursor] if self.cursor else [])]:
                if name not in self.columns:
                    raise ValueError(f"{name!r} (primary key / cursor) must be one of the declared columns")
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The connector-specific keys."""
        return dict(self.model_extra or {})


def source_configs(loaded) -> dict[str, SourceConfig]:
    """Every source of the project validated, or a ConfigError naming the line."""
    from tally.sources.checktypes import Problem, check_source
    from tally.sources.connectors import connector   # the registry: a connector module loads its client lazily

    configs = {}
    for name, raw in loaded.config.sources.items():
        try:
            config = SourceConfig.model_validate(raw)
            connector(config.kind).Options.model_validate(config.options)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ("sources", name, *first["loc"])
            key = first["loc"][-1] if first["loc"] else ""
            message = (f"unknown key {key!r}" if first["type"] == "extra_forbidden"
                       else first["msg"].removeprefix("Value error, "))
            raise loaded.error(f"source {name!r}: {'.'.join(map(str, first['loc']))}: {message}".replace(": : ", ": "),
                               *loc) from None
        except ConfigError as exc:
            raise loaded.error(f"source {name!r}: {exc.reason}", "sources", name, "kind") from None
        try:
            check_source(config)
        except Problem as exc:
            raise loaded.error(f"source {name!r}: {exc.message}", "sources", name, *exc.path) from None
        configs[name] = config
    return configs
