"""Alerting: `metric_alerts_sensor`, one alert evaluation per tick (dagster_project/
alerting/evaluate.py; `metrics alerts evaluate` does the same headless). The cursor is
the newest anomaly scoring the sensor has read: a tick without new scoring runs the
timers (group waits, repeats, silences), the source freshness checks and the outbox, and
reads only the series of a notified alert or of a detection that settled since that
scoring. `pipeline_failure_sensor` opens a `run_failure` alert for a
failed run, `pipeline_recovery_sensor` resolves it when the job next succeeds."""
import json

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    Failure,
    asset_check,
    define_asset_job,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from .partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

SENSOR_NAME = "metric_alerts_sensor"
RUN_FAILURE_SENSOR = "pipeline_failure_sensor"
RUN_SUCCESS_SENSOR = "pipeline_recovery_sensor"
FRESHNESS_JOB = "source_freshness_job"
# a tick waits at most this long for a run that holds an embedded warehouse; the next
# tick tries again (a sensor tick must finish well inside Dagster's tick timeout)
LOCK_WAIT_SECONDS = 20.0
DELIVERY_BUDGET_SECONDS = 25.0  # sends started per tick; the rest go on the next tick, in order


LOGGED_LINES = 50  # per kind and tick: 10,000 alerts opened by one tick are a count, not a wall of log


def _log_some(log, lines: list[str]) -> None:
    for line in lines[:LOGGED_LINES]:
        log(line)
    if len(lines) > LOGGED_LINES:
        log(f"... and {len(lines) - LOGGED_LINES} more (`metrics alerts` lists every alert)")


def evaluate_tick(context, signals=()) -> str:
    """Run one evaluation, log what happened, advance the cursor; the tick's summary."""
    from ..alerting.evaluate import evaluate_once
    from ..validation.project import load_project
    from ..warehouse.connection import default_target
    from ..warehouse.lock import WarehouseLockTimeout
    from ..warehouse.read import now_utc
    from .resources import project_paths
    from ..alerting.pipeline import enqueue
    from ..warehouse.connection import WarehouseError
    paths = project_paths()
    kept = " (the run's signal is kept for the next evaluation)" if signals else ""
    loaded = load_project(paths)
    if not loaded.ok:
        enqueue(paths, list(signals))  # a run status sensor never sees this run again
        return ("metric YAML or alerts.yml has problems (run `metrics validate`)" + kept + ": "
                + "; ".join(map(str, loaded.issues[:3])))
    try:
        report = evaluate_once(paths, default_target(), loaded.project, now_utc(), lock_timeout=LOCK_WAIT_SECONDS,
                               signals=list(signals), deliver_budget=DELIVERY_BUDGET_SECONDS)
    except WarehouseLockTimeout:
        enqueue(paths, list(signals))
        return "the warehouse is busy (a run holds it): evaluated on the next tick" + kept
    except WarehouseError as err:
        enqueue(paths, list(signals))
        return f"the warehouse cannot be reached: {err}{kept}"
    _log_some(context.log.info, report.lines)
    _log_some(context.log.info, [f"delivered {line}" for line in report.delivery.delivered])
    _log_some(context.log.warning, [f"delivery failed, will retry: {line}" for line in report.delivery.failed])
    if report.cursor is not None and hasattr(context, "update_cursor"):
        context.update_cursor(json.dumps({"scoring": report.cursor.isoformat()}))
    return report.summary()


@sensor(name=SENSOR_NAME, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Opens, repeats, groups, silences and resolves alerts from metric_anomalies and delivers the "
                    "outbox (alerts.yml). Turn it on with the schedules.")
def metric_alerts_sensor(context: SensorEvaluationContext):
    # the sensor launches no runs: its work is the evaluation, its tick says what it did
    yield SkipReason(evaluate_tick(context))


def _run_signal(context: RunStatusSensorContext, failed: bool):
    from ..alerting.pipeline import run_failure_signal
    from ..warehouse.read import now_utc
    run = context.dagster_run
    tags = run.tags or {}
    partition = tags.get("dagster/partition") or (
        f"{tags[PARTITION_RANGE_START_TAG]}..{tags.get(PARTITION_RANGE_END_TAG, '')}"
        if PARTITION_RANGE_START_TAG in tags else None)
    error = None
    if failed:  # the first failed step's error says more than "steps failed: [...]"
        steps = context.get_step_failure_events()
        data = steps[0].event_specific_data if steps else None
        error = getattr(getattr(data, "error", None), "message", None) or context.failure_event.message
    return run_failure_signal(run.job_name, run.run_id, partition, error, failed, now_utc())


@run_failure_sensor(name=RUN_FAILURE_SENSOR, default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=30,
                    description="A failed run opens a `run_failure` alert on the alerts.yml routes (kind: run_failure), "
                                "so a broken pipeline is never read as a quiet metric.")
def pipeline_failure_sensor(context: RunFailureSensorContext):
    context.log.info(evaluate_tick(context, [_run_signal(context, failed=True)]))


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, name=RUN_SUCCESS_SENSOR,
                   default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=30,
                   description="A job's successful run resolves its open `run_failure` alert.")
def pipeline_recovery_sensor(context: RunStatusSensorContext):
    context.log.info(evaluate_tick(context, [_run_signal(context, failed=False)]))


def freshness_check(rule):
    """The same freshness test as the alert evaluation, as an asset check on the source
    table's asset (`raw/<table>`): visible and runnable in the UI (`source_freshness_job`)."""

    @asset_check(asset=AssetKey([rule.source_name, rule.table]), name="freshness",
                 description=f"Newest {rule.loaded_at_field} of {rule.source} within its allowance ({rule.file}).")
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        from ..alerting.pipeline import freshness_signals
        from ..warehouse.connection import Warehouse, default_target
        from ..warehouse.read import now_utc
        from .resources import project_paths
        signals, notes = freshness_signals(Warehouse(default_target(), project_paths()), project_paths(), now_utc(),
                                           only=[rule])
        if not signals:
            raise Failure(description="; ".join(notes) or f"freshness of {rule.source} could not be checked")
        signal = signals[0]
        return AssetCheckResult(
            passed=not signal.firing,
            severity=AssetCheckSeverity.ERROR if signal.severity == "critical" else AssetCheckSeverity.WARN,
            metadata={"reason": signal.reason or "", "last_row_at": str(signal.detail.get("last_row_at")),
                      "allowance_seconds": float((rule.error_after or rule.warn_after).total_seconds())})

    return _check


def alert_definitions(paths=None):
    from dagster import Definitions
    from ..alerting.pipeline import freshness_rules
    from .resources import project_paths
    rules, _ = freshness_rules(paths or project_paths())
    checks = [freshness_check(rule) for rule in rules]
    jobs = [define_asset_job(FRESHNESS_JOB, selection=AssetSelection.checks(*checks))] if checks else []
    return Definitions(sensors=[metric_alerts_sensor, pipeline_failure_sensor, pipeline_recovery_sensor],
                       asset_checks=checks, jobs=jobs)
