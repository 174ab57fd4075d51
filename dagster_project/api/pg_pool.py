"""The Postgres connections of `metrics serve`: read-only, kept open between requests."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..warehouse.connection import WarehouseError, pg_connect

STATEMENT_TIMEOUT_MS = 15_000  # one slow read cannot hold a worker for long


class PostgresPool:
    """At most `size` read-only connections, kept open between requests (a connect costs
    a few ms and a server process); a kept one answers a ping before it is handed out (the
    server may have been restarted or have ended idle sessions), a lost one is dropped."""

    def __init__(self, size: int = 8):
        self.size = size
        self._idle: list = []
        self._guard = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)  # a burst waits for a free connection

    @contextmanager
    def connection(self) -> Iterator[object]:
        if not self._slots.acquire(timeout=15):
            raise WarehouseError(f"postgres: all {self.size} read connections stayed busy for 15 s: try again")
        try:
            con = self._checkout()
            try:
                yield con
            finally:
                # autocommit: a failed query leaves the connection usable; a lost one is dropped
                if not con.closed:
                    with self._guard:
                        self._idle.append(con)
        finally:
            self._slots.release()

    def _checkout(self):
        import psycopg2
        while True:
            with self._guard:
                con = self._idle.pop() if self._idle else None
            if con is None:
                break
            try:
                con.cursor().execute("select 1")
                return con
            except psycopg2.Error:
                con.close()
        con = pg_connect()
        try:
            con.set_session(readonly=True, autocommit=True)
            con.cursor().execute(f"set statement_timeout = {STATEMENT_TIMEOUT_MS}")
        except psycopg2.Error as err:
            con.close()
            raise WarehouseError(f"postgres: {str(err).strip().splitlines()[0]}") from None
        return con

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for con in idle:
            con.close()
