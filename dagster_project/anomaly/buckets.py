"""Bucket arithmetic on numpy datetime64 arrays (naive UTC): bucket numbers per grain,
bucket ends, overlap with exclude ranges."""
from __future__ import annotations

import numpy as np
import pandas as pd


def grain_index(ts: np.ndarray, grain: str) -> np.ndarray:
    """Each bucket's number in grain units since 1970 (weeks start on Monday)."""
    if grain == "hour":
        return ts.astype("datetime64[h]").astype(np.int64)
    if grain == "day":
        return ts.astype("datetime64[D]").astype(np.int64)
    if grain == "week":
        return (ts.astype("datetime64[D]").astype(np.int64) - 4) // 7  # 1970-01-05 was a Monday
    return ts.astype("datetime64[M]").astype(np.int64)


def bucket_end(ts: np.ndarray, grain: str) -> np.ndarray:
    if grain == "month":
        return (ts.astype("datetime64[M]") + 1).astype("datetime64[ns]")
    step = {"hour": np.timedelta64(1, "h"), "day": np.timedelta64(1, "D"), "week": np.timedelta64(7, "D")}[grain]
    return ts + step


def excluded_buckets(ts: np.ndarray, grain: str, ranges) -> np.ndarray:
    """Buckets overlapping any [start, end) range."""
    out = np.zeros(ts.size, bool)
    if not ranges:
        return out
    end = bucket_end(ts, grain)
    for lo, hi in ranges:
        out |= (ts < as_ns(hi)) & (end > as_ns(lo))
    return out


def as_ns(t) -> np.datetime64:
    t = pd.Timestamp(t)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t.to_datetime64().astype("datetime64[ns]")
