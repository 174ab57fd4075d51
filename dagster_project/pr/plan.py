"""The backfill plan of a diff: which grains and partition ranges a backfill recomputes.

A new or breaking metric is rebuilt at every grain it has, from its `start` to the
partition in progress. One run per grain covers every metric of the plan from the plan's
start (the earliest start among them), which is what `metrics backfill --from-diff`
launches: `defs.runner.run_window(start=plan.start, metrics=plan.metrics)`. Partitions
follow defs/partitions.py: hours are partitioned by day, days by day, weeks by ISO week
(Monday), months by month, and the period in progress is a partition too (end_offset=1).
Pure Python: a PR check never imports dagster (a test checks the counts against the
Dagster partitions definitions)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..compiler.plan import build_plan
from ..grains import GRAINS, add_grain, floor_to_grain
from ..spec.resolved import MetricsProject

# = defs.partitions.PARTITION_PERIOD (tests/test_metrics_diff.py checks they agree)
PARTITION_PERIOD = {"hour": "day", "day": "day", "week": "week", "month": "month"}


@dataclass
class GrainPlan:
    grain: str
    period: str  # what one partition covers
    first_partition: str  # partition keys, as Dagster names them (YYYY-MM-DD of the period start)
    last_partition: str
    partitions: int
    metrics: list[str]
    models: list[str]  # the assets the run selects: rollups, the series view, the anomaly scores

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BackfillPlan:
    start: dt.date | None
    now: dt.datetime
    metrics: list[str] = field(default_factory=list)
    grains: list[GrainPlan] = field(default_factory=list)
    drafts: list[str] = field(default_factory=list)  # changed drafts: rebuilt on demand, not by Dagster

    @property
    def empty(self) -> bool:
        return not self.grains

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat() if self.start else None, "now": self.now.isoformat(timespec="seconds") + "Z",
                "metrics": self.metrics, "grains": [g.as_dict() for g in self.grains], "drafts": self.drafts}


def partition_keys(grain: str, start: dt.date, now: dt.datetime) -> list[str]:
    """The partition keys of `grain` from the one holding `start` to the one holding `now`."""
    period = PARTITION_PERIOD[grain]
    key, last = floor_to_grain(start, period), floor_to_grain(now.date(), period)
    out = []
    while key <= last:
        out.append(key.strftime("%Y-%m-%d"))
        key = add_grain(key, period)
    return out


def leaves(project: MetricsProject, name: str) -> set[str]:
    """The simple metrics (rollup rows) a metric is computed from, itself included."""
    m = project.metrics[name]
    if m.kind == "simple":
        return {name}
    out: set[str] = set()
    for i in m.inputs:
        out |= leaves(project, i)
    return out


def build_backfill_plan(project: MetricsProject, names: list[str], now: dt.datetime,
                        drafts: list[str] | None = None) -> BackfillPlan:
    names = sorted(names)
    if not names:
        return BackfillPlan(None, now, drafts=sorted(drafts or []))
    start = min(project.metrics[n].start for n in names)
    compile_plan = build_plan(project)
    plan = BackfillPlan(start, now, names, drafts=sorted(drafts or []))
    for grain in GRAINS:
        here = [n for n in names if grain in project.metrics[n].grains]
        if not here:
            continue
        keys = partition_keys(grain, start, now)
        if not keys:  # a start in the future: nothing to build yet
            continue
        wanted = set().union(*(leaves(project, n) for n in here))
        rollups = sorted(r.name for r in compile_plan.rollups
                         if r.grain == grain and r.lifecycle == "active" and any(m.name in wanted for m in r.metrics))
        plan.grains.append(GrainPlan(grain, PARTITION_PERIOD[grain], keys[0], keys[-1], len(keys), here,
                                     rollups + [f"metric_series_{grain}", f"anomalies_{grain}"]))
    return plan
