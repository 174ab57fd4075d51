"""Per-entity trailing totals, computed once per materialization instead of per request.

A `/totals` call asks for up to 1,000 values of a dimension; answered from the day rollup
directly it scans every row of that dimension (a year of 100,000 entities is 36 million
rows) to find them. Instead, the first call for a (metric, dimension) computes the totals
of every value in one grouped query and keeps them in memory, keyed by what the data is
(the newest-materialization marker) and the day the windows end: the following calls are
dictionary lookups, and a new materialization or a new day makes a new entry. The server
warms the entries in use when it takes a new snapshot, before readers switch to it."""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from . import queries

ENTRIES = 6  # (metric, dimension, data, day) indexes kept
MAX_VALUES = 2_000_000  # a dimension with more values than this is answered by direct queries
RECENT = 16  # (metric, dimension) pairs warmed on a new snapshot


class TotalsIndex:
    def __init__(self) -> None:
        self._entries: OrderedDict = OrderedDict()
        self._recent: OrderedDict = OrderedDict()
        self._guard = threading.Lock()  # the dictionaries
        self._computing = threading.Lock()  # one grouped query at a time: concurrent misses wait for it

    def recent(self) -> list[tuple[str, str]]:
        with self._guard:
            return list(self._recent)

    def totals(self, wh, data_key: str, metric, dimension: str, values: list[str], windows: list[str], now) -> list[dict]:
        """As `queries.totals`, from the index of (metric, dimension) for this data and day."""
        end = queries.window_end(now)
        with self._guard:
            self._recent[(metric.name, dimension)] = None
            self._recent.move_to_end((metric.name, dimension))
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        entry = self.entry(wh, data_key, metric, dimension, end)
        if entry is None:  # too many values to keep: one bound query per call
            return queries.totals(wh, metric, dimension, values, windows, now)
        positions, table = entry
        cols = [queries.WINDOWS.index(w) for w in windows]
        out = []
        for v in values:
            i = positions.get(v)
            out.append({"value": v, "totals": {w: (float(table[i, c]) if i is not None else 0.0)
                                               for w, c in zip(windows, cols)}})
        return out

    def entry(self, wh, data_key: str, metric, dimension: str, end):
        key = (data_key, metric.name, dimension, end)
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        with self._computing:
            with self._guard:  # computed by the request we waited for
                if key in self._entries:
                    return self._entries[key]
            rows = queries.all_totals(wh, metric, dimension, end, limit=MAX_VALUES + 1)
            if len(rows) > MAX_VALUES:
                entry = None
            else:
                positions = {str(r[0]): i for i, r in enumerate(rows)}
                table = np.array([[0.0 if x is None else float(x) for x in r[1:]] for r in rows], dtype=float) \
                    if rows else np.zeros((0, len(queries.WINDOWS)))
                entry = (positions, table)
            with self._guard:
                self._entries[key] = entry
                while len(self._entries) > ENTRIES:
                    self._entries.popitem(last=False)
            return entry
