"""Collection (the example's demo): a daily partitioned asset writing raw rows.

Registered only when `metrics/_config.yml` says `demo: true`: it writes generated rows
into the raw schema, replacing each day it materializes, so in a project whose raw tables
hold real data "Materialize all" would overwrite them. Later domains (anomaly, alerting)
plug in the same way: a function returning their Definitions, merged in builder.py."""
import datetime as dt

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    DailyPartitionsDefinition,
    Definitions,
    Failure,
    MaterializeResult,
    multi_asset,
)

from ..demo.generator import TIME_COLUMNS, generate_day
from ..spec.resolved import MetricsProject
from ..warehouse.connection import Warehouse, WarehouseError, default_target
from .partitions import partitions_for
from .resources import project_paths
from .rollup_assets import lock_waiting, warehouse_pool

RAW_TABLES = tuple(TIME_COLUMNS)
DEMO_SEED = 7
REPLACE_ME = ("Demo data: generated rows (metrics/_config.yml `demo: true`), one UTC day per partition, "
              "replacing that day in the raw schema. For real data, set `demo: false` and load `{table}` "
              "with your own loader declared as a dbt source (models/staging/_sources.yml), or replace "
              "the generator call in dagster_project/defs/collection.py with your fetch.")


def collection_definitions(project: MetricsProject, earliest: dt.date) -> Definitions:
    """The demo collection asset, or nothing when the project is not the demo."""
    if not project.config.demo:
        return Definitions()
    return Definitions(assets=[collection_assets(partitions_for("day", earliest), earliest)])


def collection_assets(partitions_def: DailyPartitionsDefinition, first_day: dt.date):
    @multi_asset(
        specs=[AssetSpec(["raw", t], group_name="collection", kinds={"python"},
                         description=REPLACE_ME.format(table=t)) for t in RAW_TABLES],
        partitions_def=partitions_def,
        name="collect_raw_events",
        pool=warehouse_pool(),
    )
    def collect_raw_events(context: AssetExecutionContext):
        """Writes one UTC day of raw rows into the raw schema (the dbt source's schema),
        replacing that day only, so a re-run is idempotent; it holds the warehouse's writer
        lock, so it never interleaves with a rollup run.

        This demo generates the rows. To collect your own data, keep the shape and replace
        the generator call: fetch the day's rows from your API, queue or files into a
        DataFrame per table, then `Warehouse(...).replace_rows(table, frame, time_column,
        day_start, day_end)`. Or drop this asset (`demo: false`) and declare your loader's
        tables as dbt sources: the rollups only need the staging models.
        """
        window = context.partition_time_window
        day = window.start.date()
        frames = generate_day(day, DEMO_SEED, first_day=first_day)
        wh = Warehouse(default_target(), project_paths())
        start, end = dt.datetime(day.year, day.month, day.day), dt.datetime(day.year, day.month, day.day) + dt.timedelta(days=1)
        try:
            with wh.lock(on_wait=lock_waiting(context)):
                for table, frame in frames.items():
                    wh.replace_rows(table, frame, TIME_COLUMNS[table], start, end)
        except WarehouseError as err:
            raise Failure(description=str(err)) from None
        for table, frame in frames.items():
            yield MaterializeResult(asset_key=["raw", table], metadata={"rows": len(frame), "day": day.isoformat()})

    return collect_raw_events
