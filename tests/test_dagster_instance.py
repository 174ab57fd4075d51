"""The instance configurations really work. Production (dagster_home.postgres.yaml): a
Dagster instance built from it, on the local Postgres server, stores a run and its
partition events. Local (dagster_home.yaml): the sqlite storage with the event log's
connections kept open writes Dagster's usual files, which a default instance in another
process reads while the writer still holds them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

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


READER = """
import os, sys
from dagster import AssetKey, DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
with DagsterInstance.get() as instance:
    assert type(instance.event_log_storage) is SqliteEventLogStorage, type(instance.event_log_storage)
    print(len(instance.get_materialized_partitions(AssetKey("numbers"))), len(instance.get_run_records()))
"""


def test_the_local_instance_config_keeps_dagsters_files_readable(tmp_path, monkeypatch):
    from dagster import BackfillPolicy, DagsterInstance, DailyPartitionsDefinition, Definitions, asset, define_asset_job
    from dagster_project.defs.instance_storage import KEPT_RUNS, KeptOpenSqliteEventLogStorage
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    days = DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-04-01")

    @asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run())
    def numbers(context) -> None:
        context.log.info(f"{len(context.partition_keys)} days")

    job = Definitions(assets=[numbers], jobs=[define_asset_job("numbers_job", selection=[numbers])]).resolve_job_def("numbers_job")
    keys = days.get_partition_keys()
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert type(storage) is KeptOpenSqliteEventLogStorage
        for first, last in [(keys[0], keys[9])] + [(k, k) for k in keys[10:10 + KEPT_RUNS + 2]]:
            result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": first,
                                                                     "dagster/asset_partition_range_end": last})
            assert result.success
        assert instance.get_materialized_partitions(numbers.key) == set(keys[:10 + KEPT_RUNS + 2])
        # the run databases kept open are bounded (the index, and the last few runs)
        assert len(storage._engines) == KEPT_RUNS + 1
        # a commit is not synced to disk (WAL: the database stays consistent; a crash can
        # lose the last events), as SQLite advises for WAL
        for engine in storage._engines.values():
            with engine.connect() as conn:
                assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        # another process, with Dagster's default sqlite storage on the same files, reads
        # every run and partition while this one still holds its connections
        (tmp_path / "reader").mkdir()
        (tmp_path / "reader" / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n"
                                                         "telemetry:\n  enabled: false\n")
        out = subprocess.run([sys.executable, "-c", READER], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "DAGSTER_HOME": str(tmp_path / "reader")})
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [str(10 + KEPT_RUNS + 2), str(1 + KEPT_RUNS + 2)]


def test_the_local_instance_config_feeds_live_run_logs(tmp_path):
    """The UI's live run logs watch a run's events: a writer that keeps its connection
    open writes to the WAL file, which the watcher must follow too."""
    import logging
    import threading
    import time

    from dagster._core.events.log import EventLogEntry
    from dagster_project.defs.instance_storage import KeptOpenSqliteEventLogStorage

    def entry(text: str) -> EventLogEntry:
        return EventLogEntry(error_info=None, level=logging.INFO, user_message=text, run_id="run-1",
                             timestamp=time.time())

    writer = KeptOpenSqliteEventLogStorage(str(tmp_path))  # the run worker
    reader = KeptOpenSqliteEventLogStorage(str(tmp_path))  # the webserver
    writer.store_event(entry("first"))
    seen, more = [], threading.Event()

    def callback(event, cursor):
        seen.append(event.user_message)
        if len(seen) >= 3:
            more.set()

    reader.watch("run-1", None, callback)
    try:
        time.sleep(0.5)
        for text in ("second", "third"):
            writer.store_event(entry(text))
        assert more.wait(10), seen
        assert seen == ["first", "second", "third"]
    finally:
        reader.end_watch("run-1", callback)
        reader.dispose()
        writer.dispose()


def test_a_ranged_runs_partition_events_are_written_in_batches(tmp_path, monkeypatch):
    """A single-run backfill records two events per partition and asset (planned, then
    materialized): the local storage writes each step's batch in one transaction per
    database, not one per event. Counted on the index database's real commits."""
    from sqlalchemy import event as sa_event

    from dagster import BackfillPolicy, DagsterInstance, DailyPartitionsDefinition, Definitions, asset, define_asset_job
    from dagster_project.defs.instance_storage import INDEX_SHARD_NAME
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # the storage's own default (set when it opens; undone after the test)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "")
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE")
    days = DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-05-01")

    @asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run())
    def numbers(context) -> None:
        pass

    job = Definitions(assets=[numbers], jobs=[define_asset_job("numbers_job", selection=[numbers])]).resolve_job_def("numbers_job")
    keys = days.get_partition_keys()
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        with storage._db_lock:
            index = storage._engine(INDEX_SHARD_NAME)
        commits = []
        sa_event.listen(index, "commit", lambda conn: commits.append(1))
        result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": keys[0],
                                                                 "dagster/asset_partition_range_end": keys[-1]})
        assert result.success
        assert instance.get_materialized_partitions(numbers.key) == set(keys)
        # 61 partitions: 122 asset events in the index; a handful of transactions
        assert len(commits) < 20, len(commits)


WRITE_RUN = """
import json, sqlite3, sys
from dagster import (AssetCheckResult, AssetSelection, BackfillPolicy, DagsterInstance, DailyPartitionsDefinition,
                     Definitions, asset, asset_check, define_asset_job)
from dagster._serdes import deserialize_value
days = DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-03-21")

@asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run(), code_version="1")
def first(context) -> None:
    pass

@asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run(), deps=[first], code_version="2")
def second(context) -> None:
    pass

@asset_check(asset=second)
def second_is_fine(context) -> AssetCheckResult:
    return AssetCheckResult(passed=True)

from dagster_project.defs.instance_storage import KeptOpenSqliteEventLogStorage
fast = []  # the batches that took the few-statement path
_store = KeptOpenSqliteEventLogStorage._store_asset_events
KeptOpenSqliteEventLogStorage._store_asset_events = lambda self, events: (fast.append(len(events)),
                                                                          _store(self, events))[1]
job = Definitions(assets=[first, second], asset_checks=[second_is_fine],
                  jobs=[define_asset_job("j", selection=AssetSelection.assets(first, second))]).resolve_job_def("j")
keys = days.get_partition_keys()
with DagsterInstance.get() as instance:
    runs = []
    for lo, hi in ((keys[0], keys[-1]), (keys[3], keys[5])):
        result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": lo,
                                                                 "dagster/asset_partition_range_end": hi})
        assert result.success
        runs.append(result.run_id)
    storage_type = type(instance.event_log_storage).__name__
index = sqlite3.connect(sys.argv[1] + "/history/runs/index.db")
def run(r):  # run ids differ between instances: their order does not
    return runs.index(r) if r in runs else r
partition_of = {i: p for i, p in index.execute("select id, partition from event_logs")}
out = {
    "storage": storage_type,
    "fast": fast,
    "index_events": [[t, a, p, s, run(r)] for t, a, p, s, r in index.execute(
        "select dagster_event_type, asset_key, partition, step_key, run_id from event_logs "
        "where asset_key is not null order by id")],
    "run_events": [[t, a, p, s] for r in runs for t, a, p, s in sqlite3.connect(
        sys.argv[1] + f"/history/runs/{r}.db").execute(
        "select dagster_event_type, asset_key, partition, step_key from event_logs order by id")
        if t in ("ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED")],
    "asset_keys": [[a, run(r), deserialize_value(m).event_log_entry.dagster_event.partition, ts is not None,
                    partition_of[deserialize_value(m).storage_id]]
                   for a, r, m, ts in index.execute("select asset_key, last_run_id, last_materialization, "
                                                    "last_materialization_timestamp from asset_keys order by asset_key")],
    "tags": sorted([a, k, v, partition_of[e]] for e, a, k, v in index.execute(
        "select event_id, asset_key, key, value from asset_event_tags")),
    "checks": [[a, c, p, run(r), st, e is not None, m is not None] for a, c, p, r, st, e, m in index.execute(
        "select asset_key, check_name, partition, run_id, execution_status, evaluation_event, "
        "materialization_event_storage_id from asset_check_executions order by id")],
    "check_events": [[t, run(r)] for t, r in index.execute(
        "select dagster_event_type, run_id from event_logs where dagster_event_type like 'ASSET_CHECK%' order by id")],
}
print(json.dumps(out))
"""


def test_batched_writes_store_what_one_by_one_writes_store(tmp_path):
    """The batched path (a step's partition events in a few statements) against Dagster's
    own per-event writes (DAGSTER_EVENT_BATCH_SIZE=0), on the same two ranged runs: the
    same rows in the run and index databases, the same asset key records (last
    materialization and run), the same indexed tags (data versions), the same asset
    check executions (a run's planned events batch the checks' with the assets')."""
    import json
    found = {}
    for label, size in (("one_by_one", "0"), ("batched", "1000")):
        home = tmp_path / label
        home.mkdir()
        shutil.copy(REPO_ROOT / "dagster_home.yaml", home / "dagster.yaml")
        out = subprocess.run([sys.executable, "-c", WRITE_RUN, str(home)], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_EVENT_BATCH_SIZE": size})
        assert out.returncode == 0, out.stderr[-3000:]
        found[label] = json.loads(out.stdout.strip().splitlines()[-1])
    one, batched = found["one_by_one"], found["batched"]
    assert one["storage"] == batched["storage"] == "KeptOpenSqliteEventLogStorage"
    # the batches took the few-statement path (planned ones hold the check's events too)
    assert one["fast"] == [] and sum(batched["fast"]) >= 2 * 2 * 23, batched["fast"]
    # 20 + 3 partitions x 2 assets, planned and materialized
    assert len(one["index_events"]) == 2 * 2 * 23 and len(one["run_events"]) == 2 * 2 * 23
    assert {r[0] for r in one["asset_keys"]} == {'["first"]', '["second"]'}
    assert all(r[1] == 1 and r[2] == r[4] for r in one["asset_keys"])  # the second run's last partition
    assert one["tags"], "no data version tags were indexed: the comparison would not cover them"
    # the check is planned per partition (20 + 3), each run's evaluation recorded
    assert len(one["checks"]) >= 23 and {c[1] for c in one["checks"]} == {"second_is_fine"}, one["checks"]
    assert sorted(set(t for t, _ in one["check_events"])) == ["ASSET_CHECK_EVALUATION",
                                                            "ASSET_CHECK_EVALUATION_PLANNED"], one["check_events"]
    for part in ("index_events", "run_events", "asset_keys", "tags", "checks", "check_events"):
        assert batched[part] == one[part], part
