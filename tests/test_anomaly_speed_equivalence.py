"""The anomaly library's fast paths give bit-identical results to the straightforward
versions they replaced (kept here as references): one sort instead of two for a median
absolute deviation, NaN masks found once per profile instead of once per pass, an early
stop of the exact count tail. Random inputs with the awkward cases: NaN, ties,
quantised values, empty rows, inf."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dagster_project.anomaly import seasonality, sparse, stats
from dagster_project.anomaly.bands import EXACT_BELOW, exact_lower


def _nanmedian(a):
    s = np.sort(a, axis=-1)
    n = a.shape[-1] - np.count_nonzero(np.isnan(a), axis=-1)
    rows = np.arange(a.shape[0])
    lo, hi = np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)
    return np.where(n > 0, 0.5 * (s[rows, lo] + s[rows, hi]), np.nan)


def _nansum_count(a, axis):
    ok = ~np.isnan(a)
    return np.where(ok, a, 0.0).sum(axis=axis), ok.sum(axis=axis)


def _nanmean(a):
    s, n = _nansum_count(a, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _robust_center_scale(r, floor=0.0):
    center = _nanmedian(r)
    dev = np.abs(r - center[..., None])
    mad = _nanmedian(dev) * stats.MAD_TO_SD
    mean_ad = _nanmean(dev) * stats.MEANAD_TO_SD
    scale = np.where(mad > 0, mad, mean_ad)
    n = np.count_nonzero(~np.isnan(r), axis=-1)
    return center, np.fmax(np.nan_to_num(scale, nan=0.0), floor), n


def _resolution_floor(x):
    s = np.sort(x, axis=-1)
    mag = np.nan_to_num(_nanmedian(np.abs(x)), nan=0.0)
    gaps = np.diff(s, axis=-1)
    gaps = np.where(gaps > 1e-9 * np.maximum(mag, 1e-300)[..., None], gaps, np.inf)
    q = gaps.min(axis=-1) if gaps.shape[-1] else np.full(x.shape[:-1], np.inf)
    q = np.where(np.isfinite(q), q, 0.0)
    return np.maximum(q / np.sqrt(12.0), 1e-9 * mag + 1e-300)


def _mean(a, axis):
    s, c = _nansum_count(a, axis)
    return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def _additive_profile(y):
    passes = seasonality._passes(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = _mean(y, 2)
        for i in range(int(passes.max())):
            gaps = passes > i
            dev = y - level[:, :, None]
            ssum, scnt = _nansum_count(dev, 1)
            s_new = np.where(scnt > 0, ssum / np.maximum(scnt, 1), 0.0)
            s = s_new if i == 0 else np.where(gaps, s_new, s)
            level = np.where(gaps, _mean(y - s[:, None, :], 2), level)
        dev = y - level[:, :, None]
        ssum, scnt = _nansum_count(dev, 1)
        loo = np.where(np.isnan(dev), s[:, None, :], (ssum[:, None, :] - dev) / (scnt[:, None, :] - 1))
        loo = np.where(scnt[:, None, :] >= 2, loo, np.nan)
    return s, loo, scnt


def _weighted_profile(num, den):
    passes = seasonality._passes(num)
    with np.errstate(invalid="ignore", divide="ignore"):
        nsum, _ = _nansum_count(num, 2)
        dsum, _ = _nansum_count(den, 2)
        level = np.where(dsum > 0, nsum / dsum, np.nan)
        for i in range(int(passes.max())):
            gaps = passes > i
            dev = num - level[:, :, None] * den
            snum, _ = _nansum_count(dev, 1)
            sden, _ = _nansum_count(np.where(np.isnan(dev), np.nan, den), 1)
            s_new = np.where(sden > 0, snum / np.where(sden > 0, sden, 1.0), 0.0)
            s = s_new if i == 0 else np.where(gaps, s_new, s)
            adj, _ = _nansum_count(num - s[:, None, :] * den, 2)
            level = np.where(gaps, np.where(dsum > 0, adj / dsum, np.nan), level)
        dev = num - level[:, :, None] * den
        snum, _ = _nansum_count(dev, 1)
        sden, _ = _nansum_count(np.where(np.isnan(dev), np.nan, den), 1)
        own = np.where(np.isnan(dev), 0.0, den)
        loo_den = sden[:, None, :] - own
        loo = np.where(loo_den > 0, (snum[:, None, :] - np.where(np.isnan(dev), 0.0, dev)) / loo_den, np.nan)
    return s, loo, sden, loo_den


def _low_edge(mean: float, ratio: float, edge: float) -> float:
    """One row, plainly: walk the count distribution's cdf (Poisson, or a negative binomial
    when the variance / mean ratio is above 1) over every count bands.exact_lower looks
    at, keeping the last count still below the normal tail probability of `edge`."""
    if not math.isfinite(mean) or mean >= EXACT_BELOW:
        return math.inf
    m = max(mean, 1e-12)
    alpha = max(ratio - 1.0, 0.0) / m
    tail = 0.5 * math.erfc(edge / math.sqrt(2.0))
    if alpha > 1e-9:
        size, q = 1.0 / alpha, 1.0 / (1.0 + alpha * m)
        pmf, step = math.exp(size * math.log(q)), (lambda k: (k + size) / (k + 1) * (1.0 - q))
    else:
        pmf, step = math.exp(-m), (lambda k: m / (k + 1))
    cdf, below = pmf, -1
    for k in range(int(3 * EXACT_BELOW)):
        if cdf < tail:
            below = k
        pmf *= step(k)
        cdf += pmf
    return below + 0.5 if below >= 0 else 0.0


def _events_at_tail(window, sensitivity, usual):
    """Row by row, the Poisson tail summed term by term: the largest n >= 1 with
    P(N >= n | N >= 1) above the normal tail, where the window holds at least half the
    Poisson share of buckets of 1.5 usual sizes; else 1."""
    import math

    def sf(k, rate):  # P(N > k)
        return 1.0 - sum(math.exp(-rate) * rate ** j / math.factorial(j) for j in range(k + 1))

    tail = 0.5 * math.erfc(sensitivity / math.sqrt(2.0))
    out = np.ones(window.shape[0])
    for i, row in enumerate(window):
        row = row[~np.isnan(row)]
        if row.size == 0:
            continue
        rate = -math.log(max(float(np.mean(row == 0)), 1e-12))
        nonzero = sf(0, rate)
        if not nonzero > 0:
            continue
        several = sf(1, rate) / nonzero
        if np.sum(np.abs(row) >= 1.5 * usual[i]) < 0.5 * np.sum(row != 0) * several:
            continue
        for n in range(2, 30):
            if sf(n - 1, rate) / nonzero > tail:
                out[i] = n
    return out


def _event_band(window, value, sensitivity, count=False):
    nonzero = ~np.isnan(window) & (window != 0)
    sizes = nonzero.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(nonzero, np.log(np.abs(np.where(nonzero, window, 1.0))), np.nan)
        mid = _nanmedian(logs)
        mad = _nanmedian(np.abs(logs - mid[:, None]))
        # a count's bursts: at least a Poisson count's spread, sd(log) = 1 / sqrt(size)
        floor = np.maximum(0.05, 1.0 / (stats.MAD_TO_SD * np.sqrt(np.exp(mid)))) if count else 0.05
        edge = np.exp(mid + sensitivity * stats.MAD_TO_SD * np.maximum(mad, floor))
        edge = edge + (_events_at_tail(window, sensitivity, np.exp(mid)) - 1) * np.exp(mid)
        negatives = (np.nan_to_num(window, nan=0.0) < 0).any(axis=1)
        lower = np.where(negatives, -edge, 0.0)
        expected = _nanmedian(window)
        below = np.where(negatives, sensitivity * ((value - expected) / (expected - lower)), 0.0)
        score = np.where(value >= expected, sensitivity * ((value - expected) / (edge - expected)), below)
        score = np.where((value < 0) & ~negatives, -sensitivity * (1.0 + np.abs(value) / edge), score)
    # a count's runs of non-zero buckets, counted one by one
    runs = np.array([sum(1 for j in range(len(r)) if r[j] and (j == 0 or not r[j - 1])) for r in nonzero])
    ok = runs >= sparse.MIN_BURSTS if count else sizes >= sparse.MIN_SIZES
    nan = np.full(value.shape, np.nan)
    return {"expected": np.where(ok, expected, nan), "lower": np.where(ok, lower, nan),
            "upper": np.where(ok, edge, nan), "score": np.where(ok, score, nan), "sizes": sizes,
            "usual": np.exp(mid)}


def _rows(seed: int, n: int, w: int, kind: str) -> np.ndarray:
    """Awkward rows: gaps, empty rows, ties (quantised), heavy tails."""
    rng = np.random.default_rng(seed)
    if kind == "quantised":
        x = rng.integers(0, 4, (n, w)).astype(float)
    elif kind == "heavy":
        x = rng.standard_t(1.5, (n, w)) * 10 ** rng.uniform(-3, 3, (n, 1))
    else:
        x = rng.normal(5, 2, (n, w))
    x[rng.random((n, w)) < rng.uniform(0, 0.9, (n, 1))] = np.nan
    x[: max(1, n // 10)] = np.nan  # empty rows
    x[n // 10: n // 5, :] = x[n // 10: n // 5, :1]  # rows of one repeated value
    return x


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) and np.asarray(a).dtype == np.asarray(b).dtype


@pytest.mark.parametrize("kind", ["normal", "quantised", "heavy"])
@pytest.mark.parametrize("shape", [(7, 30), (40, 1344), (200, 168)])  # below and above the search threshold
def test_robust_center_scale_and_nanmedian(kind, shape):
    for seed in range(4):
        r = _rows(seed, *shape, kind)
        floor = np.abs(np.random.default_rng(seed).normal(0, 0.01, shape[0]))
        for got, want in zip(stats.robust_center_scale(r, floor), _robust_center_scale(r, floor)):
            assert same(got, want)
        assert same(stats.nanmedian(r), _nanmedian(r))
        assert same(stats.resolution_floor(r), _resolution_floor(r))
        # the search's median absolute deviation against sorting the deviations
        s, n = stats.sorted_rows(r)
        c = stats.median_sorted(s, n)
        assert same(stats._median_distance(s, n, c), _nanmedian(np.abs(r - c[:, None])))


def test_robust_center_scale_with_inf_falls_back():
    r = _rows(1, 60, 1344, "normal")
    r[30:40, ::7] = np.inf
    r[40:50, ::3] = -np.inf
    for got, want in zip(stats.robust_center_scale(r), _robust_center_scale(r)):
        assert same(got, want)


@pytest.mark.parametrize("period", [7, 24, 168])
def test_profiles_match_the_per_pass_versions(period):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        y = _rows(seed, 30, period * 8, "normal").reshape(30, 8, period)
        for got, want in zip(seasonality.additive_profile(y), _additive_profile(y)):
            assert same(got, want)
        y[3, 2, 1] = np.inf  # unbounded values: the per-pass path
        y[4, 0, :] = 1e305
        for got, want in zip(seasonality.additive_profile(y), _additive_profile(y)):
            assert same(got, want)
        den = rng.integers(0, 50, y.shape).astype(float)
        den[np.isnan(y)] = np.nan
        num = np.floor(den * rng.uniform(0, 1, y.shape))
        for got, want in zip(seasonality.weighted_profile(num, den), _weighted_profile(num, den)):
            assert same(got, want)


def test_exact_lower_stops_early_with_the_same_edges():
    rng = np.random.default_rng(3)
    mean = np.concatenate([rng.uniform(0, 45, 500), [np.nan, np.inf, 0.0, 1e-15, 39.999]])
    ratio = np.concatenate([rng.uniform(0.5, 6, 500), [1.0, 1.0, 1.0, 1.0, 30.0]])
    edge = rng.uniform(1, 6, mean.size)
    assert same(exact_lower(mean, ratio, edge), np.array([_low_edge(*row) for row in zip(mean, ratio, edge)]))


def test_event_band_matches():
    rng = np.random.default_rng(5)
    w = np.where(rng.random((300, 1344)) < 0.8, 0.0, rng.lognormal(3, 1, (300, 1344)))
    w[rng.random(w.shape) < 0.1] = np.nan
    w[:20] = np.nan
    w[20:40, ::11] *= -1  # negative sizes: sorted on their own
    w[40:60] = np.round(w[40:60])  # identical sizes
    value = np.concatenate([rng.lognormal(3, 2, 290), -rng.lognormal(3, 1, 10)])
    got, want = sparse.event_band(w, value, 3.0), _event_band(w, value, 3.0)
    assert got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    # counts of bursts: whole sizes, some rows with few runs
    c = np.where(rng.random((300, 1344)) < 0.97, 0.0, rng.poisson(30, (300, 1344)) + 1.0)
    c[60:120, 200:] = 0.0
    c[rng.random(c.shape) < 0.05] = np.nan
    got, want = sparse.event_band(c, value, 3.0, count=True), _event_band(c, value, 3.0, count=True)
    assert got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    assert 0 < np.isnan(got["score"]).sum() < 300


def test_record_matches_nanmin_nanmax():
    from dagster_project.anomaly.core import record
    rng = np.random.default_rng(7)
    same = _rows(7, 200, 9, "quantised")
    value = rng.integers(-1, 5, 200).astype(float)
    value[::17] = np.nan
    nvals = np.count_nonzero(~np.isnan(same), axis=1)
    with np.errstate(invalid="ignore"):
        low = (nvals >= 2) & (value < np.nanmin(np.where(nvals[:, None] > 0, same, 0.0), axis=1))
        high = (nvals >= 2) & (value > np.nanmax(np.where(nvals[:, None] > 0, same, 0.0), axis=1))
    want = np.where(low, "lowest", np.where(high, "highest", ""))
    assert same_strings(record(same, value), want)


def same_strings(a, b) -> bool:
    return np.asarray(a).tolist() == np.asarray(b).tolist()
