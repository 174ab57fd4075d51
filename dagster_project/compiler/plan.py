"""What the compiler will write: which rollup models (one per source, grain and
lifecycle) and which series views (one per grain and lifecycle), for which metrics."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from ..grains import GRAINS, floor_to_grain  # noqa: F401 (floor_to_grain re-exported)
from ..spec.resolved import Metric, MetricsProject


# Postgres truncates identifiers at 63 bytes; a longer name is shortened with a hash
MAX_RELATION_NAME = 63


def rollup_name(source: str, timestamp: str, grain: str, lifecycle: str = "active") -> str:
    """`rollup_<source>__by_<timestamp>__<grain>[__draft]`: a function of the rollup's own
    source and timestamp column only, so adding a sibling metric (even one bucketed by
    another column of the same source) never renames it, and its history and Dagster
    asset keys stay put."""
    suffix = f"__{grain}" + ("__draft" if lifecycle == "draft" else "")
    base = f"rollup_{source}__by_{timestamp}"
    if len(base) + len(suffix) > MAX_RELATION_NAME:
        digest = hashlib.sha1(f"{source}\0{timestamp}".encode()).hexdigest()[:8]
        base = base[: MAX_RELATION_NAME - len(suffix) - 9] + "_" + digest
    return base + suffix


@dataclass(frozen=True)
class RollupModel:
    source: str
    timestamp: str
    grain: str
    lifecycle: str  # active | draft
    metrics: tuple[Metric, ...]
    categorical: frozenset[str] = frozenset()  # the source's columns with few, known values

    @property
    def name(self) -> str:
        return rollup_name(self.source, self.timestamp, self.grain, self.lifecycle)

    @property
    def series_start(self) -> dt.datetime:
        return min(floor_to_grain(m.start, self.grain) for m in self.metrics)


@dataclass(frozen=True)
class SeriesModel:
    grain: str
    lifecycle: str
    rollups: tuple[RollupModel, ...]  # every rollup whose rows it reads
    metrics: tuple[Metric, ...]  # every metric it computes (inputs included)
    outputs: tuple[Metric, ...]  # the metrics it shows

    @property
    def name(self) -> str:
        return f"metric_series_{self.grain}" if self.lifecycle == "active" else f"metric_series_draft_{self.grain}"


@dataclass(frozen=True)
class CompilePlan:
    rollups: tuple[RollupModel, ...]
    series: tuple[SeriesModel, ...]

    def finer(self, model: RollupModel) -> RollupModel | None:
        """The rollup a coarser grain depends on in the asset graph (a day on its hours,
        a week and a month on their days), so recomputing a finer window makes the
        coarser ones stale. Every grain is still computed from raw rows."""
        wanted = {"day": "hour", "week": "day", "month": "day"}.get(model.grain)
        for r in self.rollups:
            if (r.grain == wanted and r.source == model.source and r.timestamp == model.timestamp
                    and r.lifecycle == model.lifecycle):
                return r
        return None


def _lifecycle(m: Metric) -> str:
    return "draft" if m.status == "draft" else "active"


def build_plan(project: MetricsProject) -> CompilePlan:
    built = [m for m in project.built()]
    rollups: list[RollupModel] = []
    for grain in GRAINS:
        for lifecycle in ("active", "draft"):
            by_source: dict[tuple[str, str], list[Metric]] = {}
            for m in built:
                if m.kind == "simple" and grain in m.grains and _lifecycle(m) == lifecycle:
                    by_source.setdefault((m.measure.source, m.measure.timestamp), []).append(m)
            for source, ts in sorted(by_source):
                rollups.append(RollupModel(source, ts, grain, lifecycle, tuple(sorted(by_source[source, ts], key=lambda m: m.name)),
                                           categorical=project.categorical.get(source, frozenset())))
    series: list[SeriesModel] = []
    for grain in GRAINS:
        for lifecycle in ("active", "draft"):
            visible = {"active": ("active",), "draft": ("active", "draft")}[lifecycle]
            outputs = tuple(m for m in built if grain in m.grains and _lifecycle(m) == lifecycle and m.public)
            if not outputs:
                continue
            computed = tuple(m for m in built if grain in m.grains and _lifecycle(m) in visible)
            models = tuple(r for r in rollups if r.grain == grain and r.lifecycle in visible)
            series.append(SeriesModel(grain, lifecycle, models, computed, outputs))
    return CompilePlan(tuple(rollups), tuple(series))
