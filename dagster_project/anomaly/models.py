"""The three detectors: count (Poisson / negative binomial), ratio (binomial or Poisson
rate with beta-binomial-type overdispersion) and fraction (robust, on the value, its
square root or its log: domain.py).

Each `fit_*` takes cleaned training windows (n, W) (NaN = gap, excluded or a first-pass
outlier) for one seasonality and returns a `Fit`: honest (out-of-sample) residuals over
the window, used to choose the seasonality and to estimate the noise, and the baseline
for the scored bucket. `bands.band` turns a fit into expected / lower / upper / score.

Baseline everywhere: expected(t) = level(t) (+ or x) profile(phase of t), the level
being the mean of the de-seasonalised values over the last `k` buckets (settings.
level_span; their median after a level shift: `level_shift`), plus a bias term (the
median residual; the ratio of sums for counts) that absorbs the lag of that mean on a
trend. Residual j in the window uses the level of the k buckets before j and the
profile without j's own value: a one-step-ahead forecast error, so comparing candidates
does not favour the one with more parameters. `recovered`: the same baseline on the
level of the k buckets before the last k (`longrun`: on the whole window's); bands.band
judges a value nearer that one against it (a recovery after an incident that lasted a
level span is not an anomaly). `spans` (hours, `walk`): on the level of each whole
span before the last (every value), from which bands.band_recovery finds the level
before a longer excursion.

Noise, in a variance-stabilised scale T so that one band rule fits all volumes:
- count: T(x) = 2 sqrt(x + 3/8) (Anscombe), var = kappa * (1 + alpha * mu): Poisson
  (var 1) plus a negative binomial term alpha >= 0 (winsorised moment estimate);
  kappa adds the variance of the estimated level and profile. Small counts get the
  Poisson floor, so 0 -> 2 events stays inside the band.
- ratio: proportions (0 <= numerator <= denominator throughout the window, but for 1%
  of its buckets: proportion_window) use
  T = 2 sqrt(den + 1/2) asin(sqrt((num + 3/8) / (den + 3/4))) (binomial, var 1), other
  ratios (e.g. downloads per user) T = 2 sqrt(num + 3/8) against mu * den (the numerator
  as a Poisson count); var = kappa * (1 + rho * den), rho >= 0 the beta-binomial
  overdispersion: 2 of 4 is weak evidence, 500 of 1,000 strong.
- fraction: T = identity, square root or log (the caller picks the domain with the
  better likelihood: domain.py), scale = Huber-winsorised sd of the residuals started
  from 1.4826 * MAD.
  An average (`counts` given: the values each bucket averages) has the variance
  s^2 (1/c + a) / (1 + a) at relative count c (sampling noise plus a share `a` that does
  not shrink with the count, chosen by likelihood: _average_noise).
The noise scale comes from the honest residuals of every training bucket (the first
pass's outliers included, winsorised). Band edges, per side, in sds: the Student-t
quantile (the degrees of freedom of the estimated scale) at the normal tail probability
of `sensitivity`, widened on a side whose residual tail is heavier than a normal one
(stats.tail_edges), so a bursty series is judged against its own tails.
lower/upper = T^-1(T(expected) -+ edge * sd); score = sensitivity * (T(value) -
T(expected)) / (edge * sd) with the edge of the value's side: |score| > sensitivity
exactly when the value is outside [lower, upper]."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seasonality import (additive_profile, fold, multiplicative_profile, phase_volume, spread, unfold,
                          weighted_profile)
from .settings import TWO_WAY
from .stats import (MAD_TO_SD, last_window, nanmedian, nansum, nansum_count, previous_window, robust_center_scale,
                    winsorized_scale)
from .weekday import additive_two_way, multiplicative_two_way, weighted_two_way

DETECTOR = {"count": "poisson-nb", "fraction": "robust-mad", "ratio": "beta-binomial"}
RATE_DETECTOR = "poisson-rate"


@dataclass
class Fit:
    name: str                 # seasonality
    period: int
    resid: np.ndarray         # (n, W) residuals in T units (count/ratio: divided by sqrt(kappa))
    resid_all: np.ndarray     # (n, W) T residuals of every training value, first-pass outliers included (tails)
    expected: np.ndarray      # (n,) baseline at t before the fraction's median bias
    base: np.ndarray | None = None   # (n, W) their variance without overdispersion
    slope: np.ndarray | None = None  # (n, W) what the overdispersion multiplies
    kappa: np.ndarray | None = None  # (n,) estimation inflation at t
    floor: np.ndarray | None = None  # (n,) smallest scale (fraction)
    volume: np.ndarray | None = None  # (n,) expected volume at t (count: mu, ratio: denominator)
    proportion: np.ndarray | None = None  # (n,) bool (ratio)
    base_all: np.ndarray | None = None    # base / slope at every position (ratio: the cleaned ones lack them)
    slope_all: np.ndarray | None = None
    profile: np.ndarray | None = None  # (n, P) per-phase profile, column 0 = t's phase (period > 1)
    profile_n: np.ndarray | None = None  # (n, P) cycles (count) / denominator (ratio) behind each phase
    bias: np.ndarray | None = None     # (n,) the bias term (count: a factor, ratio: added) of the window
    bias_t: np.ndarray | None = None   # (n,) ... of the baseline at t (_steady)
    counts: np.ndarray | None = None   # (n, W) fraction: the values each bucket averages (None: unweighted)
    volume_phase: np.ndarray | None = None  # (n, P) fraction with counts: the median count per phase
    recovered: np.ndarray | None = None  # (n,) the expected value on the previous level span's level (NaN: unknown)
    longrun: np.ndarray | None = None    # (n,) the expected value on the whole window's level (band_recovery)
    spans: np.ndarray | None = None      # (n, S) on the level of each span before the last, every value (walk)
    # (n, 2) fraction: the lowest and highest training value (T units): the expectation's
    # bounds (per-bucket fits only: an hour's level comes from hours after its day's window)
    value_range: np.ndarray | None = None

    def rows(self, idx: np.ndarray) -> "Fit":
        return Fit(self.name, self.period, **{k: (None if v is None else v[idx]) for k, v in self.__dict__.items()
                                              if k not in ("name", "period")})

    def widen(self, idx: np.ndarray, n: int) -> "Fit":
        """This fit of rows `idx` laid over n rows (the others NaN, or False / 0: unused)."""
        def wide(v: np.ndarray) -> np.ndarray:
            out = np.full((n,) + v.shape[1:], np.nan if v.dtype.kind == "f" else 0, dtype=v.dtype)
            out[idx] = v
            return out
        return Fit(self.name, self.period, **{k: (None if v is None else wide(v)) for k, v in self.__dict__.items()
                                              if k not in ("name", "period")})


# ---- transforms ---------------------------------------------------------------------

def anscombe(x):
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def anscombe_inv(y):
    return np.maximum((np.maximum(y, 0.0) / 2.0) ** 2 - 0.375, 0.0)


def binomial_t(num, den):
    return 2.0 * np.sqrt(den + 0.5) * np.arcsin(np.sqrt(np.clip((num + 0.375) / (den + 0.75), 0.0, 1.0)))


def binomial_t_inv(y, den):
    angle = np.clip(y / (2.0 * np.sqrt(den + 0.5)), 0.0, np.pi / 2)
    return np.clip((den + 0.75) * np.sin(angle) ** 2 - 0.375, 0.0, den)


def ratio_t(num, den, proportion):
    return np.where(proportion, binomial_t(num, den), anscombe(num))


def ratio_t_inv(y, den, proportion):
    return np.where(proportion, binomial_t_inv(y, den), anscombe_inv(y))


# ---- shared pieces ---------------------------------------------------------------------

def _level(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Level before each window position (mean of the previous k de-seasonalised values,
    at least half of them present) and its count."""
    s, c = previous_window(d, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c >= max(1, k // 2), s / np.maximum(c, 1), np.nan), c


def level_shift(count_kept: np.ndarray, count_all: np.ndarray) -> np.ndarray:
    """Per row: are the last k buckets with a value nearly all (nine in ten) the first
    pass's outliers? A change that has lasted a whole level span is a new level, not an
    incident: the level at t is then the median of those k values (a spike among them
    does not move it; a ratio: the ratio of their sums). Else the level would wait for
    the first pass's median, half a cycle (3.5 days for hour-of-week), and every hour
    until then would be flagged. A shorter outage stays an incident to its end (a
    longer one becomes the level after a level span: its recovery is judged against the
    level before it too, band_recovery)."""
    return (count_all > 0) & (10 * count_kept <= count_all)


def median_last(d: np.ndarray, k: int) -> np.ndarray:
    """Per row, the median of the non-NaN values among the last k positions."""
    return nanmedian(d[:, max(0, d.shape[1] - k):])


def _level_now(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Level at t: the mean of the last k values, or of the whole window when they are all gaps."""
    s, c = last_window(d, k)
    whole_s, whole_c = nansum_count(d, 1)
    use = c > 0
    s, c = np.where(use, s, whole_s), np.where(use, c, whole_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan), c


MAX_SPANS = 7  # level spans before the last one bands.band_recovery walks back over, at most


def spans_before(w: int, k: int) -> int:
    """The whole level spans before the last one in a window of w buckets (at least
    one: the one right before it, partial in a short window)."""
    return max(1, w // k - 1)


def walk_reach(spans: int) -> int:
    """Of `spans` level spans before the last one, how many bands.band_recovery walks
    back over: at most MAX_SPANS, and about half the window (the excursion stays a
    minority of the window, so the level before it is still the window's usual one)."""
    return min(MAX_SPANS, spans // 2 + 1)


def _levels_before(d: np.ndarray, k: int, den: np.ndarray | None = None, spans: int = 1) -> np.ndarray:
    """(n, spans): the levels of the level spans before the last one, nearest first
    (column j: window positions [W-(j+2)k, W-(j+1)k)): the mean of their de-seasonalised
    values (a ratio: sum of `d` over sum of `den`), NaN with under half of them present.
    bands.band_recovery: a value back on the level before an incident is a recovery."""
    n, w = d.shape
    lo = w - (spans + 1) * k
    if lo < 0 or spans == 1:  # (a window shorter than the spans: partial ones)
        return np.stack([_level_span(d, slice(max(0, w - (j + 2) * k), max(0, w - (j + 1) * k)), max(1, k // 2), den)
                         for j in range(spans)], axis=1)
    present = ~np.isnan(d) if den is None else ~np.isnan(d) & ~np.isnan(den)

    def per_span(a):  # sums over each span, nearest first
        return a[:, lo:w - k].reshape(n, spans, k).sum(axis=2)[:, ::-1]

    total, count = per_span(np.where(present, d, 0.0)), per_span(present.astype(float))
    if den is not None:
        under = per_span(np.where(present, den, 0.0))
        count = np.where(under > 0, count, 0.0)
        total = total / np.where(count > 0, under, 1.0)
    else:
        total = total / np.maximum(count, 1.0)
    return np.where(count >= max(1, k // 2), total, np.nan)


def _level_span(d: np.ndarray, span: slice, least: int, den: np.ndarray | None = None) -> np.ndarray:
    """The mean of d over the positions `span` (a ratio: sum of d over sum of den), NaN
    with under `least` values."""
    s, c = nansum_count(d[:, span], 1)
    if den is not None:
        both = ~np.isnan(d[:, span]) & ~np.isnan(den[:, span])
        c = np.count_nonzero(both, axis=1)
        s, total = nansum(np.where(both, d[:, span], np.nan), 1), nansum(np.where(both, den[:, span], np.nan), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((c >= least) & (total > 0), s / np.where(total > 0, total, 1.0), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c >= least, s / np.maximum(c, 1), np.nan)


def window_level(d: np.ndarray, den: np.ndarray | None = None) -> np.ndarray:
    """The whole window's level: the mean of its de-seasonalised values (a ratio: sum of
    `d` over sum of `den`); NaN without values."""
    return _level_span(d, slice(0, d.shape[1]), 1, den)


def _profile_terms(period: int, w: int, scnt: np.ndarray | None):
    """1 / (cycles - 1) per window position (the leave-one-out profile's variance share)."""
    if period == 1:
        return 0.0
    with np.errstate(divide="ignore"):
        return 1.0 / np.maximum(spread(scnt.astype(float), w // period, w) - 1.0, 1.0)


# ---- fits ---------------------------------------------------------------------------

STEADY_SDS = 10.0  # _steady: beyond this many robust sds (at least Poisson's 1) a residual is a step's


def _steady(u: np.ndarray) -> np.ndarray:
    """The window positions whose forecast residual `u` (variance-stabilised, before the
    bias) is within STEADY_SDS robust sds of the window's usual one. The bias term
    absorbs a trailing level's lag on a trend, as the ratio of sums of the values and
    their forecasts; after a step (a series that starts from zeros: a launch) the few
    buckets just past it, forecast from levels before it, would make it a factor of 2 or
    3, and every expectation for weeks would lie above anything the series did."""
    center = nanmedian(u)
    dev = np.abs(u - center[:, None])
    scale = np.fmax(np.nan_to_num(nanmedian(dev) * MAD_TO_SD, nan=0.0), 1.0)
    return dev <= STEADY_SDS * scale[:, None]


def fit_count(x: np.ndarray, name: str, period: int, k: int, x_all: np.ndarray, walk: bool = False,
              hour0: np.ndarray | None = None) -> Fit:
    n, w = x.shape
    if period > 1:
        s, loo, scnt = multiplicative_two_way(fold(x, period), hour0) if name in TWO_WAY else \
            multiplicative_profile(fold(x, period))
        sfull = spread(s, w // period, w)
        sloo = unfold(loo, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(sfull > 0, x / sfull, np.nan)
        prof_t, cyc_t = s[:, 0], scnt[:, 0].astype(float)
    else:
        sfull, sloo, d, prof_t, cyc_t, scnt = np.ones((n, w)), 1.0, x, np.ones(n), np.full(n, np.inf), None
    level, cnt = _level(d, k)
    # the level's share of the variance at j: S_j / (sum of S over the buckets behind the level)
    weight = np.where(np.isnan(d), np.nan, sfull)
    wsum, _ = previous_window(weight, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_all = np.where(sfull > 0, x_all / sfull, np.nan) if period > 1 else x_all
    shift = level_shift(last_window(d, k)[1], last_window(d_all, k)[1])
    d_now = np.where(shift[:, None], d_all, d)
    wsum_t, _ = last_window(np.where(np.isnan(d_now), np.nan, sfull), k)
    mu = level * sloo
    ok = ~np.isnan(x) & np.isfinite(mu)
    xs = nansum(np.where(ok, x, np.nan), 1)
    ms = nansum(np.where(ok, mu, np.nan), 1)
    bias = np.where(ms > 0, xs / np.where(ms > 0, ms, 1.0), 1.0)  # the window's residuals
    # the baseline at t: from the buckets a trailing level forecast as well as usual, not
    # the few just after a step (_steady)
    with np.errstate(invalid="ignore", divide="ignore"):
        steady = ok & _steady(anscombe(x) - anscombe(mu))
    xs, ms = nansum(np.where(steady, x, np.nan), 1), nansum(np.where(steady, mu, np.nan), 1)
    bias_t = np.where(ms > 0, xs / np.where(ms > 0, ms, 1.0), 1.0)
    mu = mu * bias[:, None]
    u_all = anscombe(x_all) - anscombe(mu)
    mu = np.where(ok, mu, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        kres = 1.0 + sfull / wsum + _profile_terms(period, w, scnt)
    u = anscombe(x) - anscombe(mu)
    level_t, cnt_t = _level_now(d_now, k)
    level_t = np.where(shift, median_last(d_all, k), level_t)
    mu_t = bias_t * level_t * prof_t
    recovered = bias * _levels_before(d, k)[:, 0] * prof_t
    spans = bias[:, None] * _levels_before(d_all, k, spans=spans_before(w, k)) * prof_t[:, None] if walk else None
    longrun = bias * window_level(d) * prof_t
    # (a phase no cycle has seen above 0 has the default profile 1: as uncertain as one cycle's)
    kappa = 1.0 + np.where(wsum_t > 0, prof_t / np.where(wsum_t > 0, wsum_t, 1.0), 1.0 / np.maximum(cnt_t, 1)) \
        + 1.0 / np.maximum(cyc_t, 1.0)
    return Fit(name, period, resid=u / np.sqrt(kres), resid_all=u_all, expected=mu_t, base=kres,
               slope=np.where(np.isnan(u_all), np.nan, level * sloo * bias[:, None]), kappa=kappa, volume=mu_t,
               profile=s if period > 1 else None, profile_n=scnt if period > 1 else None, bias=bias, bias_t=bias_t,
               recovered=recovered, longrun=longrun, spans=spans)


def fit_fraction(x: np.ndarray, name: str, period: int, k: int, x_all: np.ndarray, floor: np.ndarray,
                 counts: np.ndarray | None = None, volume_period: int = 1, walk: bool = False,
                 hour0: np.ndarray | None = None) -> Fit:
    n, w = x.shape
    s = None
    if period > 1:
        s, loo, _ = additive_two_way(fold(x, period), hour0) if name in TWO_WAY else additive_profile(fold(x, period))
        sloo = unfold(loo, w)
        d = x - spread(s, w // period, w)
        prof_t = s[:, 0]
    else:
        sloo, d, prof_t = 0.0, x, np.zeros(n)
    level, _ = _level(d, k)
    r = x - (level + sloo)
    r_all = x_all - (level + sloo)
    d_all = x_all - spread(s, w // period, w) if period > 1 else x_all
    level_t, _ = _level_now(d, k)
    shift = level_shift(last_window(d, k)[1], last_window(d_all, k)[1])
    level_t = np.where(shift, median_last(d_all, k), level_t)
    # an average's volume, the values it averages (a ratio of amounts: its expected
    # denominator, for min_volume): the count expected at t's place in the grain's cycle
    # (`volume_period`: an hour of the day, a day of the week; the count has its cycle
    # even when the average has none) at the count's recent level (phase_volume)
    volume = volume_phase = None
    if counts is not None:
        volume_phase = phase_volume(np.where(counts > 0, counts, np.nan), volume_period, k)
        volume = volume_phase[:, 0]
    with np.errstate(invalid="ignore"):
        value_range = np.stack([np.fmin.reduce(x_all, axis=1), np.fmax.reduce(x_all, axis=1)], axis=1)
    return Fit(name, period, resid=r, resid_all=r_all, expected=level_t + prof_t, floor=floor, profile=s,
               counts=counts, volume=volume, volume_phase=volume_phase, value_range=value_range,
               recovered=_levels_before(d, k)[:, 0] + prof_t, longrun=window_level(d) + prof_t,
               spans=_levels_before(d_all, k, spans=spans_before(w, k)) + prof_t[:, None] if walk else None)


# A proportion's window may hold a few buckets beyond it (a late row counted in the
# numerator before its denominator, a refund of an earlier hour's order): up to 1% of its
# values, at least one. One such bucket made the next 8 weeks a rate, whose band is many
# times wider, and a real drop went unflagged; a ratio that can pass 1 does so often.
PROPORTION_SLIP = 0.01


def proportion_window(outside, valid) -> np.ndarray:
    """Whether a window with `valid` values, `outside` of them beyond 0..1, is a proportion."""
    return np.asarray(outside) <= np.maximum(1.0, np.floor(PROPORTION_SLIP * np.asarray(valid)))


def is_proportion(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per row: the buckets with a value have 0 <= numerator <= denominator, but for a
    few (proportion_window)."""
    ok = ~np.isnan(num) & ~np.isnan(den)
    return proportion_window(np.count_nonzero(ok & ~inside_proportion(num, den), axis=1), np.count_nonzero(ok, axis=1))


def inside_proportion(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Per bucket: 0 <= numerator <= denominator (a rounding margin above); False for NaN."""
    with np.errstate(invalid="ignore"):
        return (num >= 0) & (num <= den * (1 + 1e-9))


def fit_ratio(num: np.ndarray, den: np.ndarray, name: str, period: int, k: int,
              den_t: np.ndarray, prop: np.ndarray, num_all: np.ndarray, den_all: np.ndarray, walk: bool = False,
              hour0: np.ndarray | None = None) -> Fit:
    n, w = num.shape
    s = sden = None
    if period > 1:
        s, loo, sden, loo_den = weighted_two_way(fold(num, period), fold(den, period), hour0) if name in TWO_WAY \
            else weighted_profile(fold(num, period), fold(den, period))
        sloo = unfold(loo, w)
        prof_den = unfold(loo_den, w)
        adj = num - spread(s, w // period, w) * den
        prof_t, sden_t = s[:, 0], sden[:, 0]
    else:
        sloo, prof_den, adj, prof_t, sden_t = 0.0, np.inf, num, np.zeros(n), np.full(n, np.inf)
    asum, _ = previous_window(adj, k)
    dsum, dcnt = previous_window(den, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where((dsum > 0) & (dcnt >= max(1, k // 2)), asum / dsum, np.nan)
    hi = np.where(prop, 1.0, np.inf)[:, None]
    mu = np.clip(level + sloo, 0.0, hi)
    ok = ~np.isnan(num) & np.isfinite(mu)
    rs = nansum(np.where(ok, num - mu * den, np.nan), 1)
    ds = nansum(np.where(ok, den, np.nan), 1)
    bias = np.where(ds > 0, rs / np.where(ds > 0, ds, 1.0), 0.0)
    p2 = np.broadcast_to(prop[:, None], num.shape)
    with np.errstate(invalid="ignore", divide="ignore"):  # the baseline at t's (fit_count)
        steady = ok & _steady(ratio_t(num, den, p2) - ratio_t(mu * den, den, p2))
    rs, ds = nansum(np.where(steady, num - mu * den, np.nan), 1), nansum(np.where(steady, den, np.nan), 1)
    bias_t = np.where(ds > 0, rs / np.where(ds > 0, ds, 1.0), 0.0)
    mu = np.clip(mu + bias[:, None], 0.0, hi)
    z_all = ratio_t(num_all, den_all, p2) - ratio_t(mu * den_all, den_all, p2)
    mu = np.where(ok, mu, np.nan)
    z = ratio_t(num, den, p2) - ratio_t(mu * den, den, p2)
    with np.errstate(invalid="ignore", divide="ignore"):
        kres = 1.0 + den / dsum + den / prof_den
        kres_all = 1.0 + den_all / dsum + den_all / prof_den
    adj_all = num_all - spread(s, w // period, w) * den_all if period > 1 else num_all
    shift = level_shift(last_window(adj, k)[1], last_window(adj_all, k)[1])
    a_t, _ = last_window(np.where(shift[:, None], adj_all, adj), k)
    d_t, _ = last_window(np.where(shift[:, None], np.where(np.isnan(adj_all), np.nan, den_all), den), k)
    wa = nansum(adj, 1)
    wd = nansum(den, 1)
    use = d_t > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        level_t = np.where(use, a_t / np.where(use, d_t, 1.0), np.where(wd > 0, wa / np.where(wd > 0, wd, 1.0), np.nan))
        # (a phase with no denominator in any cycle has the default profile 0: as uncertain
        # as a profile read off today's denominator alone)
        kappa = 1.0 + den_t / np.where(use, d_t, wd) + den_t / np.where(sden_t > 0, sden_t, den_t)
    mu_t = np.clip(level_t + prof_t + bias_t, 0.0, np.where(prop, 1.0, np.inf))
    top = np.where(prop, 1.0, np.inf)
    recovered = np.clip(_levels_before(adj, k, den)[:, 0] + prof_t + bias, 0.0, top)
    spans = np.clip(_levels_before(adj_all, k, den_all, spans_before(w, k)) + prof_t[:, None] + bias[:, None], 0.0,
                    top[:, None]) if walk else None
    longrun = np.clip(window_level(adj, den) + prof_t + bias, 0.0, np.where(prop, 1.0, np.inf))
    volume = phase_volume(den, period, k)[:, 0]
    return Fit(name, period, resid=z / np.sqrt(kres), resid_all=z_all, expected=mu_t, base=kres,
               slope=np.broadcast_to(den, num.shape), kappa=kappa, volume=volume, proportion=prop,
               base_all=kres_all, slope_all=den_all, profile=s, profile_n=sden, bias=bias, bias_t=bias_t,
               recovered=recovered,
               longrun=longrun, spans=spans)


# ---- choosing and banding -------------------------------------------------------------

def selection_stat(fit: Fit, shape: str, common: np.ndarray) -> np.ndarray:
    """Spread of the honest residuals on the positions every candidate scored: the
    winsorised sd about their median (a Gaussian log-likelihood up to a constant, so
    a noise that differs between phases counts, unlike with the MAD alone)."""
    r = np.where(common, fit.resid, np.nan)
    floor = fit.floor if shape == "fraction" else 0.0
    center, scale, _ = robust_center_scale(r, floor)
    return np.fmax(winsorized_scale(r - center[:, None], scale), floor)


__all__ = ["Fit", "fit_count", "fit_fraction", "fit_ratio", "selection_stat", "is_proportion", "proportion_window", "anscombe",
           "ratio_t"]
