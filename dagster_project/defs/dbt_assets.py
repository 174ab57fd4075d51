"""The dbt project as Dagster assets."""

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from ..paths import ProjectPaths


@cache
def metrics_dbt_project() -> DbtProject:
    paths = ProjectPaths.discover()
    os.environ.setdefault("METRICS_DUCKDB_PATH", str(paths.duckdb_path))
    project = DbtProject(project_dir=paths.dbt_project_dir, profiles_dir=paths.dbt_project_dir)
    # under `dagster dev` this runs `dbt parse` so the manifest follows the YAML
    project.prepare_if_dev()
    return project


def metrics_dbt_resource() -> DbtCliResource:
    # the dbt installed beside this interpreter, even when .venv/bin is not on PATH
    beside = Path(sys.executable).parent / "dbt"
    executable = str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")
    return DbtCliResource(project_dir=metrics_dbt_project(), dbt_executable=executable)


@dbt_assets(manifest=metrics_dbt_project().manifest_path, exclude="tag:metrics_draft")
def metrics_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()
