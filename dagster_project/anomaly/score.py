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
   fraction the value, its square root (values >= 0) and its log (values > 0)
   (domain.py), is fitted (models.py);
4. the candidate with the smallest spread of honest (out-of-sample) residuals on the
   buckets every candidate scored wins, the simplest within the noise of the comparison
   (of a fraction's domains within that noise, the one leaving the residuals most
   symmetric: core.choose);
5. the band, score and flag; then the sentence (reason.py).

Hours (hourly.py) run steps 2-4 and the noise part of 5 once per UTC day, on the window
that ends at the day's start, and per bucket only the level (its last `level_span`
buckets, judged by step 2's fit as seen from t), the band and the score; a young
series (under two cycles of the richest seasonality) is still fitted per bucket."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from .buckets import as_ns, excluded_buckets, grain_index
from .core import empty_rows, score_rows
from .hourly import AHEAD, score_hourly
from .launch import launch_start
from .parallel import check_stop, run_all
from .rows import COLUMNS, empty_result, output_columns
from .settings import (MIN_EVENTS, SHAPES, DetectorSettings, at_grain, history_needed, level_span, min_history,
                       training_buckets)
from .sparse import BURST_SIZE, WEEK_PHASES, events_in_active_phases, sparse_rows
from .stats import prefix_sum

_CHUNK_CELLS = 250_000  # window cells per batch: bounds memory, not results
_HOUR_BATCH = 16  # hours: chunks of days per batch (its largest array: a bool per day and training bucket)


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
    jobs = [j if j.settings.sensitivity is not None else replace(j, settings=at_grain(j.settings, j.grain))
            for j in jobs]
    prepared = [_prepare(j) for j in jobs]
    groups: dict[tuple, list[int]] = {}
    results: list[dict | None] = [None] * len(jobs)
    for i, (job, p) in enumerate(zip(jobs, prepared)):
        if p is not None and p["fit"]["rows"].size:
            groups.setdefault((p["shape"], job.grain, job.settings, len(p["padded"])), []).append(i)
        elif p is not None:  # nothing to fit: every bucket is a sparse event (_judge_sparse)
            results[i] = _scatter(p, None, min_history(job.grain, job.settings))
    calls = []  # (cost, the batch's run): run_all spreads them over the cores
    for (shape, grain, settings, _), members in groups.items():
        width = training_buckets(grain, settings)
        min_hist = min_history(grain, settings)
        per_chunk = max(1, _CHUNK_CELLS // width)
        # hours: a batch holds the series, not their windows (score_hourly cuts those into
        # chunks itself), so it can hold more days: fewer, larger steps for the same rows
        per_batch = per_chunk * (_HOUR_BATCH if grain == "hour" else 1)
        batch: list[int] = []
        size = 0
        for i in members + [None]:
            if i is not None and (size + prepared[i]["cost"] <= per_batch or not batch):
                batch.append(i)
                size += prepared[i]["cost"]
                continue
            if batch:
                calls.append((size, partial(_run, batch, prepared, results, shape, grain, settings, width, min_hist,
                                            per_chunk)))
            batch, size = ([i], prepared[i]["cost"]) if i is not None else ([], 0)
    run_all(calls)  # each batch writes only its own series' `results`
    columns: dict[str, list] = {c: [] for c in COLUMNS + ["job"]}
    for i, (job, p) in enumerate(zip(jobs, prepared)):
        if p is None:
            continue
        part = output_columns(p, results[i], p["shape"], job.grain, job.settings, job.label,
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
    # a count (and a ratio's counts) below 0 is not data a count model can judge: refused,
    # not clipped into "within the expected range"
    # (a denominator below 0, e.g. a net sum, is not scored: score_rows needs one above 0)
    counted = {"count": [("value", value)], "ratio": [("numerator", num)]}.get(job.shape, [])
    for name, column in counted:
        if (column < 0).any():
            raise ValueError(f"{job.label or 'series'}: a {job.shape} series cannot have a negative {name} "
                             f"({column[column < 0][0]:g})")
    excluded = excluded_buckets(ts, grain, job.settings.exclude)
    # an average (an avg or a percentile of `count` values) is a fraction whose noise
    # shrinks as the count grows; so is an amount per unit of a denominator (revenue per
    # order: an average order's amount over `denominator` orders). Money is not a count:
    # the Poisson and binomial bands of a ratio would take 127 of revenue for 127 events.
    shape = "fraction" if job.shape in ("average", "amount_ratio") else job.shape
    if job.shape in ("ratio", "amount_ratio"):
        num = np.where(np.isnan(num) & (den > 0), value * den, num)
    if shape == "ratio":
        ok = (den > 0) & ~np.isnan(num) & ~excluded
        train = (np.where(ok, num, np.nan), np.where(ok, den, np.nan))
    else:
        x = np.where(excluded, np.nan, value)
        train = (np.maximum(x, 0.0) if shape == "count" else x,)
        if job.shape == "average":
            # the counts ride along the values (bands.band_params; 0: not known) and, at
            # the scored buckets, in the denominator's place
            count = _column(series, "count")
            train = (x, np.where(np.isnan(x), np.nan, np.where(count > 0, count, 0.0)))
            den = count
        elif job.shape == "amount_ratio":  # the denominator's units are the values averaged
            train = (x, np.where(np.isnan(x), np.nan, np.where(den > 0, den, 0.0)))
    pad = history_needed(grain, job.settings)
    width = training_buckets(grain, job.settings)
    tail = np.full(AHEAD if grain == "hour" else 0, np.nan)
    padded = [np.concatenate([np.full(pad, np.nan), a, tail]) for a in train]
    # the values the launch rule also reads: training's first array with the excluded
    # buckets in (launch.py); None when nothing is excluded
    seen = None
    if shape in ("count", "fraction") and excluded.any():
        seen = np.concatenate([np.full(pad, np.nan), np.maximum(value, 0.0) if shape == "count" else value, tail])
    # a ratio's denominators (an average's counts) as stored, 0 included (training holds
    # only those above 0): a volume where the fit has none (rows.py)
    den_stored = np.concatenate([np.full(pad, np.nan), den, tail]) \
        if job.shape in ("ratio", "amount_ratio", "average") else None
    # each window's first training bucket: its own start, or a launch's (launch.py)
    lo = launch_start(padded[0], pos + pad, width, level_span(grain, job.settings), count=False, seen=seen) - pad \
        if shape == "fraction" else pos - width
    events = _events_per_bucket(value, excluded, pos, lo) if shape in ("fraction", "count") \
        else np.full(pos.size, np.nan)
    if shape == "count":  # a count of bursts (sparse.py): its window since a launch, over its active phases
        rough = np.nonzero(events < MIN_EVENTS)[0]
        events[:] = np.inf
        if rough.size:
            # a launch by the share of non-zero buckets: at a Poisson count's rule every
            # burst after a week of zeros would be one
            since = launch_start(padded[0], pos[rough] + pad, width, level_span(grain, job.settings), count=False,
                                 seen=seen) - pad
            events[rough] = events_in_active_phases(value, excluded, pos[rough], since, WEEK_PHASES.get(grain, 1))
    p = {"shape": shape, "amount_ratio": job.shape == "amount_ratio", "average": job.shape == "average", "ts": ts[pos], "value": value[pos],
         "num": num[pos], "den": den[pos], "pos": pos + pad, "lo": lo + pad, "events": events,
         "padded": padded, "seen": seen, "den_stored": den_stored, "provisional": index[pos] >= now_index - job.settle_buckets}
    rows = np.arange(pos.size)
    if shape in ("fraction", "count"):
        rows = _judge_sparse(p, job.settings, training_buckets(grain, job.settings), min_history(grain, job.settings))
    # the buckets the detectors fit, and the rows of windows a batch holds for them: one
    # per bucket, per day for hours
    p["fit"] = {"rows": rows, **{k: p[k][rows] for k in ("ts", "value", "num", "den", "pos")}}
    p["cost"] = np.unique(index[pos[rows]] // 24).size if grain == "hour" else rows.size
    return p


def _judge_sparse(p: dict, settings: DetectorSettings, width: int, min_hist: int) -> np.ndarray:
    """A mostly-zero fraction's buckets with enough history and under MIN_EVENTS events
    per bucket are judged by the size of a usual event (sparse.py): `p["sparse"]` holds
    them and their band, which replaces the fit's in rows.output_columns wherever it has MIN_SIZES
    sizes. So are a count's, where its usual event is a burst (BURST_SIZE; the others
    are the count model's). The fit would be discarded there, so it skips those buckets:
    returns the buckets to fit. `p["have"]`: training values per bucket (core.empty_rows)."""
    cv = prefix_sum(~np.isnan(p["padded"][0]))
    p["have"] = cv[p["pos"]] - cv[p["lo"]]
    rows = np.nonzero((p["have"] >= min_hist) & (p["events"] < MIN_EVENTS))[0]
    band = sparse_rows(p["padded"][0], p["pos"][rows], p["value"][rows], width, settings.sensitivity,
                       _CHUNK_CELLS // width + 1, count=p["shape"] == "count")
    if p["shape"] == "count":
        keep = ~np.isnan(band["score"]) & (band["usual"] >= BURST_SIZE)
        rows, band = rows[keep], {k: v[keep] for k, v in band.items()}
    p["sparse"] = (rows, band)
    return np.setdiff1d(np.arange(p["pos"].size), rows[~np.isnan(band["score"])])


def _scatter(p: dict, fitted: dict | None, min_hist: int) -> dict:
    """The fit's columns for every scored bucket of a series: the buckets it skipped get
    core.empty_rows (their band comes from rows.output_columns)."""
    rows = p["fit"]["rows"]
    if fitted is not None and rows.size == p["pos"].size:
        return fitted
    out = empty_rows(p["pos"].size, p["have"].copy(), min_hist)
    for k, v in (fitted or {}).items():
        out[k][rows] = v
    return out


def _events_per_bucket(value, excluded, pos, lo) -> np.ndarray:
    """A fraction's volume at each scored bucket: the events (non-zero buckets) its training
    window [lo, pos) holds per bucket, estimated from the share z of zero buckets among
    those with a value as a Poisson rate, -ln(z) (inf without zeros, NaN without values)."""
    have = ~np.isnan(value) & ~excluded
    cz, cn = prefix_sum(have & (value == 0)), prefix_sum(have)
    lo = np.maximum(lo, 0)
    n = cn[pos] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, -np.log((cz[pos] - cz[lo]) / np.maximum(n, 1)), np.nan)


def _run(batch, prepared, results, shape, grain, settings, width, min_hist, per_chunk) -> None:
    """Score the buckets of the series in `batch` together, in chunks of rows."""
    arrays = len(prepared[batch[0]]["padded"])
    fit = [prepared[i]["fit"] for i in batch]
    value = np.concatenate([f["value"] for f in fit])
    num = np.concatenate([f["num"] for f in fit])
    den = np.concatenate([f["den"] for f in fit])
    if grain == "hour":  # fitted once per day (hourly.py)
        offset = np.cumsum([0] + [prepared[i]["padded"][0].size for i in batch])
        t = np.concatenate([f["pos"] + o for f, o in zip(fit, offset)])
        hour = np.concatenate([f["ts"].astype("datetime64[h]").astype(np.int64) % 24 for f in fit])
        seen = _seen([prepared[i] for i in batch])
        seen = None if seen is None else np.concatenate(seen)
        res = score_hourly([np.concatenate([prepared[i]["padded"][a] for i in batch]) for a in range(arrays)],
                           t, hour, value, num, den, shape, settings, min_hist, per_chunk, seen)
    else:
        res = _windowed(batch, prepared, arrays, value, num, den, shape, grain, settings, width, min_hist, per_chunk)
    lo = 0
    for i in batch:
        n = prepared[i]["fit"]["rows"].size
        results[i] = _scatter(prepared[i], {k: v[lo:lo + n] for k, v in res.items()}, min_hist)
        lo += n


def _seen(parts: list[dict]) -> list[np.ndarray] | None:
    """Each series' launch-rule values (launch.py): a series with nothing excluded gives
    its training values; None when no series of the batch excludes any bucket."""
    if all(p["seen"] is None for p in parts):
        return None
    return [p["padded"][0] if p["seen"] is None else p["seen"] for p in parts]


def _windowed(batch, prepared, arrays, value, num, den, shape, grain, settings, width, min_hist, per_chunk):
    """Every bucket from its own training window (core.score_rows)."""
    def cut(series):
        return np.concatenate([sliding_window_view(series(i), width)[prepared[i]["fit"]["pos"] - width] for i in batch])

    windows = [cut(lambda i: prepared[i]["padded"][a]) for a in range(arrays)]
    own = _seen([prepared[i] for i in batch])
    seen = None if own is None else cut(dict(zip(batch, own)).__getitem__)
    parts = []
    for lo in range(0, value.size, per_chunk):
        check_stop()
        parts.append(score_rows([w[lo:lo + per_chunk] for w in windows], value[lo:lo + per_chunk],
                                num[lo:lo + per_chunk], den[lo:lo + per_chunk], shape, grain, settings, min_hist,
                                seen=None if seen is None else seen[lo:lo + per_chunk]))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats, NaN (a gap) where it holds no finite number: an infinity (a
    float division by zero in the warehouse) is no observation to judge, nor to train on."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    col = frame[name]
    if col.dtype.kind == "f":
        x = col.to_numpy(dtype=float)
    else:
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isinf(x), np.nan, x)
