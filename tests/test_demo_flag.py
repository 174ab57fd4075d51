"""The demo is an example, not part of the machine: the collection asset (generated rows
written into the raw schema, replacing each day) exists only when metrics/_config.yml says
`demo: true`. Schema names come from the dbt project, and warehouse/ exists in a clone."""
from __future__ import annotations

import subprocess

import pytest
from dagster import DagsterInstance, materialize

from dagster_project.compiler.writer import compile_project
from dagster_project.paths import REPO_ROOT
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import make_project

METRICS = {k: cases.METRICS[k] for k in ("events/downloads.yml", "orders/revenue.yml")}
RAW = {"raw/entity_events", "raw/orders", "raw/follower_snapshots"}


def _definitions(paths, monkeypatch):
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(paths.root))
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(paths.duckdb_path))
    compile_project(paths, load_project(paths).project)
    from dagster_project.defs import resources
    from dagster_project.defs.builder import build_definitions
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    return build_definitions()


def _materializable_raw(defs) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {k.to_user_string() for k in graph.materializable_asset_keys if k.path[0] == "raw"}


@pytest.mark.dbt
def test_no_collection_asset_without_demo_flag(tmp_path, monkeypatch):
    paths = make_project(tmp_path, METRICS, cases.CONFIG)  # no `demo:` line: false
    defs = _definitions(paths, monkeypatch)
    assert _materializable_raw(defs) == set()
    assert not any(getattr(a, "op", None) is not None and a.op.name == "collect_raw_events" for a in defs.assets)
    # the raw tables stay visible as the dbt sources the staging views read
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] == "raw"} <= RAW


@pytest.mark.dbt
def test_demo_flag_registers_the_collection_writing_into_the_source_schema(tmp_path, monkeypatch):
    paths = make_project(tmp_path, METRICS, cases.CONFIG + "demo: true\n")
    sources = paths.models_dir / "staging" / "_sources.yml"
    sources.write_text(sources.read_text().replace("    schema: raw\n", "    schema: landing\n"))
    defs = _definitions(paths, monkeypatch)
    assert _materializable_raw(defs) == RAW
    graph = defs.resolve_asset_graph()
    description = graph.get(next(k for k in graph.materializable_asset_keys if k.to_user_string() == "raw/orders")).description
    assert "demo: true" in description and "demo: false" in description and "_sources.yml" in description
    collection = next(a for a in defs.assets if getattr(a, "op", None) is not None and a.op.name == "collect_raw_events")
    result = materialize([collection], partition_key="2024-03-05", resources=defs.resources,
                         instance=DagsterInstance.ephemeral())
    assert result.success
    wh = Warehouse("duckdb", paths)
    rows = wh.frame("select count(*) as n, min(created_at) as lo, max(created_at) as hi from landing.entity_events")
    assert rows.n[0] > 0 and str(rows.lo[0])[:10] == str(rows.hi[0])[:10] == "2024-03-05"


def test_schemas_come_from_the_dbt_project(tmp_path):
    paths = make_project(tmp_path, METRICS, cases.CONFIG)
    assert Warehouse("duckdb", paths).schema == "analytics" and Warehouse("duckdb", paths).raw_schema == "raw"
    profiles = paths.dbt_project_dir / "profiles.yml"
    text = profiles.read_text()
    duckdb_part, rest = text.split("    postgres:", 1)
    profiles.write_text(duckdb_part.replace("schema: analytics", "schema: marts") + "    postgres:" + rest)
    sources = paths.models_dir / "staging" / "_sources.yml"
    sources.write_text(sources.read_text().replace("    schema: raw\n", "    schema: landing\n"))
    assert Warehouse("duckdb", paths).schema == "marts"
    assert Warehouse("duckdb", paths).relation("metric_series_day") == "marts.metric_series_day"
    assert Warehouse("postgres", paths).schema == "analytics"
    assert Warehouse("duckdb", paths).raw_schema == "landing"
    # a templated schema is not resolved here: the default stays
    profiles.write_text(text.replace("schema: analytics", "schema: \"{{ env_var('X', 'y') }}\""))
    assert Warehouse("clickhouse", paths).schema == "analytics"


def test_warehouse_folder_is_in_git_and_its_files_are_not():
    """dbt run from dbt_project/ opens ../warehouse/metrics.duckdb: the folder must exist
    in a fresh clone, its contents stay out of git."""
    assert (REPO_ROOT / "warehouse" / ".gitkeep").exists()

    def ignored(rel: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO_ROOT).returncode == 0

    assert not ignored("warehouse/.gitkeep")
    assert all(ignored(f"warehouse/{name}") for name in ("metrics.duckdb", "metrics.duckdb.lock", "chdb/data", "chdb.lock"))
