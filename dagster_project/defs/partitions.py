"""Time partitions per grain. Pure helpers, tested directly.

Dagster traps (DESIGN.md): weekly partitions start on Sunday unless day_offset=1, and a
time-window partitions definition begins at the first whole period on or after its
start date, so the start is aligned down to the period that holds the earliest metric
start; otherwise the week and month containing `start` would never be built."""
import datetime as dt

from dagster import (
    DailyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from ..compiler.plan import floor_to_grain
from ..warehouse.dbt_runner import window_env as dbt_window_env

# The run tags of a ranged run (one run over a range of partitions, as the single-run
# backfill policy launches). Dagster 1.13 exports no public constant for them and no
# public way to ask for a range otherwise (RunRequest and execute_in_process take one
# partition_key); these are the names Dagster documents for launching ranged runs, equal
# to dagster._core.storage.tags.ASSET_PARTITION_RANGE_START_TAG/_END_TAG (a test checks).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """Tags that make one run cover the partitions first_key .. last_key."""
    return {PARTITION_RANGE_START_TAG: first_key, PARTITION_RANGE_END_TAG: last_key}


def partition_start(grain: str, earliest: dt.date) -> dt.datetime:
    return floor_to_grain(earliest, grain)


# The period of one partition per grain. Hour rollups are partitioned by day: a day
# partition rewrites that day's 24 hourly buckets in one statement. Dagster records one
# event per partition and asset, so hourly partitions made a year's backfill 8,760
# partitions of bookkeeping for seconds of SQL (docs/orchestration.md measures both).
PARTITION_PERIOD = {"hour": "day", "day": "day", "week": "week", "month": "month"}


def partitions_for(grain: str, earliest: dt.date) -> TimeWindowPartitionsDefinition:
    """end_offset=1: the period in progress is a partition too, so the current hour and
    day can be kept fresh (re-run as data arrives). Hours are partitioned by day."""
    grain = PARTITION_PERIOD[grain]
    start = partition_start(grain, earliest)
    if grain == "day":
        return DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC", end_offset=1)
    if grain == "week":
        return WeeklyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), day_offset=1, timezone="UTC", end_offset=1)
    return MonthlyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC", end_offset=1)


def window_env(start: dt.datetime, end: dt.datetime, run_id: str) -> dict[str, str]:
    """What the dbt macros read for one run: the partition window and the run id."""
    return {**dbt_window_env(start, end), "METRICS_RUN_ID": run_id}
