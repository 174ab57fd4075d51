"""Resolved metrics: what the compiler and readers use. Built from the raw specs after
validation succeeded, with defaults applied, inline ratio inputs turned into hidden
metrics, and dimensions, grains and start inherited through ratio and derived metrics."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..alerting.config import AlertsConfig
from .raw import AnomalySpec, Grain, MetricSpec, ProjectConfig

# Aggregations whose empty bucket is 0 (count-shaped); every other one gives a gap.
ZERO_FILLED = frozenset({"count", "count_distinct", "sum"})


@dataclass(frozen=True)
class Measure:
    """An aggregation over one source: what a rollup scan computes."""

    source: str
    timestamp: str
    aggregation: str
    expression: Any = None  # validation.sql_fragment.Fragment | None
    filter: Any = None
    percentile: float | None = None


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # simple | ratio | derived
    path: str  # source YAML, relative to the project root
    line: int
    domain: str
    status: str
    grains: tuple[Grain, ...]
    start: dt.date
    dimensions: tuple[str, ...]
    fill: float | None  # value of a bucket with no rows: 0.0 or None (a gap)
    description: str | None = None
    owner: str | None = None
    measure: Measure | None = None
    numerator: str | None = None
    denominator: str | None = None
    formula: Any = None  # Fragment of a derived metric
    inputs: tuple[str, ...] = ()
    public: bool = True  # False for the hidden input of an inline ratio side
    anomaly: AnomalySpec = field(default_factory=AnomalySpec)
    alerts: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def is_built(self) -> bool:
        return self.status != "archived"

    @property
    def fractional(self) -> bool:
        """Ratios, averages and gauges are scored as fractions, counts as volumes."""
        if self.kind == "ratio":
            return True
        if self.kind == "simple":
            return self.measure.aggregation not in ZERO_FILLED
        return self.fill is None

    def describe(self) -> dict[str, Any]:
        """The JSON shape `metrics list --format json` prints."""
        out: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "status": self.status, "domain": self.domain,
            "path": self.path, "description": self.description, "owner": self.owner,
            "grains": list(self.grains), "start": self.start.isoformat(),
            "dimensions": list(self.dimensions), "empty_bucket_value": self.fill,
        }
        if self.measure:
            out.update(source=self.measure.source, aggregation=self.measure.aggregation)
        if self.inputs:
            out["inputs"] = list(self.inputs)
        return out


@dataclass(frozen=True)
class MetricsProject:
    config: ProjectConfig
    metrics: dict[str, Metric]
    specs: dict[str, MetricSpec]
    # per source: the columns with few, known values (validation/catalog.py)
    categorical: dict[str, frozenset[str]] = field(default_factory=dict)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)  # alerts.yml

    def built(self) -> list[Metric]:
        return [m for m in self.metrics.values() if m.is_built]

    def public(self) -> list[Metric]:
        return sorted((m for m in self.metrics.values() if m.public), key=lambda m: m.name)
