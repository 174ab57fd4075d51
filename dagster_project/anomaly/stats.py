"""Vectorised robust statistics over the last axis (one row per scored bucket), NaN-aware
and warning-free. Every function reduces each row on its own, so a row's result does not
depend on which other rows share the batch."""
from __future__ import annotations

import math

import numpy as np

MAD_TO_SD = 1.482602218505602      # 1 / Phi^-1(3/4): MAD of a normal sample -> its sd
MEANAD_TO_SD = 1.2533141373155001  # sqrt(pi/2): mean absolute deviation -> sd
CHI2_1_MEDIAN = 0.454936423119572  # median of a chi-square with 1 degree of freedom
WINSOR = 3.0                       # Huber winsorising constant (in sd) for the noise scale
WINSOR_MOMENT = 0.995012           # E[min(z^2, 9)] for a standard normal z
SCALE_EFFICIENCY = 0.9             # of the winsorised variance at the normal: df = 0.9 n


def prefix_sum(x, axis: int = -1) -> np.ndarray:
    """Cumulative sum with a leading 0 (sum over [i, j) = c[j] - c[i])."""
    x = np.asarray(x, float)
    shape = list(x.shape)
    shape[axis] = 1
    return np.concatenate([np.zeros(shape), np.cumsum(x, axis=axis)], axis=axis)


def nanmedian(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median along `axis` ignoring NaN; NaN where a row has no value."""
    a = np.asarray(a, dtype=float)
    if axis != -1 and axis != a.ndim - 1:
        a = np.moveaxis(a, axis, -1)
    shape, m = a.shape[:-1], a.shape[-1]
    if m == 0:
        return np.full(shape, np.nan)
    return median_sorted(*sorted_rows(a.reshape(-1, m))).reshape(shape)


def sorted_rows(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of a 2-D array sorted (NaN last) and its number of values."""
    return np.sort(flat, axis=-1), flat.shape[-1] - np.count_nonzero(np.isnan(flat), axis=-1)


def quantile_skew(r: np.ndarray, level: float = 0.1, least: int = 20) -> np.ndarray:
    """Per row, the quantile skewness (q[1-level] + q[level] - 2 median) / (q[1-level] -
    q[level]) of the non-NaN values: 0 for a symmetric distribution, towards +1 for a
    long upper side; NaN for a row with fewer than `least` values."""
    s, n = sorted_rows(r)
    lo, mid, hi = (quantile_sorted(s, n, p) for p in (level, 0.5, 1.0 - level))
    with np.errstate(invalid="ignore", divide="ignore"):
        skew = (hi + lo - 2.0 * mid) / (hi - lo)
    return np.where((n >= least) & (hi > lo), skew, np.nan)


def quantile_sorted(s: np.ndarray, n: np.ndarray, level: float) -> np.ndarray:
    """Per row of rows sorted by `sorted_rows` (s, n values each), the value at position
    floor(level * (n - 1)): the empirical `level` quantile, no interpolation."""
    at = np.clip(np.floor(level * (n - 1)).astype(int), 0, None)
    return np.take_along_axis(s, at[:, None], 1)[:, 0]


def median_sorted(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """nanmedian of rows sorted by `sorted_rows` (s, n)."""
    if s.shape[1] == 0:
        return np.full(s.shape[0], np.nan)
    rows = np.arange(s.shape[0])
    lo, hi = np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)
    return np.where(n > 0, 0.5 * (s[rows, lo] + s[rows, hi]), np.nan)


def sorted_median_mad(s: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row sorted by `sorted_rows` (s, n): the median c and nanmedian(|x - c|) (unscaled)."""
    c = median_sorted(s, n)
    return c, median_distance(s, n, c)


_SEARCH_CELLS = 30_000  # from this many values, a binary search beats a second sort (robust_center_scale)


def median_distance(s: np.ndarray, n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """nanmedian(|x - c|) per row sorted by `sorted_rows` (s, n), c: one centre per row."""
    if s.shape[1] == 0:
        return np.full(s.shape[0], np.nan)
    rows = np.arange(s.shape[0])
    finite = np.all(np.isfinite(s[rows, np.maximum(n - 1, 0)]) & np.isfinite(s[:, 0]) | (n == 0))
    if s.size > _SEARCH_CELLS and finite:
        return _median_distance(s, n, c)  # no second sort
    # few values (sorting is cheaper than the search's steps), or inf: |x - c| may be NaN
    return nanmedian(np.abs(s - c[:, None]))


def _median_distance(s: np.ndarray, n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """nanmedian(|x - c|) per row from its sorted values (s, n: sorted_rows), without
    sorting the distances: the k values nearest to c are a run of s (the distance falls,
    then rises along it), found by binary search on the run's start; the k-th smallest
    distance is the larger one at the run's two ends. The same order statistics of the
    same numbers as sorting them, so the same median. Values must be finite."""
    # both order statistics of the median (1-based k) in one search: rows stacked twice
    k = np.concatenate([np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)]) + 1
    rows, c2, last = np.tile(np.arange(s.shape[0]), 2), np.tile(c, 2), s.shape[1] - 1
    lo, hi = np.zeros(rows.size, int), np.maximum(np.tile(n, 2) - k, 0)
    while (active := lo < hi).any():
        mid = (lo + hi) // 2
        # the run starting after mid is nearer: c is further from s[mid] than from s[mid + k]
        right = active & (c2 - s[rows, mid] > s[rows, np.minimum(mid + k, last)] - c2)
        lo, hi = np.where(right, mid + 1, lo), np.where(active & ~right, mid, hi)
    kth = np.maximum(np.abs(s[rows, lo] - c2), np.abs(s[rows, np.clip(lo + k - 1, 0, last)] - c2))
    half = s.shape[0]
    return np.where(n > 0, 0.5 * (kth[:half] + kth[half:]), np.nan)


def nansum_count(a: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    nan = np.isnan(a)
    return masked_sum(a, nan, axis), (~nan).sum(axis=axis)


def nansum(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """nansum_count's sum alone (the count costs as much as the sum)."""
    return masked_sum(a, np.isnan(a), axis)


def masked_sum(a: np.ndarray, nan: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum along `axis` of the values of `a` where `nan` is False (nan: a's NaN, when
    already known)."""
    return np.where(nan, 0.0, a).sum(axis=axis)


def nanmean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    s, n = nansum_count(a, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def robust_center_scale(r: np.ndarray, floor: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: median, robust sd (MAD, else mean absolute deviation when more than half
    the values tie at the median, e.g. a quantised gauge), number of values.
    The sd is at least `floor`."""
    r = np.asarray(r, dtype=float)
    shape, m = r.shape[:-1], r.shape[-1]
    flat = r.reshape(-1, m)
    s, n = sorted_rows(flat)
    center, mad = sorted_median_mad(s, n)
    mad = mad * MAD_TO_SD
    # the mean absolute deviation only where the MAD is 0 (or NaN): each row is reduced
    # on its own, so computing it for those rows alone changes no value
    tied = np.nonzero(~(mad > 0))[0]
    scale = mad.copy()
    scale[tied] = nanmean(np.abs(flat[tied] - center[tied, None])) * MEANAD_TO_SD
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), np.ravel(floor) if np.ndim(floor) else floor)
    return center.reshape(shape), scale.reshape(shape), n.reshape(shape)


def resolution_floor(x: np.ndarray) -> np.ndarray:
    """Per row, the sd of rounding to the data's resolution q (q / sqrt(12), q = the
    smallest gap between distinct values, ignoring float noise): the smallest noise a
    quantised series has, so a scale never collapses to 0 when most residuals tie."""
    s, n = sorted_rows(x)
    mag = np.nan_to_num(median_distance(s, n, np.zeros(n.shape)), nan=0.0)  # the median of |x|
    gaps = np.diff(s, axis=-1)
    gaps = np.where(gaps > 1e-9 * np.maximum(mag, 1e-300)[..., None], gaps, np.inf)
    q = gaps.min(axis=-1) if gaps.shape[-1] else np.full(x.shape[:-1], np.inf)
    q = np.where(np.isfinite(q), q, 0.0)
    return np.maximum(q / np.sqrt(12.0), 1e-9 * mag + 1e-300)


def previous_window(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position j along the last axis: sum and count of the non-NaN values in
    [j-k, j) (the k positions before j, not j itself)."""
    nan = np.isnan(a)
    cs = np.zeros(a.shape[:-1] + (a.shape[-1] + 1,))
    cc = np.zeros_like(cs)
    np.cumsum(np.where(nan, 0.0, a), axis=-1, out=cs[..., 1:])
    np.cumsum(~nan, axis=-1, out=cc[..., 1:])
    w = a.shape[-1]
    s = np.empty(a.shape)
    c = np.empty(a.shape)
    head = min(k, w)
    s[..., :head] = cs[..., :head]
    c[..., :head] = cc[..., :head]
    if w > k:
        s[..., k:] = cs[..., k:w] - cs[..., :w - k]
        c[..., k:] = cc[..., k:w] - cc[..., :w - k]
    return s, c


def last_window(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the non-NaN values among the last k positions of each row."""
    return nansum_count(a[..., a.shape[-1] - k:] if k < a.shape[-1] else a)


def t_multiplier(z: float, nu: np.ndarray) -> np.ndarray:
    """The Student-t quantile with `nu` degrees of freedom at the normal tail probability
    of `z` (Cornish-Fisher expansion, Abramowitz & Stegun 26.7.5); -> z as nu grows.
    Widens the band for the uncertainty of an estimated scale."""
    nu = np.maximum(np.asarray(nu, dtype=float), 4.0)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(np.isfinite(nu), z + g1 / nu + g2 / nu ** 2 + g3 / nu ** 3 + g4 / nu ** 4, z)


def winsorized_scale(r: np.ndarray, start: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Per row, the one-step winsorised sd: s^2 = mean(min(r^2, (C s0)^2)) / E[min(z^2, C^2)]
    for a standard normal z (Huber, C = WINSOR), s0 = `start` (a robust first guess such
    as the MAD): nearly as efficient as the sample variance, and one outlier moves it by
    at most C^2 s0^2 / n. r: residuals about their centre."""
    # in units of the current guess: squares of values beyond 1e154 overflowed to inf
    s = np.maximum(start, 1e-150)
    with np.errstate(over="ignore", invalid="ignore"):  # |r| / s past 1e154: clipped at C^2 all the same
        for _ in range(iterations):
            u = r / s[:, None]
            s = np.where(np.isinf(s), s, np.fmax(s * np.sqrt(nanmean(np.minimum(u * u, WINSOR ** 2)) / WINSOR_MOMENT),
                                                 1e-150))
    return s


def spread_start(r: np.ndarray, mad_scale: np.ndarray) -> np.ndarray:
    """Per row, a first guess of the sd for winsorized_scale: the MAD's (`mad_scale`),
    unless the 80% quantile of |r| over its normal value 1.28 is more than twice it.
    Both are the sd for normal noise. The MAD sees only the middle half, and a gauge
    that sits on one level more than half the time (an idle CPU switching between a few
    nearby levels) has a MAD of almost 0: one step from it stays within 3 MADs and every
    switch is flagged. The 80% quantile spans the switches. Past incidents among the
    values (up to a fifth of them) move the 80% quantile less than twofold, so they
    keep the MAD's start (r: residuals about their centre)."""
    s, n = sorted_rows(np.abs(r))
    q80 = quantile_sorted(s, n, 0.8) if s.shape[1] else np.full(n.shape, np.nan)
    wide = np.where(n > 0, q80 / _Z_INNER, np.nan)  # the 80% quantile of |z| is z's 90%: 1.28
    return np.where(wide > 2.0 * mad_scale, wide, mad_scale)


def solve_dispersion(u2: np.ndarray, base: np.ndarray, slope: np.ndarray, iterations: int = 15) -> np.ndarray:
    """Per row, the overdispersion a >= 0 with mean(min(u2 / v, C^2)) = E[min(z^2, C^2)],
    v = base * (1 + a * slope): the winsorised moment estimate of a negative binomial /
    beta-binomial extra-variance term. u2: squared residuals (NaN ignored), base: their
    variance without overdispersion, slope: what `a` multiplies (the mean or the
    denominator). 0 when the residuals are no wider than `base` (the Poisson / binomial
    floor). Bisection on log10(a m) over [-12, 6], m the row's median slope: the same
    band whatever the denominator's unit (signups per dollar or per million dollars);
    a row still too wide at 10^6 (a count of 10^10 a day moving by 2%: 4 * 10^6 times
    its Poisson variance) is bisected again over [6, 30]."""
    def excess(a: np.ndarray, u2: np.ndarray, base: np.ndarray, slope: np.ndarray) -> np.ndarray:
        z2 = u2 / (base * (1.0 + a[:, None] * slope))
        return nanmean(np.minimum(z2, WINSOR ** 2)) > WINSOR_MOMENT

    n = u2.shape[0]
    out = np.zeros(n)
    rows = np.nonzero(excess(np.zeros(n), u2, base, slope))[0]
    if rows.size == 0:
        return out
    u2, base, slope = u2[rows], base[rows], slope[rows]  # once, not at every step
    m = nanmedian(np.where(np.isnan(u2) | ~(slope > 0), np.nan, slope))
    m = np.where(np.isfinite(m) & (m > 0), m, 1.0)
    slope = slope / m[:, None]
    hi = _bisect(excess, u2, base, slope, -12.0, 6.0, iterations)
    wide = np.nonzero(hi == 6.0)[0]  # above at every step: beyond the range
    if wide.size:
        hi[wide] = _bisect(excess, u2[wide], base[wide], slope[wide], 6.0, 30.0, iterations)
    out[rows] = 10.0 ** hi / m
    return out


def _bisect(excess, u2, base, slope, low: float, high: float, iterations: int) -> np.ndarray:
    lo, hi = np.full(u2.shape[0], low), np.full(u2.shape[0], high)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = excess(10.0 ** mid, u2, base, slope)
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return hi


TAIL_LEVEL = 0.025     # each side's tail is measured at its 2.5% quantile (1.96 sd for a normal)
TAIL_INNER = 0.10      # and at its 10% quantile (1.28 sd): how fast the tail falls off
TAIL_MIN_POINTS = 5    # values beyond a quantile a side needs before it is measured there
_Z_TAIL = 1.959963984540054
_Z_INNER = 1.2815515655446004
_TAIL_YOUNG, _Z_YOUNG = 0.25, 0.6744897501960817  # a young window's inner level
# q2 / q1 of a normal side, and of an exponential one (a Laplace's: ln(1/0.05) / ln(1/0.2))
_RATIO_NORMAL = _Z_TAIL / _Z_INNER
_RATIO_EXPONENTIAL = math.log(20.0) / math.log(5.0)


def tail_edges(z: np.ndarray, sensitivity: float, gaussian: np.ndarray, skewed: bool = False,
               extreme_up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the band edge (in sds) of each side: `gaussian` (the normal / Student-t
    quantile at the tail probability of `sensitivity`), widened on a side whose tail is
    heavier than a normal one. The window's honest standardised residuals
    z (first-pass outliers left out) give each side's 2.5% quantile q2 (1.96 for a
    normal): the edge is `gaussian` * q2 / 1.96, so a series whose ordinary
    fluctuations are heavy-tailed gets a wider band on that side only.

    `skewed` (a fraction: its scale, value, square root or log, is chosen for its
    spread, and its noise can stay skewed, as a price's or a latency's upper side, or
    the 95th percentile of a few latencies): the side's 10% quantile q1 tells how fast
    the tail falls off. The edge goes on from q2 at the steeper of q2 / 1.96 and (q2 -
    q1) / (1.96 - 1.28) per normal sd (a normal tail), or, as q2 / q1 goes from a
    normal's 1.53 to an exponential's 1.86, towards an exponential tail's edge, q2 +
    (q2 - q1) / ln 4 * ln(2.5% / the edge's tail probability): such a tail reaches
    much further than its 2.5% quantile alone says (at sensitivity 3.5, an exponential
    side whose 2.5% quantile is a normal's 1.96 gets an edge of 5.0 sds, not 3.5). A
    window with fewer than TAIL_MIN_POINTS values beyond its 2.5% quantile (a young
    hourly one, under 200 values) is read the same way one level in, at its 25% and
    10% quantiles (0.67 and 1.28 sds for a normal), from 50 values on: a young
    latency's long side was held near the normal edge (its 10% quantile alone grows
    little), and its ordinary highs were flagged. (A count's or a ratio's variance function
    already describes its skew: there a heavier tail is bursts, which are flagged.)
    Normal noise keeps about the normal edge: the slopes are estimates and the steeper
    one is kept, so on average a few percent wider. With too few values beyond either
    quantile (short windows: daily and coarser grains) a side keeps `gaussian`.

    `extreme_up` (skewed only; per row): the upper side is known to have at least an
    exponential tail (a percentile near its bucket's largest values, bands.extreme_upper):
    where the window has the values to measure its quantiles, it takes the exponential
    tail's edge whatever their ratio says (a gauge's side, mostly at its centre, excepted
    as below)."""
    n = np.count_nonzero(~np.isnan(z), axis=1)
    outer = n * TAIL_LEVEL >= TAIL_MIN_POINTS
    # a young skewed window: its 10% and 25% quantiles, as the 2.5% and 10% ones
    inner = outer | (skewed & (n * TAIL_INNER >= TAIL_MIN_POINTS))
    gaussian = np.broadcast_to(np.asarray(gaussian, float), n.shape)
    if not inner.any():
        return gaussian.copy(), gaussian.copy()
    edges = []
    for upper, side in ((True, z), (False, -z)):
        s = np.sort(side[inner], axis=1)  # NaN last
        m = n[inner]
        g = gaussian[inner]
        old = outer[inner]
        # each row's two levels: (10%, 2.5%) once a window has the points, else (25%, 10%)
        p_in, p_out = np.where(old, TAIL_INNER, _TAIL_YOUNG), np.where(old, TAIL_LEVEL, TAIL_INNER)
        z_in, z_out = np.where(old, _Z_INNER, _Z_YOUNG), np.where(old, _Z_TAIL, _Z_INNER)
        q_in = np.where(old, quantile_sorted(s, m, 1.0 - TAIL_INNER), quantile_sorted(s, m, 1.0 - _TAIL_YOUNG))
        q_out = np.where(old, quantile_sorted(s, m, 1.0 - TAIL_LEVEL), quantile_sorted(s, m, 1.0 - TAIL_INNER))
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.fmax(q_out / z_out, (q_out - q_in) / (z_out - z_in)) if skewed else q_out / z_out
            grown = q_out + slope * (g - z_out)
            if skewed:
                normal, exponential = z_out / z_in, np.log(0.5 / p_out) / np.log(0.5 / p_in)
                w = np.clip((q_out / q_in - normal) / (exponential - normal), 0.0, 1.0)
                if upper and extreme_up is not None:
                    w = np.where(extreme_up[inner], 1.0, w)
                # a side whose 10% quantile is under half a normal sd (its 25% quantile
                # under the same share of a normal's) sits mostly at the centre (a gauge on
                # a few levels): its ratio says nothing of an exponential tail
                w = np.where(q_in > 0.5 * z_in / _Z_INNER, w, 0.0)
                # the edge's tail probability, its distance inflated as the Student-t's is
                far = np.log(p_out / (0.5 * math.erfc(sensitivity / math.sqrt(2.0)))) * g / sensitivity
                grown = (1.0 - w) * grown + w * (q_out + (q_out - q_in) / np.log(p_in / p_out) * far)
        out = gaussian.copy()
        out[inner] = np.fmax(np.where(np.isfinite(grown), grown, g), g)
        edges.append(out)
    return edges[0], edges[1]
