"""`score_series` (one series) and `score_many` (a batch, the fast path): the driver.

For every scored bucket t it reads only the training window, the `history_needed`
buckets before t (gaps and excluded ranges left out), so a bucket's row is the same
whether the window is scored in one call or in pieces, alone or in a batch, and however
much older history is supplied. Per bucket (core.py):

1. enough history? at least `min_history` training buckets with a value, else a row
   saying "not enough history (N of M buckets)";
2. first, robust pass: residuals from a median fit of the richest seasonality the window
   supports (2+ cycles); buckets beyond `sensitivity` robust sds are the window's own
   outliers (past incidents) and are left out of the fit;
3. each candidate seasonality (several for `auto`, see settings.candidates), and for a
   positive fraction both the value and its log, is fitted (models.py);
4. the candidate with the smallest spread of honest (out-of-sample) residuals on the
   buckets every candidate scored wins, the simplest within the noise of the comparison;
5. the band, score and flag; then the sentence (reason.py).

Hours (hourly.py) run steps 2-4 and the noise part of 5 once per UTC day, on the window
that ends at the day's start, and per bucket only the level (its last `level_span`
buckets, judged by step 2's fit as seen from t), the band and the score; a young
series (under two cycles of the richest seasonality) is still fitted per bucket."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from . import reason as text
from .buckets import as_ns, excluded_buckets, grain_index
from .core import score_rows
from .hourly import AHEAD, score_hourly
from .models import DETECTOR, LOG_DETECTOR, RATE_DETECTOR
from .settings import MIN_EVENTS, SHAPES, DetectorSettings, history_needed, min_history, training_buckets
from .sparse import DETECTOR as SPARSE_DETECTOR, MIN_SIZES, sparse_rows
from .stats import prefix_sum

COLUMNS = ["bucket_start", "value", "expected", "lower", "upper", "score", "is_anomaly", "direction",
           "provisional", "numerator", "denominator", "model", "reason"]
_CHUNK_CELLS = 250_000  # window cells per batch: bounds memory, not results


@dataclass(frozen=True)
class SeriesJob:
    """One `score_series` call, for `score_many`."""
    series: pd.DataFrame
    shape: str
    grain: str
    settings: DetectorSettings
    score_from: dt.datetime
    score_until: dt.datetime
    now: dt.datetime
    settle_buckets: int
    label: str = ""


def score_series(series: pd.DataFrame, *, shape: str, grain: str, settings: DetectorSettings,
                 score_from: dt.datetime, score_until: dt.datetime, now: dt.datetime, settle_buckets: int,
                 label: str = "") -> pd.DataFrame:
    """Score the complete buckets of one series in [score_from, score_until): one row per
    bucket that has ended by `now` and has a value. Columns: COLUMNS (DESIGN.md,
    "Anomaly detection"); score = sensitivity * (T(value) - T(expected)) / (edge - T(expected))
    in the detector's variance-stabilised scale T, so |score| > sensitivity exactly when
    the value is outside [lower, upper] (models.py)."""
    job = SeriesJob(series, shape, grain, settings, score_from, score_until, now, settle_buckets, label)
    return _table(_score([job]), with_job=False)


def score_many(jobs: Sequence[SeriesJob]) -> pd.DataFrame:
    """`score_series` for many series at once: one frame, COLUMNS plus `job` (the index
    of the job a row belongs to), rows in job order. The rows are identical to calling
    `score_series` per job, but vectorised across series (jobs with the same shape,
    grain and settings share one batch): the fast path for thousands of slices."""
    return _table(_score(list(jobs)), with_job=True)


def _score(jobs: list[SeriesJob]) -> dict[str, list]:
    prepared = [_prepare(j) for j in jobs]
    groups: dict[tuple, list[int]] = {}
    for i, (job, p) in enumerate(zip(jobs, prepared)):
        if p is not None:
            groups.setdefault((job.shape, job.grain, job.settings), []).append(i)
    results: list[dict | None] = [None] * len(jobs)
    for (shape, grain, settings), members in groups.items():
        width = training_buckets(grain, settings)
        min_hist = min_history(grain, settings)
        per_chunk = max(1, _CHUNK_CELLS // width)
        batch: list[int] = []
        size = 0
        for i in members + [None]:
            if i is not None and (size + prepared[i]["cost"] <= per_chunk or not batch):
                batch.append(i)
                size += prepared[i]["cost"]
                continue
            if batch:
                _run(batch, prepared, results, shape, grain, settings, width, min_hist, per_chunk)
            batch, size = ([i], prepared[i]["cost"]) if i is not None else ([], 0)
    columns: dict[str, list] = {c: [] for c in COLUMNS + ["job"]}
    for i, (job, p) in enumerate(zip(jobs, prepared)):
        if p is None:
            continue
        part = _columns(p, results[i], job.shape, job.grain, job.settings, job.label,
                        min_history(job.grain, job.settings))
        part["job"] = np.full(p["pos"].size, i)
        for c, v in part.items():
            columns[c].append(v)
    return columns


def _table(columns: dict[str, list], with_job: bool) -> pd.DataFrame:
    if not columns["job"]:
        frame = empty_result()
        return frame.assign(job=np.array([], int)) if with_job else frame
    data = {c: np.concatenate(v) for c, v in columns.items() if with_job or c != "job"}
    return pd.DataFrame(data, columns=COLUMNS + (["job"] if with_job else []))


def _prepare(job: SeriesJob) -> dict | None:
    """Validate one series and pick its scored buckets; None when none is scored."""
    if job.shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {job.shape!r}")
    min_history(job.grain, job.settings)  # validates the grain
    series, grain = job.series, job.grain
    ts = series["bucket_start"].to_numpy(dtype="datetime64[ns]")
    value = _column(series, "value")
    index = grain_index(ts, grain)
    if ts.size > 1 and not np.all(np.diff(index) == 1):
        raise ValueError("series must hold every bucket of the grain once, sorted ascending (densify it first)")
    now_index = grain_index(np.array([as_ns(job.now)]), grain)[0]
    scored = (ts >= as_ns(job.score_from)) & (ts < as_ns(job.score_until)) & (index < now_index) & ~np.isnan(value)
    pos = np.nonzero(scored)[0]
    if pos.size == 0:
        return None
    num, den = _column(series, "numerator"), _column(series, "denominator")
    excluded = excluded_buckets(ts, grain, job.settings.exclude)
    if job.shape == "ratio":
        num = np.where(np.isnan(num) & (den > 0), value * den, num)
        ok = (den > 0) & ~np.isnan(num) & ~excluded
        train = (np.where(ok, num, np.nan), np.where(ok, den, np.nan))
    else:
        x = np.where(excluded, np.nan, value)
        train = (np.maximum(x, 0.0) if job.shape == "count" else x,)
    pad = history_needed(grain, job.settings)
    events = _events_per_bucket(value, excluded, pos, training_buckets(grain, job.settings)) \
        if job.shape == "fraction" else np.full(pos.size, np.nan)
    tail = np.full(AHEAD if grain == "hour" else 0, np.nan)
    # rows of windows a batch holds: one per scored bucket, per scored day for hours
    cost = np.unique(index[pos] // 24).size if grain == "hour" else pos.size
    return {"ts": ts[pos], "value": value[pos], "num": num[pos], "den": den[pos], "pos": pos + pad, "cost": cost, "events": events,
            "padded": [np.concatenate([np.full(pad, np.nan), a, tail]) for a in train],
            "provisional": index[pos] >= now_index - job.settle_buckets}


def _events_per_bucket(value, excluded, pos, width) -> np.ndarray:
    """A fraction's volume at each scored bucket: the events (non-zero buckets) its training
    window holds per bucket, estimated from the share z of zero buckets among those with
    a value as a Poisson rate, -ln(z) (inf without zeros, NaN without values)."""
    have = ~np.isnan(value) & ~excluded
    cz, cn = prefix_sum(have & (value == 0)), prefix_sum(have)
    lo = np.maximum(pos - width, 0)
    n = cn[pos] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, -np.log((cz[pos] - cz[lo]) / np.maximum(n, 1)), np.nan)


def _run(batch, prepared, results, shape, grain, settings, width, min_hist, per_chunk) -> None:
    """Score the buckets of the series in `batch` together, in chunks of rows."""
    arrays = len(prepared[batch[0]]["padded"])
    value = np.concatenate([prepared[i]["value"] for i in batch])
    num = np.concatenate([prepared[i]["num"] for i in batch])
    den = np.concatenate([prepared[i]["den"] for i in batch])
    if grain == "hour":  # fitted once per day (hourly.py)
        offset = np.cumsum([0] + [prepared[i]["padded"][0].size for i in batch])
        t = np.concatenate([prepared[i]["pos"] + o for i, o in zip(batch, offset)])
        hour = np.concatenate([prepared[i]["ts"].astype("datetime64[h]").astype(np.int64) % 24 for i in batch])
        res = score_hourly([np.concatenate([prepared[i]["padded"][a] for i in batch]) for a in range(arrays)],
                           t, hour, value, num, den, shape, settings, min_hist, per_chunk)
    else:
        res = _windowed(batch, prepared, arrays, value, num, den, shape, grain, settings, width, min_hist, per_chunk)
    lo = 0
    for i in batch:
        n = prepared[i]["pos"].size
        results[i] = {k: v[lo:lo + n] for k, v in res.items()}
        lo += n


def _windowed(batch, prepared, arrays, value, num, den, shape, grain, settings, width, min_hist, per_chunk):
    """Every bucket from its own training window (core.score_rows)."""
    windows = [np.concatenate([sliding_window_view(prepared[i]["padded"][a], width)[prepared[i]["pos"] - width]
                               for i in batch]) for a in range(arrays)]
    parts = [score_rows([w[lo:lo + per_chunk] for w in windows], value[lo:lo + per_chunk], num[lo:lo + per_chunk],
                        den[lo:lo + per_chunk], shape, grain, settings, min_hist)
             for lo in range(0, value.size, per_chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    col = frame[name]
    if col.dtype.kind == "f":
        return col.to_numpy(dtype=float)
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _columns(p: dict, res: dict, shape: str, grain: str, settings: DetectorSettings, label: str,
             min_hist: int) -> dict[str, np.ndarray]:
    bucket, value, provisional, num, den = p["ts"], p["value"], p["provisional"], p["num"], p["den"]
    s = settings.sensitivity
    # a fraction that is mostly zeros is judged by the size of a usual event (sparse.py); with
    # too few events in its window, not at all
    sparse, unjudged, sizes = np.zeros(value.size, bool), np.zeros(value.size, bool), np.zeros(value.size)
    if shape == "fraction":
        rows = np.nonzero(res["enough"] & (p["events"] < MIN_EVENTS))[0]
        if rows.size:
            res = {k: v.copy() for k, v in res.items()}
            band = sparse_rows(p["padded"][0], p["pos"][rows], value[rows], training_buckets(grain, settings), s,
                               _CHUNK_CELLS // training_buckets(grain, settings) + 1)
            ok = ~np.isnan(band["score"])
            for k in ("expected", "lower", "upper", "score"):
                res[k][rows[ok]] = band[k][ok]
            # an event's size has no seasonality, and a record of its phase would mislead
            res["log"][rows[ok]], res["seasonality"][rows[ok]], res["record"][rows[ok]] = False, "none", ""
            sparse[rows[ok]], unjudged[rows[~ok]], sizes[rows] = True, True, band["sizes"]
    score, enough = res["score"], res["enough"]
    expected = res["expected"]
    outside = enough & (np.abs(np.nan_to_num(score)) > s)
    side_ok = {"both": np.ones(score.size, bool), "up": score > 0, "down": score < 0}[settings.direction]
    if shape == "fraction":  # its volume: the non-zero buckets of a sparse window
        volume, need = sizes, MIN_SIZES
        volume_ok = ~unjudged
    else:
        volume, need = res["volume"], settings.min_volume
        volume_ok = (np.nan_to_num(volume, nan=-np.inf) >= need) if need > 0 else np.ones(score.size, bool)
    flagged = outside & side_ok & volume_ok
    direction = np.where(np.isnan(expected), None, np.where(value > expected, "up", "down"))
    prop = res["proportion"]
    detector = np.where((shape == "ratio") & ~prop, RATE_DETECTOR, DETECTOR[shape])
    detector = np.where(res["log"], LOG_DETECTOR, detector)
    detector = np.where(sparse, SPARSE_DETECTOR, detector)
    season = np.where(res["seasonality"] == "", settings.seasonality, res["seasonality"])
    model = np.array([f"{d}/{z}" for d, z in zip(detector, season)], dtype=object)
    if shape != "ratio":
        num = np.full(value.size, np.nan)
        den = np.full(value.size, np.nan)
    reasons = []
    for i in range(value.size):
        if not enough[i]:
            if shape == "ratio" and not (den[i] > 0):
                reasons.append(f"{label + ' ' if label else ''}{text.number(value[i], shape, prop[i])}: "
                               f"no denominator to score against")
            else:
                reasons.append(text.not_enough(label, shape, bool(prop[i]), value[i], int(res["have"][i]), min_hist))
            continue
        reasons.append(text.sentence(
            label=label, shape=shape, proportion=bool(prop[i]), value=float(value[i]), expected=float(expected[i]),
            lower=float(res["lower"][i]), upper=float(res["upper"][i]), flagged=bool(flagged[i]),
            outside=bool(outside[i]), side_ok=bool(side_ok[i]), volume_ok=bool(volume_ok[i]),
            volume=float(volume[i]), min_volume=need, record=res["record"][i],
            **_where(bucket[i], res["seasonality"][i], int(res["span"][i]), grain, flagged[i] and res["record"][i]),
            numerator=float(num[i]), denominator=float(den[i])))
    return {
        "bucket_start": bucket, "value": value, "expected": expected, "lower": res["lower"], "upper": res["upper"],
        "score": np.where(enough, score, np.nan), "is_anomaly": flagged, "direction": direction.astype(object),
        "provisional": provisional, "numerator": num, "denominator": den, "model": model,
        "reason": np.array(reasons, dtype=object)}


def _where(bucket, seasonality: str, span: int, grain: str, used: bool) -> dict[str, str]:
    """phase and span for the sentence: only a flagged record mentions them (cost per row)."""
    if not used:
        return {"phase": "", "span": ""}
    return {"phase": text.phase_text(bucket, seasonality), "span": text.span_text(span, grain)}


def empty_result() -> pd.DataFrame:
    return pd.DataFrame({
        "bucket_start": np.array([], dtype="datetime64[ns]"), **{c: np.array([], float) for c in
                                                               ("value", "expected", "lower", "upper", "score")},
        "is_anomaly": np.array([], bool), "direction": np.array([], object), "provisional": np.array([], bool),
        "numerator": np.array([], float), "denominator": np.array([], float), "model": np.array([], object),
        "reason": np.array([], object)}, columns=COLUMNS)


