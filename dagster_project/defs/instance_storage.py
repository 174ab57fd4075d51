"""Dagster's sqlite storage with the event log's connections kept open.

Dagster's `SqliteEventLogStorage` opens a new engine for every write and disposes of it
afterwards. Its databases are in WAL mode, and closing the last connection of a WAL
database checkpoints it and syncs the file: on this project's runs that was most of the
cost of recording a partition (22.7 ms per event; a 90-day `metrics run` writes some
4,000). Here each database keeps one connection open for the life of the process (the
storage's lock serialises its use; creating a database briefly takes a second one), and
a write is a write: 4.2 ms per event (`bench/bench_event_log.py`, docs/orchestration.md).
Commits are not synced to disk (`synchronous=NORMAL`, what SQLite advises for WAL): the
database stays consistent through a power loss or an OS crash, which can lose the last
events written (a crash of the process loses nothing committed). On a busy disk (a test
run beside it) the syncs took 2.8 of the benchmark's 10.3 s under a profiler, 0.3 s
without them. Readers in other processes (the webserver, the daemon) read while a
connection is open, as WAL allows; SQLite checkpoints on its own as the log grows, and
the log file is removed when the last connection to the database closes.

A step's batch of events (a ranged run's planned and recorded partition materializations,
two per partition and asset) is written in one transaction per database: Dagster hands
batches to `store_event_batch` only when DAGSTER_EVENT_BATCH_SIZE is set, so opening this
storage sets it (BATCH_EVENTS) unless the environment already does (0: one transaction
per event, as before); and a batch of asset events goes through a few statements (as
dagster-postgres writes them: `_store_asset_events`). 2.4 ms per event with one
transaction per batch, 0.7 ms with the few statements (`bench/bench_event_log.py`).

A write now lands in `<run>.db-wal` rather than `<run>.db`, so the watcher behind the
UI's live run logs, which Dagster points at `<run>.db` only, watches both files here.

Same files, same layout, same schema as the default storage: `dagster_home.yaml` selects
it with `storage: custom:`, `base_dir: {env: DAGSTER_HOME}` (where the default storage
keeps its files, so an existing instance's history stays readable; the instance must be
loaded through DAGSTER_HOME, as `dagster dev`, the daemon and `metrics run` do). Wiping
the instance deletes run files: stop the webserver and the daemon first, as with the
default storage. Production instances use Postgres instead (dagster_home.postgres.yaml)."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import ExitStack, contextmanager

from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage, SqliteEventLogStorageWatchdog)
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import (DagsterSqliteStorage, _event_logs_directory, _runs_directory,
                                                  _schedule_directory)
from sqlalchemy import event
from sqlalchemy.pool import QueuePool
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer

# run databases kept open at once besides the index: a process writes one run at a time
# (an in-process run, or the webserver's recent ones); older ones are closed
KEPT_RUNS = 4
# partition materializations written per transaction
BATCH_EVENTS = 1000
# what a batch written in a few statements may hold (else: event by event)
_BATCHED = ASSET_EVENTS | ASSET_CHECK_EVENTS


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose engines (one small pool per database) stay open."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict = OrderedDict()
        self._batch: _Batch | None = None
        self._tables_seen: set[str] = set()
        self._columns_seen: set[str] = set()
        # Dagster hands a step's partition materializations over as one batch only when
        # this is set (read when an event is handled); 0 turns batches off
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(BATCH_EVENTS))
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "KeptOpenSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str):
        batch = self._batch
        if batch is not None and batch.thread == threading.get_ident():  # _db_lock is held by the batch
            yield batch.connection(shard, self._engine)
            return
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn

    def store_event_batch(self, events) -> None:
        """A batch of events in one transaction per database (Dagster sends a step's
        partition materializations as a batch when DAGSTER_EVENT_BATCH_SIZE is set). On
        an error while writing, nothing of the batch is kept and Dagster stores the
        events one by one; the transactions commit one after the other, so a failure
        between two commits would write the first database's events twice."""
        with self._db_lock, ExitStack() as stack:
            self._batch = _Batch(threading.get_ident(), stack)
            try:
                if all(e.is_dagster_event and e.dagster_event_type in _BATCHED for e in events):
                    self._store_asset_events(events)
                else:
                    for entry in events:
                        self.store_event(entry)
            finally:
                self._batch = None

    def _store_asset_events(self, events) -> None:
        """What store_event writes for each of these asset and asset check events, with
        fewer statements (as dagster-postgres batches): the run databases' rows in one
        statement each, the index rows one by one (their ids key the tags and the check
        executions), the tags in one statement, and the asset key table updated per key
        only with the last event of each type (each type sets the same columns, so the
        later ones decide every column)."""
        insert = SqlEventLogStorageTable.insert()
        rows = [self._event_to_row(e) for e in events]
        for run_id in dict.fromkeys(e.run_id for e in events):
            with self.run_connection(run_id) as conn:
                conn.execute(insert, [r for r, e in zip(rows, events) if e.run_id == run_id])
        with self.index_transaction() as conn:
            ids = [conn.execute(insert, r).inserted_primary_key[0] for r in rows]
            for e, i in zip(events, ids):
                if e.dagster_event_type in ASSET_CHECK_EVENTS:
                    self.store_asset_check_event(e, i)  # on this transaction (the batch's connection)
            assets = [(e, i) for e, i in zip(events, ids) if e.dagster_event_type in ASSET_EVENTS]
            self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
            last: dict = {}
            for e, i in assets:
                last[(e.dagster_event.asset_key, e.dagster_event_type)] = (e, i)
            for e, i in sorted(last.values(), key=lambda pair: pair[1]):
                self._store_asset_event(conn, e, i)

    def has_table(self, table_name: str) -> bool:
        # Dagster asks per event written (a new engine and a schema read each time); a
        # table, once there, stays (wipe() forgets)
        if table_name not in self._tables_seen and super().has_table(table_name):
            self._tables_seen.add(table_name)
        return table_name in self._tables_seen

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        if column_name not in self._columns_seen and super()._has_asset_key_col_on_connection(conn, column_name):
            self._columns_seen.add(column_name)
        return column_name in self._columns_seen

    def _engine(self, shard: str):
        """The shard's engine (created, and its database initialised, on first use); call
        with _db_lock held."""
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                                   max_overflow=2,  # _initdb nests a second one
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                 "check_same_thread": False})
            event.listen(engine, "connect", _no_sync_per_commit)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            self._close_old_runs()
        else:
            self._engines.move_to_end(shard)
        return engine

    def _close_old_runs(self) -> None:
        runs = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for shard in runs[:max(0, len(runs) - KEPT_RUNS)]:
            self._engines.pop(shard).dispose()

    def watch(self, run_id: str, cursor, callback) -> None:
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _RunFilesWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (watchdog, self._obs.schedule(watchdog, self._base_dir, recursive=True))

    def _close_all(self) -> None:
        with self._db_lock:
            engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            engine.dispose()

    def wipe(self) -> None:  # the run files are deleted: their connections first
        self._close_all()
        self._tables_seen.clear()
        self._columns_seen.clear()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _no_sync_per_commit(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class _Batch:
    """The connections of one store_event_batch, each in a transaction its stack commits."""

    def __init__(self, thread: int, stack: ExitStack):
        self.thread, self._stack, self._connections = thread, stack, {}

    def connection(self, shard: str, engine_for):
        conn = self._connections.get(shard)
        if conn is None:
            conn = self._stack.enter_context(engine_for(shard).connect())
            self._stack.enter_context(conn.begin())
            self._connections[shard] = conn
        return conn


class _RunFilesWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's watcher of a run's events, on `<run>.db` and on its WAL file."""

    def __init__(self, storage, run_id: str, callback, cursor):
        super().__init__(storage, run_id, callback, cursor)
        self._files = (self._log_path, self._log_path + "-wal")
        PatternMatchingEventHandler.__init__(self, patterns=list(self._files))

    def on_modified(self, event) -> None:
        if event.src_path in self._files:
            self._process_log()

    on_created = on_modified


class KeptOpenSqliteStorage(DagsterSqliteStorage):
    """DagsterSqliteStorage (runs, event log, schedules under base_dir) with the event log
    above. Configured as `storage: custom:` in dagster.yaml."""

    def __init__(self, base_dir: str, inst_data=None):
        # DagsterSqliteStorage.__init__ would open the default event log first: set up here
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptOpenSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "KeptOpenSqliteStorage":
        return cls.from_local(inst_data=inst_data, **config_value)
