"""Build the Dagster definitions for a metrics project.

Assets: raw collection (daily), staging views, and per grain the rollups and the series
view (partitioned, single-run backfills). Schedules keep the current hour and day fresh
and recompute their settle lookback; weeks and months follow their days (automation)."""
from dagster import AssetSelection, Definitions, define_asset_job

from ..validation.project import load_project
from .automation import FOLLOWING_GRAINS, coarser_grains_sensor, follows_its_days, lookback_schedule, rollup_job
from .collection import collection_assets
from .partitions import partitions_for
from .resources import metrics_dbt_resource, project_paths
from .rollup_assets import rollup_assets, staging_assets

GRAINS = ("hour", "day", "week", "month")


def build_definitions() -> Definitions:
    loaded = load_project(project_paths())
    if not loaded.ok:
        raise ValueError("metric YAML has problems (run `metrics validate`):\n" + "\n".join(map(str, loaded.issues)))
    project = loaded.project
    built = [m for m in project.built() if m.status == "active"]
    earliest = min((m.start for m in built), default=project.config.start)
    staging = staging_assets()
    assets, jobs, schedules = [staging], [define_asset_job("staging_job", selection=AssetSelection.assets(staging))], []
    day_partitions = partitions_for("day", earliest)
    assets.append(collection_assets(day_partitions, earliest))
    lookback = project.config.settle_lookback
    following = []
    for grain in GRAINS:
        condition = follows_its_days(grain, getattr(lookback, grain)) if grain in FOLLOWING_GRAINS else None
        rollups = rollup_assets(grain, partitions_for(grain, earliest), condition)
        job = rollup_job(grain, rollups)
        assets.append(rollups)
        jobs.append(job)
        if condition is None:
            schedules.append(lookback_schedule(grain, job, getattr(lookback, grain)))
        else:
            following.append(rollups)
    return Definitions(assets=assets, jobs=jobs, schedules=schedules, sensors=[coarser_grains_sensor(following)],
                       resources={"dbt": metrics_dbt_resource()})

