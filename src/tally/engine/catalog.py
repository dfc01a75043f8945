"""The semantic model as the engine sees it: metric names resolved to measures and formulas."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property

from tally.errors import QueryError
from tally.project.schema import Measure, Metric, Model, ProjectConfig


@dataclass(frozen=True)
class MeasureRef:
    """A base measure and the model it aggregates."""

    name: str
    model: str
    measure: Measure


@dataclass(frozen=True)
class MetricInfo:
    """One entry of the metric catalog (what `GET /api/v1/metrics` lists)."""

    name: str
    kind: str              # "measure" or "derived"
    model: str | None
    label: str
    format: str
    dimensions: tuple[str, ...]
    timeless: bool
    definition: str


class Catalog:
    """Resolves metric names for a validated project config."""

    def __init__(self, config: ProjectConfig):
        self.config = config
        self.measures: dict[str, MeasureRef] = {
            name: MeasureRef(name, model_name, measure)
            for model_name, model in config.models.items() for name, measure in model.measures.items()
        }
        self.derived: dict[str, Metric] = dict(config.metrics)

    @cached_property
    def names(self) -> list[str]:
        return [*self.measures, *self.derived]

    def model(self, name: str) -> Model:
        return self.config.models[name]

    def check(self, metric: str) -> None:
        if metric not in self.measures and metric not in self.derived:
            hint = difflib.get_close_matches(metric, self.names, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise QueryError(f"unknown metric {metric!r}{suggestion}; `tally metrics` lists them")

    def base_measures(self, metrics) -> list[MeasureRef]:
        """The base measures needed to compute `metrics`, in first-use order."""
        found: dict[str, MeasureRef] = {}

        def visit(name: str) -> None:
            self.check(name)
            if name in self.measures:
                found.setdefault(name, self.measures[name])
            else:
                for ref in self.derived[name].expr.references:
                    visit(ref)

        for metric in metrics:
            visit(metric)
        return list(found.values())

    def dimensions_of(self, metric: str) -> tuple[str, ...]:
        """Dimensions every model behind `metric` has: what it can be broken down by."""
        models = {ref.model for ref in self.base_measures([metric])}
        common = None
        for model in models:
            dims = set(self.config.models[model].dimensions)
            common = dims if common is None else common & dims
        return tuple(sorted(common or ()))

    def is_timeless(self, metric: str) -> bool:
        return all(self.config.models[ref.model].time is None for ref in self.base_measures([metric]))

    def is_additive(self, metric: str) -> bool:
        return metric in self.measures and self.measures[metric].measure.additive

    def info(self, name: str) -> MetricInfo:
        self.check(name)
        if name in self.measures:
            ref = self.measures[name]
            m = ref.measure
            definition = f"{m.aggregation}({m.value})" + (f" where {m.where}" if m.where else "")
            return MetricInfo(name, "measure", ref.model, m.label or name.replace("_", " ").title(), m.format,
                              self.dimensions_of(name), self.is_timeless(name), definition)
        metric = self.derived[name]
        return MetricInfo(name, "derived", None, metric.label or name.replace("_", " ").title(), metric.format,
                          self.dimensions_of(name), self.is_timeless(name), metric.formula)
