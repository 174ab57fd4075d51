"""`metrics run`: the same asset jobs the UI runs, executed in process for a window.

Staging first, then per grain one run over the window's partitions (single-run backfill:
one dbt invocation per grain). Runs land in $DAGSTER_HOME's instance when it is set, so
they show in the UI's run history; otherwise in a temporary instance."""
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import DagsterInstance, Failure
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ..paths import ProjectPaths
from ..spec.resolved import MetricsProject
from ..warehouse.dbt_runner import environ

GRAINS = ("hour", "day", "week", "month")
# the CLI prints its own progress; Dagster's console log only for warnings and errors
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunOutcome:
    ok: bool = True
    failures: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)


def partition_range(partitions_def, start: dt.date | None, end: dt.date | None, now: dt.datetime) -> tuple[str, str] | None:
    """First and last partition keys whose bucket starts in [start, end) (UTC dates)."""
    keys = partitions_def.get_partition_keys(current_time=now)
    if not keys:
        return None
    lo = dt.datetime.combine(start, dt.time(), dt.timezone.utc) if start else None
    hi = dt.datetime.combine(end, dt.time(), dt.timezone.utc) if end else None
    chosen = [k for k in keys
              if (lo is None or partitions_def.time_window_for_partition_key(k).start >= lo)
              and (hi is None or partitions_def.time_window_for_partition_key(k).start < hi)]
    return (chosen[0], chosen[-1]) if chosen else None


def wanted_metrics(project: MetricsProject, names: list[str]) -> set[str]:
    """The named metrics and everything they are computed from."""
    out: set[str] = set()

    def add(name: str) -> None:
        if name in out:
            return
        out.add(name)
        for i in project.metrics[name].inputs:
            add(i)

    for n in names:
        add(n)
    return out


def run_window(paths: ProjectPaths, target: str, start: dt.date | None, end: dt.date | None,
               project: MetricsProject, metrics: list[str] | None = None,
               progress: Callable[[str], None] = print) -> RunOutcome:
    env = {"METRICS_PROJECT_DIR": str(paths.root), "METRICS_TARGET": target,
           "METRICS_DUCKDB_PATH": str(paths.duckdb_path), "METRICS_CHDB_PATH": str(paths.chdb_path)}
    with environ(env):
        return _run_window(paths, start, end, project, metrics, progress)


def _run_window(paths: ProjectPaths, start: dt.date | None, end: dt.date | None, project: MetricsProject,
                metrics: list[str] | None, progress: Callable[[str], None]) -> RunOutcome:
    from . import resources
    from .builder import build_definitions
    from .translator import metric_tag
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    # the asset graph must follow the models just compiled (a metric added or changed)
    resources.parse_manifest(paths)
    defs = build_definitions()
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    now = dt.datetime.now(dt.timezone.utc)
    outcome = RunOutcome()
    tags_wanted = {metric_tag(n) for n in wanted_metrics(project, metrics)} if metrics else None

    def execute(job_name: str, label: str, tags: dict | None = None) -> bool:
        job = defs.resolve_job_def(job_name)
        selection = None
        if tags_wanted is not None and job_name != "staging_job":
            graph = defs.resolve_asset_graph()
            selection = [k for k in job.asset_layer.executable_asset_keys
                         if tags_wanted & set(graph.get(k).tags)]
            if not selection:
                return True
        progress(f"      {label} ...")
        try:
            result = job.execute_in_process(instance=instance, tags=tags or {}, asset_selection=selection,
                                            raise_on_error=False, run_config=QUIET)
        except Failure as err:  # raised before a step ran
            outcome.ok = False
            outcome.failures.append(err.description or str(err))
            return False
        outcome.run_ids.append(result.run_id)
        if not result.success:
            outcome.ok = False
            for event in result.all_events:
                if event.event_type_value == "STEP_FAILURE":
                    info = event.event_specific_data.error
                    text = []
                    while info is not None:  # after retries, the Failure is further down
                        text += (info.message or "").strip().splitlines()
                        info = info.cause
                    failure = next((line.split("Failure: ", 1)[1] for line in text if "Failure: " in line), None)
                    first = failure or (text[0] if text else "step failed")
                    # a Failure's description is "<target>: <model>: <message>; ..."
                    outcome.failures += [part.strip() for part in first.split(";") if part.strip()]
            return False
        return True

    if not execute("staging_job", "seeds, staging views, catalog"):
        return outcome
    for grain in GRAINS:
        job = defs.resolve_job_def(f"rollups_{grain}_job")
        span = partition_range(job.partitions_def, start, end, now)
        if span is None:
            progress(f"      {grain}: no bucket starts in the window")
            continue
        tags = {ASSET_PARTITION_RANGE_START_TAG: span[0], ASSET_PARTITION_RANGE_END_TAG: span[1]}
        if not execute(f"rollups_{grain}_job", f"{grain} rollups, partitions {span[0]} .. {span[1]}", tags):
            return outcome
    return outcome
