"""Runs: hours that are each within their band but together are not.

An hour holds few events: orders that fall to 40% for a whole day (10 an hour at noon,
4 during the incident) are about 2 sds low each hour, inside a 3.5 sd band, and the
level (the mean of the last day) follows them down. Their sum over the hours is far
outside what chance gives. So at the hour grain (the anchored path, hourly.py) a bucket
is also flagged when it ends a run: its residual and those of the hours before it on the
same UTC day (at most RUN_HOURS), each clipped to +-RUN_CLIP so that one large hour does
not make a run of the hours after it, sum beyond `sensitivity` sds of such a sum; the
bucket's own score is at least RUN_LEAN sds off on the run's side, and its residual
leans that way too.

The residuals are the first pass's (core.clean: a median fit, the median of the last
cycle without its phases, as seen from the bucket), in its robust scale: a median does
not follow an incident down, so the hours after one are not a run the other way (the
day after the orders' bad day, the mean level is low and normal hours look high). After
an incident as long as a cycle that median is the incident's: where the fit's
prediction at the bucket lies outside the bucket's band, or the bucket is a recovery
(bands.band_recovery), it ends no run (hourly.py).

A sum of c residuals has variance c for independent, unbiased hours; more when a series'
hours move together (news bursts, traffic) or its median fit is off the same way for
hours on end. So the variance is measured, not assumed: per hour of a run, from the sums
of RUN_HOURS consecutive residuals of the training window (`run_variance`), and a run
of c hours is judged against c times it."""
from __future__ import annotations

import numpy as np

from .stats import nanmean, nanmedian, prefix_sum

RUN_HOURS = 12   # half a day: a run that long is an incident, not an hour's noise
RUN_CLIP = 1.5   # an hour adds at most 1.5 sds to a run
RUN_LEAN = 1.0   # the flagged hour's own score is at least 1 sd on the run's side
MIN_RUN_WINDOWS = 28  # 2 weeks of half days (of complete ones: about 3 weeks of history)
_MEDIAN_CHI2 = 0.4549  # the median of a chi-square with 1 degree of freedom


def run_variance(z: np.ndarray, z_own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of training residuals in sds (time order, NaN: none), each clipped like a
    scored hour: the mean of `z_own` (against each cycle's own median: a median fit of
    small counts is off by a fraction of an sd, which a run would add up; a trend does
    not move it), and the variance per hour of a run's sum, from `z` (against the
    previous cycle's median, as a scored hour is judged against a median it did not
    shape): the sums of RUN_HOURS consecutive residuals less their mean, their median
    square over the chi-square's (robust: a past incident's few windows do not widen
    it), over RUN_HOURS, at least 1. NaN (no runs) with under MIN_RUN_WINDOWS windows'
    worth of RUN_HOURS values."""
    mean = nanmean(np.clip(z_own, -RUN_CLIP, RUN_CLIP))
    z = np.clip(z, -RUN_CLIP, RUN_CLIP)
    has = ~np.isnan(z)
    cz = prefix_sum(np.where(has, z - nanmean(z)[:, None], 0.0), axis=1)
    cc = prefix_sum(has, axis=1)
    total = cz[:, RUN_HOURS:] - cz[:, :-RUN_HOURS]
    full = (cc[:, RUN_HOURS:] - cc[:, :-RUN_HOURS]) == RUN_HOURS
    square = np.where(full, total ** 2, np.nan)
    with np.errstate(invalid="ignore"):
        enough = full.sum(axis=1) >= MIN_RUN_WINDOWS * RUN_HOURS
        per_hour = np.where(enough, nanmedian(square), np.nan) / _MEDIAN_CHI2 / RUN_HOURS
    # at least an independent hour's 1 (the clip's 0.77 is no reason to be bolder): a
    # young window's few, overlapping sums may happen to be small
    return mean, np.maximum(per_hour, 1.0)  # NaN stays NaN


def run_hours(z: np.ndarray, h: np.ndarray, mean: np.ndarray, per_hour: np.ndarray, score: np.ndarray,
              sensitivity: float) -> np.ndarray:
    """Per bucket: `z` its day's residuals in sds (columns = hours 0..23 of the UTC day,
    NaN: none or not yet), `h` its hour, `mean` and `per_hour` run_variance of its
    window, `score` its own score. The number of hours of the run it ends (itself
    included), 0 for none."""
    hour = np.arange(z.shape[1])[None, :]
    now_col = hour == h[:, None]
    # an earlier hour beyond the first pass's band on its own is flagged on its own: it
    # does not make a run of the hours after it (the tail of an outage)
    inside = (hour <= h[:, None]) & (hour > h[:, None] - RUN_HOURS) & ~np.isnan(z) \
        & (now_col | ~(np.abs(z) > sensitivity))
    clipped = np.where(inside, np.clip(z, -RUN_CLIP, RUN_CLIP) - mean[:, None], 0.0)
    total, c = clipped.sum(axis=1), inside.sum(axis=1)
    now = np.take_along_axis(z, h[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        run = (c >= 2) & (np.abs(total) >= sensitivity * np.sqrt(c * per_hour)) & (np.abs(score) >= RUN_LEAN) \
            & (np.sign(now) == np.sign(total)) & (np.sign(score) == np.sign(total))
    return np.where(run, c, 0)
