"""The `hour_and_weekday` seasonality (dagster_project/anomaly/weekday.py): an hour-of-day
shape with a level per day of the week. The profiles against an independent least-squares
fit or the generating profile; the detector on young hourly series with quiet weekends,
against the rate that generated them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dagster_project.anomaly import DetectorSettings
from dagster_project.anomaly.models import fit_count
from dagster_project.anomaly.reason import phase_text
from dagster_project.anomaly.seasonality import additive_profile
from dagster_project.anomaly.settings import candidates
from dagster_project.anomaly.weekday import additive_two_way, multiplicative_two_way, weighted_two_way
from tests.test_anomaly_library import frame, score

# the demo generator's cycles (dagster_project/demo/generator.py): UTC days, quiet weekends
DAILY = 0.55 + 0.45 * np.sin((np.arange(24) - 8) / 24 * 2 * np.pi) ** 2
WEEKDAY = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.6, 0.55])  # Monday first


def _grid(rng, rows: int, cycles: int, gaps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cycle levels, weekday and hour effects, and a mask of present cells (n, C, 7, 24)."""
    level = rng.normal(50, 5, (rows, cycles))
    day = rng.normal(0, 4, (rows, 7))
    hour = rng.normal(0, 6, (rows, 24))
    present = rng.random((rows, cycles, 7, 24)) >= gaps
    return level, day, hour, present


def _least_squares(y: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The oracle: y = L_c + D_d + H_h fitted by least squares over the present cells of one
    row; D + H (168,) centred."""
    c = y.shape[0]
    idx = np.argwhere(present)
    a = np.zeros((idx.shape[0], c + 7 + 24))
    a[np.arange(idx.shape[0]), idx[:, 0]] = 1.0
    a[np.arange(idx.shape[0]), c + idx[:, 1]] = 1.0
    a[np.arange(idx.shape[0]), c + 7 + idx[:, 2]] = 1.0
    coef = np.linalg.lstsq(a, y[present], rcond=None)[0]
    s = (coef[c:c + 7][:, None] + coef[c + 7:][None, :]).ravel()
    return s - s.mean()


@pytest.mark.parametrize("gaps", [0.0, 0.15])
def test_the_additive_profile_is_the_least_squares_fit(gaps):
    rng = np.random.default_rng(3)
    level, day, hour, present = _grid(rng, 4, 3, gaps)
    y = level[:, :, None, None] + day[:, None, :, None] + hour[:, None, None, :] + rng.normal(0, 1, present.shape)
    y = np.where(present, y, np.nan)
    s, loo, eff = additive_two_way(y.reshape(4, 3, 168))
    for r in range(4):
        oracle = _least_squares(y[r], present[r])
        assert np.abs((s[r] - s[r].mean()) - oracle).max() < 0.02, r
    # each row on its own: the same numbers as a batch of one
    alone, _, _ = additive_two_way(y[2:3].reshape(1, 3, 168))
    np.testing.assert_array_equal(alone[0], s[2])
    # the effective values behind a phase: the hour's (weekdays x cycles) and the weekday's
    # (hours x cycles) together, 1 / (e - 1) = 1 / (hours' - 1) + 1 / (weekday's - 1)
    if gaps == 0.0:
        assert eff[0, 0] == pytest.approx(1 + 1 / (1 / 20 + 1 / 71))
        assert np.isfinite(loo).all()


def test_the_leave_one_out_profile_is_the_profile_read_without_the_value():
    """The honest residuals `auto` compares come from the profile without the bucket's own
    value: close to a refit with that value removed, and off the in-sample profile by
    the value's own share."""
    rng = np.random.default_rng(5)
    level, day, hour, present = _grid(rng, 1, 3, 0.0)
    y = level[:, :, None, None] + day[:, None, :, None] + hour[:, None, None, :] + rng.normal(0, 1, present.shape)
    y = y.reshape(1, 3, 168)
    s, loo, _ = additive_two_way(y)
    for c, p in [(0, 5), (1, 77), (2, 160), (2, 0)]:
        gone = y.copy()
        gone[0, c, p] = np.nan
        refit, _, _ = additive_two_way(gone)
        # (a profile is known up to a constant the cycle levels share: compared centred)
        without, held_out = refit[0, p] - refit[0].mean(), loo[0, c, p] - s[0].mean()
        own = abs(loo[0, c, p] - s[0, p])
        assert own > 0.005  # the value's own pull is left out
        assert abs(held_out - without) < 0.2 * own, (c, p)


def test_two_weeks_read_a_weekly_cycle_better_than_an_hour_of_week_profile():
    """What hour_and_weekday is for: from two cycles, each of its phases stands on a whole
    hour and a whole weekday, where hour_of_week's stands on two values."""
    rng = np.random.default_rng(6)
    level, day, hour, present = _grid(rng, 20, 2, 0.0)
    truth = (day[:, :, None] + hour[:, None, :]).reshape(20, 168)
    y = (level[:, :, None, None] + day[:, None, :, None] + hour[:, None, None, :]
         + rng.normal(0, 3, present.shape)).reshape(20, 2, 168)
    two_way, _, _ = additive_two_way(y)
    one_cycle, _, _ = additive_profile(y)

    def err(s):
        return np.abs((s - s.mean(axis=1, keepdims=True)) - (truth - truth.mean(axis=1, keepdims=True))).mean()

    # (about 0.43 in theory: sqrt(1/14 + 1/48) against sqrt(1/2))
    assert err(two_way) < 0.6 * err(one_cycle), (err(two_way), err(one_cycle))


@pytest.mark.parametrize("hour", [0, 7, 12, 20, 23])
def test_the_weekdays_are_calendar_days_whatever_the_hour_of_the_window_end(hour):
    """A window ending at t (the per-bucket path) starts its fold at t's hour: its weekdays
    are still the calendar's. On a rate that is exactly an hourly shape times a weekday's
    level, the forecast at t is the rate (before: Friday 20:00's weekday read off Friday
    20:00 to Saturday 19:00, mostly Saturday: 22 for 52)."""
    weekday = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.3, 0.3])
    h = np.arange(168 * 4)  # from a Monday 00:00
    rate = 100 * DAILY[h % 24] * weekday[(h // 24) % 7]
    t = 168 * 3 + 4 * 24 + hour  # a Friday
    x = rate[t - 336:t][None, :]
    fit = fit_count(x, "hour_and_weekday", 168, 24, x, hour0=np.array([hour]))
    assert fit.expected[0] == pytest.approx(rate[t], rel=1e-6)


def test_a_young_series_scored_per_bucket_from_midday_expects_the_rate():
    """A series that starts on a Thursday at noon: on its 15th day the anchor at midnight
    lacks the minimum history of an explicit weekly seasonality, so the hours from noon
    are fitted per bucket, on windows ending at each hour (before: expected at half the
    rate on Friday evening, and ordinary hours flagged)."""
    weekday = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.35, 0.3])
    start = pd.Timestamp("2024-01-04 12:00")
    ts = pd.date_range(start, periods=24 * 17, freq="h")
    rate = 200 * DAILY[ts.hour] * weekday[ts.day_of_week]
    x = np.random.default_rng(0).poisson(rate).astype(float)
    f = frame(x, grain="hour", start=start)
    out = score(f, grain="hour", settings=DetectorSettings(seasonality="hour_and_weekday"), first=24 * 15 - 12)
    out = out[out.score.notna()]
    assert len(out) >= 36
    pos = f.bucket_start.searchsorted(out.bucket_start)
    ratio = out.expected.to_numpy() / rate[pos]
    assert np.all(np.abs(ratio - 1) < 0.15), np.round(ratio, 2)
    assert not out.is_anomaly.any()


def test_the_multiplicative_and_weighted_profiles_recover_the_generating_one():
    rng = np.random.default_rng(4)
    level, _, _, present = _grid(rng, 3, 4, 0.1)
    day = WEEKDAY / WEEKDAY.mean()
    hour = DAILY / DAILY.mean()
    truth = (day[:, None] * hour[None, :]).ravel()
    y = np.where(present, level[:, :, None, None] * day[None, None, :, None] * hour[None, None, None, :], np.nan)
    s, _, _ = multiplicative_two_way(y.reshape(3, 4, 168))
    np.testing.assert_allclose(s, np.broadcast_to(truth, s.shape), rtol=1e-6)
    # a ratio: num = (L_c + D + H) * den, den the counts behind it
    den = np.where(present, rng.integers(20, 200, present.shape).astype(float), np.nan)
    rate = 0.3 + 0.02 * (WEEKDAY[:, None] + DAILY[None, :])
    num = (0.01 * level[:, :, None, None] + rate[None, None]) * den
    s, loo, sden, loo_den = weighted_two_way(num.reshape(3, 4, 168), den.reshape(3, 4, 168))
    centred = s - s.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(centred, np.broadcast_to(rate.ravel() - rate.mean(), s.shape), atol=1e-6)
    # without its own denominator a present bucket's profile stands on less
    own = present.reshape(3, 4, 168)
    assert (sden > 0).all() and (loo_den[own] < np.broadcast_to(sden[:, None, :], own.shape)[own]).all()
    # a complete grid whose denominators do not split into cycle x weekday x hour is exact
    # too (ratios of sums need more than one pass there)
    den = rng.integers(1, 400, (1, 4, 7, 24)).astype(float)
    num = (0.01 * level[:1, :, None, None] + rate[None, None]) * den
    s, _, _, _ = weighted_two_way(num.reshape(1, 4, 168), den.reshape(1, 4, 168))
    np.testing.assert_allclose(s[0] - s[0].mean(), rate.ravel() - rate.mean(), atol=1e-8)


def _young_hourly(seed: int, weeks: int, level: float, net: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = np.arange(24 * 7 * weeks)
    rate = level * DAILY[h % 24] / DAILY.mean() * WEEKDAY[(h // 24) % 7]
    x = rng.poisson(rate).astype(float)
    if net:  # a net sum of +1 / -1 events (reactions added and removed)
        x = x - 2 * rng.binomial(x.astype(int), 0.2)
    return x, rate * (0.6 if net else 1.0)


@pytest.mark.parametrize("net", [False, True])
def test_a_young_hourly_series_expects_the_weekday_level_on_monday_morning(net):
    """Three weeks of a daily shape with quiet weekends. An hour-of-day baseline carries
    Sunday's level into Monday through the trailing day's mean (Monday 01:00 expected
    at Sunday's 0.55: a net sum of reactions was flagged there in the demo); from two
    weeks of data the weekday's level is in the baseline."""
    errs = []
    for seed in range(4):
        x, mean = _young_hourly(seed, 3, 40.0, net)
        f = frame(x, grain="hour")
        out = score(f, shape="fraction" if net else "count", grain="hour", first=24 * 14)
        weekly = out.model.str.endswith("/hour_and_weekday") | out.model.str.endswith("/hour_of_week")
        assert weekly.mean() > 0.8, out.model.value_counts()
        at = pd.to_datetime(out.bucket_start)
        monday = ((at.dt.day_of_week == 0) & (at.dt.hour < 8)).to_numpy()
        pos = f.bucket_start.searchsorted(out.bucket_start)
        errs += list(out.expected.to_numpy()[monday] / mean[pos][monday])
    # the generating mean, not Sunday's (0.55 of it)
    assert 0.85 < np.median(errs) < 1.15, np.median(errs)


def test_hour_and_weekday_is_a_seasonality_a_metric_can_set():
    assert candidates("hour", DetectorSettings()) == ("none", "hour_of_day", "hour_and_weekday", "hour_of_week")
    settings = DetectorSettings(seasonality="hour_and_weekday")
    assert candidates("hour", settings) == ("hour_and_weekday",)
    assert candidates("day", settings) == ("day_of_week",)  # the weekly part is what a day shows
    assert candidates("week", settings) == ("none",)
    x, _ = _young_hourly(1, 5, 200.0, False)
    f = frame(x, grain="hour")
    out = score(f, grain="hour", settings=settings, first=24 * 28)
    assert out.model.eq("poisson-nb/hour_and_weekday").all()
    assert out.score.notna().all() and not out.is_anomaly.any()
    # its record compares the same hour of the week: the reason names it
    assert phase_text(np.datetime64("2024-01-02T14:00"), "hour_and_weekday") == "a Tuesday 14:00"
