"""Dagster definitions (the only package that imports dagster).

This first cut puts every generated dbt model on the asset graph so `dagster dev -w
workspace.yaml` shows and materializes it; partitions per grain, schedules, backfills and
sensors come with the Dagster issue."""
from __future__ import annotations

from dagster import Definitions

from .dbt_assets import metrics_dbt_assets, metrics_dbt_resource

defs = Definitions(assets=[metrics_dbt_assets], resources={"dbt": metrics_dbt_resource()})
