"""Data and scoring helpers for bench/anomaly_eval.py: the dbt-style baseline, the NAB
series (hourly buckets), the demo generator's hourly counts, and a walk-forward scorer."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_project.anomaly import DetectorSettings, score_series

NAB_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"  # ../shared/data/nab from the project
STEP = {"hour": pd.Timedelta(hours=1), "day": pd.Timedelta(days=1)}


def baseline_flags(value: np.ndarray, window: int = 14, k: float = 3.0) -> np.ndarray:
    """What most dbt projects run: flag a bucket more than k (population) standard
    deviations from the mean of the previous `window` buckets, both directions."""
    s = pd.Series(value)
    mean = s.rolling(window).mean().shift(1).to_numpy()
    sd = s.rolling(window).std(ddof=0).shift(1).to_numpy()
    with np.errstate(invalid="ignore"):
        return np.abs(value - mean) > k * sd


def ours_flags(frame: pd.DataFrame, shape: str, grain: str, score_from: int,
               settings: DetectorSettings | None = None) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Score every bucket from position `score_from` to the end (walk forward, one call:
    identical to scoring bucket by bucket). Returns flags and scored masks by position."""
    ts = frame["bucket_start"]
    end = ts.iloc[-1] + STEP[grain]
    out = score_series(frame, shape=shape, grain=grain, settings=settings or DetectorSettings(),
                       score_from=ts.iloc[score_from].to_pydatetime(), score_until=end.to_pydatetime(),
                       now=end.to_pydatetime(), settle_buckets=0)
    pos = ts.searchsorted(out["bucket_start"])
    flags = np.zeros(len(frame), bool)
    scored = np.zeros(len(frame), bool)
    flags[pos] = out["is_anomaly"].to_numpy(bool)
    scored[pos] = True
    return flags, scored, out


# ---- NAB -------------------------------------------------------------------------------

def nab_series(root: Path = NAB_DIR) -> list[tuple[str, str, pd.DataFrame, list[tuple[pd.Timestamp, pd.Timestamp]]]]:
    """(name, shape, hourly frame, label windows) for every labelled CSV under `root`
    (NAB's layout: `labels.json` maps `<folder>/<file>.csv` to its windows; labels of
    files not there are skipped): realTweets as hourly sums (counts), every other
    folder as hourly means (levels)."""
    labels = json.loads((root / "labels.json").read_text())
    out = []
    for key in sorted(labels):
        folder = key.split("/")[0]
        if not (root / key).is_file():
            continue
        raw = pd.read_csv(root / key, parse_dates=["timestamp"])
        hour = raw["timestamp"].dt.floor("h")
        if folder == "realTweets":
            agg, shape = raw.groupby(hour)["value"].sum(), "count"
        else:
            agg, shape = raw.groupby(hour)["value"].mean(), "fraction"
        idx = pd.date_range(agg.index.min(), agg.index.max(), freq="h")
        agg = agg.reindex(idx)
        nan = np.full(len(idx), np.nan)
        frame = pd.DataFrame({"bucket_start": idx, "value": agg.to_numpy(float),
                              "count": agg.to_numpy(float) if shape == "count" else nan,
                              "numerator": nan, "denominator": nan})
        windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in labels[key]]
        out.append((key, shape, frame, windows))
    return out


def window_hits(ts: pd.Series, flags: np.ndarray, scored: np.ndarray, windows, step=pd.Timedelta(hours=1)):
    """(windows scored, windows found, false-positive buckets, scored buckets outside windows)."""
    inside = np.zeros(len(ts), bool)
    found = judged = 0
    t = ts.to_numpy()
    for a, b in windows:
        overlap = (t <= np.datetime64(b)) & (t + np.timedelta64(step) > np.datetime64(a))
        inside |= overlap
        if (overlap & scored).any():
            judged += 1
            found += bool((overlap & flags & scored).any())
    normal = scored & ~inside
    return judged, found, int((flags & normal).sum()), int(normal.sum())


# ---- demo ------------------------------------------------------------------------------

def demo_hourly(days: int = 90, start: dt.date = dt.date(2024, 1, 1)) -> tuple[dict[str, pd.DataFrame], list]:
    """Hourly row counts per demo table over `days` days, and the planted incidents as
    (table, start, end, what)."""
    from dagster_project.demo.generator import INCIDENTS, TIME_COLUMNS, generate_range
    end = start + dt.timedelta(days=days)
    now = dt.datetime.combine(end, dt.time()) + dt.timedelta(hours=1)
    frames = generate_range(start, end, now=now)
    idx = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="h", inclusive="left")
    series = {}
    for table, col in TIME_COLUMNS.items():
        counts = frames[table][col].dt.floor("h").value_counts().reindex(idx, fill_value=0).astype(float)
        nan = np.full(len(idx), np.nan)
        series[table] = pd.DataFrame({"bucket_start": idx, "value": counts.to_numpy(), "count": counts.to_numpy(),
                                      "numerator": nan, "denominator": nan})
    incidents = []
    for inc in INCIDENTS:
        day = pd.Timestamp(start) + pd.Timedelta(days=inc.day_offset)
        incidents.append((inc.table, day + pd.Timedelta(hours=inc.hours[0]), day + pd.Timedelta(hours=inc.hours[1]),
                          inc.what))
    return series, incidents
