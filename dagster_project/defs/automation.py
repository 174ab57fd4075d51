"""Jobs, schedules and automation: schedules keep the current hour and day fresh and
recompute their settle lookback; declarative automation brings a week or a month up to
date after one of its days changed (a routine build, a late-data recompute, a backfill)."""
import datetime as dt

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from .partitions import range_tags

# hourly ticks for the scheduled grains; weeks and months follow their days (below)
CRON = {"hour": "5 * * * *", "day": "10 * * * *"}
SCHEDULED_GRAINS = tuple(CRON)
FOLLOWING_GRAINS = ("week", "month")
COARSER_GRAINS_SENSOR = "coarser_grains_sensor"


def rollup_job(grain: str, *assets_defs):
    """The grain's rollups and series view, then its anomaly scoring (and their checks).
    The job's partitions are inferred from its assets (passing them is deprecated)."""
    return define_asset_job(f"rollups_{grain}_job", selection=AssetSelection.assets(*assets_defs))


BUCKET = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}


def lookback_keys(partitions_def, now: dt.datetime, grain: str, lookback: int) -> list[str]:
    """The partitions a scheduled run rewrites: those holding the bucket in progress and
    the `lookback` settled buckets before it (late rows land there). Hours are
    partitioned by day, so an hourly tick rewrites today (and yesterday while the
    lookback reaches back into it). `now` is read in UTC (None: the current time); a
    partition that has not begun yet is never one."""
    now = dt.datetime.now(dt.timezone.utc) if now is None else \
        now.astimezone(dt.timezone.utc) if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
    keys = partitions_def.get_partition_keys(current_time=now)
    if keys and partitions_def.time_window_for_partition_key(keys[-1]).start > now:  # (only the last can be)
        keys = keys[:-1]
    # and the bucket in progress at the previous (hourly) tick, which has closed since: it is
    # rewritten once whole (settle_lookback 0 left it as that tick saw it)
    since = min(now - BUCKET[grain] * lookback, now - dt.timedelta(hours=1))
    since = since.replace(minute=0, second=0, microsecond=0)
    return [k for k in keys if partitions_def.time_window_for_partition_key(k).end > since]


def lookback_schedule(grain: str, job, lookback: int, partitions_def):
    @schedule(job=job, cron_schedule=CRON[grain], execution_timezone="UTC", name=f"rollups_{grain}_schedule")
    def _schedule(context: ScheduleEvaluationContext):
        keys = lookback_keys(partitions_def, context.scheduled_execution_time, grain, lookback)
        if not keys:
            return
        # one run for the whole range (single-run backfill policy): one dbt invocation
        yield RunRequest(run_key=f"{grain}:{keys[0]}:{keys[-1]}:{context.scheduled_execution_time.isoformat()}",
                         tags=range_tags(keys[0], keys[-1]))

    return _schedule


def follows_its_days(grain: str, lookback: int) -> AutomationCondition:
    """A week or month partition is requested when a day in it (or the staging views) was
    updated since the last evaluation, within the settle lookback (the bucket in
    progress and `lookback` before it), and nothing it reads is still running."""
    span = dt.timedelta(weeks=lookback + 1) if grain == "week" else dt.timedelta(days=31 * (lookback + 1))
    return (
        AutomationCondition.in_latest_time_window(span)
        & AutomationCondition.any_deps_updated()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label(f"a day of this {grain} changed")


def coarser_grains_sensor(assets_defs) -> AutomationConditionSensorDefinition:
    """Evaluates the week and month conditions (turn it on in the UI's Automation tab,
    with the schedules)."""
    return AutomationConditionSensorDefinition(
        COARSER_GRAINS_SENSOR, target=AssetSelection.assets(*assets_defs), minimum_interval_seconds=60,
    )
