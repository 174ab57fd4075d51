"""Reads for `metrics serve` that never get in a run's way.

An embedded DuckDB file admits one process, and a read-only connection held by the server
would make the next run fail to open it. So the server reads a private copy (a snapshot
under `<warehouse dir>/.serve/`): when the file changed, it takes the writer lock only if
it is free (timeout 0), copies the file (and its WAL), releases it and switches readers to
the copy. While a run holds the lock it keeps serving the previous snapshot. ClickHouse on
chDB (one process per data path as well) the same way: the data folder is copied, and each
copy is read by its own worker process (chdb_reader.py). Postgres is read directly.
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
from .pg_pool import PostgresPool


def _signature(target: str, path: Path) -> tuple:
    """What changes whenever a writer changed the file (checkpointed or not) or, for chDB,
    any file or folder under the data path (a write adds part folders, a delete rewrites)."""
    if target == "clickhouse":
        out = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _chdb_scratch(d))
            for name in [folder, *sorted(os.path.join(folder, f) for f in files)]:
                try:
                    st = os.stat(name)
                    out.append((name, st.st_mtime_ns, st.st_size))
                except OSError:
                    out.append((name, None))
        return tuple(out) or (None,)
    out = []
    for p in (path, Path(str(path) + ".wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _chdb_scratch(name: str) -> bool:
    """chDB's scratch space and parts being written (`tmp_merge_*`, `tmp_insert_*`): a
    merge may run in a process that still has the engine open, lock or not; a finished
    part is renamed into place at once, an unfinished one is never loaded."""
    return name == "tmp" or name.startswith("tmp_")


def _copy(target: str, source: Path, folder: Path) -> Path:
    """Copy the warehouse into `folder` (same name: the same catalog name); the copy's path."""
    copy = folder / source.name
    if target == "clickhouse":
        # the Atomic databases link metadata/ and data/ into store/: keep them links, and a
        # link into the source (absolute) points into the copy instead
        shutil.copytree(source, copy, symlinks=True, ignore=lambda _d, names: [n for n in names if _chdb_scratch(n)])
        root = str(source.resolve())
        for folder, dirs, files in os.walk(copy):
            for name in dirs + files:
                link = Path(folder) / name
                if link.is_symlink() and os.readlink(link).startswith(root + os.sep):
                    moved = str(copy) + os.readlink(link)[len(root):]
                    link.unlink()
                    link.symlink_to(moved)
        return copy
    shutil.copyfile(source, copy)
    wal = Path(str(source) + ".wal")
    if wal.exists():
        shutil.copyfile(wal, Path(str(copy) + ".wal"))
    return copy


def _open(target: str, copy: Path):
    if target == "clickhouse":
        from .chdb_reader import ChdbReader
        return ChdbReader(str(copy))
    import duckdb
    # read-write on the private copy: a leftover WAL is replayed, the source is never touched
    return duckdb.connect(str(copy))


@dataclass
class Snapshot:
    path: Path
    signature: tuple
    con: object
    users: int = 0
    retired: bool = False
    keep_files: bool = False
    marker: dict = field(default_factory=dict)  # filled once by the app: the copy never changes


class SnapshotManager:
    """The current snapshot (DuckDB file or chDB folder), refreshed when the warehouse changed."""

    def __init__(self, paths: ProjectPaths, target: str = "duckdb"):
        self.paths, self.target = paths, target
        self.source = paths.chdb_path if target == "clickhouse" else paths.duckdb_path
        self.dir = self.source.parent / ".serve"
        self.current: Snapshot | None = None
        self._guard = threading.Lock()  # current, users, retired
        self._refreshing = threading.Lock()  # one copy at a time
        self._seq = 0
        self.skipped_busy = 0  # refreshes skipped because a run held the lock
        self.closed = False

    def _clean_stale(self) -> None:
        """Snapshots of server processes that are gone (a crash leaves them behind)."""
        if not self.dir.is_dir():
            return
        for d in self.dir.iterdir():
            pid = d.name.split("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)

    def refresh(self, prepare=None) -> bool:
        """Take a new snapshot if the warehouse changed and no run holds it, or a new reader
        on the same copy if the current one's broke (a chDB worker stopped or stuck); True
        when switched. `prepare(snapshot)` runs on the new one before readers switch to it."""
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            cur = self.current
            if cur is not None and _signature(self.target, self.source) == cur.signature:
                if not getattr(cur.con, "broken", False):
                    return False
                new = Snapshot(cur.path, cur.signature, _open(self.target, cur.path))  # no copy, no lock
                cur.keep_files = True
                return self._install(new, prepare)
            if self.current is None:
                self._clean_stale()
            try:
                with warehouse_lock(self.target, self.paths, on_wait=lambda _m: None, timeout=0):
                    if not self.source.exists():
                        raise WarehouseError(f"{self.target}: no warehouse at {self.source}: run `metrics run` first")
                    signature = _signature(self.target, self.source)
                    self._seq += 1
                    folder = self.dir / f"{os.getpid()}-{self._seq}"
                    folder.mkdir(parents=True, exist_ok=True)
                    try:
                        copy = _copy(self.target, self.source, folder)
                    except OSError:  # disk full, file gone: no half copy left behind
                        shutil.rmtree(folder, ignore_errors=True)
                        raise
            except WarehouseLockTimeout:
                self.skipped_busy += 1
                return False
            try:
                new = Snapshot(copy, signature, _open(self.target, copy))
            except Exception:
                shutil.rmtree(folder, ignore_errors=True)  # a failed copy must not pile up on disk
                raise
            return self._install(new, prepare)
        finally:
            self._refreshing.release()

    def _install(self, new: Snapshot, prepare) -> bool:
        if prepare is not None:
            try:
                prepare(new)
            except Exception:  # noqa: BLE001 - warming is an optimisation: readers compute on demand
                pass
        with self._guard:
            if self.closed:  # the server stopped meanwhile: nobody will read or delete it later
                old, done = new, True
            else:
                old, self.current = self.current, new
                done = old is not None and self._retire(old)
        if done:
            self._drop(old)  # outside the guard: stopping a chDB worker takes a moment
        return not self.closed

    @contextmanager
    def use(self) -> Iterator[Snapshot]:
        """The current snapshot, kept open until the block ends even if a newer one arrives."""
        with self._guard:
            snap = self.current
            if snap is None and not self.source.exists():  # not a busy run: nothing was ever built
                raise WarehouseError(f"{self.target}: no warehouse at {self.source}: run `metrics run` first")
            if snap is None:
                raise WarehouseError(f"{self.target}: no snapshot of the warehouse yet (a run may hold it): try again")
            snap.users += 1
        try:
            yield snap
        finally:
            with self._guard:
                snap.users -= 1
                done = snap.retired and snap.users == 0
            if done:
                self._drop(snap)

    @staticmethod
    def _retire(snap: Snapshot) -> bool:
        """Mark `snap` retired (under the guard); True when no reader uses it any more."""
        snap.retired = True
        return snap.users == 0

    def _drop(self, snap: Snapshot) -> None:
        try:
            snap.con.close()
        finally:
            if not snap.keep_files:  # a new reader on the same copy keeps them
                shutil.rmtree(snap.path.parent, ignore_errors=True)  # the folder of this copy

    def close(self) -> None:
        with self._guard:
            self.closed = True
            old, self.current = self.current, None
            done = old is not None and self._retire(old)
        if done:
            self._drop(old)


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
    """A Warehouse whose reads go to the snapshot's connection (DuckDB, chDB) or the
    server's Postgres pool, and take no lock. One per request: Warehouse keeps its open
    reader on the instance."""

    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)
    pool: PostgresPool | None = field(default=None, repr=False, compare=False)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[object]:
        if not read_only:
            raise WarehouseError("metrics serve is read-only")
        if self.snapshot is not None:
            # DuckDB: a cursor per thread (one instance, many readers); chDB: its worker's proxy
            cur = self.snapshot.con.cursor()
            try:
                yield cur
            finally:
                cur.close()
        elif self.target == "postgres" and self.pool is not None:
            with self.pool.connection() as con:
                yield con
        else:
            raise WarehouseError(f"{self.target}: no snapshot to read")
