"""Recovery: a value back on the level before an incident is not an anomaly
(bands.band_recovery), after an incident as long as a level span (the span before the
last one) or longer (the level before the excursion, _before_excursion); and what that
must not hide: a drop on a trend, a second dip."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tests.test_anomaly_library import HOURLY, WEEKLY, daily_counts, flagged_positions, frame, hourly_orders, score


@pytest.mark.parametrize("shape,seed", [("count", 6), ("count", 7), ("fraction", 6)])
def test_the_day_after_a_day_long_incident_is_a_recovery_not_an_anomaly(shape, seed):
    """Orders at 40% for 30 hours (the demo's checkout incident, run late), or a gauge
    stuck for as long: by its end the recent level is the incident's. The hours back to
    normal after it were flagged against that level (or as a run leaning away from it);
    they are now judged against the level of the span before too (bands.band), and
    make no run. The incident itself is still flagged from its first hours."""
    day, hours = 24 * 60, 30
    f = frame(outage(shape, seed, hours, day, days=63), grain="hour")
    found = flagged_positions(f, score(f, shape=shape, grain="hour", first=day - 24, last=day + 72 - 1))
    assert set(range(day, day + 6)) <= found, sorted(found)
    assert not {i for i in found if i >= day + hours}, sorted(found)


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_the_days_right_after_a_week_long_drop_are_a_recovery_at_the_day_grain(seed):
    """Daily orders at half for a week (a level span at the day grain): by its end the
    drop is the level (models.level_shift). The first two days back to normal are judged
    against the week before the drop too, and not flagged (they were). The drop's first
    days are flagged. (Days 2 and 3 after it still are: the first pass's weekly median
    made most of the drop normal for its cycle, so the span before is partly the drop.)"""
    x, _ = daily_counts(seed, n=140)
    start = 98
    x[start:start + 7] = np.round(x[start:start + 7] * 0.5)
    f = frame(x)
    found = flagged_positions(f, score(f, first=90))
    assert {start, start + 1} <= found, sorted(found)
    assert not {start + 7, start + 8} & found, sorted(found)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_drop_on_a_trend_is_not_taken_for_a_recovery(seed):
    """A daily count growing 0.5% a day, one day 5% under its trend: flagged. The level
    of the span before the last one sits on the trend's past, not on the window's long-
    run level, so it is no recovery's reference (bands.band_recovery); without that
    guard the drop scored -2.7 against it and went unflagged (review of e66fc61)."""
    rng = np.random.default_rng(seed)
    rate = 20000 * 1.005 ** np.arange(121)
    x = rng.poisson(rate).astype(float)
    x[120] = np.round(0.95 * rate[120])
    f = frame(x)
    assert flagged_positions(f, score(f, first=120)) == {120}


@pytest.mark.parametrize("seed", [1, 3])
def test_a_second_mild_dip_two_days_after_the_first_is_still_found(seed):
    """Orders at 40% for a day, twice, two days apart: each hour only about 2 sds low,
    so the first pass keeps the first dip, and the span before the second one is the
    first dip. That span is no recovery's reference (it is off the long-run level), so
    the second dip is judged as before: found as runs of hours (runs.py)."""
    rng, rate = hourly_orders(seed)
    x = rng.poisson(rate).astype(float)
    day = 24 * 58
    x[day - 48:day - 24] = rng.poisson(0.4 * rate[day - 48:day - 24])
    x[day:day + 24] = rng.poisson(0.4 * rate[day:day + 24])
    f = frame(x, grain="hour")
    found = flagged_positions(f, score(f, shape="count", grain="hour", first=day, last=day + 23))
    assert len(found) >= 4, sorted(found)


def outage(shape: str, seed: int, hours: int, day: int = 24 * 60, days: int = 70) -> np.ndarray:
    """`days` of hourly orders (about 100 an hour) at 40% for `hours` from `day`, or a
    gauge stuck for as long."""
    rng, rate = hourly_orders(seed, days=days, per_day=2400.0)
    if shape == "count":
        x = rng.poisson(rate).astype(float)
        x[day:day + hours] = rng.poisson(0.4 * rate[day:day + hours])
        return x
    x = 50 + 20 * HOURLY[np.arange(rate.size) % 24] + rng.normal(0, 0.5, rate.size)
    x[day:day + hours] = 45.0 + rng.normal(0, 0.01, hours)
    return x


@pytest.mark.parametrize("shape,hours,seed", [("count", 54, 1), ("count", 78, 2), ("count", 78, 4),
                                              ("fraction", 54, 1), ("fraction", 126, 3)])
def test_the_days_after_a_multi_day_outage_are_a_recovery(shape, hours, seed):
    """An outage of two to five days: by its end the recent level and the spans before
    it are all the outage's, so the span before the last one is no reference. The
    hours back to normal were flagged against the outage's level (count 54 hours: 23
    hours over six seeds, 126 hours: 113). Walking back over the outage's spans to a
    steady pair on the usual level before it (bands._before_excursion), they are a
    recovery; the outage is still flagged from its first hours (five of its first six,
    at least)."""
    day = 24 * 60
    f = frame(outage(shape, seed, hours, day), grain="hour")
    found = flagged_positions(f, score(f, shape=shape, grain="hour", first=day - 24, last=day + hours + 72 - 1))
    assert len(found & set(range(day, day + 6))) >= 5, sorted(found)
    assert not {i for i in found if i >= day + hours}, sorted(found)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_young_series_monday_after_its_weekend_is_not_an_anomaly(seed):
    """An hourly count with quiet weekends (45% of a weekday), first seen on a Tuesday:
    before two weeks it cannot have an hour-of-week profile, so its first weekend is the
    recent level on Monday. Monday is back on the level of the days before the weekend,
    which are on the usual level (the median of the days' levels, which the weekend does
    not move): a recovery, not hours "above expected" (they were flagged on both
    Mondays)."""
    rng = np.random.default_rng(seed)
    h = np.arange(24 * 21)
    weekday = (h // 24 + 1) % 7  # day 0 is a Tuesday
    rate = 100 * HOURLY[h % 24] / HOURLY.mean() * WEEKLY[weekday]
    f = frame(rng.poisson(rate).astype(float), grain="hour", start=dt.datetime(2024, 1, 2))
    mondays = [i for i in range(h.size) if weekday[i] == 0]
    found = flagged_positions(f, score(f, shape="count", grain="hour", first=mondays[0], last=mondays[-1]))
    assert not found & set(mondays), sorted(found & set(mondays))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_drop_on_an_hourly_trend_is_still_found(seed):
    """Hourly orders growing 2% a day, six hours at 75% of the trend: flagged. A trend
    climbs through the spans, with no flat stretch before a step, so it has no level
    "before an excursion" to be taken for a recovery's (a guard: passes before too)."""
    rng = np.random.default_rng(seed)
    h = np.arange(24 * 70)
    rate = 100 * HOURLY[h % 24] / HOURLY.mean() * 1.02 ** (h / 24)
    x = rng.poisson(rate).astype(float)
    t = 24 * 60 + 10
    x[t:t + 6] = rng.poisson(0.75 * rate[t:t + 6])
    f = frame(x, grain="hour")
    assert len(flagged_positions(f, score(f, shape="count", grain="hour", first=t, last=t + 5))) >= 4


@pytest.mark.parametrize("days_after,flagged", [(4, False), (9, True)])
def test_a_return_to_the_old_level_after_a_lasting_step_is_a_recovery_for_a_week_only(days_after, flagged):
    """The case a recovery cannot be told apart from (README): hourly orders (about 1,000
    an hour) that step down 30% for good, then three hours back on the old level. Four
    days after the step it reads as a recovery from an excursion; nine days after (the
    steady pair before the step no longer fits in the 7 level spans walked back,
    models.MAX_SPANS) it is judged against the new level and flagged, as it was before
    excursions had a reference."""
    rng, rate = hourly_orders(0, days=70, per_day=24000.0)
    step = 24 * 55
    lower = rate.copy()
    lower[step:] *= 0.7
    t = step + 24 * days_after + 10
    lower[t:t + 3] = rate[t:t + 3]
    f = frame(rng.poisson(lower).astype(float), grain="hour")
    found = flagged_positions(f, score(f, shape="count", grain="hour", first=t, last=t + 2))
    assert found == (set(range(t, t + 3)) if flagged else set()), sorted(found)


@pytest.mark.parametrize("per_hour,growth,days,share,seed", [(20, 0.06, 8, 0.6, 809), (100, 0.03, 10, 0.8, 1010)])
def test_a_drop_on_a_young_hourly_trend_is_still_found(per_hour, growth, days, share, seed):
    """A week or so of hourly orders growing 3 to 6% a day, four hours under the trend:
    found. A young series has few level spans, so two of a trend's older days could
    pass as a steady pair below it; the spans older still, lower again, say it is a
    trend (the review of f95e743 found these two hidden; they are flagged before the
    excursion rule too)."""
    rng = np.random.default_rng(seed)
    h = np.arange(24 * (days + 1))
    rate = per_hour * HOURLY[h % 24] / HOURLY.mean() * (1 + growth) ** (h / 24)
    x = rng.poisson(rate).astype(float)
    t = 24 * days + 10
    x[t:t + 4] = rng.poisson(share * rate[t:t + 4])
    f = frame(x, grain="hour")
    assert flagged_positions(f, score(f, shape="count", grain="hour", first=t, last=t + 3))
