"""The `hour_and_weekday` seasonality: an hour-of-day shape and a level per day of the
week, 24 + 7 values where `hour_of_week` reads 168.

Most traffic has both cycles: the same daily shape every day, and quiet weekends. An
hour-of-week profile holds both but reads each of its 168 phases off one value per week
(eight after eight weeks, two in a young series), so `auto` rarely prefers it early on;
an hour-of-day profile then carries Sunday's level into Monday morning through the
trailing day's mean, and Monday's first hours look like spikes. Here each hour of the day
is read off every day of every week, and each weekday's level off all its hours.

Each function takes the (n, C, 168) grid `seasonality.fold` gives for a week (column 0
is t's phase, so column p is p hours after t, modulo the week) and `hour0`, each row's
hour of the UTC day at t (None: 0, a window that ends at midnight, as hourly.py's
anchors): the weekdays are calendar days, so each row's columns are rolled to start at
t's midnight and the results rolled back. Each returns what its one-cycle counterpart in
seasonality.py returns, with the same conventions (alternating passes; leave-one-out
profiles): the fits in models.py use either. The values behind a phase (what its profile
was read from) are an effective count e: one cycle's profile has a leave-one-out variance
share 1 / (cycles - 1), here 1 / (e - 1) = 1 / (hour's values - 1) + 1 / (weekday's
values - 1); for a ratio, an effective denominator, 1 / e = 1 / (hour's) + 1 / (weekday's)."""
from __future__ import annotations

import numpy as np

from .seasonality import multiplicative_level
from .stats import nansum_count

DAYS, HOURS = 7, 24
_PASSES = 6  # as seasonality._PASSES: a grid with gaps converges over a few passes


def _split(y: np.ndarray) -> np.ndarray:
    n, c, p = y.shape
    if p != DAYS * HOURS:
        raise ValueError(f"hour_and_weekday folds a week of hours (168 phases), got {p}")
    return y.reshape(n, c, DAYS, HOURS)


def _to_days(y: np.ndarray, hour0: np.ndarray | None) -> np.ndarray:
    """Roll each row's phases so column q is hour q % 24 of day q // 24 from t's day:
    rolled[q] = y[(q - hour0) % 168]. Within a cycle this only reorders its values."""
    if hour0 is None:
        return y
    at = (np.arange(DAYS * HOURS)[None, :] - np.asarray(hour0, int)[:, None]) % (DAYS * HOURS)
    return np.take_along_axis(y, at.reshape(at.shape[0], *([1] * (y.ndim - 2)), -1), axis=-1)


def _from_days(a: np.ndarray, hour0: np.ndarray | None) -> np.ndarray:
    """_to_days undone on a result per phase, (n, 168) or (n, C, 168)."""
    if hour0 is None:
        return a
    at = (np.arange(DAYS * HOURS)[None, :] + np.asarray(hour0, int)[:, None]) % (DAYS * HOURS)
    return np.take_along_axis(a, at.reshape(at.shape[0], *([1] * (a.ndim - 2)), -1), axis=-1)


def _gaps(g: np.ndarray) -> np.ndarray:
    return np.isnan(g).any(axis=(1, 2, 3))


def _mean(a: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, c = nansum_count(a, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan), s, c


def _effective(n_hour: np.ndarray, n_day: np.ndarray, minus: float) -> np.ndarray:
    """(n, 7, 24) -> (n, 168): the count whose 1 / (count - minus) is the sum of the two
    parts' 1 / (values - minus); 0 where a part has none beyond `minus`."""
    a, b = n_hour[:, None, :] - minus, n_day[:, :, None] - minus
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where((a > 0) & (b > 0), minus + 1.0 / (1.0 / a + 1.0 / b), 0.0)
    return eff.reshape(eff.shape[0], DAYS * HOURS)


def additive_two_way(y: np.ndarray, hour0: np.ndarray | None = None):
    """Fractions: y = L_c + D[weekday] + H[hour] + noise. Returns S (n, 168), the
    leave-one-out profile (n, C, 168) and the effective values behind each phase (n, 168)
    (seasonality.additive_profile). A complete grid is exact after one pass."""
    g = _split(_to_days(y, hour0))
    n, c = g.shape[:2]
    gaps = _gaps(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = _mean(g, (2, 3))[0]
        day = np.zeros((n, DAYS))
        for i in range(_PASSES if gaps.any() else 1):
            upd = gaps if i else np.ones(n, bool)
            hour = _mean(g - level[:, :, None, None] - day[:, None, :, None], (1, 2))[0]
            hour = np.where(np.isnan(hour), 0.0, hour)
            d_new = _mean(g - level[:, :, None, None] - hour[:, None, None, :], (1, 3))[0]
            d_new = np.where(np.isnan(d_new), 0.0, d_new)
            day = np.where(upd[:, None], d_new - np.mean(d_new, axis=1, keepdims=True), day)
            h_keep = hour if i == 0 else np.where(upd[:, None], hour, h_keep)
            lv = _mean(g - day[:, None, :, None] - h_keep[:, None, None, :], (2, 3))[0]
            level = np.where(upd[:, None], lv, level)
        hour = h_keep
        r_hour = g - level[:, :, None, None] - day[:, None, :, None]
        r_day = g - level[:, :, None, None] - hour[:, None, None, :]
        _, s_hour, n_hour = _mean(r_hour, (1, 2))
        _, s_day, n_day = _mean(r_day, (1, 3))
        # the profile without the bucket's own value, in its hour's mean and its weekday's
        loo_hour = (s_hour[:, None, None, :] - r_hour) / (n_hour[:, None, None, :] - 1)
        loo_day = (s_day[:, None, :, None] - r_day) / (n_day[:, None, :, None] - 1)
        s = day[:, :, None] + hour[:, None, :]
        loo = np.where(np.isnan(g), s[:, None], loo_hour + loo_day)
        loo = np.where((n_hour[:, None, None, :] >= 2) & (n_day[:, None, :, None] >= 2), loo, np.nan)
    return (_from_days(s.reshape(n, -1), hour0), _from_days(loo.reshape(n, c, -1), hour0),
            _from_days(_effective(n_hour, n_day, 1.0), hour0))


def multiplicative_two_way(y: np.ndarray, hour0: np.ndarray | None = None):
    """Counts: y = L_c * D[weekday] * H[hour], D and H of mean 1 (seasonality.
    multiplicative_profile: means of ratios; an hour always 0 gets H = 0)."""
    g = _split(_to_days(y, hour0))
    n, c = g.shape[:2]
    gaps = _gaps(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = _mean(g, (2, 3))[0]
        day = np.ones((n, DAYS))

        def ratio(den):
            return np.where(den > 0, g / den, np.nan)

        for i in range(_PASSES if gaps.any() else 1):
            upd = gaps if i else np.ones(n, bool)
            hour = _mean(ratio(level[:, :, None, None] * day[:, None, :, None]), (1, 2))[0]
            hour = np.where(np.isnan(hour), 1.0, hour)
            hour = hour / np.where(hour.mean(axis=1, keepdims=True) > 0, hour.mean(axis=1, keepdims=True), 1.0)
            d_new = _mean(ratio(level[:, :, None, None] * hour[:, None, None, :]), (1, 3))[0]
            d_new = np.where(np.isnan(d_new), 1.0, d_new)
            d_mean = d_new.mean(axis=1, keepdims=True)
            day = np.where(upd[:, None], d_new / np.where(d_mean > 0, d_mean, 1.0), day)
            h_keep = hour if i == 0 else np.where(upd[:, None], hour, h_keep)
            lv = multiplicative_level(g, day[:, None, :, None] * h_keep[:, None, None, :], (2, 3))
            level = np.where(upd[:, None], lv, level)
        hour = h_keep
        r_hour = ratio(level[:, :, None, None] * day[:, None, :, None])
        r_day = ratio(level[:, :, None, None] * hour[:, None, None, :])
        _, s_hour, n_hour = _mean(r_hour, (1, 2))
        _, s_day, n_day = _mean(r_day, (1, 3))
        loo_hour = np.where(np.isnan(r_hour), hour[:, None, None, :],
                            (s_hour[:, None, None, :] - r_hour) / (n_hour[:, None, None, :] - 1))
        loo_day = np.where(np.isnan(r_day), day[:, None, :, None],
                           (s_day[:, None, :, None] - r_day) / (n_day[:, None, :, None] - 1))
        s = day[:, :, None] * hour[:, None, :]
        loo = np.where((n_hour[:, None, None, :] >= 2) & (n_day[:, None, :, None] >= 2), loo_hour * loo_day, np.nan)
    return (_from_days(s.reshape(n, -1), hour0), _from_days(loo.reshape(n, c, -1), hour0),
            _from_days(_effective(n_hour, n_day, 1.0), hour0))


def weighted_two_way(num: np.ndarray, den: np.ndarray, hour0: np.ndarray | None = None):
    """Ratios: num = (L_c + D[weekday] + H[hour]) * den + noise, each part a ratio of
    sums (seasonality.weighted_profile). Returns S, the leave-one-out profile, and the
    effective denominator behind each phase (n, 168) and each leave-one-out value (n, C,
    168): 1 / that is 1 / (hour's denominator) + 1 / (weekday's). Weighted means are
    exact after one pass only when the denominators split into cycle x weekday x hour:
    every row takes _PASSES."""
    gn, gd = _split(_to_days(num, hour0)), _split(_to_days(den, hour0))
    n, c = gn.shape[:2]
    present = ~np.isnan(gn) & ~np.isnan(gd)
    gd0 = np.where(present, gd, 0.0)

    def wmean(x, axis):
        """x's sum over the denominator's (x: a residual num - fit * den; present buckets)"""
        s = np.where(present, x, 0.0).sum(axis=axis)
        w = gd0.sum(axis=axis)
        return np.where(w > 0, s / np.where(w > 0, w, 1.0), 0.0), s, w

    with np.errstate(invalid="ignore", divide="ignore"):
        level = wmean(gn, (2, 3))[0]
        day = np.zeros((n, DAYS))
        for _ in range(_PASSES):
            hour = wmean(gn - (level[:, :, None, None] + day[:, None, :, None]) * gd, (1, 2))[0]
            d_new = wmean(gn - (level[:, :, None, None] + hour[:, None, None, :]) * gd, (1, 3))[0]
            wd = gd0.sum(axis=(1, 3))
            d_new = d_new - (d_new * wd).sum(axis=1, keepdims=True) / np.where(wd.sum(axis=1, keepdims=True) > 0,
                                                                                 wd.sum(axis=1, keepdims=True), 1.0)
            day = d_new
            level = wmean(gn - (day[:, None, :, None] + hour[:, None, None, :]) * gd, (2, 3))[0]
        r_hour = np.where(present, gn - (level[:, :, None, None] + day[:, None, :, None]) * gd, 0.0)
        r_day = np.where(present, gn - (level[:, :, None, None] + hour[:, None, None, :]) * gd, 0.0)
        _, s_hour, d_hour = wmean(r_hour, (1, 2))
        _, s_day, d_day = wmean(r_day, (1, 3))
        lo_h, lo_d = d_hour[:, None, None, :] - gd0, d_day[:, None, :, None] - gd0
        loo_hour = np.where(lo_h > 0, (s_hour[:, None, None, :] - r_hour) / lo_h, np.nan)
        loo_day = np.where(lo_d > 0, (s_day[:, None, :, None] - r_day) / lo_d, np.nan)
        s = day[:, :, None] + hour[:, None, :]
        loo = loo_hour + loo_day
        sden = _effective(d_hour, d_day, 0.0)
        loo_den = np.where((lo_h > 0) & (lo_d > 0), 1.0 / (1.0 / lo_h + 1.0 / lo_d), 0.0)
    return (_from_days(s.reshape(n, -1), hour0), _from_days(loo.reshape(n, c, -1), hour0), _from_days(sden, hour0),
            _from_days(loo_den.reshape(n, c, -1), hour0))


__all__ = ["additive_two_way", "multiplicative_two_way", "weighted_two_way"]
