"""Sparse series: a sum or gauge whose buckets are mostly zeros (refunds per hour and
country, a few a day), or a count of bursts (an error counter: mostly 0, now and then
dozens at once), is a list of events, not a series. The robust fit's spread
collapses on its zeros, so every event would be flagged. For such a bucket (its
training window holds under MIN_EVENTS non-zero buckets per bucket) the band is the size
of a usual event instead: a zero is always normal, a bucket is flagged when its size is
beyond `sensitivity` robust sds of the log sizes of the window's non-zero buckets, plus
the usual events a Poisson count per bucket adds at that tail (_events_at_tail: a
refund ten times any usual one is flagged, two ordinary ones in an hour are not).
Under MIN_SIZES non-zero buckets there is nothing to judge the size by: never flagged.

A count is a list of events only when its non-zero buckets are bursts (their median
size at least BURST_SIZE: a Poisson count that is 0 in over 37% of its buckets has a
median non-zero bucket of 1) spread over its weekly cycle (events_in_active_phases: a
shop's closed nights and weekends are its cycle, which the count model fits), and its
window holds MIN_BURSTS separate runs of them; else the count model judges it (0 -> 2
events is no anomaly there either)."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .settings import PERIOD
from .stats import MAD_TO_SD, median_sorted, sorted_median_mad, sorted_rows

MIN_SIZES = 8
BURST_SIZE = 3.0
# bursts a count's window needs to be judged by their size (runs of non-zero buckets
# apart; with fewer, the count model judges it, and one incident's run is no usual
# size): each is a Poisson count of events, whose noise floors their spread
MIN_BURSTS = 5
DETECTOR = "event-size"
# the phases of a grain's weekly cycle, whose never-active ones are a count's closed hours
WEEK_PHASES = {"hour": PERIOD["hour_of_week"], "day": PERIOD["day_of_week"]}


def event_band(window: np.ndarray, value: np.ndarray, sensitivity: float, count: bool = False) -> dict[str, np.ndarray]:
    """window: (n, w) training values (NaN = gap or excluded); value: (n,) the buckets.
    Returns expected (the window's median), lower, upper, score (|score| > sensitivity
    exactly outside [lower, upper]), `sizes` (non-zero buckets in the window) and `usual`
    (their median); NaN where sizes < MIN_SIZES. `count`: the sizes are counts of bursts,
    each as noisy as a Poisson count at least, and MIN_BURSTS runs of them are enough."""
    nonzero = ~np.isnan(window) & (window != 0)
    sizes = nonzero.sum(axis=1)
    ordered, n = sorted_rows(window)
    negatives = ordered[:, 0] < 0  # sorted, NaN last
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(nonzero, np.log(np.abs(np.where(nonzero, window, 1.0))), np.nan)
        mid, mad = sorted_median_mad(*sorted_rows(logs))
        # a floor: identical sizes (one price refunded) still leave room for their noise;
        # a burst of about m events varies by sqrt(m) (Poisson): its log by 1 / sqrt(m)
        floor = np.maximum(0.05, 1.0 / (MAD_TO_SD * np.sqrt(np.exp(mid)))) if count else 0.05
        edge = np.exp(mid + sensitivity * MAD_TO_SD * np.maximum(mad, floor))
        # a bucket holds a Poisson number of events (rate from the share of zeros): as
        # many usual events as are that likely at the band's tail probability add up,
        # where the window shows such buckets (events on a schedule, one per bucket,
        # never add up: two at once is their anomaly)
        edge = edge + (_events_at_tail(window, sensitivity, np.exp(mid)) - 1) * np.exp(mid)
        lower = np.where(negatives, -edge, 0.0)
        expected = median_sorted(ordered, n)
        # above the expected value: signed from it, in the width up to the edge (exactly
        # the sensitivity on it, so |score| > sensitivity exactly outside). Below it: a
        # window of sizes of both signs is scored down to its low edge the same way; one
        # that never went below 0 has no low side (a zero or a small event is normal: 0),
        # and a value below 0 is beyond the band by its size
        up, down = edge - expected, expected - lower
        below = np.where(negatives, sensitivity * ((value - expected) / down), 0.0)
        score = np.where(value >= expected, sensitivity * ((value - expected) / up), below)
        score = np.where((value < 0) & ~negatives, -sensitivity * (1.0 + np.abs(value) / edge), score)
    if count:  # bursts apart: one incident's run of buckets is one, and sets no usual size
        runs = np.count_nonzero(nonzero[:, 1:] & ~nonzero[:, :-1], axis=1) + nonzero[:, 0]
        ok = runs >= MIN_BURSTS
    else:
        ok = sizes >= MIN_SIZES
    nan = np.full(value.shape, np.nan)
    return {"expected": np.where(ok, expected, nan), "lower": np.where(ok, lower, nan),
            "upper": np.where(ok, edge, nan), "score": np.where(ok, score, nan), "sizes": sizes,
            "usual": np.exp(mid)}


def _events_at_tail(window: np.ndarray, sensitivity: float, usual: np.ndarray) -> np.ndarray:
    """Per row: the most events a non-zero bucket holds with a probability above the
    normal tail beyond `sensitivity` (Poisson, the rate -ln(share of zero buckets)): 1
    when a second event is rarer than that, 2 or 3 at a few events a day. Also 1 where
    the window's non-zero buckets of at least 1.5 `usual` sizes are fewer than half the
    Poisson count of buckets with two events or more."""
    valid = ~np.isnan(window)
    zeros = np.count_nonzero(valid & (window == 0), axis=1)
    share = zeros / np.maximum(np.count_nonzero(valid, axis=1), 1)
    rate = -np.log(np.clip(share, 1e-12, 1.0))
    tail = 0.5 * math.erfc(sensitivity / math.sqrt(2.0))
    nonzero = -np.expm1(-rate)  # P(N >= 1)
    with np.errstate(invalid="ignore"):
        big = np.count_nonzero(valid & (np.abs(window) >= 1.5 * usual[:, None]), axis=1)
    seen = big >= 0.5 * (np.count_nonzero(valid & (window != 0), axis=1)
                         * (nonzero - np.exp(-rate) * rate) / np.maximum(nonzero, 1e-300))
    k = np.ones(rate.shape)
    pmf = np.exp(-rate) * rate  # P(N = 1)
    beyond = nonzero - pmf      # P(N >= 2)
    for n in range(2, 30):
        more = beyond / np.maximum(nonzero, 1e-300) > tail  # P(N >= n | N >= 1) above the tail
        if not more.any():
            break
        k = np.where(more, n, k)
        pmf = pmf * rate / n
        beyond = beyond - pmf
    return np.where(seen, k, 1.0)


def sparse_rows(padded: np.ndarray, pos: np.ndarray, value: np.ndarray, width: int, sensitivity: float,
                chunk: int, count: bool = False) -> dict[str, np.ndarray]:
    """event_band for buckets at `pos` of one padded training array, in chunks of rows."""
    view = sliding_window_view(padded, width)
    parts = [event_band(view[pos[lo:lo + chunk] - width], value[lo:lo + chunk], sensitivity, count)
             for lo in range(0, pos.size, chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else \
        {k: np.array([]) for k in ("expected", "lower", "upper", "score", "sizes", "usual")}


def events_in_active_phases(value: np.ndarray, excluded: np.ndarray, pos: np.ndarray, lo: np.ndarray,
                            period: int) -> np.ndarray:
    """Per scored position (its window [lo, pos) of the 1-D series): the events per
    bucket, -ln(share of zero buckets) as a Poisson rate, over the window's buckets at the
    phases of the cycle (`period` buckets) that had a non-zero bucket in it: 0 at every
    closed hour of a shop is its cycle, not a sparse count. NaN without such buckets."""
    have = ~np.isnan(value) & ~excluded
    nonzero = have & (value != 0)
    cycles = -(-value.size // period)

    def per_phase(x):  # (cycles + 1, period): a phase's buckets before each cycle
        grid = np.zeros(cycles * period)
        grid[:x.size] = x
        return np.concatenate([np.zeros((1, period)), np.cumsum(grid.reshape(cycles, period), axis=0)])

    cn, ch = per_phase(nonzero), per_phase(have)
    events = np.full(pos.size, np.nan)
    ph = np.arange(period)[:, None]
    for first in range(0, pos.size, 2048):  # (period x rows) at a time
        rows = slice(first, first + 2048)
        # a phase's buckets before position x: ceil((x - phase) / period)
        end, start = (np.maximum(x[rows][None, :] - ph + period - 1, 0) // period for x in (pos, lo))
        nz = cn[end, ph] - cn[start, ph]
        active = nz > 0
        total = np.where(active, ch[end, ph] - ch[start, ph], 0.0).sum(axis=0)
        zeros = total - np.where(active, nz, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            events[rows] = np.where(total > 0, -np.log(zeros / np.maximum(total, 1)), np.nan)
    return events
