"""`metrics run`: the same asset jobs the UI runs, executed in process for a window.

Staging first, then per grain one run over every partition the window overlaps
(single-run backfill: one dbt invocation per grain), then the metric catalog, only when
every grain succeeded. Runs land in $DAGSTER_HOME's instance when it is set, so they show
in the UI's run history; otherwise in a temporary instance.

Each dbt invocation holds the warehouse's writer lock (warehouse/lock.py), so two runs at
once serialize per step; so do the parse and the manifest read below, which share
dbt_project/target with any other run of this project."""
import datetime as dt
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, Failure

from ..paths import ProjectPaths
from ..spec.raw import GRAINS
from ..spec.resolved import MetricsProject
from ..warehouse.connection import WarehouseError
from ..warehouse.dbt_runner import DbtOutcome, environ, run_dbt
from ..warehouse.lock import warehouse_lock
from .dbt_in_process import stop_running
from .partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, range_tags
from .rollup_assets import INTERRUPTED, warehouse_pool
from .run_owner import owner_tag, reclaim_dead_runs, wait_for_pool
from .step_times import DBT_SECONDS, SCORING_SECONDS
# the CLI prints its own progress; Dagster's console log only for warnings and errors
# a failed step's error reaches the user once, as a line (RunOutcome.failures); Dagster's
# console would print it first with its stack trace, which stays in the run's events
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunOutcome:
    ok: bool = True
    failures: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    failed_run: str | None = None  # the Dagster run that failed: its events hold the stack trace
    trace_file: Path | None = None  # where the stack trace was kept when the instance is ephemeral
    interrupted: bool = False  # a step was stopped by Ctrl-C (rollup_assets.INTERRUPTED)
    # per job: (label, wall seconds, seconds dbt itself ran, seconds anomaly scoring ran)
    timings: list[tuple[str, float, float, float]] = field(default_factory=list)


def _stderr(message: str) -> None:
    print(f"      {message}", file=sys.stderr, flush=True)


def partition_range(partitions_def, start: dt.date | None, end: dt.date | None, now: dt.datetime) -> tuple[str, str] | None:
    """First and last partition keys whose bucket overlaps [start, end) (UTC dates): the
    window widens outward to whole buckets of coarser grains, so a recompute from a
    Wednesday rebuilds that day and also the week and the month that contain it."""
    keys = partitions_def.get_partition_keys(current_time=now)
    if not keys:
        return None
    lo = dt.datetime.combine(start, dt.time(), dt.timezone.utc) if start else None
    hi = dt.datetime.combine(end, dt.time(), dt.timezone.utc) if end else None
    chosen = []
    for k in keys:
        window = partitions_def.time_window_for_partition_key(k)
        if (lo is None or window.end > lo) and (hi is None or window.start < hi):
            chosen.append(k)
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


def fed_by(project: MetricsProject, rebuilt: set[str]) -> set[str]:
    """The metrics whose values can change when the rollups of `rebuilt` are rebuilt:
    those metrics and every metric computed from one of them (a ratio, a derived metric),
    however indirectly."""
    return {name for name in project.metrics if wanted_metrics(project, [name]) & rebuilt}


def run_window(paths: ProjectPaths, target: str, start: dt.date | None, end: dt.date | None,
               project: MetricsProject, metrics: list[str] | None = None,
               progress: Callable[[str], None] = print, catalog: bool | None = None) -> RunOutcome:
    """`catalog`: rebuild the metric catalog when its definition changed (default: unless
    `metrics` names some: a `--metric` run leaves the other metrics unbuilt, which the
    catalog would list; a backfill's plan builds every metric that changed, so it does)."""
    env = {"METRICS_PROJECT_DIR": str(paths.root), "METRICS_TARGET": target,
           "METRICS_DUCKDB_PATH": str(paths.duckdb_path), "METRICS_CHDB_PATH": str(paths.chdb_path)}
    from . import resources
    try:
        with environ(env):
            # disposed at the end: the instance's storage closes the connections it keeps open
            with DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral() as instance:
                return _run_window(paths, target, start, end, project, metrics, progress, instance,
                                   not metrics if catalog is None else catalog)
    finally:
        # they hold this run's project (its METRICS_PROJECT_DIR, now restored): what runs
        # next in this process (a sensor, another project's run) finds its own
        resources.project_paths.cache_clear()
        resources.metrics_dbt_project.cache_clear()


def metric_selection(job, graph, project: MetricsProject, tags_wanted: set[str]) -> tuple[list, set[str]]:
    """What a `--metric` run executes of `job`: the assets tagged with a wanted metric, and
    the anomaly scoring of what their rollups carry, even when the named metric's own
    detection is off (an anomaly asset is tagged with the metrics it scores only); and the
    metrics to re-score: those rollups' metrics, the wanted ones, and every metric computed
    from them (the other metrics' rows stay)."""
    from .translator import metric_tag
    keys = list(job.asset_layer.executable_asset_keys)
    selection = [k for k in keys if tags_wanted & set(graph.get(k).tags)]
    rebuilt = {t for k in selection if k.path[-1].startswith("rollup_") for t in graph.get(k).tags}
    fed = {metric_tag(n) for n in fed_by(project, {n for n in project.metrics if metric_tag(n) in rebuilt})}
    selection += [k for k in keys if k not in selection and k.path[-1].startswith("anomalies_")
                  and fed & set(graph.get(k).tags)]
    scored = fed_by(project, {n for n in project.metrics if metric_tag(n) in rebuilt or metric_tag(n) in tags_wanted})
    return selection, scored


def _run_window(paths: ProjectPaths, target: str, start: dt.date | None, end: dt.date | None, project: MetricsProject,
                metrics: list[str] | None, progress: Callable[[str], None], instance: DagsterInstance,
                catalog: bool) -> RunOutcome:
    from . import resources
    from .anomalies import SCORED_METRICS_TAG
    from .builder import build_definitions
    from .rollups import CATALOG_JOB, STAGING_JOB, rollup_job_name
    from .translator import metric_tag
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    # the asset graph must follow the models just compiled (a metric added or changed);
    # dbt_project/target is shared with other runs: parse and read it under the lock
    with warehouse_lock(target, paths, on_wait=_stderr):
        resources.parse_manifest(paths)
        defs = build_definitions()
    reclaim_dead_runs(instance, progress)
    now = dt.datetime.now(dt.timezone.utc)
    outcome = RunOutcome()
    tags_wanted = {metric_tag(n) for n in wanted_metrics(project, metrics)} if metrics else None
    if metrics and start is None:
        # from the chosen metrics' own start (and their inputs'), as `--start`'s default says:
        # not the project's earliest, which rewrote their sources' whole history
        start = min(project.metrics[n].start for n in wanted_metrics(project, metrics))
        if start > now.date():
            progress(f"      {', '.join(metrics)}: starts {start}: no bucket to build yet")
            return outcome

    def execute(job_name: str, label: str, tags: dict | None = None) -> bool:
        job = defs.resolve_job_def(job_name)
        selection = None
        if tags_wanted is not None and job_name not in (STAGING_JOB, CATALOG_JOB):  # (those are whole)
            selection, scored = metric_selection(job, defs.resolve_asset_graph(), project, tags_wanted)
            if not selection:
                return True
        keys = selection if selection is not None else list(job.asset_layer.executable_asset_keys)
        partitions = _partition_count(job, tags)
        records = f", recording {len(keys) * partitions:,} partition materializations" if partitions > 1 else ""
        scores = any(k.path[-1].startswith("anomalies_") for k in keys)
        if selection is not None and scores:
            tags = {**(tags or {}), SCORED_METRICS_TAG: ",".join(sorted(scored))}
        progress(f"      {label}: {len(keys)} assets x {partitions} partition(s): dbt{', anomaly scoring' if scores else ''}"
                 f"{records} ...")
        dbt_seconds: list[float] = []
        scoring_seconds: list[float] = []
        DBT_SECONDS.listen(dbt_seconds.append)
        SCORING_SECONDS.listen(scoring_seconds.append)
        started = time.perf_counter()
        run_id = str(uuid.uuid4())
        try:
            wait_for_pool(instance, warehouse_pool(target), progress)
            result = job.execute_in_process(instance=instance, tags={**(tags or {}), **owner_tag(run_id)},
                                            asset_selection=selection,
                                            raise_on_error=False, run_config=QUIET, run_id=run_id)
        except Failure as err:  # raised before a step ran
            outcome.ok = False
            outcome.failures.append(err.description or str(err))
            return False
        except KeyboardInterrupt:
            close_unstarted(instance, run_id)
            raise
        finally:
            DBT_SECONDS.stop(dbt_seconds.append)
            SCORING_SECONDS.stop(scoring_seconds.append)
            stop_running()  # an interrupted step's dbt may still be in a query: it ends before we go on
        wall = time.perf_counter() - started
        outcome.timings.append((label, wall, sum(dbt_seconds), sum(scoring_seconds)))
        scoring = f", anomaly scoring {sum(scoring_seconds):.1f}s" if scoring_seconds else ""
        progress(f"      {label}: {wall:.1f}s (dbt {sum(dbt_seconds):.1f}s{scoring})")
        outcome.run_ids.append(result.run_id)
        if not result.success:
            outcome.ok = False
            outcome.failed_run = result.run_id
            lines, trace = failure_lines(result.all_events)
            outcome.failures += lines
            outcome.interrupted = any(INTERRUPTED in line for line in lines)
            if not os.environ.get("DAGSTER_HOME"):  # an ephemeral instance: its events go with it
                outcome.trace_file = _keep_trace(paths, result.run_id, trace)
            return False
        return True

    from . import staging_state
    from ..warehouse.connection import Warehouse
    wh = Warehouse(target, paths)
    manifest = json.loads((paths.dbt_project_dir / "target" / "manifest.json").read_text(encoding="utf-8"))
    if staging_state.up_to_date(wh, manifest):
        progress("      seeds, staging views: unchanged since their last build on this warehouse (skipped)")
    elif not execute(STAGING_JOB, "seeds, staging views"):
        return outcome
    else:
        staging_state.record_built(wh, manifest)
    for grain in GRAINS:
        job = defs.resolve_job_def(rollup_job_name(grain))
        if job.partitions_def is None:  # no active metric has this grain
            continue
        span = partition_range(job.partitions_def, start, end, now)
        if span is None:
            progress(f"      {grain}: no bucket overlaps the window")
            continue
        if not execute(rollup_job_name(grain), f"{grain} rollups, partitions {span[0]} .. {span[1]}", range_tags(*span)):
            return outcome
    # last, and only after every grain succeeded: the catalog lists what was built
    if not catalog:
        progress("      metric catalog: not rebuilt by a --metric run (`metrics run` rebuilds it)")
    elif staging_state.up_to_date(wh, manifest, "catalog"):
        progress("      metric catalog: unchanged since its last build on this warehouse (not rebuilt)")
    elif execute(CATALOG_JOB, "metric catalog"):
        staging_state.record_built(wh, manifest, "catalog")
    return outcome


# events of a failed run that carry an error (a step's, a resource's start-up, the run's)
_ERROR_EVENTS = (DagsterEventType.STEP_FAILURE.value, DagsterEventType.RESOURCE_INIT_FAILURE.value,
                 DagsterEventType.RUN_FAILURE.value)  # the last one's value is PIPELINE_FAILURE
# an error class the project raises with a message written for the user (its class says
# nothing more); any other root cause is shown as `ClassName: message`
_USER_WORDED = ("WarehouseError", "WarehouseLockTimeout")
# a Ctrl-C that Dagster caught outside our step code (between two events a dbt step yields)
# fails the step with its own interrupt error, not our Failure(INTERRUPTED)
_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+([A-Za-z_]\w*): ")


def close_unstarted(instance: DagsterInstance, run_id: str) -> None:
    """A run stopped by Ctrl-C before Dagster started it stays NOT_STARTED for ever in
    the UI's history: it is recorded as canceled."""
    from dagster import DagsterRunStatus
    try:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status == DagsterRunStatus.NOT_STARTED:
            instance.report_run_canceled(run, message=f"{INTERRUPTED} before the run started")
    except Exception:  # noqa: BLE001 - best effort (an instance database away): the Ctrl-C comes first
        pass


def failure_lines(events) -> tuple[list[str], str]:
    """A failed run's errors as the lines to print (a Failure's description, "<target>:
    <model>: <message>; ...", split at `;`; else the first line of the root cause; with
    how many retries the step had) and the full text with stack traces, to keep."""
    retries: dict[str, int] = {}
    lines: list[str] = []
    traces: list[str] = []
    for event in events:
        if event.event_type_value == DagsterEventType.STEP_UP_FOR_RETRY.value:
            retries[event.step_key] = retries.get(event.step_key, 0) + 1
        if event.event_type_value not in _ERROR_EVENTS:
            continue
        info = getattr(event.event_specific_data, "error", None)
        if info is None or (event.event_type_value == DagsterEventType.RUN_FAILURE.value and lines):
            continue  # the steps' own errors said it (the run's repeats the first of them)
        traces.append(f"{event.event_type_value} {event.step_key or ''}\n{info.to_string()}")
        # each error's lines and class, outermost first (a retry's wrapper, ...)
        chain: list[tuple[list[str], str]] = []
        while info is not None:
            chain.append(((info.message or "").strip().splitlines(), info.cls_name or ""))
            info = info.cause
        if any(cls in _INTERRUPTS for _, cls in chain):
            lines.append(INTERRUPTED)
            continue
        text = [line for msgs, _ in chain for line in msgs]
        failure = next((line.split("Failure: ", 1)[1] for line in text if "Failure: " in line), None)
        # else the root cause: "Exceeded max_retries of 3" says less than the error retried
        root, cls = next(((msgs[0], c) for msgs, c in reversed(chain) if msgs), (None, ""))
        if root is not None:
            root = root.split(": ", 1)[1] if cls in _USER_WORDED and ": " in root else _QUALIFIED.sub(r"\1: ", root)
        first = failure or root or "step failed"
        parts = [part.strip() for part in first.split(";") if part.strip()]
        n = retries.get(event.step_key or "", 0)
        if n and parts:
            parts[-1] += f" (after {n} retr{'y' if n == 1 else 'ies'})"
        lines += parts
    return lines, "\n\n".join(traces)


def _keep_trace(paths: ProjectPaths, run_id: str, trace: str) -> Path | None:
    """The failed run's errors with their stack traces, under warehouse/failed_runs/."""
    if not trace:
        return None
    try:
        folder = paths.warehouse_dir / "failed_runs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run_id}.txt"
        path.write_text(trace, encoding="utf-8")
        return path
    except OSError:  # a read-only folder: the printed error is all there is
        return None


def _partition_count(job, tags: dict | None) -> int:
    """How many partitions a ranged run covers (1 for an unpartitioned job)."""
    pdef = job.partitions_def
    if pdef is None or not tags or PARTITION_RANGE_START_TAG not in tags:
        return 1
    keys = pdef.get_partition_keys()
    first, last = tags[PARTITION_RANGE_START_TAG], tags[PARTITION_RANGE_END_TAG]
    return keys.index(last) - keys.index(first) + 1 if first in keys and last in keys else 1


def run_drafts(paths: ProjectPaths, target: str, start: dt.date | None, end: dt.date | None,
               project: MetricsProject | None = None) -> DbtOutcome:
    """`metrics run --include-drafts`: the draft models (dbt, on demand, outside Dagster),
    holding the warehouse's writer lock like every other dbt invocation that writes; then,
    with `project`, the anomaly scoring of the drafts whose file enables it (a draft
    never alerts: alerting reads active metrics only)."""
    from ..grains import ceil_to_grain, floor_to_grain
    run_id = f"cli-drafts-{uuid.uuid4().hex[:8]}"
    outcome = DbtOutcome(ok=True)
    with warehouse_lock(target, paths, on_wait=_stderr):
        for grain in GRAINS:
            # every bucket of the grain the window overlaps, as the active jobs' partitions
            # (dbt's window keeps only whole buckets: a Wednesday start built no week)
            window = (None if start is None else floor_to_grain(start, grain).date(),
                      None if end is None else ceil_to_grain(end, grain).date())
            done = run_dbt(paths, target, ["build", "--select", f"+tag:metrics_draft,tag:grain_{grain}", "--exclude",
                                           "tag:staging"], window=window, run_id=run_id, quiet=True)
            outcome.ok = outcome.ok and done.ok
            outcome.failures += done.failures
            outcome.built += done.built
            if done.ok and project is not None:
                try:
                    _score_drafts(paths, target, project, grain, window, run_id)
                except WarehouseError:
                    raise  # the CLI says the run stopped
                except Exception as err:  # a bug or bad data: the build stands, the scoring failed
                    outcome.ok = False
                    outcome.failures.append(f"anomaly scoring of the {grain} drafts: {type(err).__name__}: {err}")
    return outcome


def _score_drafts(paths: ProjectPaths, target: str, project: MetricsProject, grain: str,
                  window: tuple[dt.date | None, dt.date | None], run_id: str) -> None:
    """Score the window's buckets of the drafts of `grain` with detection enabled (the
    active metrics' anomalies_<grain> asset does the same for them)."""
    from ..grains import add_grain, bucket_of, floor_to_grain
    from ..scoring.charts import chart_root
    from ..scoring.window import score, scored_metrics, write
    from ..warehouse.connection import Warehouse
    from ..warehouse.read import now_utc
    drafts = scored_metrics(project, grain, status="draft")
    if not drafts:
        return
    now = now_utc()
    lo = (dt.datetime.combine(window[0], dt.time()) if window[0] is not None
          else floor_to_grain(min(m.start for m in drafts), grain))
    hi = dt.datetime.combine(window[1], dt.time()) if window[1] is not None else add_grain(bucket_of(now, grain), grain)
    wh = Warehouse(target, paths)
    frame, summary = score(wh, project, grain, lo, hi, now, metrics=drafts)
    write(wh, grain, frame, summary, run_id, now_utc(), chart_root=chart_root(paths.warehouse_dir, wh),
          metrics=[m.name for m in drafts])
