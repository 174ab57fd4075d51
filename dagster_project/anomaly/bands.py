"""The band around a fit's expected value, and the score (models.py fits; see its
docstring for the noise model): `band_params` (the part that depends on the window
only: each side's edge in sds, the noise scale or overdispersion), `band` and
`band_recovery` (a value back on the level of the span before the last one, or on the
level before a longer excursion, is a recovery), and the exact low edge of a small
count (`exact_lower`)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .domain import VALUE
from .models import Fit, anscombe, anscombe_inv, binomial_t, ratio_t, ratio_t_inv, walk_reach
from .stats import (SCALE_EFFICIENCY, nanmedian, robust_center_scale, solve_dispersion, spread_start, t_multiplier,
                    tail_edges, winsorized_scale)

SCORE_CAP = 1e6
# a fraction's noise scale needs this many residuals (buckets whose level span held half
# its buckets), or half its window's buckets in a window under 16 (`training_buckets: 4`
# has at most 3): a series present in a third of its hours has one or two, whose spread
# is 0 and whose band collapsed to the data's resolution (185..185, half its hours
# flagged). A dense series has 10 or more at the default minimum history of every grain.
MIN_RESIDUALS = 8
def band(fit: Fit, shape: str, sensitivity: float, value: np.ndarray, num_t: np.ndarray, den_t: np.ndarray,
         params: dict | None = None):
    """expected, lower, upper, score for the rows of `fit` (value, num_t, den_t: the
    observation at t). Each side's edge, in sds, is the larger of the Student-t quantile
    and the tail estimate of that side (see `tail_edges`). `params`: `band_params` of
    the window, when it was computed once for several buckets (hourly.py).

    A value back on the level of the level span before the last one is a recovery, not
    an anomaly: a row with `fit.recovered` (that level's expectation) gets the band of
    whichever of the two expectations the value is nearer (in band widths), where that
    earlier level was ordinary (within RECOVERY_REF of the band on the window's long-run
    level, `fit.longrun`). After a day-long incident the recent level is the incident's,
    and the hours after it would be flagged against it; a new level that lasts is still
    judged against itself, and a spike or a drop is far from both. After a longer
    excursion the span before the last one is the excursion's too: a row flagged
    against the recent level is then judged against the level before the excursion
    (_before_excursion), the same way."""
    e, lo, hi, _, shown, _ = band_recovery(fit, shape, sensitivity, value, num_t, den_t, params)
    return e, lo, hi, shown


RECOVERY_REF = 0.5  # in score units (the band edge is at sensitivity): the span before looked ordinary
FLAT = 0.25  # a span on a level (the excursion's, the usual one): within this share of the excursion's depth
EXCURSION = 1.0  # in score units: the least excursion a recovery is judged from (_before_excursion)


def band_recovery(fit: Fit, shape: str, sensitivity: float, value: np.ndarray, num_t: np.ndarray, den_t: np.ndarray,
                  params: dict | None = None):
    """expected, lower, upper, the score the rules weigh (runs, recoveries: a value on a
    low edge at 0 scores -sensitivity), the score shown (`band`'s) and per row whether
    the value was judged a recovery (nearer the level span before the last one, or the
    level before a longer excursion: hourly.py makes no run of it)."""
    p = band_params(fit, shape, sensitivity) if params is None else params
    now = _band(fit, shape, sensitivity, value, num_t, den_t, p)
    alt = fit.recovered
    if alt is not None and fit.longrun is not None:
        # the span before is a recovery's reference only where it sat on the window's
        # long-run level (within RECOVERY_REF of its band): not on a trend's past, nor
        # on an earlier, milder incident the first pass kept
        with np.errstate(invalid="ignore"):
            on = _score_on(fit, shape, sensitivity, fit.longrun, alt, den_t, p)
            alt = np.where(np.isfinite(fit.longrun) & (np.abs(on) <= RECOVERY_REF), alt, np.nan)
        alt = _before_excursion(fit, shape, sensitivity, now[3], den_t, p, alt)
    if alt is None or not np.isfinite(alt).any():
        return (*now, np.zeros(np.shape(now[3]), bool))
    before = _band(replace(fit, expected=np.where(np.isfinite(alt), alt, fit.expected)), shape, sensitivity, value,
                   num_t, den_t, p)
    nearer = np.abs(before[3]) < np.abs(now[3])
    return (*(np.where(nearer, b, a) for a, b in zip(now, before)), nearer)


def _before_excursion(fit: Fit, shape: str, sensitivity: float, score: np.ndarray, den_t: np.ndarray, p: dict,
                      alt: np.ndarray) -> np.ndarray:
    """`alt`, and for a row flagged against the recent level (`score`) that has none: the
    level before an excursion that has lasted longer than a level span (hours only:
    fit.spans is None otherwise). The excursion's level is that of the span right before
    the last one (or the recent level, when the excursion began in that span), off the
    long-run level by more than EXCURSION. Walking back over the spans before the last
    (fit.spans, every value; models.walk_reach of them): spans on the excursion's level,
    at most one span that is not (the one it began in), then a steady pair: two spans
    on the usual level (the median of the spans' levels from there back) and on each
    other, the spans older still not nearer the excursion's side; the older one's
    level is the reference. Each "on" is within FLAT of the excursion's depth from that
    usual level. A trend drifts from the usual level and from span to span: no steady
    pair, no reference."""
    levels = fit.spans
    rows = np.nonzero(np.isnan(alt) & (np.abs(score) > sensitivity) & np.isfinite(fit.longrun))[0]
    if levels is None or rows.size == 0:
        return alt
    sub = fit.rows(rows)
    pr = {key: None if v is None else v[rows] for key, v in p.items()}
    den = np.asarray(np.broadcast_to(den_t, alt.shape))[rows]
    first, usual, recent = levels[rows, 0], sub.longrun, sub.expected

    def score_on(level: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _score_on(sub, shape, sensitivity, level, x, den, pr)

    # the excursion's level: the span before the last one's, or, when that span is not
    # off (the excursion began in it), the recent level's; off the long-run level by
    # EXCURSION (a level is the mean of a span: one bucket's sd is many of its own)
    with np.errstate(invalid="ignore"):
        off = np.abs(score_on(usual, first)) > EXCURSION
        off &= np.sign(first - usual) == np.sign(recent - usual)
        level = np.where(off, first, recent)
        walking = np.abs(score_on(usual, level)) > EXCURSION
        walking &= np.abs(recent - usual) > FLAT * np.abs(level - usual)
        # per span: the excursion's depth from the usual level of the window up to that
        # span's end (the median of its spans' levels: a long excursion, or a young
        # series' weekend, moves a mean); on the excursion's level, or ordinary (on that
        # usual level), within FLAT of that depth
        every = levels[rows]
        reach = walk_reach(every.shape[1])
        prior = np.stack([nanmedian(every[:, j:]) for j in range(reach)], axis=1)
        spans = every[:, :reach]
        tol = FLAT * np.abs(level[:, None] - prior)
        on = np.abs(spans - level[:, None]) <= tol
        ordinary = np.abs(spans - prior) <= tol
    toward = np.sign(level - usual)
    began = np.zeros(rows.size, bool)
    found = np.full(rows.size, np.nan)
    for j in range(reach - 1):
        x, older = spans[:, j], spans[:, j + 1]
        gap = np.isnan(x)  # no values: walked over
        # the level before: an ordinary span, and the one before it ordinary and on its
        # level (a trend's spans drift from their window's level and from each other),
        # the spans older still not lower (after a rise; higher after a fall) by more
        # than the same: a young series' trend has few spans, some of them a pair
        rest = nanmedian(every[:, j + 2:]) if every.shape[1] > j + 2 else np.full(rows.size, np.nan)
        with np.errstate(invalid="ignore"):
            steady = ordinary[:, j] & ordinary[:, j + 1] & (np.abs(older - x) <= tol[:, j])
            steady &= ~(toward * (0.5 * (x + older) - rest) > tol[:, j])
        # its level: the older of the two (the nearer may still hold the excursion's start)
        found = np.where((walking | began) & steady & ~on[:, j] & np.isnan(found), older, found)
        began = (walking & ~on[:, j] & ~steady & ~gap) | (began & gap)
        walking = walking & (on[:, j] | gap)
    out = alt.copy()
    out[rows] = found
    return out


def _score_on(fit: Fit, shape: str, sensitivity: float, expected: np.ndarray, level: np.ndarray, den_t: np.ndarray,
              p: dict) -> np.ndarray:
    """The score a value on `level` gets on the band around `expected` (a ratio: level
    times den_t over den_t): how far apart two levels are, in band widths."""
    with np.errstate(invalid="ignore"):
        return _band(replace(fit, expected=expected), shape, sensitivity, level, level * den_t, den_t, p)[3]


def _band(fit: Fit, shape: str, sensitivity: float, value: np.ndarray, num_t: np.ndarray, den_t: np.ndarray,
          p: dict):
    up, down = p["up"], p["down"]
    if shape == "fraction":
        scale = p["scale"]
        if p.get("ref") is not None:  # an average: den_t, the values the scored bucket averages
            scale = scale * np.sqrt(_average_variance(den_t, p))
        expected = fit.expected + p["center"]
        if fit.value_range is not None:
            # a level plus a profile of few cycles, plus the residuals' centre, can land beyond
            # every value the window holds (a gauge of 40..900 expected at -100 on a Monday,
            # shown as 0): no history backs that, the expectation stays within the range
            lo, hi = fit.value_range[:, 0], fit.value_range[:, 1]
            with np.errstate(invalid="ignore"):
                expected = np.where(np.isnan(lo) | np.isnan(expected), expected, np.clip(expected, lo, hi))
        with np.errstate(invalid="ignore", divide="ignore"):
            score = _cap(sensitivity * ((value - expected) / (np.where(value > expected, up, down) * scale)))
        return expected, expected - down * scale, expected + up * scale, score, score
    disp = p["disp"]
    prop = None if shape == "count" else fit.proportion
    if shape == "count":
        load = disp * fit.expected
        y, yx = anscombe(fit.expected), anscombe(value)
    else:
        load = disp * den_t
        y = ratio_t(fit.expected * den_t, den_t, prop)
        yx = ratio_t(num_t, den_t, prop)
    sd = np.sqrt(fit.kappa * (1.0 + load))
    # a small expected count: the low edge from the count distribution itself (the normal
    # approximation is too sure there: 0 when 5 are expected happens 0.7% of the time)
    mean = fit.expected if shape == "count" else fit.expected * den_t
    ratio = fit.kappa * (1.0 + load) * (1.0 if shape == "count" else np.where(prop, 1.0 - fit.expected, 1.0))
    if shape == "count":
        low_count = np.fmin(anscombe_inv(y - down * sd), exact_lower(mean, ratio, down))
        y_low = np.where(low_count > 0, anscombe(low_count), anscombe(0.0))
        upper = anscombe_inv(y + up * sd)
        lower = low_count
    else:
        low_count = np.fmin(ratio_t_inv(y - down * sd, den_t, prop), exact_lower(mean, ratio, down))
        y_low = ratio_t(low_count, den_t, prop)
        upper = ratio_t_inv(y + up * sd, den_t, prop) / den_t
        lower = low_count / den_t
    # score in T units against the side's half-width (the low one ends at the low edge, so a
    # value on the edge scores exactly -sensitivity and is not flagged)
    half_down = np.where(y > y_low, y - y_low, down * sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = sensitivity * ((yx - y) / np.where(yx > y, up * sd, half_down))
        # the score shown: a low edge at 0 where the tail goes on below it (0 expected 0.85
        # times: 43% likely) is no tail, and every 0 scored -sensitivity as if on the edge
        # of the rare; shown on at least the normal half-width instead, a 0 scores as far
        # as it is. (The rules that weigh scores, runs and recoveries, keep the edge's.)
        shown = np.where((low_count > 0) | (yx > y), score,
                         sensitivity * ((yx - y) / np.fmax(half_down, down * sd)))
        if shape != "count":
            # a proportion's bucket above 1 (30 refunds of 7 orders) is beyond its band, which
            # stops at 1; how far: its scale continued past 1 by the count's (Anscombe), so
            # 2 of 1 is just beyond and 30 of 7 far beyond (critical)
            past = binomial_t(den_t, den_t) + anscombe(num_t) - anscombe(den_t)
            score = np.where(prop & (num_t > den_t),
                             np.fmax(sensitivity * ((past - y) / (up * sd)), np.nextafter(sensitivity, np.inf)),
                             score)
            shown = np.where(prop & (num_t > den_t), score, shown)
    return fit.expected, lower, upper, _cap(score), _cap(shown)


def band_params(fit: Fit, shape: str, sensitivity: float, quantile: float | None = None) -> dict[str, np.ndarray]:
    """The part of the band that depends on the window only, per row: each side's edge
    in sds (up, down), and the noise: centre and scale (fraction) or the overdispersion.
    `quantile`: the fit is of a percentile at this level, in its values (quantile_in)."""
    # The noise scale is measured on the honest residuals of every training bucket, the
    # first pass's outliers included (their residuals come from the cleaned fit): leaving
    # them out would truncate the distribution and understate the noise; winsorising
    # bounds what one past incident can add (at most WINSOR^2 / n of the variance). The
    # tail shape (tail_edges) is read on the cleaned buckets only, so past incidents,
    # even several, never make the band wider than the series' normal tails.
    if shape == "fraction":
        center, scale, nres = robust_center_scale(fit.resid_all, fit.floor)
        # under 3 residuals a median passes over no outlier (a 4-bucket window's two, one of
        # them a past spike's): the cleaned buckets' then, which the first pass left it out of
        few = np.nonzero(nres < 3)[0]
        few = few[np.count_nonzero(~np.isnan(fit.resid[few]), axis=1) > 0]
        if few.size:
            center = center.copy()
            center[few] = nanmedian(fit.resid[few])
        dev_all, dev = fit.resid_all - center[:, None], fit.resid - center[:, None]
        avg = {} if fit.counts is None else _average_noise(dev_all, fit.counts, fit.floor)
        if avg:  # the deviations in units of the noise at the window's typical count
            g = np.sqrt(_average_variance(fit.counts, avg))
            dev_all, dev = dev_all / g, dev / g
            _, scale, nres = robust_center_scale(dev_all, fit.floor)
        # one step from the MAD or, for a gauge on a few levels whose MAD is almost 0, from
        # the 80% quantile of the deviations (stats.spread_start)
        scale = np.fmax(winsorized_scale(dev_all, spread_start(dev_all, scale)), fit.floor)
        # too few residuals to measure the noise by: no band (the row says not scored)
        center = np.where(nres >= min(MIN_RESIDUALS, fit.resid_all.shape[1] // 2), center, np.nan)
        q = t_multiplier(sensitivity, SCALE_EFFICIENCY * nres)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = dev / scale[:, None]
        up, down = tail_edges(z, sensitivity, q, skewed=True,
                              extreme_up=extreme_upper(quantile, avg.get("ref"), np.shape(q)))
        return {"up": up, "down": down, "center": center, "scale": scale,
                "ref": avg.get("ref"), "between": avg.get("between"), "least": avg.get("least")}
    base_all = fit.base if fit.base_all is None else fit.base_all
    slope_all = fit.slope if fit.slope_all is None else fit.slope_all
    disp = solve_dispersion(fit.resid_all ** 2, base_all, slope_all)
    nres = np.count_nonzero(~np.isnan(fit.resid_all), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(np.isnan(fit.resid), np.nan, fit.resid_all) / np.sqrt(base_all * (1.0 + disp[:, None] * slope_all))
    # an estimated variance (above the Poisson / binomial floor) is uncertain: Student t
    q = t_multiplier(sensitivity, np.where(disp > 0, SCALE_EFFICIENCY * nres, np.inf))
    up, down = tail_edges(z, sensitivity, q)
    return {"up": up, "down": down, "disp": disp}


# A percentile of a bucket's values with fewer than this many values beyond it (in a
# bucket of the window's typical count) is an order statistic near the sample's extreme.
EXTREME_VALUES = 5.0


def extreme_upper(quantile: float | None, ref: np.ndarray | None, shape) -> np.ndarray | None:
    """Per row, whether the upper side of a percentile's noise is a sample extreme's
    (the lower side never is here): the 95th percentile of 20 latencies lies between the
    two largest, and the largest of n values of a distribution with an exponential or
    heavier tail (latencies, amounts, durations) has such a tail itself (Gumbel). The 95th
    percentile of 20 gamma values lies beyond 3.5 robust sds once in 200 buckets; its
    edge at the 3.5-sd tail probability is 5.3 sds (7.3 for lognormal amounts). A
    window's 10% and 2.5% quantiles measure such a tail poorly: a demo's p95 latency of
    about 15 orders an hour got edges of 3.7 sds and was flagged about once in 30 days
    by chance alone. Such a side takes the exponential tail's edge (stats.tail_edges,
    where the window has the values to measure its quantiles; 5.7 sds for those 20 gamma
    values in theory). Only when fewer than EXTREME_VALUES values of a
    bucket of the window's typical count `ref` (its median count) lie beyond the
    percentile: with more, the window's quantiles tell the tail (the p95 of 400 gamma
    values: 3.8 sds, the exponential's 4.7). A percentile over 0.5 only: the smallest of
    a few latencies or amounts is bounded by 0, with no such tail, and an exponential low
    edge would only hide drops. `ref` is the window's, not the bucket's: a series busy
    most of the day keeps the window's own tail estimate at its quiet hours too."""
    if quantile is None or ref is None or quantile <= 0.5:
        return None
    beyond = np.broadcast_to(np.asarray(ref, float), shape) * (1.0 - quantile)
    with np.errstate(invalid="ignore"):
        return beyond < EXTREME_VALUES  # NaN (no count known): False


def quantile_in(settings, domain: str) -> float | None:
    """The settings' percentile level for band_params where the fit is in the values:
    there a sample extreme keeps its exponential tail (extreme_upper). A square root or
    a log shortens it (the log of the p95 of 20 gamma values: 3.8 sds at the 3.5-sd tail
    probability), and that domain was chosen for leaving the spread more symmetric:
    None there, the window's own tail estimate."""
    return settings.quantile if domain == VALUE else None


# The share of an average's noise that does not shrink with its count (day-to-day moves,
# a product mix), relative to the sampling noise at the window's typical count: tried on
# this grid (0: pure sampling noise, inf: the count does not matter), kept by likelihood.
_BETWEEN = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, np.inf)


def _average_variance(counts: np.ndarray, avg: dict) -> np.ndarray:
    """An average's noise variance at `counts` (one per row, or per row and position)
    relative to that at the typical count `ref`: (1/c + a) / (1 + a) with c = count / ref
    and a the between share; 1 when a is inf. A count not known (0 or NaN) gets the
    window's smallest (the widest band)."""
    shape = (-1,) + (1,) * (np.ndim(counts) - 1)
    ref, a, least = (np.reshape(avg[k], shape) for k in ("ref", "between", "least"))
    share = np.where(np.isinf(a), 0.0, a)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(counts > 0, counts, least) / ref
        g = np.where(np.isinf(a), 1.0, (1.0 / c + share) / (1.0 + share))
    return np.where(np.isfinite(g) & (g > 0), g, 1.0)


def _average_noise(dev: np.ndarray, counts: np.ndarray, floor) -> dict:
    """Per row, how an average's noise depends on its count: variance s^2 (1/c + a) / (1 +
    a) at relative count c, the between share `a` from _BETWEEN by the Gaussian profile
    likelihood of the robust scale (n log s + 1/2 sum log g). Empty when no row has counts."""
    known = np.where(counts > 0, counts, np.nan)
    if not np.any(~np.isnan(known)):
        return {}
    avg = {"ref": nanmedian(known), "least": np.fmin.reduce(known, axis=1), "between": np.full(dev.shape[0], np.inf)}
    best = np.full(dev.shape[0], np.inf)
    present = ~np.isnan(dev)
    for a in _BETWEEN:
        avg_a = {**avg, "between": np.full(dev.shape[0], a)}
        g = _average_variance(counts, avg_a)
        u = dev / np.sqrt(g)
        _, s0, n = robust_center_scale(u, floor)
        s = np.fmax(winsorized_scale(u, s0), floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            nll = n * np.log(s) + 0.5 * np.where(present, np.log(g), 0.0).sum(axis=1)
        better = nll < best - 1e-9
        best = np.where(better, nll, best)
        avg["between"] = np.where(better, a, avg["between"])
    return avg  # a row without counts: g is 1 whatever its share


EXACT_BELOW = 40.0  # expected counts below which the low edge comes from the count distribution


def exact_lower(mean: np.ndarray, var_ratio: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Per row, the low edge of a count with this mean and variance / mean ratio (a
    negative binomial, Poisson when the ratio is <= 1): k + 1/2 for the largest k whose
    lower tail probability is below that of `edge` normal sds, 0 when even 0 is not that
    rare. Rows with mean >= EXACT_BELOW get +inf (left to the normal approximation)."""
    n = mean.size
    out = np.full(n, np.inf)
    rows = np.nonzero(np.isfinite(mean) & (mean < EXACT_BELOW))[0]
    if rows.size == 0:
        return out
    m = np.maximum(mean[rows], 1e-12)
    alpha = np.maximum(var_ratio[rows] - 1.0, 0.0) / m
    p = 0.5 * np.array([math.erfc(e / math.sqrt(2.0)) for e in np.broadcast_to(edge, (n,))[rows]])
    nb = alpha > 1e-9
    size = np.where(nb, 1.0 / np.where(nb, alpha, 1.0), np.inf)
    q = np.where(nb, 1.0 / (1.0 + alpha * m), 1.0)
    below = np.full(rows.size, -1)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        pmf = np.where(nb, np.exp(size * np.log(q)), np.exp(-m))
        cdf = pmf.copy()
        for k in range(int(3 * EXACT_BELOW)):
            rising = cdf < p
            if not rising.any():  # the cdf only grows: no row's `below` moves any more
                break
            below = np.where(rising, k, below)
            pmf = pmf * np.where(nb, (k + size) / (k + 1) * (1.0 - q), m / (k + 1))
            cdf = cdf + pmf
    out[rows] = np.where(below >= 0, below + 0.5, 0.0)
    return out


def _cap(score: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(score, nan=0.0, posinf=SCORE_CAP, neginf=-SCORE_CAP), -SCORE_CAP, SCORE_CAP)



__all__ = ["band", "band_params", "band_recovery", "exact_lower", "EXACT_BELOW", "SCORE_CAP"]
