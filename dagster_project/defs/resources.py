"""The dbt project and the dbt CLI resource, shared by every dbt asset."""
import os
import shutil
import sys
import threading
from functools import cache
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliInvocation, DbtCliResource, DbtProject
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
    from .dbt_in_process import remember_manifest
    outcome = run_dbt(paths, default_target(), ["parse"], quiet=True)
    if not outcome.ok:
        raise RuntimeError("dbt parse failed: " + "; ".join(outcome.failures))
    read_manifest_path.cache_clear()
    # the builds of this process start from it (defs/dbt_in_process.py)
    remember_manifest(paths.dbt_project_dir, default_target(), outcome.result)


def dbt_executable() -> str:
    """`metrics-dbt` (dbt with the chdb driver registered) beside this interpreter: the
    executable the resource's dbt commands name (and the step logs show), though
    MetricsDbtCliResource runs their arguments in process."""
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
    """DbtCliResource without the set-up costs it pays on every `cli()` call, that is in
    every step of every run (measured in docs/orchestration.md): a `dbt --version`
    subprocess (~4 s here; its cache lives on a resource instance, and each run builds a
    new one), an in-process dbt adapter with every macro parsed (~2.5 s), which serves
    only fetch_row_counts / fetch_column_metadata, never called by these assets, and the
    dbt process itself: dbt runs in this process (defs/dbt_in_process.py). The version
    is read from the installed dbt-core instead (tests/test_dbt_resource.py checks it
    against the executable's own answer)."""

    def cli(self, args, **kwargs):
        from dagster_dbt.core import resource as dagster_dbt_resource

        # cli() builds the command, the environment and the selection, then hands them
        # to DbtCliInvocation.run, which starts a process: for this call, to the
        # in-process one instead
        with _SWAP:
            original = dagster_dbt_resource.DbtCliInvocation
            dagster_dbt_resource.DbtCliInvocation = InProcessDbtCliInvocation
            try:
                return super().cli(args, **kwargs)
            finally:
                dagster_dbt_resource.DbtCliInvocation = original

    @property
    def _cli_version(self) -> Version:
        return dbt_core_version()

    def _initialize_dbt_core_adapter(self, args):
        return None


_SWAP = threading.Lock()


class InProcessDbtCliInvocation(DbtCliInvocation):
    """DbtCliInvocation over dbt run in this process (same events, artifacts, errors)."""

    @classmethod
    def run(cls, args, env, project_dir, dbt_project=None, **fields):
        from .dbt_in_process import InProcessDbt

        args = list(args)
        target = args[args.index("--target") + 1] if "--target" in args[:-1] else default_target()
        # the other keyword arguments are the invocation's own fields, passed on as given
        return cls(process=InProcessDbt(args, env, Path(project_dir), target), project_dir=project_dir,
                   project=dbt_project, **fields)


def metrics_dbt_resource() -> DbtCliResource:
    return MetricsDbtCliResource(project_dir=metrics_dbt_project(), dbt_executable=dbt_executable(), target=default_target())
