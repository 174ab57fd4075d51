"""Jobs and schedules: keep the current buckets fresh and recompute the settle lookback."""
from dagster import AssetSelection, RunRequest, ScheduleEvaluationContext, define_asset_job, schedule
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

CRON = {"hour": "5 * * * *", "day": "10 * * * *", "week": "15 2 * * *", "month": "20 2 * * *"}


def rollup_job(grain: str, assets_def):
    return define_asset_job(f"rollups_{grain}_job", selection=AssetSelection.assets(assets_def),
                            partitions_def=assets_def.partitions_def)


def lookback_keys(partition_keys: list[str], lookback: int) -> list[str]:
    """The partitions a scheduled run rewrites: the bucket in progress plus `lookback`
    settled ones before it (late rows land there)."""
    return partition_keys[-(lookback + 1):] if partition_keys else []


def lookback_schedule(grain: str, job, lookback: int):
    @schedule(job=job, cron_schedule=CRON[grain], execution_timezone="UTC", name=f"rollups_{grain}_schedule")
    def _schedule(context: ScheduleEvaluationContext):
        keys = lookback_keys(job.partitions_def.get_partition_keys(current_time=context.scheduled_execution_time), lookback)
        if not keys:
            return
        # one run for the whole range (single-run backfill policy): one dbt invocation
        yield RunRequest(run_key=f"{grain}:{keys[0]}:{keys[-1]}:{context.scheduled_execution_time.isoformat()}",
                         tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]})

    return _schedule
