"""Reads of a chDB snapshot in a worker process.

chDB runs one embedded engine per process, and an engine cannot be re-opened on another
data path in the same process (the copies share table UUIDs, and the engine keeps its
catalog until the process exits). So `metrics serve --target clickhouse` never opens chDB
itself: each snapshot copy gets its own worker process (spawned, not forked: the server
has threads), which opens the copy and answers queries sent over a pipe. A newer snapshot
gets a new worker; the old one is stopped when its last reader is done."""
from __future__ import annotations

import multiprocessing
import threading
from types import SimpleNamespace

from ..warehouse.connection import WarehouseError

START_TIMEOUT = 120.0  # seconds for a worker to import chDB and open its copy
QUERY_TIMEOUT = 30.0  # seconds one read may take; a stuck worker is stopped, a new one opens the same copy


def _serve(path: str, pipe) -> None:
    """The worker: open the copy, then answer (kind, sql) until told to stop."""
    import clickhouse_connect
    try:
        client = clickhouse_connect.get_client(interface="chdb", path=path)
        client.query("select 1")
    except Exception as err:  # noqa: BLE001 - reported to the server, which says 503
        pipe.send(("error", f"cannot open chDB snapshot at {path}: {str(err).strip().splitlines()[0]}"))
        return
    pipe.send(("ok", None))
    while True:
        try:
            kind, sql = pipe.recv()
        except EOFError:
            return
        if kind == "stop":
            client.close()
            return
        try:
            if kind == "df":
                pipe.send(("ok", client.query_df(sql)))
            else:
                result = client.query(sql)
                pipe.send(("ok", (list(result.column_names), [tuple(r) for r in result.result_rows])))
        except Exception as err:  # noqa: BLE001 - a query error goes back as text
            pipe.send(("error", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__))


class ChdbReader:
    """The server side of one worker: `query` and `query_df` as clickhouse-connect's
    client has them (what `Warehouse.rows` and `Warehouse.frame` call), one at a time."""

    def __init__(self, path: str):
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(path, child), name="metrics-serve-chdb", daemon=True)
        self._proc.start()
        child.close()
        self._guard = threading.Lock()
        self.broken = False
        self._answer(START_TIMEOUT)

    def _answer(self, timeout: float):
        if not self._pipe.poll(timeout):
            self.broken = True
            self._kill()
            raise WarehouseError(f"clickhouse: the snapshot reader did not answer within {timeout:.0f} s")
        try:
            status, payload = self._pipe.recv()
        except (EOFError, OSError):
            self.broken = True
            raise WarehouseError("clickhouse: the snapshot reader stopped") from None
        if status == "error":
            raise WarehouseError(f"clickhouse: {payload}")
        return payload

    def _ask(self, kind: str, sql: str):
        with self._guard:
            if self.broken:
                raise WarehouseError("clickhouse: the snapshot reader stopped; a new one starts with the next snapshot")
            try:
                self._pipe.send((kind, sql))
            except (BrokenPipeError, OSError):
                self.broken = True
                raise WarehouseError("clickhouse: the snapshot reader stopped") from None
            return self._answer(QUERY_TIMEOUT)

    def query(self, sql: str):
        columns, rows = self._ask("rows", sql)
        return SimpleNamespace(column_names=columns, result_rows=rows)

    def query_df(self, sql: str):
        return self._ask("df", sql)

    def cursor(self):  # the snapshot manager hands out "cursors": this reader serialises itself
        return _NoClose(self)

    def close(self) -> None:
        with self._guard:
            try:
                self._pipe.send(("stop", ""))
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=10)
            self._kill()
            self._pipe.close()

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)


class _NoClose:
    def __init__(self, reader: ChdbReader):
        self._reader = reader

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def close(self) -> None:
        pass
