"""Raw-data collection as a daily partitioned asset."""
import datetime as dt

from dagster import AssetExecutionContext, AssetSpec, DailyPartitionsDefinition, MaterializeResult, multi_asset

from ..demo.generator import TIME_COLUMNS, generate_day
from ..warehouse.connection import Warehouse, default_target
from .resources import project_paths

RAW_TABLES = tuple(TIME_COLUMNS)
DEMO_SEED = 7


def collection_assets(partitions_def: DailyPartitionsDefinition, first_day: dt.date):
    @multi_asset(
        specs=[AssetSpec(["raw", t], group_name="collection", kinds={"python"},
                         description=f"Raw {t}, one day per partition.") for t in RAW_TABLES],
        partitions_def=partitions_def,
        name="collect_raw_events",
    )
    def collect_raw_events(context: AssetExecutionContext):
        """Writes one UTC day of raw rows into schema `raw`, replacing that day only, so a
        re-run is idempotent.

        This demo generates the rows. To collect your own data, keep the shape and replace
        the generator call: fetch the day's rows from your API, queue or files into a
        DataFrame per table, then `Warehouse(...).replace_rows(table, frame, time_column,
        day_start, day_end)`. Or drop this asset and declare your loader's tables as dbt
        sources: the rollups only need the staging models.
        """
        window = context.partition_time_window
        day = window.start.date()
        frames = generate_day(day, DEMO_SEED, first_day=first_day)
        wh = Warehouse(default_target(), project_paths())
        start, end = dt.datetime(day.year, day.month, day.day), dt.datetime(day.year, day.month, day.day) + dt.timedelta(days=1)
        for table, frame in frames.items():
            wh.replace_rows(table, frame, TIME_COLUMNS[table], start, end)
            yield MaterializeResult(asset_key=["raw", table], metadata={"rows": len(frame), "day": day.isoformat()})

    return collect_raw_events
