"""A scored series' output rows: the fit's results (core.score_rows's columns, or a
sparse window's event-size band) turned into the `metric_anomalies` columns (COLUMNS,
DESIGN.md): the flag (outside the band, or a run of hours, on the allowed side, with
the volume min_volume asks for), the model's name, the numbers as shown (float noise as
0) and the one-line reason."""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from . import reason as text
from .domain import VALUE
from .models import DETECTOR, RATE_DETECTOR, inside_proportion
from .settings import DetectorSettings, candidates, level_span
from .sparse import DETECTOR as SPARSE_DETECTOR, MIN_SIZES
from .stats import nanmedian

COLUMNS = ["bucket_start", "value", "expected", "lower", "upper", "score", "is_anomaly", "direction",
           "provisional", "numerator", "denominator", "model", "reason"]


def output_columns(p: dict, res: dict, shape: str, grain: str, settings: DetectorSettings, label: str,
             min_hist: int) -> dict[str, np.ndarray]:
    bucket, value, provisional, num, den = p["ts"], p["value"], p["provisional"], p["num"], p["den"]
    s = settings.sensitivity
    # a fraction that is mostly zeros is judged by the size of a usual event (sparse.py); with
    # too few events in its window, not at all
    sparse, unjudged, sizes = np.zeros(value.size, bool), np.zeros(value.size, bool), np.zeros(value.size)
    if "sparse" in p:
        rows, band = p["sparse"]  # the buckets with enough history judged by their events' sizes
        if rows.size:
            res = {k: v.copy() for k, v in res.items()}
            ok = ~np.isnan(band["score"])
            for k in ("expected", "lower", "upper", "score"):
                res[k][rows[ok]] = band[k][ok]
            # an event's size has no seasonality, and a record of its phase would mislead
            res["domain"][rows[ok]], res["seasonality"][rows[ok]], res["record"][rows[ok]] = VALUE, "none", ""
            sparse[rows[ok]], unjudged[rows[~ok]], sizes[rows] = True, True, band["sizes"]
    expected = res["expected"]
    # a bucket with its history whose recent window is too sparse for any fit (a gauge read
    # every few hours: no level span holds half its buckets) has no band: not scored; nor
    # has one of a mostly-zero window with too few events to judge their size by
    unfitted = res["enough"] & np.isnan(expected)
    score, enough = res["score"], res["enough"] & ~unfitted
    outside = enough & (np.abs(np.nan_to_num(score)) > s)
    side_ok = {"both": np.ones(score.size, bool), "up": score > 0, "down": score < 0}[settings.direction]
    if p["amount_ratio"] or p["average"]:  # its volume: the values averaged (a ratio's expected denominator)
        volume, need = _denominator_volume(p, res, grain, settings), settings.min_volume
        volume_ok = ~unjudged & ((np.nan_to_num(volume, nan=-np.inf) >= need) if need > 0 else True)
    elif shape == "fraction":  # no volume (a sum, a gauge): that of a sparse window, its non-zero buckets
        volume, need = sizes, MIN_SIZES
        volume_ok = ~unjudged
    else:  # a count's volume is the expected count shown (the recent level's or a recovery's)
        volume, need = (np.where(np.isnan(expected), res["volume"], expected) if shape == "count"
                        else _denominator_volume(p, res, grain, settings), settings.min_volume)
        volume_ok = (np.nan_to_num(volume, nan=-np.inf) >= need) if need > 0 else np.ones(score.size, bool)
    # or, at the hour grain, the end of a run of hours that together are outside (runs.py)
    run = np.where(enough & ~sparse & ~unjudged, res["run"], 0)
    flagged = (outside | (run > 0)) & side_ok & volume_ok
    # (a value equal to the expected one moved neither way)
    direction = np.where(value > expected, "up", np.where(value < expected, "down", None))
    prop = res["proportion"]
    detector = np.where((shape == "ratio") & ~prop, RATE_DETECTOR, DETECTOR[shape])
    detector = np.where(sparse, SPARSE_DETECTOR, detector)
    # an unscored row names the configured seasonality as read at this grain (auto: auto)
    configured = settings.seasonality if settings.seasonality == "auto" else candidates(grain, settings)[0]
    season = np.where(res["seasonality"] == "", configured, res["seasonality"])
    # a fraction fitted in its log or square root: robust-mad-log, robust-mad-sqrt
    model = np.array([f"{d}/{z}" if m == VALUE else f"{d}-{m}/{z}" for d, m, z in zip(detector, res["domain"], season)],
                     dtype=object)
    if shape != "ratio" and not p["amount_ratio"]:
        num = np.full(value.size, np.nan)
        den = np.full(value.size, np.nan)
    # a ratio's sentence: "3.57% (143 of 4,000)", "2.1 (143 / 68)"; an amount's: "35.1 (14,388 / 410)"
    told = "amount_ratio" if p["amount_ratio"] else shape
    reasons = np.empty(value.size, dtype=object)
    head = label + " " if label else ""
    short = np.nonzero(~enough)[0]
    fmt = {False: text.formatter(told, False), True: text.formatter(told, True)}
    # a window with no value yet reads as a proportion: the bucket itself must be one
    shown_prop = prop[short] & inside_proportion(num[short], den[short])
    for i, v, pr, have, d in zip(short.tolist(), value[short].tolist(), shown_prop.tolist(),
                                 res["have"][short].tolist(), den[short].tolist()):
        if told in ("ratio", "amount_ratio") and not (d > 0):
            reasons[i] = f"{head}{fmt[pr](v)}: no denominator to score against"
        elif unfitted[i] and unjudged[i]:
            reasons[i] = (f"{head}{fmt[pr](v)}: not scored, its window is mostly zeros with only {sizes[i]:.0f} "
                          f"non-zero buckets, under {MIN_SIZES}: too sparse to judge")
        elif unfitted[i]:
            reasons[i] = f"{head}{fmt[pr](v)}: not scored, too few recent values to fit a baseline"
        else:
            reasons[i] = text.not_enough(label, told, pr, v, int(have), min_hist)
    rows = np.nonzero(enough)[0]
    # float noise (a sum expected at 1.8e-15 instead of 0) is stored as 0
    noise_free = _shown(value, expected, res["lower"], res["upper"], NOISE, shape == "fraction")
    expected, lower, upper = noise_free["expected"], noise_free["lower"], noise_free["upper"]
    # phase and span: only a flagged record mentions them (a cost per row)
    phase, span = np.full(rows.size, "", dtype=object), np.full(rows.size, "", dtype=object)
    for j in np.nonzero(flagged[rows] & (res["record"][rows] != ""))[0]:
        i = rows[j]
        phase[j] = text.phase_text(bucket[i], res["seasonality"][i])
        span[j] = text.span_text(int(res["span"][i]), grain)
    reasons[rows] = text.sentences(
        label=label, shape=told, min_volume=need, **{k: np.asarray(v)[rows].tolist() for k, v in {
            "proportion": prop, "value": value,
            **_shown(value, expected, lower, upper, 1e-4, shape == "fraction"),
            "flagged": flagged, "outside": outside, "side_ok": side_ok, "volume_ok": volume_ok,
            "volume": volume, "record": res["record"], "numerator": num, "denominator": den, "run": run,
            "sparse": np.where(unjudged, sizes, np.nan)}.items()},
        phase=phase.tolist(), span=span.tolist(), sparse_min=MIN_SIZES)
    return {
        "bucket_start": bucket, "value": value, "expected": expected, "lower": lower, "upper": upper,
        # a bucket too sparse to judge keeps the band its reason quotes, but no score: that
        # band is a spread collapsed on zeros (0..0 scored 1,000,000)
        "score": np.where(enough & ~unjudged, score, np.nan), "is_anomaly": flagged,
        "direction": direction.astype(object),
        "provisional": provisional, "numerator": num, "denominator": den, "model": model,
        "reason": reasons}


NOISE = 1e-12  # of the numbers' scale: float noise (a sum expected at 1.8e-15 beside a band of +-3)
# of the band's edge: the rounding left where a fraction's level and phase offset cancel
# (a weekend gauge expected at 1.4e-17 beside 0..0.6; seen up to 4e-14 of the edge)
ROUNDING = 1e-13


def _shown(value, expected, lower, upper, relative: float, sums: bool = False) -> dict[str, np.ndarray]:
    """expected, lower and upper with float noise as 0, and a band edge under `relative`
    times the expected value as 0 too (an edge of 3.4e-05 beside 127 reads as 0 in the
    reason); anything under 1e-100 is 0 (an all-zero series' band ends at 7e-150, its
    noise floor). Noise is judged against the numbers' own scale: for an edge, the
    band's largest finite edge; for the expected value, that or, if smaller, the larger
    of the value and the middle of the three band numbers: a spike's value does not
    make its band vanish, nor a very wide band (a high sensitivity on a young window,
    0..1e104) its expected value. `sums`: a fraction, whose expected value is a sum of a
    level, a phase's offset and a bias; beside its value of 0 the middle number is that
    expected value itself (0 vs 1.4e-17 (0..0.59)), so ROUNDING of the band's edge is
    rounding too."""
    with np.errstate(invalid="ignore"):
        numbers = np.abs(np.stack([lower, expected, upper]))
        edges = np.where(np.isfinite(numbers[[0, 2]]), numbers[[0, 2]], np.nan)
        band = np.nan_to_num(np.fmax.reduce(edges, axis=0))
        data = np.fmax(np.abs(np.nan_to_num(value)), np.nan_to_num(np.median(numbers, axis=0)))
        noise = np.fmax(NOISE * band, 1e-100)
        near = np.fmax(noise, relative * np.abs(np.nan_to_num(expected)))
        floor = NOISE * np.fmin(band, data)
        if sums:  # beside a value of 0 the middle number is the expected value itself
            floor = np.where(np.nan_to_num(value) != 0, floor, np.fmax(floor, ROUNDING * band))
        return {"expected": np.where(np.abs(expected) < np.fmax(floor, 1e-100), 0.0, expected),
                **{k: np.where(np.abs(x) < near, 0.0, x) for k, x in (("lower", lower), ("upper", upper))}}


def _denominator_volume(p: dict, res: dict, grain: str, settings: DetectorSettings) -> np.ndarray:
    """A ratio's expected denominator (an average's expected count): the fit's, else (the
    fit has none: its recent buckets were all left out of training as outliers of the
    ratio, after the numerator fell, or no cycle of the window has a value at t's phase,
    or the denominators were 0) the median stored one of the last level span of buckets
    before t."""
    volume = res["volume"].copy()
    missing = np.flatnonzero(np.isnan(volume))
    if missing.size:
        k = level_span(grain, settings)
        volume[missing] = nanmedian(sliding_window_view(p["den_stored"], k)[p["pos"][missing] - k])
    return volume


def empty_result() -> pd.DataFrame:
    return pd.DataFrame({
        "bucket_start": np.array([], dtype="datetime64[ns]"), **{c: np.array([], float) for c in
                                                               ("value", "expected", "lower", "upper", "score")},
        "is_anomaly": np.array([], bool), "direction": np.array([], object), "provisional": np.array([], bool),
        "numerator": np.array([], float), "denominator": np.array([], float), "model": np.array([], object),
        "reason": np.array([], object)}, columns=COLUMNS)


