"""Anomalies: per grain, `anomalies_<grain>`, a Python asset partitioned exactly like the
grain's rollups and downstream of its series view, in the same job (the schedules and
`metrics run` score right after they build); and a WARN check on the series view that
says whether the run's partitions hold anomalies, the worst in its metadata."""

import datetime as dt
import time
import warnings

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    BetaWarning,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from dagster._core.errors import DagsterExecutionInterruptedError

from ..printable import slice_text
from ..spec.resolved import MetricsProject
from .partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from .rollup_assets import INTERRUPTED, WAREHOUSE_RETRY, say_retry, warehouse_pool
from .step_times import SCORING_SECONDS
from .translator import metric_tag

GROUP = "metric_anomalies"
CHECK_NAME = "anomalies"
# a run tag: the metrics (comma-separated) a run re-scores, when not all of them
# (`metrics run --metric`); the other metrics' rows of the window are kept
SCORED_METRICS_TAG = "metrics/scored_metrics"


def anomalies_key(grain: str) -> AssetKey:
    return AssetKey(f"anomalies_{grain}")


def series_key(grain: str) -> AssetKey:
    return AssetKey(f"metric_series_{grain}")


def _warehouse():
    from ..warehouse.connection import Warehouse, default_target
    from .resources import project_paths
    return Warehouse(default_target(), project_paths())


def _project() -> MetricsProject:
    from ..validation.project import load_project
    from .resources import project_paths
    loaded = load_project(project_paths())
    if not loaded.ok:
        raise ValueError("metric YAML has problems (run `metrics validate`):\n" + "\n".join(map(str, loaded.issues)))
    return loaded.project


def _worst_table(worst: list[dict]) -> str:
    rows = "\n".join(f"| {w['metric']} | {w['slice']} | {w['bucket_start']} | {w['score']:+.1f} | {w['reason']} |"
                     for w in worst)
    return "| metric | slice | bucket | score | reason |\n|---|---|---|---|---|\n" + rows if worst else "none"


def anomaly_asset(grain: str, partitions_def, project: MetricsProject, condition=None):
    from ..scoring.window import scored_metrics
    names = [m.name for m in scored_metrics(project, grain)]

    with warnings.catch_warnings():
        # a single-run backfill is the design (DESIGN.md); the parameter's beta notice would
        # print once per grain on every `metrics run`
        warnings.simplefilter("ignore", BetaWarning)
        decorate = asset(
            key=anomalies_key(grain),
            deps=[series_key(grain)],
            partitions_def=partitions_def,
            backfill_policy=BackfillPolicy.single_run(),
            group_name=GROUP,
            description=f"Scores every enabled metric x slice at the {grain} grain and replaces the window's rows of "
                        f"metric_anomalies (DESIGN.md, Anomaly detection).",
            tags={metric_tag(n): "" for n in names} | {"grain": grain},
            retry_policy=WAREHOUSE_RETRY,
            pool=warehouse_pool(),
            automation_condition=condition,
            kinds={"python"},
        )

    @decorate
    def _anomalies(context: AssetExecutionContext) -> MaterializeResult:
        from ..warehouse.connection import WarehouseError
        try:
            return _materialize(context)
        except WarehouseError as err:
            say_retry(context, str(err))
            raise  # transient trouble: retried with backoff
        except (KeyboardInterrupt, DagsterExecutionInterruptedError):
            raise Failure(description=INTERRUPTED, allow_retries=False) from None
        except Exception as err:  # a bug or bad data: retrying cannot help
            raise Failure(description=f"anomalies_{grain}: {type(err).__name__}: {err}", allow_retries=False) from err

    def _materialize(context: AssetExecutionContext) -> MaterializeResult:
        from ..scoring.charts import chart_root
        from ..scoring.window import score, scored_metrics, write
        from ..warehouse.read import now_utc
        started = time.perf_counter()
        window = context.partition_time_window
        start, end = _naive(window.start), _naive(window.end)
        wh = _warehouse()
        project = _project()
        chosen = context.run.tags.get(SCORED_METRICS_TAG)
        names = {n for n in chosen.split(",") if n} if chosen is not None else None
        metrics = scored_metrics(project, grain, names)
        frame, summary = score(wh, project, grain, start, end, now_utc(), metrics=metrics)
        written = write(wh, grain, frame, summary, context.run.run_id, now_utc(),
                        chart_root=chart_root(wh.paths.warehouse_dir, wh),
                        metrics=None if names is None else [m.name for m in metrics],
                        keep=[m.name for m in scored_metrics(project, grain, status="draft")])
        context.log.info(f"{grain} {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}: {summary.series_scored} series, "
                         f"{summary.buckets_scored} buckets scored, {summary.flagged} flagged")
        metadata = {
            "metrics_scored": summary.metrics,
            "series_scored": summary.series_scored,
            "slices_skipped": summary.slices_skipped,
            "buckets_scored": summary.buckets_scored,
            "flagged": summary.flagged,
            "rows_written": written,
            "worst": MetadataValue.md(_worst_table(summary.worst)),
        }
        if summary.skipped_by_metric:
            metadata["slices_skipped_by_metric"] = MetadataValue.json(summary.skipped_by_metric)
        if summary.charts:
            metadata["chart"] = MetadataValue.path(summary.charts[0])
        SCORING_SECONDS.report(time.perf_counter() - started)
        return MaterializeResult(metadata=metadata)

    return _anomalies


def anomaly_check(grain: str, partitions_def):
    """WARN when the run's partitions of this grain hold flagged buckets. Checks are per
    asset, not per partition, in Dagster: the window comes from the run's partition tags."""

    @asset_check(asset=series_key(grain), name=CHECK_NAME, additional_deps=[anomalies_key(grain)],
                 description=f"Flagged buckets in the {grain} partitions this run built (metric_anomalies).")
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        from ..scoring.window import scored_metrics
        from ..warehouse.anomaly_store import read_anomalies
        start, end = run_window(context.run.tags, partitions_def)
        columns, rows = read_anomalies(_warehouse(), grain=grain, since=start, until=end)
        # the active metrics' rows: a draft scored by `metrics run --include-drafts` is no
        # part of this series view and never alerts
        active = {m.name for m in scored_metrics(_project(), grain)}
        found = [r for r in (dict(zip(columns, r)) for r in rows) if r["metric"] in active]
        found.sort(key=lambda r: -abs(r["score"] or 0))
        worst = [{"metric": r["metric"], "slice": slice_text(r["dimension"], r["dimension_value"]),
                  "bucket_start": r["bucket_start"].strftime("%Y-%m-%dT%H:%M:%SZ"), "score": float(r["score"]),
                  "reason": r["reason"]} for r in found[:5]]
        return AssetCheckResult(
            passed=not found, severity=AssetCheckSeverity.WARN,
            metadata={"flagged": len(found), "window": f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}" if start else "all",
                      "worst": MetadataValue.md(_worst_table(worst))})

    return _check


def run_window(tags, partitions_def) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) of the partitions a run covers (one key or a range), naive UTC."""
    first = tags.get(PARTITION_RANGE_START_TAG) or tags.get("dagster/partition")
    last = tags.get(PARTITION_RANGE_END_TAG) or first
    if not first:
        return None, None
    return (_naive(partitions_def.time_window_for_partition_key(first).start),
            _naive(partitions_def.time_window_for_partition_key(last).end))


def _naive(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(dt.timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts
