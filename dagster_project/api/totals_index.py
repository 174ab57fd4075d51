"""Per-entity trailing totals, computed once per materialization instead of per request.

A `/totals` call asks for up to 1,000 values of a dimension; answered from the day rollup
directly it scans every row of that dimension (a year of 100,000 entities is 36 million
rows) to find them. Instead, the first call for a (metric, dimension) computes the totals
of every value in one grouped query and keeps them in memory, keyed by what the data is
(the snapshot or newest-materialization marker) and the day the windows end: the
following calls are dictionary lookups. The server warms the entries in use when it takes
a new snapshot, before readers switch to it. A request never waits for an index another
request is building: it answers with the direct query meanwhile (same numbers)."""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ..warehouse.connection import WarehouseError
from . import queries

RECENT = 4  # (metric, dimension) pairs warmed on a new snapshot
ENTRIES = 2 * RECENT  # indexes kept: the pairs in use on the current snapshot and on the next one
MAX_VALUES = 500_000  # a dimension with more values is answered by direct queries (memory)
NO_INDEX = "direct"  # an entry that says: answer this key with direct queries


class TotalsIndex:
    def __init__(self) -> None:
        self._entries: OrderedDict = OrderedDict()
        self._recent: OrderedDict = OrderedDict()
        self._guard = threading.Lock()  # the dictionaries
        self._building: dict[tuple, threading.Lock] = {}

    def recent(self) -> list[tuple[str, str]]:
        with self._guard:
            return list(self._recent)

    def totals(self, wh, data_key: str, metric, dimension: str, values: list[str], windows: list[str], now) -> list[dict]:
        """As `queries.totals`, from the index of (metric, dimension) for this data and day."""
        entry = self.entry(wh, data_key, metric, dimension, queries.window_end(now), wait=False)
        if entry is None or entry == NO_INDEX:  # being built, failed, or too many values
            return queries.totals(wh, metric, dimension, values, windows, now)
        with self._guard:  # in use: warmed on the next snapshot
            self._recent[(metric.name, dimension)] = None
            self._recent.move_to_end((metric.name, dimension))
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        positions, table = entry
        cols = [queries.WINDOWS.index(w) for w in windows]
        return queries.totals_rows(values, windows, lambda v: None if (i := positions.get(v)) is None
                                   else [table[i, c] for c in cols])

    def entry(self, wh, data_key: str, metric, dimension: str, end, wait: bool = True):
        """The index (positions, table) of this key, NO_INDEX, or None when another thread
        is building it and `wait` is False. Errors of the grouped query propagate to the
        warming caller; a request gets NO_INDEX for the key instead (no retry loop)."""
        key = (data_key, metric.name, dimension, end)
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            lock = self._building.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=wait):
            return None
        try:
            with self._guard:  # built by the thread we waited for
                if key in self._entries:
                    return self._entries[key]
            try:
                entry = _build(queries.all_totals(wh, metric, dimension, end, limit=MAX_VALUES + 1))
            except (ValueError, WarehouseError):
                if wait:
                    raise
                entry = NO_INDEX
            with self._guard:
                self._entries[key] = entry
                while len(self._entries) > ENTRIES:
                    self._entries.popitem(last=False)
            return entry
        finally:
            with self._guard:
                self._building.pop(key, None)
            lock.release()


def _build(rows: list[tuple]):
    if len(rows) > MAX_VALUES:
        return NO_INDEX
    rows = [r for r in rows if r[0] is not None]  # a NULL value is no value a request can name
    positions = {str(r[0]): i for i, r in enumerate(rows)}
    table = np.array([[0.0 if x is None else float(x) for x in r[1:]] for r in rows], dtype=float) \
        if rows else np.zeros((0, len(queries.WINDOWS)))
    return positions, table
