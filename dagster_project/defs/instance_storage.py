"""Dagster's sqlite storage with the event log's connections kept open.

Dagster's `SqliteEventLogStorage` opens a new engine for every write and disposes of it
afterwards. Its databases are in WAL mode, and closing the last connection of a WAL
database checkpoints it and syncs the file: on this project's runs that was most of the
cost of recording a partition (22.7 ms per event; a 90-day `metrics run` writes some
4,000). Here each database keeps one connection open for the life of the process (the
storage's lock serialises its use; creating a database briefly takes a second one), and
a write is a write: 4.2 ms per
event (`bench/bench_event_log.py`, docs/orchestration.md). Readers in other processes
(the webserver, the daemon) read while a connection is open, as WAL allows; SQLite
checkpoints on its own as the log grows, and the log file is removed when the last
connection to the database closes.

A write now lands in `<run>.db-wal` rather than `<run>.db`, so the watcher behind the
UI's live run logs, which Dagster points at `<run>.db` only, watches both files here.

Same files, same layout, same schema as the default storage: `dagster_home.yaml` selects
it with `storage: custom:`, `base_dir: {env: DAGSTER_HOME}` (where the default storage
keeps its files, so an existing instance's history stays readable; the instance must be
loaded through DAGSTER_HOME, as `dagster dev`, the daemon and `metrics run` do). Wiping
the instance deletes run files: stop the webserver and the daemon first, as with the
default storage. Production instances use Postgres instead (dagster_home.postgres.yaml)."""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage, SqliteEventLogStorageWatchdog)
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import (DagsterSqliteStorage, _event_logs_directory, _runs_directory,
                                                  _schedule_directory)
from sqlalchemy.pool import QueuePool
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer

# run databases kept open at once besides the index: a process writes one run at a time
# (an in-process run, or the webserver's recent ones); older ones are closed
KEPT_RUNS = 4


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose engines (one small pool per database) stay open."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "KeptOpenSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = create_engine(self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                                       max_overflow=2,  # _initdb nests a second one
                                       connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                     "check_same_thread": False})
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                self._engines[shard] = engine
                self._close_old_runs()
            else:
                self._engines.move_to_end(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

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
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


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
