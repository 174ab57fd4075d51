"""Incidents: runs of consecutive flagged buckets, counted once (backtests, benchmarks)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from .buckets import bucket_end, grain_index


def incident_labels(ts: np.ndarray, grain: str) -> np.ndarray:
    """For sorted, distinct bucket starts: the number of the incident each belongs to
    (0, 1, ...; a new one wherever a bucket does not follow the previous one)."""
    if ts.size == 0:
        return np.zeros(0, int)
    return np.concatenate([[0], np.cumsum(np.diff(grain_index(ts, grain)) != 1)]).astype(int)


def merge_incidents(flagged: pd.DataFrame, grain: str) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """Consecutive flagged buckets of one series merged: [(start, end, n_buckets)], `end`
    being the end of the incident's last bucket (exclusive). `flagged` holds the flagged
    rows (a `bucket_start` column); when it has an `is_anomaly` column only those rows count."""
    if flagged is None or len(flagged) == 0:
        return []
    rows = flagged[flagged["is_anomaly"].astype(bool)] if "is_anomaly" in flagged.columns else flagged
    ts = np.unique(rows["bucket_start"].to_numpy(dtype="datetime64[ns]"))
    if ts.size == 0:
        return []
    labels = incident_labels(ts, grain)
    starts = np.nonzero(np.diff(labels, prepend=-1))[0]
    stops = np.append(starts[1:], ts.size) - 1
    ends = bucket_end(ts, grain)
    return [(pd.Timestamp(ts[a]).to_pydatetime(), pd.Timestamp(ends[b]).to_pydatetime(), int(b - a + 1))
            for a, b in zip(starts, stops)]
