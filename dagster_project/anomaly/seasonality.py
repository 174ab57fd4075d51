"""Seasonal profiles over training windows.

A window is a row of the last W buckets before a scored bucket t, oldest first. For a
period P the last C = W // P whole cycles are folded into a (C, P) grid whose column 0
holds t's own phase (t - C*P is a whole number of cycles before t), so no calendar is
needed: the caller's series is dense, so position is phase.

Profiles are means of per-cycle deviations (additive), ratios (multiplicative) or
denominator-weighted deviations (ratio metrics), each with a leave-one-out version: the
profile a position would have had without its own value, so residuals computed inside
the window are honest (out-of-sample) and candidates with more parameters are not
favoured. Outliers are removed before these non-robust means (see `robust_residuals`)."""
from __future__ import annotations

import numpy as np

from .stats import masked_sum, nanmedian, nansum, nansum_count


def fold(x: np.ndarray, period: int) -> np.ndarray:
    """(n, W) -> (n, C, P) over the last C*P columns."""
    n, w = x.shape
    c = w // period
    return x[:, w - c * period:].reshape(n, c, period)


def unfold(y: np.ndarray, width: int) -> np.ndarray:
    """(n, C, P) -> (n, width), NaN before the folded columns."""
    n = y.shape[0]
    flat = y.reshape(n, -1)
    if flat.shape[1] == width:
        return flat
    return np.concatenate([np.full((n, width - flat.shape[1]), np.nan), flat], axis=1)


def spread(profile: np.ndarray, cycles: int, width: int) -> np.ndarray:
    """A per-phase (n, P) array laid over the window positions (n, width)."""
    n, p = profile.shape
    return unfold(np.broadcast_to(profile[:, None, :], (n, cycles, p)), width)


def phase_volume(x: np.ndarray, period: int, k: int) -> np.ndarray:
    """(n, W) volumes (counts, denominators; NaN: none) -> (n, P): per phase, the volume
    expected now: the phase's share of its cycle (the median over cycles of its value over
    its cycle's mean, so a level that moved between cycles does not blur it) at the level
    of the last k buckets. After orders fell from 1,000 to 10 a day a month ago, about 10:
    the window's median per phase said about 500. Period 1: the median of the last k."""
    n, w = x.shape
    recent = x[:, max(0, w - k):]
    if period == 1:
        return nanmedian(recent)[:, None]
    folded = fold(x, period)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = nansum(folded, 2) / np.count_nonzero(~np.isnan(folded), axis=2)
        share = nanmedian(np.where(mean[:, :, None] > 0, folded / mean[:, :, None], np.nan), 1)
        share = np.where(np.isfinite(share) & (share > 0), share, np.nan)
        level = nanmedian(recent / spread(share, w // period, w)[:, max(0, w - k):])
        old = nanmedian(folded, 1)  # no share or no recent value: the phase's median
        return np.where(np.isfinite(level)[:, None] & ~np.isnan(share), level[:, None] * share, old)


def cycles_with_data(valid: np.ndarray, period: int) -> np.ndarray:
    """Per row, cycles with at least half their buckets present."""
    if period == 1:
        return valid.sum(axis=1)
    per = fold(valid.astype(float), period).sum(axis=2)
    return (per >= max(1.0, period / 2)).sum(axis=1)


def holds_cycles(valid: np.ndarray, period: int, need: int, ahead: int = 1) -> np.ndarray:
    """Per row, can a profile of `period` serve the next `ahead` buckets after the window?
    `need` cycles with at least half their buckets (cycles_with_data), and each of the
    phases served that has a value in the window has one in `need` cycles: a young
    series' first, partial cycle would otherwise give those phases a profile read off
    one cycle, with no leave-one-out residual to show how wrong it can be (a level
    shift inside the last cycle becomes a "weekly pattern")."""
    if period == 1:
        return valid.sum(axis=1) >= need
    seen = fold(valid.astype(float), period)[:, :, :min(ahead, period)].sum(axis=1)
    fewest = np.where(seen >= 1, seen, np.inf).min(axis=1)
    return (cycles_with_data(valid, period) >= need) & (fewest >= need)


_BOUNDED = 1e300  # values below it in size: no sum or difference of a window's values overflows
_PASSES = 6  # alternating passes for a window with gaps (a complete grid is exact after one)


def _passes(y: np.ndarray) -> np.ndarray:
    """Per row, how many alternating passes its profile gets: 1 for a complete grid, else
    _PASSES (a young window's partial first cycle converges slowly)."""
    return np.where(np.isnan(y).any(axis=(1, 2)), _PASSES, 1)[:, None]


def additive_profile(y: np.ndarray):
    """y (n, C, P) -> profile S (n, P), leave-one-out profile (n, C, P), cycles per phase (n, P).
    S[p] = mean over cycles of (y - cycle level), the cycle level being the mean of
    (y - S) over the cycle: alternating passes, refined only for rows with gaps (a
    complete grid is exact after one pass), so a cycle with gaps is not biased."""
    passes = _passes(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        ynan = np.isnan(y)
        ycnt = (~ynan).sum(axis=2)
        level = _mean(y, 2, ynan, ycnt)
        # With bounded values (no inf, no overflow) the gaps of y - level and y - S stay
        # put over the passes (a level is NaN exactly when its cycle is empty, S is always
        # finite): find and count them once; otherwise per pass, as nansum_count does.
        fixed = not np.any(np.abs(y) >= _BOUNDED)
        dnan = ynan | np.isnan(level)[:, :, None] if fixed else None
        dcnt = (~dnan).sum(axis=1) if fixed else None

        def deviations(level):
            dev = y - level[:, :, None]
            return (dev, dnan, masked_sum(dev, dnan, 1), dcnt) if fixed else (dev, np.isnan(dev), *nansum_count(dev, 1))

        for i in range(int(passes.max())):
            gaps = passes > i
            _, _, ssum, scnt = deviations(level)
            s_new = np.where(scnt > 0, ssum / np.maximum(scnt, 1), 0.0)
            s = s_new if i == 0 else np.where(gaps, s_new, s)
            level = np.where(gaps, _mean(y - s[:, None, :], 2, *((ynan, ycnt) if fixed else ())), level)
        dev, nan, ssum, scnt = deviations(level)
        loo = np.where(nan, s[:, None, :], (ssum[:, None, :] - dev) / (scnt[:, None, :] - 1))
        loo = np.where(scnt[:, None, :] >= 2, loo, np.nan)
    return s, loo, scnt


def multiplicative_profile(y: np.ndarray):
    """Counts: S[p] = mean over cycles of y / cycle level (mean 1 over phases); the
    cycle level being the cycle's mean, refined for rows with gaps (as above) as its sum
    over the sum of S at its phases with values (multiplicative_level). Phases always 0
    get S = 0."""
    passes = _passes(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = _mean(y, 2)
        for i in range(int(passes.max())):
            gaps = passes > i
            ratio = np.where(level[:, :, None] > 0, y / level[:, :, None], np.nan)
            ssum, scnt = nansum_count(ratio, 1)
            s_new = np.where(scnt > 0, ssum / np.maximum(scnt, 1), 1.0)
            s = s_new if i == 0 else np.where(gaps, s_new, s)
            level = np.where(gaps, multiplicative_level(y, s[:, None, :], 2), level)
        ratio = np.where(level[:, :, None] > 0, y / level[:, :, None], np.nan)
        ssum, scnt = nansum_count(ratio, 1)
        loo = np.where(np.isnan(ratio), s[:, None, :], (ssum[:, None, :] - ratio) / (scnt[:, None, :] - 1))
        loo = np.where(scnt[:, None, :] >= 2, loo, np.nan)
    return s, loo, scnt


def weighted_profile(num: np.ndarray, den: np.ndarray):
    """Ratios: S[p] = sum over cycles of (num - L_c * den) / sum of den, L_c the cycle's
    ratio of sums after removing S (refined for rows with gaps, as above). Returns S,
    the leave-one-out profile, the denominator behind each phase (n, P) and behind
    each leave-one-out value (n, C, P)."""
    passes = _passes(num)
    with np.errstate(invalid="ignore", divide="ignore"):
        nsum = nansum(num, 2)
        dsum = nansum(den, 2)
        level = np.where(dsum > 0, nsum / dsum, np.nan)
        for i in range(int(passes.max())):
            gaps = passes > i
            dev = num - level[:, :, None] * den
            nan = np.isnan(dev)
            snum = masked_sum(dev, nan, 1)
            sden = masked_sum(den, nan, 1)  # den is NaN only where dev is
            s_new = np.where(sden > 0, snum / np.where(sden > 0, sden, 1.0), 0.0)
            s = s_new if i == 0 else np.where(gaps, s_new, s)
            adj = nansum(num - s[:, None, :] * den, 2)
            level = np.where(gaps, np.where(dsum > 0, adj / dsum, np.nan), level)
        dev = num - level[:, :, None] * den
        nan = np.isnan(dev)
        snum = masked_sum(dev, nan, 1)
        sden = masked_sum(den, nan, 1)  # den is NaN only where dev is
        own = np.where(nan, 0.0, den)
        loo_den = sden[:, None, :] - own
        loo = np.where(loo_den > 0, (snum[:, None, :] - np.where(nan, 0.0, dev)) / loo_den, np.nan)
    return s, loo, sden, loo_den


def robust_residuals(y: np.ndarray, period: int, block: int, rule: bool = False):
    """The first, robust pass: residuals of y (n, W) from a median fit, NaN where not
    fitted. With a period: y - median of its cycle - median over cycles of that phase's
    deviation. Without: y - median of its block of `block` buckets (at least 3; the
    oldest buckets short of a block: of the first block). Used only to find the
    window's own outliers, which the second pass leaves out. `rule`: also return the
    fit's continuation past the window (the last cycle's or block's median (n,), and the
    per-phase deviation (n, P), zeros without a period) to judge later buckets, and the
    residuals from the previous cycle's (block's) median instead of their own: as a later
    bucket is judged, a level it did not shape (runs.py)."""
    n, w = y.shape
    # a median needs 3 values to pass over one outlier: blocks of 1 or 2 (the level span of
    # a training window under 9 buckets) would fit every value, leaving nothing out
    b = period if period > 1 else max(3, block)
    g = fold(y, b)
    level = nanmedian(g, 2)
    dev = g - level[:, :, None]
    phase = nanmedian(dev, 1) if period > 1 else np.zeros((n, 1))
    r = unfold(dev - phase[:, None, :], w)
    lead = w % b
    if period == 1 and lead and g.shape[1]:
        # the oldest buckets short of a block: judged against the first block's median
        # (left unfitted, a past incident there would stay in training)
        r[:, :lead] = y[:, :lead] - level[:, :1]
    if not rule:
        return r
    before = np.concatenate([np.full((n, 1), np.nan), level[:, :-1]], axis=1)
    lagged = unfold(g - before[:, :, None] - phase[:, None, :], w)
    return r, level[:, -1], phase, lagged


def multiplicative_level(y: np.ndarray, s: np.ndarray, axis) -> np.ndarray:
    """A cycle's level under a multiplicative profile: its sum over the profile's sum at
    the phases it has values (not the mean of y / S: a sparse count's phase with a tiny S
    and one event made that ratio, and the next pass's profile, explode: an expected 73
    for a series of mean 0.35). NaN for a cycle without values or whose phases are all 0."""
    present = ~np.isnan(y)
    den = np.where(present, np.broadcast_to(s, y.shape), 0.0).sum(axis=axis)
    num = np.where(present, y, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _mean(a: np.ndarray, axis: int, nan: np.ndarray | None = None, count: np.ndarray | None = None) -> np.ndarray:
    """Mean along `axis` ignoring NaN; `nan`, `count`: a's NaN and their count, when known."""
    s, c = nansum_count(a, axis) if nan is None else (masked_sum(a, nan, axis), count)
    return np.where(c > 0, s / np.maximum(c, 1), np.nan)
