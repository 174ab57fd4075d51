"""The production instance configuration (dagster_home.postgres.yaml) really works: a
Dagster instance built from it, on the local Postgres server, stores a run and its
partition events."""
from __future__ import annotations

import shutil

import pytest

from dagster_project.paths import REPO_ROOT

from .conftest import create_pg_database, drop_pg_database


@pytest.fixture
def pg_database():
    name = create_pg_database("dagster_test")
    yield name
    drop_pg_database(name)


def test_the_postgres_instance_config_stores_runs_and_partition_events(tmp_path, monkeypatch, pg_database):
    from dagster import DagsterInstance, DailyPartitionsDefinition, asset, materialize
    from dagster_project.warehouse.connection import pg_settings
    settings = pg_settings()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home.postgres.yaml", home / "dagster.yaml")
    for key, value in {"METRICS_PG_HOST": settings["host"], "METRICS_PG_PORT": str(settings["port"]),
                       "METRICS_PG_USER": settings["user"], "METRICS_PG_PASSWORD": settings["password"],
                       "DAGSTER_PG_DB": pg_database, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(key, value)

    @asset(partitions_def=DailyPartitionsDefinition(start_date="2024-03-01"))
    def numbers(context) -> int:
        return len(context.partition_key)

    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = materialize([numbers], instance=instance, partition_key="2024-03-02")
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
        materialized = instance.get_materialized_partitions(numbers.key)
        assert materialized == {"2024-03-02"}
