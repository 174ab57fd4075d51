"""Rollups: the staging views, per grain the partitioned rollups and series view with
their job, the schedules of the hour and day grains, the automation sensor that brings
weeks and months up to date, and the metric catalog, built after every grain. Each
grain's job also scores its partitions (defs/anomalies.py: the anomalies_<grain> asset
and its check), so every schedule tick, backfill and `metrics run` ends with detections."""
import datetime as dt

from dagster import AssetSelection, Definitions, define_asset_job

from ..spec.raw import GRAINS
from ..spec.resolved import MetricsProject
from .anomalies import anomaly_asset, anomaly_check
from .automation import FOLLOWING_GRAINS, coarser_grains_sensor, follows_its_days, lookback_schedule, rollup_job
from .partitions import partitions_for
from .rollup_assets import catalog_assets, rollup_assets, staging_assets

STAGING_JOB = "staging_job"
CATALOG_JOB = "metric_catalog_job"


def rollup_job_name(grain: str) -> str:
    return f"rollups_{grain}_job"


def rollup_definitions(project: MetricsProject, earliest: dt.date) -> Definitions:
    staging = staging_assets()
    assets = [staging]
    jobs = [define_asset_job(STAGING_JOB, selection=AssetSelection.assets(staging))]
    schedules, following, checks = [], [], []
    lookback = project.config.settle_lookback
    for grain in GRAINS:
        condition = follows_its_days(grain, getattr(lookback, grain)) if grain in FOLLOWING_GRAINS else None
        rollups = rollup_assets(grain, partitions_for(grain, earliest), condition)
        scored = [rollups]
        if any(m.status == "active" and grain in m.grains for m in project.metrics.values()):
            # scored only where a series view exists: a grain no active metric has has none
            scored.append(anomaly_asset(grain, rollups.partitions_def, project, condition))
            checks.append(anomaly_check(grain, rollups.partitions_def))
        job = rollup_job(grain, *scored)
        assets += scored
        jobs.append(job)
        if condition is None:
            schedules.append(lookback_schedule(grain, job, getattr(lookback, grain), rollups.partitions_def))
        else:
            following += scored
    catalog = catalog_assets()
    assets.append(catalog)
    jobs.append(define_asset_job(CATALOG_JOB, selection=AssetSelection.assets(catalog)))
    return Definitions(assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=[coarser_grains_sensor(following)])
