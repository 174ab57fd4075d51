"""What a running `metrics serve` keeps: the metric definitions (reloaded when a metric or
dbt YAML file changes), the DuckDB or chDB snapshot (the Postgres connection pool), the
newest-materialization marker, the per-entity totals index and the response cache keyed
by (path, query) and tagged with that marker."""
from __future__ import annotations

import hashlib
import sys
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from ..paths import ProjectPaths
from ..warehouse.connection import WarehouseError
from ..warehouse.read import now_utc
from . import queries
from .pg_pool import PostgresPool
from .snapshot import ServeWarehouse, SnapshotManager
from .totals_index import TotalsIndex

SERVED = ("duckdb", "postgres", "clickhouse")
MARKER_TTL = 2.0  # seconds a Postgres marker is trusted (DuckDB: one per snapshot)
PROJECT_TTL = 5.0  # seconds between checks of the metric files
CACHE_SIZE = 512


class ServeState:
    def __init__(self, paths: ProjectPaths, target: str, refresh_seconds: float = 1.0):
        if target not in SERVED:
            raise WarehouseError(f"{target}: `metrics serve` reads {', '.join(SERVED)}")
        self.paths, self.target = paths, target
        self.snapshots = SnapshotManager(paths, target) if target != "postgres" else None
        self.pool = PostgresPool() if target == "postgres" else None
        self.totals = TotalsIndex()
        self._warmed_day = None
        self._project, self._fingerprint, self._checked = None, None, 0.0
        self._project_guard = threading.Lock()
        self._pg_marker: tuple[float, dict] | None = None
        self.cache: OrderedDict = OrderedDict()
        self._cache_guard = threading.Lock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.refresh_seconds = refresh_seconds

    # -- lifecycle
    def start(self) -> None:
        self.project()  # fail at start on metric files that do not validate
        if self.snapshots is not None:
            try:
                self.snapshots.refresh(self._prepare)
            except Exception as err:  # noqa: BLE001 - no file yet, a copy that failed: the refresher retries
                print(f"metrics serve: no snapshot yet ({str(err).strip().splitlines()[0][:300]}); "
                      "retrying every second", file=sys.stderr, flush=True)
            self._refresher = threading.Thread(target=self._refresh_loop, name="metrics-serve-snapshots", daemon=True)
            self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        if self.snapshots is not None:
            self.snapshots.close()
        if self.pool is not None:
            self.pool.close()

    def _refresh_loop(self) -> None:
        last_error = None
        while not self._stop.wait(self.refresh_seconds):
            try:
                if not self.snapshots.refresh(self._prepare) and self._warmed_day != now_utc().date():
                    with self.snapshots.use() as snap:  # a new day: the trailing windows moved
                        self._prepare(snap)
                last_error = None
            except Exception as err:  # noqa: BLE001 - retried next tick; readers keep the previous snapshot
                text = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
                if text != last_error:  # once per distinct failure, not every second
                    print(f"metrics serve: snapshot refresh failed ({text}); retrying", file=sys.stderr, flush=True)
                last_error = text

    def _prepare(self, snap) -> None:
        """Before readers switch to a new snapshot: its marker, and the totals indexes in use."""
        project = self.project()
        wh = ServeWarehouse(self.target, self.paths, snapshot=snap)
        with wh.reading():
            self._fill_marker(wh, project)
            now = now_utc()
            for name, dimension in self.totals.recent():
                if self._stop.is_set():
                    return
                metric = project.metrics.get(name)
                if metric is not None:
                    try:
                        self.totals.entry(wh, self.data_key(wh), metric, dimension, queries.window_end(now))
                    except (ValueError, WarehouseError):
                        pass  # no longer a totals metric, not built, too slow: requests use direct queries
            self._warmed_day = now.date()

    @staticmethod
    def _fill_marker(wh: ServeWarehouse, project) -> None:
        snap = wh.snapshot
        if not snap.marker:  # once per snapshot: the copy never changes
            snap.marker = queries.materialization_marker(wh, project)

    # -- definitions
    def project(self):
        from ..validation import read_cache
        with self._project_guard:
            if self._project is not None and time.monotonic() - self._checked < PROJECT_TTL:
                return self._project
            fp = read_cache.fingerprint(self.paths)
            self._checked = time.monotonic()
            if fp != self._fingerprint:
                from ..validation.project import load_project
                result = load_project(self.paths)
                if result.issues:
                    if self._project is None:
                        raise WarehouseError(f"{len(result.issues)} problem(s) in the metric files, e.g. "
                                             f"{result.issues[0]}: run `metrics validate`")
                    return self._project  # keep serving the last valid definitions
                self._project, self._fingerprint = result.project, fp
            return self._project

    # -- reads
    @contextmanager
    def reader(self) -> Iterator[tuple[ServeWarehouse, str]]:
        """A per-request warehouse and the marker string the ETag and cache are tied to."""
        project = self.project()
        if self.snapshots is None:
            wh = ServeWarehouse(self.target, self.paths, pool=self.pool)
            with wh.reading():
                yield wh, self._marker_key(wh)
            return
        with self.snapshots.use() as snap:
            wh = ServeWarehouse(self.target, self.paths, snapshot=snap)
            with wh.reading():
                self._fill_marker(wh, project)
                yield wh, self._marker_key(wh)

    def marker(self, wh: ServeWarehouse) -> dict:
        if wh.snapshot is not None:
            return wh.snapshot.marker
        return self._postgres_marker(wh, self.project())

    def _postgres_marker(self, wh: ServeWarehouse, project) -> dict:
        hit = self._pg_marker
        if hit is not None and time.monotonic() - hit[0] < MARKER_TTL:
            return hit[1]
        marker = queries.materialization_marker(wh, project)
        self._pg_marker = (time.monotonic(), marker)
        return marker

    def data_key(self, wh: ServeWarehouse) -> str:
        """What the data is: the materializations, the snapshot copy (a rewrite that leaves
        the marker as it was is a new copy) and the definitions; not the clock."""
        copy = wh.snapshot.path.parent.name if wh.snapshot is not None else None
        return json.dumps([self.marker(wh), copy, self._fingerprint], sort_keys=True)

    def _marker_key(self, wh: ServeWarehouse) -> str:
        # the hour in progress too: `complete` flips when the clock passes a bucket boundary
        return json.dumps([self.data_key(wh), now_utc().strftime("%Y-%m-%dT%H")])

    # -- the response cache
    def cached(self, key: tuple, etag: str):
        with self._cache_guard:
            hit = self.cache.get(key)
            if hit is not None and hit[0] == etag:
                self.cache.move_to_end(key)
                return hit[1]
        return None

    def remember(self, key: tuple, etag: str, body: bytes) -> None:
        with self._cache_guard:
            self.cache[key] = (etag, body)
            self.cache.move_to_end(key)
            while len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)


def etag_for(marker_key: str, path: str, query: str) -> str:
    return '"' + hashlib.sha256(f"{marker_key}\0{path}\0{query}".encode()).hexdigest()[:32] + '"'
