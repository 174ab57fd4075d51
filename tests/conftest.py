"""Shared fixtures: a throwaway copy of the project (dbt project, macros, staging models,
seeds) in a temporary folder, with its own metrics/ and its own DuckDB file."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dagster_project.paths import REPO_ROOT, ProjectPaths

_COPY = ["dbt_project/dbt_project.yml", "dbt_project/profiles.yml", "macros", "models/staging", "seeds"]


def make_project(root: Path, metrics: dict[str, str], config: str | None = None) -> ProjectPaths:
    """A project at `root` with the given metric files ({'domain/name.yml': yaml})."""
    for rel in _COPY:
        src, dst = REPO_ROOT / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy(src, dst)
    (root / "models" / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "metrics").mkdir(exist_ok=True)
    if config is not None:
        (root / "metrics" / "_config.yml").write_text(config)
    for rel, text in metrics.items():
        path = root / "metrics" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ProjectPaths(root)


def without_freshness(paths: ProjectPaths) -> None:
    """Drop the example's source freshness declarations (a project whose raw tables are
    not loaded would raise a freshness alert per table)."""
    (paths.models_dir / "staging" / "_sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
        "      - name: entity_events\n      - name: orders\n      - name: follower_snapshots\n")


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("METRICS_PROJECT_DIR", raising=False)
    monkeypatch.delenv("METRICS_TARGET", raising=False)
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def _clean_metrics_env():
    """Tests choose their own warehouse; a developer's METRICS_* settings must not leak in."""
    import os
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("METRICS_")}
    yield
    os.environ.update(saved)


def _pg_admin():
    """An autocommit connection to the local server. No server: a skip, or under
    METRICS_REQUIRE_ALL_TARGETS=1 (CI) a failure."""
    import os

    import psycopg2
    from dagster_project.warehouse.connection import pg_settings
    try:
        admin = psycopg2.connect(connect_timeout=5, **pg_settings())
    except psycopg2.OperationalError as err:
        if os.environ.get("METRICS_REQUIRE_ALL_TARGETS"):
            raise
        pytest.skip(f"no Postgres server ({err}); run scripts/postgres.sh")
    admin.autocommit = True
    return admin


def create_pg_database(prefix: str) -> str:
    """A fresh, uniquely named database on the local Postgres server."""
    import uuid
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    admin.cursor().execute(f"create database {name}")
    admin.close()
    return name


def drop_pg_database(name: str) -> None:
    """Drop a test database, ending its sessions. FORCE may not end an autovacuum worker
    (a superuser's process: "must be a member of the role whose process is being
    terminated"); a plain drop asks autovacuum to leave, and is tried again while a
    session is still on its way out."""
    import time

    import psycopg2
    admin = _pg_admin()
    try:
        for attempt in range(20):
            try:
                admin.cursor().execute(f"drop database if exists {name} with (force)")
                return
            except psycopg2.errors.InsufficientPrivilege:
                try:
                    admin.cursor().execute(f"drop database if exists {name}")
                    return
                except psycopg2.errors.ObjectInUse:
                    time.sleep(0.5)
        admin.cursor().execute(f"drop database if exists {name} with (force)")
    finally:
        admin.close()


TARGETS = ("duckdb", "postgres", "clickhouse")
_CHDB_PATH: str | None = None


def empty_chdb(tmp_path_factory) -> str:
    """The session's chDB data path, with empty databases. chDB runs one engine (one data
    path) per process: every test shares the session's path and starts from empty
    databases instead (kept, not dropped: dbt-clickhouse may reuse a client that created
    them in an earlier test)."""
    global _CHDB_PATH
    if _CHDB_PATH is None:
        _CHDB_PATH = str(tmp_path_factory.getbasetemp() / "chdb")
    import clickhouse_connect
    client = clickhouse_connect.get_client(interface="chdb", path=_CHDB_PATH)
    tables = client.query("select database, name from system.tables where database in ('analytics', 'analytics_seeds', 'raw')")
    for database, table in tables.result_rows:
        client.command(f"drop table if exists `{database}`.`{table}` sync")
    client.close()
    return _CHDB_PATH


@pytest.fixture(scope="module", params=TARGETS)
def target(request, tmp_path_factory):
    """Each warehouse in turn, isolated: DuckDB and chDB files in a temporary folder, a
    fresh Postgres database per test module. METRICS_REQUIRE_ALL_TARGETS=1 (CI) turns a
    missing Postgres server into a failure instead of a skip."""
    import os

    name = request.param
    saved = {k: os.environ.get(k) for k in ("METRICS_PG_DATABASE", "METRICS_CHDB_PATH")}
    dbname = None
    if name == "postgres":
        dbname = create_pg_database("metrics_test")
        os.environ["METRICS_PG_DATABASE"] = dbname
    if name == "clickhouse":
        os.environ["METRICS_CHDB_PATH"] = empty_chdb(tmp_path_factory)
    yield name
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if dbname:
        drop_pg_database(dbname)
