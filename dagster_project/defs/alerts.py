"""Alerting: `metric_alerts_sensor`, one alert evaluation per tick (dagster_project/
alerting/evaluate.py; `metrics alerts evaluate` does the same headless). The cursor is
the newest anomaly scoring the sensor has read: a tick without new scoring only runs the
timers (group waits, repeats, silences) and the outbox, and reads no scored buckets."""
import json

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

SENSOR_NAME = "metric_alerts_sensor"
# a tick waits at most this long for a run that holds an embedded warehouse; the next
# tick tries again (a sensor tick must finish well inside Dagster's tick timeout)
LOCK_WAIT_SECONDS = 20.0


LOGGED_LINES = 50  # per kind and tick: 10,000 alerts opened by one tick are a count, not a wall of log


def _log_some(log, lines: list[str]) -> None:
    for line in lines[:LOGGED_LINES]:
        log(line)
    if len(lines) > LOGGED_LINES:
        log(f"... and {len(lines) - LOGGED_LINES} more (`metrics alerts` lists every alert)")


def evaluate_tick(context: SensorEvaluationContext) -> str:
    """Run one evaluation, log what happened, advance the cursor; the tick's summary."""
    from ..alerting.evaluate import evaluate_once
    from ..validation.project import load_project
    from ..warehouse.connection import default_target
    from ..warehouse.lock import WarehouseLockTimeout
    from ..warehouse.read import now_utc
    from .resources import project_paths
    paths = project_paths()
    loaded = load_project(paths)
    if not loaded.ok:
        return "metric YAML or alerts.yml has problems (run `metrics validate`): " + "; ".join(map(str, loaded.issues[:3]))
    try:
        report = evaluate_once(paths, default_target(), loaded.project, now_utc(), lock_timeout=LOCK_WAIT_SECONDS)
    except WarehouseLockTimeout:
        return "the warehouse is busy (a run holds it): evaluated on the next tick"
    _log_some(context.log.info, report.lines)
    _log_some(context.log.info, [f"delivered {line}" for line in report.delivery.delivered])
    _log_some(context.log.warning, [f"delivery failed, will retry: {line}" for line in report.delivery.failed])
    if report.cursor is not None:
        context.update_cursor(json.dumps({"scoring": report.cursor.isoformat()}))
    return report.summary()


@sensor(name=SENSOR_NAME, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Opens, repeats, groups, silences and resolves alerts from metric_anomalies and delivers the "
                    "outbox (alerts.yml). Turn it on with the schedules.")
def metric_alerts_sensor(context: SensorEvaluationContext):
    # the sensor launches no runs: its work is the evaluation, its tick says what it did
    yield SkipReason(evaluate_tick(context))


def alert_definitions():
    from dagster import Definitions
    return Definitions(sensors=[metric_alerts_sensor])
