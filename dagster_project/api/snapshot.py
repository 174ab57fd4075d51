"""Reads for `metrics serve` that never get in a run's way.

An embedded DuckDB file admits one process, and a read-only connection held by the server
would make the next run fail to open it. So the server reads a private copy (a snapshot
under `<warehouse dir>/.serve/`): when the file changed, it takes the writer lock only if
it is free (timeout 0), copies the file (and its WAL), releases it and switches readers to
the copy. While a run holds the lock it keeps serving the previous snapshot. Postgres is
read directly; ClickHouse on chDB (one process per data path as well) is not served yet.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import ProjectPaths
from ..warehouse.connection import Warehouse, WarehouseError
from ..warehouse.lock import WarehouseLockTimeout, warehouse_lock


def _signature(path: Path) -> tuple:
    """What changes whenever a writer changed the file (checkpointed or not)."""
    out = []
    for p in (path, Path(str(path) + ".wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@dataclass
class Snapshot:
    path: Path
    signature: tuple
    con: object
    users: int = 0
    retired: bool = False
    marker: dict = field(default_factory=dict)  # filled once by the app: the copy never changes


class SnapshotManager:
    """The current DuckDB snapshot, refreshed when the warehouse file changed."""

    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.source = paths.duckdb_path
        self.dir = self.source.parent / ".serve"
        self.current: Snapshot | None = None
        self._guard = threading.Lock()  # current, users, retired
        self._refreshing = threading.Lock()  # one copy at a time
        self._seq = 0
        self.skipped_busy = 0  # refreshes skipped because a run held the lock

    def _clean_stale(self) -> None:
        """Snapshots of server processes that are gone (a crash leaves them behind)."""
        if not self.dir.is_dir():
            return
        for d in self.dir.iterdir():
            pid = d.name.split("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)

    def refresh(self) -> bool:
        """Take a new snapshot if the file changed and no run holds it; True when switched."""
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            if self.current is not None and _signature(self.source) == self.current.signature:
                return False
            if self.current is None:
                self._clean_stale()
            try:
                with warehouse_lock("duckdb", self.paths, on_wait=lambda _m: None, timeout=0):
                    if not self.source.exists():
                        raise WarehouseError(f"duckdb: no warehouse file at {self.source}: run `metrics run` first")
                    signature = _signature(self.source)
                    self._seq += 1
                    folder = self.dir / f"{os.getpid()}-{self._seq}"
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / self.source.name  # same file name: the same catalog name
                    try:
                        shutil.copyfile(self.source, target)
                        wal = Path(str(self.source) + ".wal")
                        if wal.exists():
                            shutil.copyfile(wal, Path(str(target) + ".wal"))
                    except OSError:  # disk full, file gone: no half copy left behind
                        shutil.rmtree(folder, ignore_errors=True)
                        raise
            except WarehouseLockTimeout:
                self.skipped_busy += 1
                return False
            import duckdb
            try:
                # read-write on the private copy: a leftover WAL is replayed, the source is never touched
                con = duckdb.connect(str(target))
            except Exception:
                shutil.rmtree(target.parent, ignore_errors=True)  # a failed copy must not pile up on disk
                raise
            new = Snapshot(target, signature, con)
            with self._guard:
                old, self.current = self.current, new
                if old is not None:
                    old.retired = True
                    if old.users == 0:
                        self._drop(old)
            return True
        finally:
            self._refreshing.release()

    @contextmanager
    def use(self) -> Iterator[Snapshot]:
        """The current snapshot, kept open until the block ends even if a newer one arrives."""
        with self._guard:
            snap = self.current
            if snap is None:
                raise WarehouseError("duckdb: no snapshot of the warehouse yet (a run may hold it): try again")
            snap.users += 1
        try:
            yield snap
        finally:
            with self._guard:
                snap.users -= 1
                if snap.retired and snap.users == 0:
                    self._drop(snap)

    def _drop(self, snap: Snapshot) -> None:
        try:
            snap.con.close()
        finally:
            shutil.rmtree(snap.path.parent, ignore_errors=True)

    def close(self) -> None:
        with self._guard:
            if self.current is not None:
                self.current.retired = True
                if self.current.users == 0:
                    self._drop(self.current)
                self.current = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@dataclass
class ServeWarehouse(Warehouse):
    """A Warehouse whose reads go to the snapshot's connection (DuckDB) and take no lock.
    One per request: Warehouse keeps its open reader on the instance."""

    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[object]:
        if not read_only:
            raise WarehouseError("metrics serve is read-only")
        if self.target == "duckdb":
            cur = self.snapshot.con.cursor()  # a cursor per thread: one DuckDB instance, many readers
            try:
                yield cur
            finally:
                cur.close()
        elif self.target == "postgres":
            with self._connect(True) as con:
                con.set_session(readonly=True, autocommit=True)
                con.cursor().execute("set statement_timeout = 15000")  # one slow read cannot hold a worker for long
                yield con
        else:
            raise WarehouseError(f"{self.target}: metrics serve reads duckdb and postgres only (chDB: not yet)")
