"""The shape of tally.yml as frozen pydantic models, validated once at load."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tally.errors import ExpressionError
from tally.project.api_config import ApiConfig
from tally.project.expr import Expr, parse_formula, parse_row_expr
from tally.project.ledgers import Ledger
from tally.project.schedules import Jobs, Schedule

AGGREGATIONS = ("sum", "count", "count_distinct", "avg", "min", "max")
FORMATS = ("number", "integer", "money", "percent")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Strict(BaseModel):
    """Base: unknown keys are errors, values are immutable after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _row_expr(value: str) -> str:
    try:
        parse_row_expr(value)
    except ExpressionError as exc:
        raise ValueError(exc.message) from None
    return value


class Currency(Strict):
    code: str = "USD"
    symbol: str = "$"


class Join(Strict):
    """A many-to-one join: `on` equal keys, or `range` falling in [from, to) of the target."""

    model: str
    on: str | list[str] | dict[str, str] | None = None
    range: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Join:
        if (self.on is None) == (self.range is None):
            raise ValueError("a join needs exactly one of `on` (equal keys) or `range` (with `from` and `to`)")
        if self.range is not None:
            _row_expr(self.range)
            if not (self.from_ and self.to):
                raise ValueError("a range join needs `from` and `to`: the target's bound columns")
        return self

    @property
    def keys(self) -> dict[str, str]:
        """Local column -> target column, for an equality join."""
        if isinstance(self.on, str):
            return {self.on: self.on}
        if isinstance(self.on, list):
            return {key: key for key in self.on}
        return dict(self.on or {})


class Dimension(Strict):
    expr: str
    label: str | None = None

    _check = field_validator("expr")(classmethod(lambda cls, v: _row_expr(v)))


class Measure(Strict):
    """One aggregation over a row expression, with an optional row filter."""

    sum: str | None = None
    count: str | None = None
    count_distinct: str | None = None
    avg: str | None = None
    min: str | None = None
    max: str | None = None
    where: str | None = None
    label: str | None = None
    format: Literal[FORMATS] = "number"

    @model_validator(mode="after")
    def _one_aggregation(self) -> Measure:
        given = [name for name in AGGREGATIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a measure needs exactly one of {', '.join(AGGREGATIONS)}; got {given or 'none'}")
        if self.value == "*" and self.aggregation != "count":
            raise ValueError(f"`*` only counts rows (`count: \"*\"`); {self.aggregation} needs a column or expression")
        if self.value != "*":
            _row_expr(self.value)
        if self.where is not None:
            _row_expr(self.where)
        return self

    @property
    def aggregation(self) -> str:
        return next(name for name in AGGREGATIONS if getattr(self, name) is not None)

    @property
    def value(self) -> str:
        return str(getattr(self, self.aggregation))

    @property
    def additive(self) -> bool:
        """Sums and counts add up across periods and groups; the rest do not."""
        return self.aggregation in ("sum", "count")


class Metric(Strict):
    """A derived metric: arithmetic over other metrics, computed after aggregation."""

    formula: str
    label: str | None = None
    format: Literal[FORMATS] = "number"

    @field_validator("formula", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> str:
        try:
            parse_formula(str(value))
        except ExpressionError as exc:
            raise ValueError(exc.message) from None
        return str(value)

    @property
    def expr(self) -> Expr:
        return parse_formula(self.formula)


class Model(Strict):
    table: str
    time: str | None = None
    updated: str | None = None      # change-time column: rows touched since a rollup build are found by it
    primary_key: list[str] = []
    joins: dict[str, Join] = {}
    dimensions: dict[str, Dimension] = {}
    measures: dict[str, Measure] = {}

    @field_validator("dimensions", mode="before")
    @classmethod
    def _short_dimensions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"expr": str(v)} if isinstance(v, (str, int)) else v for k, v in value.items()}
        return value


ROLLUP_GRAINS = ("day", "week", "month", "quarter", "year")


class Rollup(Strict):
    """Metrics stored per period and per level in a report table, refreshed incrementally."""

    metrics: list[str]
    grains: list[Literal[ROLLUP_GRAINS]] = ["day", "week", "month", "quarter", "year"]
    by: list[str] = []
    where: str | None = None
    timezone: str | None = None
    table: str | None = None
    category: str | None = None     # groups rollups for `--category` (user, business, system, financial)
    growth: bool = False            # add m_previous / m_change_pct columns (period over period)
    schedule: Schedule | None = None   # refreshed by the scheduler (tally.jobs); zone: its own, else `timezone`

    @field_validator("where")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        return _row_expr(value) if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError, OSError):   # OSError: a folder (America) or a name too long
                raise ValueError(f"unknown timezone {value!r}") from None
        return value


class Seed(Strict):
    """A lookup file in the project folder, loaded into the warehouse as a table."""

    path: str
    columns: dict[str, str] = {}
    table: str | None = None


class ProjectConfig(Strict):
    name: str
    timezone: str = "UTC"
    week_start: Literal[WEEKDAYS] = "monday"
    currency: Currency = Currency()
    warehouse: str = "duckdb:///warehouse.duckdb"
    profiles: dict[str, dict[str, Any]] = {}
    seeds: dict[str, Seed] = {}
    models: dict[str, Model] = {}
    metrics: dict[str, Metric] = {}
    # Sections owned by other layers; each validates its own part (sources: before any ingest runs).
    sources: dict[str, Any] = {}
    rollups: dict[str, Rollup] = {}
    reports: dict[str, Any] = {}
    alerts: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    ledgers: dict[str, Ledger] = {}
    api: ApiConfig = ApiConfig()   # tally.project.api_config: keys, CORS, limits, cache, route aliases
    jobs: Jobs = Jobs()   # the scheduler's settings (tally.project.schedules)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):   # OSError: a folder (America) or a name too long
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Istanbul)") from None
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _short_metrics(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"formula": v} if isinstance(v, (str, int, float)) else v for k, v in value.items()}
        return value

    @property
    def week_start_index(self) -> int:
        """0 for Monday ... 6 for Sunday."""
        return WEEKDAYS.index(self.week_start)


SCHEMA_CLASSES = (ProjectConfig, Currency, Join, Dimension, Measure, Metric, Model, Seed, Rollup)
