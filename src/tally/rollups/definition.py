"""A rollup as the builder sees it: its table, timezone, keys, stored measures and metrics."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from tally.engine.catalog import MeasureRef
from tally.engine.timegrid import Grain, truncate
from tally.errors import ConfigError
from tally.project.schema import Rollup

ADDITIVE = ("sum", "count")


@dataclass(frozen=True)
class RollupDef:
    name: str
    rollup: Rollup
    table: str
    zone: str
    week_start: int
    bases: tuple[MeasureRef, ...]
    context: str = ""     # the definitions behind the numbers (models, formulas), for the fingerprint

    @property
    def by(self) -> list[str]:
        return list(self.rollup.by)

    @property
    def grains(self) -> list[Grain]:
        return [Grain(g) for g in self.rollup.grains]

    @property
    def base_names(self) -> list[str]:
        return [ref.name for ref in self.bases]

    @property
    def additive(self) -> list[str]:
        return [ref.name for ref in self.bases if ref.measure.aggregation in ADDITIVE]

    @property
    def non_additive(self) -> list[str]:
        """Measures that can't be summed from days (distinct counts, averages, extremes)."""
        return [ref.name for ref in self.bases if ref.measure.aggregation not in ADDITIVE]

    @property
    def derived(self) -> list[str]:
        return [m for m in self.rollup.metrics if m not in self.base_names]

    @property
    def value_columns(self) -> list[str]:
        """Stored metric columns: every base measure (the additive parts), then derived metrics."""
        return self.base_names + self.derived

    @property
    def models(self) -> set[str]:
        return {ref.model for ref in self.bases}

    @cached_property
    def fingerprint(self) -> str:
        """Changes when anything that shapes the stored numbers changes (then a full build is due)."""
        # not `schedule`: when a rollup is refreshed does not shape its numbers
        text = json.dumps({"rollup": self.rollup.model_dump(exclude={"schedule"}), "zone": self.zone, "week_start": self.week_start,
                           "bases": [(r.name, r.model, r.measure.model_dump()) for r in self.bases],
                           "context": self.context}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def period(self, day: dt.date, grain: Grain) -> dt.date:
        return truncate(dt.datetime.combine(day, dt.time()), grain, self.week_start).date()

    def period_end(self, start: dt.date, grain: Grain) -> dt.date:
        return (dt.datetime.combine(start, dt.time()) + grain.step).date()


def definitions(project, names=None, category: str | None = None) -> list[RollupDef]:
    """The rollups to work on: by name, by category, or all."""
    config = project.config
    if names is not None and not isinstance(names, (str, list, tuple)):
        raise ConfigError(f"rollup names must be a name or a list of names, not {names!r}")
    chosen = [names] if isinstance(names, str) else list(names or config.rollups)
    unknown = [n for n in chosen if n not in config.rollups]
    if unknown:
        raise ConfigError(f"unknown rollup(s) {', '.join(unknown)} (rollups: {', '.join(config.rollups) or 'none'})")
    if category:
        chosen = [n for n in chosen if config.rollups[n].category == category]
        if not chosen:
            known = sorted({r.category for r in config.rollups.values() if r.category})
            raise ConfigError(f"no rollup in category {category!r} (categories: {', '.join(known) or 'none'})")
    catalog = project.catalog
    # any change to models, joins, dimensions or formulas can change stored numbers: rebuild in full
    context = json.dumps({"models": {k: m.model_dump() for k, m in config.models.items()},
                          "metrics": {k: m.model_dump() for k, m in config.metrics.items()}},
                         sort_keys=True, default=str)
    return [RollupDef(name=n, rollup=config.rollups[n], table=config.rollups[n].table or n,
                      zone=config.rollups[n].timezone or config.timezone, week_start=config.week_start_index,
                      bases=tuple(catalog.base_measures(config.rollups[n].metrics)), context=context)
            for n in chosen]
