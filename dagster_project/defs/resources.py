"""The dbt project and the dbt CLI resource, shared by every dbt asset."""
import os
import shutil
import sys
from functools import cache
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from ..paths import ProjectPaths
from ..warehouse.connection import default_target


@cache
def project_paths() -> ProjectPaths:
    return ProjectPaths.discover()


@cache
def metrics_dbt_project() -> DbtProject:
    paths = project_paths()
    # dbt runs in the dbt project folder, where the profile's default paths
    # (../warehouse/...) are this project's warehouse; METRICS_*_PATH override them
    project = DbtProject(project_dir=paths.dbt_project_dir, profiles_dir=paths.dbt_project_dir,
                         target=default_target())
    # What prepare_if_dev() does, without needing `dbt` on PATH: under `dagster dev`
    # (DAGSTER_IS_DEV_CLI) parse so the manifest follows the YAML; anywhere else (a
    # fresh clone, `metrics run`, tests) parse once when there is no manifest yet.
    if os.environ.get("DAGSTER_IS_DEV_CLI") or not project.manifest_path.exists():
        parse_manifest(paths)
    return project


def parse_manifest(paths: ProjectPaths) -> None:
    """`dbt parse` (partial: quick when little changed), then drop dagster-dbt's
    in-process copy of the manifest, which it caches by path for the process's life."""
    from dagster_dbt.dbt_manifest import read_manifest_path

    from ..warehouse.dbt_runner import run_dbt
    outcome = run_dbt(paths, default_target(), ["parse"], quiet=True)
    if not outcome.ok:
        raise RuntimeError("dbt parse failed: " + "; ".join(outcome.failures))
    read_manifest_path.cache_clear()


def dbt_executable() -> str:
    """`metrics-dbt` (dbt with the chdb driver registered) beside this interpreter, so
    dbt processes Dagster starts can build on every target, even without .venv on PATH."""
    for name in ("metrics-dbt", "dbt"):
        beside = Path(sys.executable).parent / name
        if beside.exists():
            return str(beside)
        found = shutil.which(name)
        if found:
            return found
    return "dbt"


@cache
def dbt_core_version() -> Version:
    """The dbt-core installed beside this interpreter: the one `metrics-dbt` runs."""
    return Version(installed_version("dbt-core"))


class MetricsDbtCliResource(DbtCliResource):
    """DbtCliResource without two set-up costs it pays on every `cli()` call, that is in
    every step of every run (measured in docs/orchestration.md): a `dbt --version`
    subprocess (~4 s here; its cache lives on a resource instance, and each run builds a
    new one) and an in-process dbt adapter with every macro parsed (~2.5 s), which serves
    only fetch_row_counts / fetch_column_metadata, never called by these assets. The
    version is read from the installed dbt-core instead (tests/test_dbt_resource.py checks
    it against the executable's own answer)."""

    @property
    def _cli_version(self) -> Version:
        return dbt_core_version()

    def _initialize_dbt_core_adapter(self, args):
        return None


def metrics_dbt_resource() -> DbtCliResource:
    return MetricsDbtCliResource(project_dir=metrics_dbt_project(), dbt_executable=dbt_executable(), target=default_target())
