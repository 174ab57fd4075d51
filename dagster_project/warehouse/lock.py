"""One writer per warehouse at a time, across processes.

Two runs over overlapping windows (the hourly schedule's lookback and a backfill from the
UI, or two `metrics run` processes) must serialize, not interleave their delete-and-insert
or fail on an embedded file that another process holds. `warehouse_lock` is held around
every dbt invocation that writes and every raw-data write:

- DuckDB and chDB: an OS file lock (`fcntl.flock`) on a file next to the DuckDB file or
  the chDB folder (`warehouse/metrics.duckdb.lock`, `warehouse/chdb.lock`). Embedded
  engines allow one process per file or data path, so connections to them take it too.
- Postgres: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated
  connection, keyed by a hash of database and schema, held for the block.

Both wait up to `METRICS_LOCK_TIMEOUT` seconds (default 30 minutes), report the wait once
through `on_wait` ("waiting for another run to release warehouse/metrics.duckdb"), and
then raise WarehouseLockTimeout. The lock is re-entrant within a thread (a `metrics run`
executes Dagster steps in its own process, and a raw write inside a locked block must not
wait for itself); other threads of the same process wait like other processes do.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..paths import ProjectPaths
from .connection import WarehouseError, pg_settings, profile_schema

DEFAULT_TIMEOUT = 30 * 60.0
POLL_SECONDS = 0.25


class WarehouseLockTimeout(WarehouseError):
    """Another run held the warehouse for longer than METRICS_LOCK_TIMEOUT."""


def lock_timeout() -> float:
    text = os.environ.get("METRICS_LOCK_TIMEOUT", "").strip()
    try:
        return float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise WarehouseError(f"METRICS_LOCK_TIMEOUT must be a number of seconds, got `{text}`") from None


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Held:
    """This process's state of one lock: the thread guard, the depth, the OS release."""

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self.depth = 0
        self.release: Callable[[], None] | None = None


_REGISTRY: dict[tuple, _Held] = {}
_REGISTRY_GUARD = threading.Lock()


def _pg_key(dbname: str, schema: str) -> int:
    """A signed 64-bit advisory-lock key for one database and schema."""
    digest = hashlib.sha256(f"metrics-warehouse:{dbname}.{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _describe(target: str, paths: ProjectPaths, role: str = "writer") -> tuple[tuple, str]:
    """(identity, what the messages call it) of the lock for a target. `role` "delivery":
    the alert outbox's deliverer, a lock of its own (delivery runs outside the writer's)."""
    suffix, label = ("", "") if role == "writer" else (f".{role}", f"the {role} lock of ")
    if target == "duckdb":
        return ("file", str(Path(f"{paths.duckdb_path}{suffix}.lock").resolve())), label + paths.relative(paths.duckdb_path)
    if target == "clickhouse":
        return ("file", str(Path(f"{paths.chdb_path}{suffix}.lock").resolve())), label + paths.relative(paths.chdb_path)
    if target == "postgres":
        s = pg_settings()
        schema = profile_schema(paths, "postgres")
        return (("postgres", s["host"], s["port"], s["dbname"], schema + suffix),
                f"{label}postgres {s['dbname']}.{schema}")
    raise WarehouseError(f"unknown target `{target}`")


def warehouse_identity(target: str, paths: ProjectPaths) -> tuple:
    """What tells one warehouse from another (its file, or its database and schema): the
    writer lock's identity."""
    return _describe(target, paths)[0]


def _poll(try_once: Callable[[], bool], target: str, label: str, on_wait: Callable[[str], None],
          deadline: float, timeout: float) -> None:
    """Call `try_once` until it takes the lock: say once that we wait, give up at the deadline."""
    told = False
    while not try_once():
        if not told:
            on_wait(f"waiting for another run to release {label}")
            told = True
        if time.monotonic() >= deadline:
            raise _timeout(target, label, timeout)
        time.sleep(POLL_SECONDS)


def _acquire_file(lock_path: str, label: str, on_wait: Callable[[str], None], deadline: float,
                  timeout: float, target: str) -> Callable[[], None]:
    import fcntl
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")

    def try_once() -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        _poll(try_once, target, label, on_wait, deadline, timeout)
    except BaseException:
        handle.close()
        raise

    def release() -> None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    return release


def _acquire_postgres(schema: str, label: str, on_wait: Callable[[str], None], deadline: float,
                      timeout: float) -> Callable[[], None]:
    import psycopg2
    s = pg_settings()
    try:
        con = psycopg2.connect(connect_timeout=10, application_name="metrics-warehouse-lock", **s)
    except psycopg2.Error as err:
        raise WarehouseError(f"postgres: cannot connect to {s['host']}:{s['port']}/{s['dbname']}: {str(err).strip()}") from None
    con.autocommit = True
    key = _pg_key(s["dbname"], schema)
    cur = con.cursor()

    def try_once() -> bool:
        cur.execute("select pg_try_advisory_lock(%s)", [key])
        return bool(cur.fetchone()[0])

    try:
        _poll(try_once, "postgres", label, on_wait, deadline, timeout)
    except BaseException:
        con.close()
        raise

    def release() -> None:
        try:
            con.cursor().execute("select pg_advisory_unlock(%s)", [key])
        except psycopg2.Error:
            pass  # closing the session below releases it as well
        finally:
            con.close()

    return release


def _timeout(target: str, label: str, timeout: float) -> WarehouseLockTimeout:
    return WarehouseLockTimeout(
        f"{target}: another run held {label} for more than {timeout:g} s; nothing was written. "
        "Try again when it has finished, or raise METRICS_LOCK_TIMEOUT (seconds)")


@contextmanager
def warehouse_lock(target: str, paths: ProjectPaths, on_wait: Callable[[str], None] | None = None,
                   timeout: float | None = None, role: str = "writer") -> Iterator[None]:
    """Hold the warehouse's writer lock for the block (see the module docstring); `role`
    "delivery": the alert deliverer's lock instead."""
    on_wait = on_wait or to_stderr
    timeout = lock_timeout() if timeout is None else timeout
    identity, label = _describe(target, paths, role)
    key = (os.getpid(), *identity)  # a forked child never inherits a parent's hold
    with _REGISTRY_GUARD:
        held = _REGISTRY.setdefault(key, _Held())
    deadline = time.monotonic() + timeout
    if not held.guard.acquire(blocking=False):  # another thread of this process holds it
        on_wait(f"waiting for another run to release {label}")
        if not held.guard.acquire(timeout=max(timeout, 0.0)):
            raise _timeout(target, label, timeout)
    try:
        if held.depth == 0:
            if identity[0] == "file":
                held.release = _acquire_file(identity[1], label, on_wait, deadline, timeout, target)
            else:
                held.release = _acquire_postgres(identity[-1], label, on_wait, deadline, timeout)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.release is not None:
                release, held.release = held.release, None
                release()
    finally:
        held.guard.release()
