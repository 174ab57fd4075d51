"""dagster_project.anomaly on inputs at the edges: a series that starts from zeros (a
launch), a phase no cycle has seen, a gauge read every few hours, out-of-range settings,
negative counts. The real library, no mocks; each expectation is what the input means,
not a number the detector printed."""
from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import pandas as pd
import pytest

from dagster_project.anomaly import DetectorSettings, merge_incidents, min_history, score_series
from dagster_project.anomaly.reason import number, sentence, sentences
from dagster_project.anomaly.settings import default_sensitivity
from dagster_project.warehouse.read import _num
from tests.test_anomaly_library import START, flagged_positions, frame, score


def _band_holds(out, sensitivity) -> None:
    """Every scored row has a finite band and |score| > sensitivity exactly outside it;
    a row without a band has no score and is not flagged."""
    banded = out.score.notna()
    for c in ("expected", "lower", "upper"):
        assert np.isfinite(out.loc[banded, c].to_numpy(float)).all(), c
    outside = (out.value < out.lower) | (out.value > out.upper)
    assert ((out.score.abs() > sensitivity) == outside)[banded].all()
    assert ((out.lower <= out.expected) & (out.expected <= out.upper))[banded].all()
    signed = banded & (out.value != out.expected) & (out.score != 0)
    assert ((out.score > 0) == (out.value > out.expected))[signed].all()  # the score is signed like the value
    assert not out.is_anomaly[~banded].any()
    assert not out.reason.str.contains(r"\?").any()


@pytest.mark.parametrize("seasonality", ["day_of_week", "auto"])
def test_a_launch_after_weeks_of_zeros_is_flagged_against_a_finite_band(seasonality):
    x = np.zeros(70)
    x[56:] = 3000.0
    out = score(frame(x), settings=DetectorSettings(seasonality=seasonality))
    _band_holds(out, 3.0)
    first = out.iloc[0]  # position 56: the launch
    assert first.value == 3000 and first.is_anomaly and first.direction == "up"


def test_after_a_launch_the_new_level_is_not_flagged_as_a_drop():
    x = np.zeros(80)
    x[40:] = 3000.0
    x[44] = 3100.0
    out = score(frame(x), first=44)
    _band_holds(out, 3.0)
    # the level is 3,000: an expectation far above anything the series did is a
    # trailing level's lag read as a trend
    assert out.expected.max() <= 1.25 * 3100
    assert not (out.is_anomaly & (out.direction == "down")).any()


@pytest.mark.parametrize("level", [30, 200, 3000])
def test_a_noisy_launch_at_any_volume_is_judged_on_what_came_after(level):
    for seed in range(3):
        x = np.random.default_rng(seed).poisson(level, 100).astype(float)
        x[:40] = 0
        out = score(frame(x), first=41)
        _band_holds(out, 3.0)
        assert not out.is_anomaly.any(), out[out.is_anomaly].reason.tolist()
        assert out.expected.max() <= 1.5 * level
        # as young as its data: the day after the launch has one bucket of history
        assert out.reason.iloc[0].endswith("not enough history (1 of 21 buckets)")
        assert out.score.iloc[:20].isna().all() and out.score.iloc[20:].notna().all()


@pytest.mark.parametrize("grain, zeros, n, first", [("day", 40, 110, 41), ("hour", 24 * 21, 24 * 45, 24 * 21 + 1)])
def test_a_sum_that_launches_is_judged_on_what_came_after_not_as_mostly_zeros(grain, zeros, n, first):
    """Revenue of a shop that opens: zeros (a metric start before its data), then a
    sum of amounts every bucket. Before: 'mostly zeros' judged by event sizes, or fitted
    on the zeros: 189 flagged hours in a month of the demo's net reactions."""
    rng = np.random.default_rng(6)
    x = np.array([rng.lognormal(3.4, 0.6, rng.poisson(40)).sum() for _ in range(n)])
    x[:zeros] = 0.0
    out = score(frame(x, grain=grain), shape="fraction", grain=grain, first=first)
    _band_holds(out, 3.0 if grain == "day" else 3.5)
    assert out.is_anomaly.sum() <= 1
    assert out.reason.iloc[0].endswith(f"not enough history (1 of {21 if grain == 'day' else 72} buckets)")
    assert out.score.notna().sum() >= len(out) // 3


def test_an_hourly_launch_with_a_daily_cycle_is_not_flagged_at_night():
    rng = np.random.default_rng(0)
    hours = np.arange(24 * 42)
    shape = 0.5 + np.sin(np.pi * (hours % 24) / 24) ** 2
    x = rng.poisson(200 * shape).astype(float)
    x[:24 * 21] = 0
    out = score(frame(x, grain="hour"), shape="count", grain="hour", first=24 * 22)  # from the day after the launch
    _band_holds(out, 3.5)
    assert out.is_anomaly.sum() <= 1  # of 480 hours; before: 49 (27 of them drops)


@pytest.mark.parametrize("grain, shape", [("day", "count"), ("day", "fraction"), ("hour", "count"),
                                          ("hour", "fraction")])
def test_an_exclude_range_over_the_launch_does_not_judge_the_launch_week_against_the_zeros(grain, shape):
    """A metric whose `start` predates its data, with its launch week in `exclude`: the
    zeros before it stay zeros, the week's values are left out of training, so every
    excluded bucket, and the first after the range, was judged against the zeros alone
    ("orders 387 vs expected 0"): a flood of flags where the unexcluded series flags only
    the launch. The range hides values from training, not the start of the series."""
    per_day = 24 if grain == "hour" else 1
    days, launch = 70, 28
    rng = np.random.default_rng(4)
    n = days * per_day
    if shape == "count":
        x = rng.poisson(300 if grain == "day" else 40, n).astype(float)
    else:
        x = np.array([rng.lognormal(3.4, 0.6, rng.poisson(40)).sum() for _ in range(n)])
    x[:launch * per_day] = 0.0
    f = frame(x, grain=grain)
    ts = f.bucket_start
    week = ((ts.iloc[launch * per_day].to_pydatetime(), ts.iloc[(launch + 7) * per_day].to_pydatetime()),)
    first = (launch - 7) * per_day
    plain = score(f, shape=shape, grain=grain, first=first)
    out = score(f, shape=shape, grain=grain, first=first, settings=DetectorSettings(exclude=week))
    assert plain.is_anomaly.sum() <= 1  # the launch itself, judged against the zeros
    # the launch bucket may be flagged (a jump from nothing), as without the range; no other
    assert out.is_anomaly.sum() <= 1, out[out.is_anomaly][["bucket_start", "reason"]].to_string()
    # the series scores again once it has its history after the range
    assert out.score.iloc[-7 * per_day:].notna().all()


@pytest.mark.parametrize("shape", ["count", "fraction"])
def test_an_excluded_spike_on_a_running_series_stays_out_of_training(shape):
    """The launch rule reads the values an `exclude` range hides: on a series that never
    stopped, an excluded incident must still leave the band as narrow as a gap would."""
    rng = np.random.default_rng(5)
    x = rng.poisson(200, 110).astype(float) if shape == "count" else rng.normal(50, 4, 110)
    x[60:63] = 5000.0
    f = frame(x)
    days = f.bucket_start
    excluded = DetectorSettings(exclude=((days.iloc[60].to_pydatetime(), days.iloc[63].to_pydatetime()),))
    gapped = f.copy()
    gapped.loc[60:62, ["value", "count"]] = np.nan
    out = score(f, shape=shape, first=64, settings=excluded)
    pd.testing.assert_frame_equal(out, score(gapped, shape=shape, first=64))


@pytest.mark.parametrize("grain", ["day", "hour"])
@pytest.mark.parametrize("excluded", ["nothing", "test day", "test day to launch week", "launch week"])
def test_a_test_row_weeks_before_a_launch_is_a_stray_not_the_launch(grain, excluded):
    """A new source: five test rows on day 30, live from day 50. The launch rule took
    the first value that is not 0 as the launch: the level after the test rows, diluted
    by 20 days of zeros, was no launch, and the live days were judged against the zeros
    (97 flagged hours). Excluding the test day made it worse once the rule read excluded
    values (23). A value followed by a level span of zeros is a stray; after one, a
    launch is told from an incident once it has run a level span: until then it is one
    incident, judged against the zeros."""
    per = 24 if grain == "hour" else 1
    rng = np.random.default_rng(7)
    x = rng.poisson(300 if grain == "day" else 12, 110 * per).astype(float)
    x[:50 * per] = 0.0
    x[30 * per] = 5.0
    f = frame(x, grain=grain)

    def day(n):
        return f.bucket_start.iloc[n * per].to_pydatetime()

    ranges = {"nothing": (), "test day": ((day(30), day(31)),), "test day to launch week": ((day(30), day(57)),),
              "launch week": ((day(50), day(57)),)}[excluded]
    out = score(f, grain=grain, first=45 * per, settings=DetectorSettings(exclude=ranges))
    flagged = out[out.is_anomaly]
    span = 7 * per if grain == "day" else per  # the level span: 7 days, 24 hours
    assert len(merge_incidents(flagged, grain)) <= 1, flagged[["bucket_start", "reason"]].to_string()
    assert ((flagged.bucket_start >= day(50)) & (flagged.bucket_start < f.bucket_start.iloc[50 * per + span])).all()
    assert out.score.iloc[-20 * per:].notna().all()  # and scored once it has its history after the launch


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_an_incident_on_a_rare_event_count_is_flagged_whatever_came_before(grain):
    """An error counter: two lone errors in 8 weeks, then an incident (1, 6, 15, 30, 20),
    and another two level spans later. Read as a launch after two strays, the incident
    had "not enough history" and neither was flagged; as without the lone errors, each
    is judged against the zeros."""
    per = 24 if grain == "hour" else 1
    x = np.zeros(90 * per)
    x[20 * per + 5 % per] = x[41 * per + 17 % per] = 1.0
    first = 63 * per + 3 % per
    second = first + 2 * (24 if grain == "hour" else 7)
    x[first:first + 5] = [1, 6, 15, 30, 20]
    x[second:second + 3] = [30, 40, 25]
    f = frame(x, grain=grain)
    out = score(f, grain=grain, first=first - 2)
    flagged = set(f.bucket_start.searchsorted(out.bucket_start[out.is_anomaly]).tolist())
    assert {first + 2, first + 3, second} <= flagged, (sorted(flagged), out.reason.iloc[2:6].tolist())


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_an_excluded_launch_week_that_ends_before_a_quiet_spell_flags_only_the_launch(grain):
    """A shop closed at night (hours) or at weekends (days), its launch week excluded:
    right after the range the training values held only the quiet buckets, which read
    as no launch, and the first busy bucket was judged against the zeros before it."""
    per = 24 if grain == "hour" else 1
    for seed in range(3):
        rng = np.random.default_rng(seed)
        i = np.arange(70 * per)
        busy = ((i % 24 >= 8) & (i % 24 < 22)) if grain == "hour" else (i % 7 < 5)  # START is a Monday
        x = rng.poisson(np.where(busy, 20.0 if grain == "hour" else 300.0, 0.05)).astype(float)
        x[:28 * per] = 0.0
        f = frame(x, grain=grain)
        end = 35 * per if grain == "hour" else 33  # days: the range ends on a Saturday
        week = ((f.bucket_start.iloc[28 * per].to_pydatetime(), f.bucket_start.iloc[end].to_pydatetime()),)
        out = score(f, grain=grain, first=end, settings=DetectorSettings(exclude=week))
        assert not out.is_anomaly.any(), out[out.is_anomaly][["bucket_start", "reason"]].to_string()


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_an_excluded_spike_on_a_series_of_zeros_does_not_hide_a_later_burst(grain):
    """A test load (500) on a metric that is otherwise 0, excluded: read as a launch, the
    history restarted at it, and a real burst of 40 two weeks later had "not enough
    history" at the day grain. The zeros after the spike are the series' level."""
    per = 24 if grain == "hour" else 1
    x = np.zeros(100 * per)
    x[60 * per] = 500.0
    burst = 75 * per + (12 if grain == "hour" else 0)
    x[burst] = 40.0
    f = frame(x, grain=grain)
    spike = ((f.bucket_start.iloc[60 * per].to_pydatetime(), f.bucket_start.iloc[61 * per].to_pydatetime()),)
    out = score(f, grain=grain, first=61 * per, settings=DetectorSettings(exclude=spike))
    row = out[out.bucket_start == f.bucket_start.iloc[burst]].iloc[0]
    assert row.is_anomaly and row.direction == "up", row.reason
    assert out.is_anomaly.sum() == 1


def test_a_shop_closed_at_weekends_is_not_launched_every_monday_in_a_short_window():
    """training_buckets 8 (a level span of 2 days): a window starting on a Friday read
    as a stray (Friday, two zeros), then a launch on Monday; training kept the weekdays
    only and every Saturday's 0 was flagged. The window does not open on zeros: no
    stray, no launch."""
    flagged = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x = rng.poisson(np.where(np.arange(140) % 7 < 5, 150.0, 0.0)).astype(float)  # START is a Monday
        out = score(frame(x), settings=DetectorSettings(training_buckets=8), first=28)
        flagged += int((out.is_anomaly & (out.bucket_start.dt.day_of_week == 5)).sum())
    assert flagged == 0


def test_a_launch_is_found_in_each_window_whatever_history_is_supplied():
    """A stray event long before the launch, outside the training window: the rows after
    the launch are the same whether the series is supplied from the stray event or from
    just before the launch (a backfill and a scheduled run must agree)."""
    rng = np.random.default_rng(6)
    x = rng.poisson(300, 200).astype(float)
    x[:120] = 0.0
    x[5] = 1.0
    week = DetectorSettings(exclude=((START + dt.timedelta(days=120), START + dt.timedelta(days=127)),))
    whole = score(frame(x), first=118, settings=week)
    # from the first day the window of the first scored bucket needs (56 training days)
    cut = score(frame(x[62:], start=START + dt.timedelta(days=62)), first=56, settings=week)
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), cut.reset_index(drop=True))
    assert whole.is_anomaly.sum() <= 1


def test_a_ratio_on_a_weekday_the_denominator_never_had_is_still_judged():
    rng = np.random.default_rng(3)
    n = 70
    weekday = (np.arange(n) % 7) < 5  # START is a Monday
    den = np.where(weekday, rng.poisson(500, n), 0).astype(float)
    num = rng.binomial(den.astype(int), 0.1).astype(float)
    den[-1], num[-1] = 500.0, 400.0  # a Sunday with traffic, and 80% instead of 10%
    value = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    out = score(frame(value, numerator=num, denominator=den), shape="ratio",
                settings=DetectorSettings(seasonality="day_of_week"))
    _band_holds(out, 3.0)
    last = out.iloc[-1]
    assert last.upper < 0.5 and last.is_anomaly and last.direction == "up"


@pytest.mark.parametrize("every", [5, 9])
def test_a_gauge_read_every_few_hours_has_a_band_or_says_it_is_not_scored(every):
    rng = np.random.default_rng(1)
    v = np.full(24 * 40, np.nan)
    v[::every] = 950 + rng.normal(0, 5, v[::every].size)
    v[-1] = 5000.0
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=24 * 10)
    _band_holds(out, 3.5)
    unscored = out[out.score.isna()]
    assert unscored.reason.str.contains("not scored|not enough history").all()


@pytest.mark.parametrize("every", [5, 13])
def test_a_mostly_zero_gauge_read_every_few_hours_is_not_scored_without_a_band(every):
    """Zeros read every few hours with two events: too few events to judge a size by, and
    no fit of the sparse readings. Rows read "0 vs expected ? (?..?), within the expected
    range" with a score of 0."""
    v = np.full(24 * 50, np.nan)
    v[::every] = 0.0
    v[every * 20] = v[every * 60] = 120.0
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=24 * 10)
    _band_holds(out, 3.5)
    unscored = out[out.score.isna()]
    assert len(unscored) and unscored.reason.str.contains("too sparse to judge|not enough history").all()


def test_a_phase_at_zero_after_the_level_falls_is_not_expected_below_zero():
    """Sundays at 0 among weekdays at 900, then every weekday at 40: the new level plus
    the Sunday's offset lands below 0 (in square-root units). The Sunday's 0 was flagged
    as a rise against a band whose upper edge was below its lower one (0..-108)."""
    rng = np.random.default_rng(3)
    idx = pd.date_range("2024-01-01", periods=24 * 7 * 5, freq="h")  # a Monday
    sunday = idx.day_of_week == 6
    level = np.where(idx >= pd.Timestamp("2024-01-27"), 40.0, 900.0)  # falls on a Saturday
    v = np.where(sunday, 0.0, np.abs(level + rng.normal(0, 0.005 * level, idx.size)))
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=24 * 21)
    _band_holds(out, 3.5)
    sundays = out[out.bucket_start.dt.day_of_week == 6]
    assert len(sundays) == 48 and sundays.score.notna().all()
    assert not sundays.is_anomaly.any(), sundays[sundays.is_anomaly][["bucket_start", "reason"]].head(3)
    # the fall itself is still a drop
    assert out[(out.bucket_start >= "2024-01-27") & (out.bucket_start < "2024-01-28")].is_anomaly.any()


def test_a_proportion_above_one_is_beyond_its_band():
    """Refunds of a few orders, never more than the orders, then 30 of 7: the band stops
    at 100% and the value was scored as if it were 100% (1.8, within a sensitivity of 6)."""
    rng = np.random.default_rng(0)
    den = rng.poisson(8, 90).astype(float)
    num = rng.binomial(den.astype(int), 0.9).astype(float)
    den[-1], num[-1] = 7, 30
    out = score(frame(num / den, numerator=num, denominator=den), shape="ratio",
                settings=DetectorSettings(sensitivity=6.0))
    _band_holds(out, 6.0)
    last = out.iloc[-1]
    assert last.upper <= 1.0 < last.value and last.is_anomaly and last.direction == "up"


def test_a_ratio_whose_recent_buckets_were_outliers_still_knows_its_volume():
    """A ratio that falls from 73% to 15% and stays there: while the fall's buckets fill
    the recent level span, the fit left them all out and the expected denominator was
    unknown: min_volume then held the flag, and the reason read "expected volume ?"."""
    rng = np.random.default_rng(2)
    den = rng.poisson(600_000, 70).astype(float)
    share = np.where(np.arange(70) < 60, 0.735, 0.147)
    num = rng.binomial(den.astype(int), share).astype(float)
    num[62] = np.nan  # a day without its numerator
    out = score(frame(num / den, numerator=num, denominator=den), shape="ratio",
                settings=DetectorSettings(min_volume=5.0))
    _band_holds(out, 3.0)
    fall = out[out.bucket_start >= frame(num).bucket_start.iloc[60]]
    outside = (fall.value < fall.lower) & fall.score.notna()
    assert outside.any() and fall.is_anomaly[outside].all(), fall[["bucket_start", "reason"]].to_string()


def test_a_ratio_back_after_days_without_a_denominator_expects_no_volume():
    """Orders stop (denominator 0 for days), then no refund of 5 orders: the expected
    volume is the recent denominators', 0, under min_volume; it read "expected volume ?"."""
    rng = np.random.default_rng(6)
    den = rng.poisson(40, 24 * 20).astype(float)
    den[-60:-1] = 0.0
    num = rng.binomial(den.astype(int), 0.7).astype(float)
    num[-1], den[-1] = 0, 5
    with np.errstate(invalid="ignore", divide="ignore"):
        f = frame(np.where(den > 0, num / den, np.nan), grain="hour", numerator=num, denominator=den)
    settings = DetectorSettings(min_volume=5.0, sensitivity=1.0, seasonality="none")
    out = score(f, shape="ratio", grain="hour", settings=settings, first=24 * 14)
    _band_holds(out, 1.0)
    last = out.iloc[-1]
    assert last.value < last.lower and not last.is_anomaly and "expected volume 0 is below min_volume 5" in last.reason


def test_an_average_present_in_a_third_of_its_hours_gets_a_band_as_wide_as_its_spread():
    """An average latency of a small slice: a value in about a third of the hours. Its level
    spans rarely held half their hours, so a window had one or two residuals, whose
    spread is 0: the band collapsed to the data's resolution (185..185) and more than
    half of the hours were flagged."""
    rng = np.random.default_rng(2)
    v = rng.lognormal(3.4, 0.6, 24 * 35) * 5
    v[rng.random(v.size) > 0.35] = np.nan
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=0)
    _band_holds(out, 3.5)
    banded = out[out.score.notna()]
    q1, q3 = np.nanpercentile(v, [25, 75])
    assert len(banded) and ((banded.upper - banded.lower) > q3 - q1).all()
    assert banded.is_anomaly.mean() < 0.02
    assert out[out.score.isna()].reason.str.contains("not scored|not enough history").all()


def test_a_short_training_window_scores_again_soon_after_an_excluded_range():
    """training_buckets 7 needed all 7 buckets: a 3-day `exclude` range left the 7 days
    after it unscored too ("not enough history (6 of 7 buckets)"). Half of them will do
    (the excluded days themselves are scored, against the days before)."""
    rng = np.random.default_rng(1)
    f = frame(rng.poisson(200, 80).astype(float))
    days = f.bucket_start
    excluded = ((days.iloc[60].to_pydatetime(), days.iloc[63].to_pydatetime()),)
    out = score(f, settings=DetectorSettings(training_buckets=7, exclude=excluded), first=20)
    assert out.score.notna().all(), out[out.score.isna()][["bucket_start", "reason"]].to_string()


def test_an_event_size_score_is_signed_from_the_expected_value():
    """A net amount at 0 in two hours of five (few events an hour: judged by their sizes),
    a few of them below 0: a bucket between 0 and the expected value (the window's
    median) was scored above 0, from 0, while its direction said down."""
    rng = np.random.default_rng(8)
    n = 24 * 30
    v = np.where(rng.random(n) < 0.4, 0.0, rng.gamma(3, 10, n)) * np.where(rng.random(n) < 0.05, -1, 1)
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=24 * 10)
    assert (out.model == "event-size/none").sum() > 100
    _band_holds(out, 3.5)


def test_a_ratio_reads_as_a_share_a_rate_or_an_amount_per_unit():
    """"3.61 (3,020 of 836)" read as a share for downloads per like, and an order value of
    20.7 from one order read "(21 of 1)"."""
    words = dict(label="m", min_volume=0, flagged=[False], outside=[False], side_ok=[True], volume_ok=[True],
                 volume=[1.0], record=[""], phase=[""], span=[""])
    share, rate, amount = (sentences(shape=shape, proportion=[prop], value=[v], expected=[v], lower=[0.0],
                                     upper=[2 * v], numerator=[num], denominator=[den], **words)[0]
                           for shape, prop, v, num, den in (("ratio", True, 0.0357, 143.0, 4000.0),
                                                            ("ratio", False, 3.61, 3020.0, 836.0),
                                                            ("amount_ratio", False, 20.7, 20.7, 1.0)))
    assert share.startswith("m 3.57% (143 of 4,000) vs")
    assert rate.startswith("m 3.61 (3,020 / 836) vs")
    assert amount.startswith("m 20.7 (20.7 / 1) vs")


def test_a_band_holding_both_signs_says_how_far_not_how_many_times():
    words = dict(label="m", min_volume=0, outside=[True], side_ok=[True], volume_ok=[True], volume=[1.0],
                 record=[""], phase=[""], span=[""], numerator=[math.nan], denominator=[math.nan], flagged=[True])
    net = sentences(shape="fraction", proportion=[False], value=[160.0], expected=[3.14], lower=[-147.0],
                    upper=[154.0], **words)[0]
    assert net.endswith("157 above expected") and "times" not in net
    level = sentences(shape="fraction", proportion=[False], value=[160.0], expected=[100.0], lower=[60.0],
                      upper=[140.0], **words)[0]
    assert level.endswith("60% above expected")


def test_a_spike_keeps_its_band_in_the_reason_and_the_row():
    """Float noise is judged against the band's own scale, never the value's: a day at
    2,000,000 among days near 100 read "expected 0 (0..0)"."""
    rng = np.random.default_rng(2)
    x = rng.poisson(100, 90).astype(float)
    x[-1] = 2_000_000
    last = score(frame(x)).iloc[-1]
    assert last.is_anomaly and 50 < last.expected < 200 and last.upper > last.expected
    assert "vs expected 0 " not in last.reason and "(0..0)" not in last.reason


@pytest.mark.parametrize("w", [4, 6, 8])
def test_a_gauge_with_a_few_training_buckets_is_scored(w):
    """A fraction needs MIN_RESIDUALS residuals, or half its window's buckets: with
    training_buckets 4 to 8 it had at most 7 and was never scored."""
    rng = np.random.default_rng(w)
    v = rng.normal(100, 10, 90)
    v[-1] = 300
    out = score(frame(v), shape="fraction", settings=DetectorSettings(training_buckets=w), first=20)
    assert out.score.notna().mean() > 0.9 and out.iloc[-1].is_anomaly


def test_two_refunds_of_one_order_are_just_beyond_the_band_not_critical():
    """A proportion's bucket above 1 is beyond its band (which stops at 1), by as much
    as its volume says: 2 of 1 just beyond (it scored 1,000,000: critical, paged while
    provisional), 30 of 7 far beyond."""
    rng = np.random.default_rng(0)
    den = rng.poisson(8, 24 * 20).astype(float)
    num = rng.binomial(den.astype(int), 0.1).astype(float)
    scores = []
    for n, d in ((2, 1), (30, 7)):
        num[-1], den[-1] = n, d
        with np.errstate(invalid="ignore", divide="ignore"):
            f = frame(np.where(den > 0, num / den, np.nan), grain="hour", numerator=num, denominator=den)
        out = score(f, shape="ratio", grain="hour", first=24 * 5)
        _band_holds(out, 3.5)
        scores.append(out.iloc[-1].score)
        assert out.iloc[-1].is_anomaly
    assert 3.5 < scores[0] < 7.0 < scores[1] < 100


def test_a_window_longer_than_the_minimum_history_keeps_that_minimum():
    assert min_history("day", DetectorSettings(training_buckets=30)) == 21
    assert min_history("day", DetectorSettings(training_buckets=7)) == 4
    assert min_history("hour", DetectorSettings(seasonality="hour_of_week", training_buckets=600)) == 360


def test_a_zero_among_non_zero_events_scores_zero_not_the_band_edge():
    """Judged by event sizes, with 40% zeros the expected value (the median) is above 0:
    each zero scored exactly -sensitivity, on the band's edge."""
    rng = np.random.default_rng(8)
    n = 24 * 30
    v = np.where(rng.random(n) < 0.4, 0.0, rng.gamma(3, 10, n))
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=24 * 10)
    zeros = out[(out.model == "event-size/none") & (out.value == 0) & (out.expected > 0)]
    assert len(zeros) > 50 and (zeros.score == 0).all()


def test_min_volume_is_judged_on_the_expected_count_the_row_shows():
    c = np.random.default_rng(5).poisson(40, 60).astype(float)
    c[-1] = 200.0
    out = score(frame(c), settings=DetectorSettings(min_volume=40))
    last = out.iloc[-1]
    # shown expected 40 or more: the volume rule does not apply; under: it does
    assert last.is_anomaly == (last.expected >= 40)
    assert ("below min_volume" in last.reason) == (last.expected < 40)


def test_a_record_is_only_quoted_on_the_side_of_the_flag():
    words = dict(label="m", shape="count", proportion=False, lower=7700.0, upper=8300.0, flagged=True,
                 outside=True, side_ok=True, volume_ok=True, volume=8000.0, min_volume=0.0, phase="",
                 span="6 weeks", numerator=float("nan"), denominator=float("nan"))
    below = sentence(value=3100.0, expected=8000.0, record="highest", **words)
    assert "highest" not in below and "below expected" in below
    above = sentence(value=9100.0, expected=8000.0, record="highest", **words)
    assert "highest in 6 weeks" in above


@pytest.mark.parametrize("x, text", [(999.7, "1,000"), (-999.6, "-1,000"), (999.4, "999"), (12.345, "12.3"),
                                     (8.709e-05, "0.0000871"), (-7.039e-05, "-0.0000704"), (3e-7, "3.000e-07")])
def test_numbers_near_a_thousand_or_small_are_not_in_exponent_form(x, text):
    assert number(x, "fraction") == text


def test_float_noise_and_a_zero_series_floor_read_as_zero():
    """A band edge of 3.4e-05 beside 127 (a sum's noise around 0) and an all-zero series'
    band end at 7e-150 (its noise floor) read as 0; a sum expected at 1.8e-15 is stored as 0."""
    zeros = score(frame(np.zeros(80)), shape="fraction")
    _band_holds(zeros, 3.0)
    assert len(zeros) and (zeros.upper == 0).all() and not zeros.is_anomaly.any()
    assert not zeros.reason.str.contains(r"\de-\d").any(), zeros.reason.iloc[0]
    rng = np.random.default_rng(3)
    v = np.where(rng.random(24 * 40) < 0.6, 0.0, rng.gamma(2, 30, 24 * 40)) - np.where(rng.random(24 * 40) < 0.3,
                                                                                    rng.gamma(2, 30, 24 * 40), 0.0)
    out = score(frame(v, grain="hour"), shape="fraction", grain="hour", first=24 * 5)
    _band_holds(out, 3.5)
    assert not out.reason.str.contains(r"\de-\d").any(), out.reason[out.reason.str.contains(r"\de-\d")].iloc[0]
    banded = out[out.score.notna()]
    assert ((banded.expected == 0) | (banded.expected.abs() > 1e-9)).all()


@pytest.mark.parametrize("kwargs", [dict(sensitivity=1e308), dict(sensitivity=math.inf), dict(sensitivity=20.5),
                                    dict(sensitivity=0.5), dict(quantile=1.0), dict(quantile=0.0),
                                    dict(min_volume=math.nan), dict(min_volume=math.inf),
                                    dict(training_buckets=10.5), dict(training_buckets=True)])
def test_settings_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError):
        DetectorSettings(**kwargs)


def test_the_widest_allowed_sensitivity_scores():
    out = score(frame(np.random.default_rng(2).poisson(50, 70).astype(float)),
                settings=DetectorSettings(sensitivity=20))
    assert not out.is_anomaly.any() and out.score.notna().all()


@pytest.mark.parametrize("shape", ["count", "ratio"])
def test_a_negative_count_is_refused_not_read_as_ordinary(shape):
    x = np.random.default_rng(4).poisson(50, 70).astype(float)
    x[-1] = -200.0
    f = frame(x, numerator=x if shape == "ratio" else None, denominator=np.full(70, 100.0) if shape == "ratio" else None)
    with pytest.raises(ValueError, match="negative"):
        score(f, shape=shape)


@pytest.mark.parametrize("x", [math.inf, -math.inf, math.nan])
def test_numbers_json_cannot_carry_are_null(x):
    assert _num(x) is None


def test_an_unscored_row_names_the_seasonality_of_its_grain():
    """hour_of_week written for a metric, read at the week grain, is none there."""
    f = frame(np.full(6, 10.0), grain="day")
    f = f.assign(bucket_start=pd.date_range("2024-01-01", periods=6, freq="W-MON"))
    out = score_series(f, shape="count", grain="week", settings=DetectorSettings(seasonality="hour_of_week"),
                       score_from=dt.datetime(2024, 1, 1), score_until=dt.datetime(2025, 1, 1),
                       now=dt.datetime(2025, 1, 1), settle_buckets=0)
    assert out.reason.str.contains("not enough history").all()
    assert (out.model == "poisson-nb/none").all()


def test_a_mostly_zero_sum_takes_two_ordinary_events_in_an_hour_but_not_a_tenfold_one():
    """Large orders per hour (a few a day, similar sizes): an hour with two or three of
    them is ordinary under a Poisson count of events; before, 89 of 135 were flagged
    (five seeds)."""
    rng = np.random.default_rng(0)
    n = 24 * 60
    events = rng.poisson(0.3, n)
    x = np.array([rng.lognormal(4.8, 0.15, c).sum() for c in events])
    x[-10] = 10 * np.exp(4.8)  # one order ten times a usual one
    out = score(frame(x, grain="hour"), shape="fraction", grain="hour", first=24 * 30)
    several = events[24 * 30:] >= 2
    flagged = out.is_anomaly.to_numpy()
    assert several.sum() >= 15 and flagged[several].sum() <= 1
    assert flagged[-10] and out.model.iloc[-10] == "event-size/none"


def test_events_on_a_schedule_adding_up_in_one_bucket_are_flagged():
    """One event per non-zero bucket, every 8 hours: two in one bucket is the anomaly
    (a Poisson count would call it ordinary)."""
    x = np.zeros(24 * 40)
    x[::8] = 3.3
    x[-5] = 6.6
    out = score(frame(x, grain="hour"), shape="fraction", grain="hour", first=24 * 30)
    assert out.is_anomaly.iloc[-5] and out.is_anomaly.sum() == 1


@pytest.mark.parametrize("launch", [False, True])
def test_a_sparse_hourly_count_is_expected_at_its_own_rate(launch):
    """A count of 0.25 an hour (mostly zeros, at most 2 or 3) in a young window with gaps,
    or after weeks of zeros (a launch). A cycle's level was the mean of y / profile: a
    phase with a tiny profile and one event blew it up over the passes, and with it the
    profile: an hour expected at 73 (up to 53,000 after a launch) and ordinary zeros
    flagged as drops (97 over 30 seeds). Now the level is the cycle's sum over its
    profile's sum."""
    flagged, worst = 0, 0.0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        days = 40 if launch else 21
        x = rng.poisson(0.25, 24 * days).astype(float)
        if launch:
            x[:24 * 19] = 0.0
        out = score(frame(x, grain="hour"), grain="hour", first=24 * (19 if launch else 7))
        flagged += int(out.is_anomaly.sum())
        worst = max(worst, float(out.expected.max()))
    assert flagged == 0
    assert worst < 10, worst


def test_an_unscored_ratio_above_one_is_not_shown_as_a_percentage():
    """A young ratio series (no history to score against) took every value for a
    proportion: 143 downloads by 4 users read "3575%: not enough history"."""
    num, den = np.array([143.0, 120.0, 150.0]), np.array([4.0, 4.0, 5.0])
    out = score(frame(num / den, numerator=num, denominator=den), shape="ratio", first=0)
    assert out.reason.str.contains("not enough history").all(), out.reason.tolist()
    assert not out.reason.str.contains("%").any() and out.reason.iloc[0].startswith("m 35.8"), out.reason.tolist()
    # a proportion stays a percentage
    num = np.array([1.0, 2.0, 1.0])
    out = score(frame(num / den, numerator=num, denominator=den), shape="ratio", first=0)
    assert out.reason.iloc[0].startswith("m 25%"), out.reason.tolist()


def test_an_amount_per_order_with_a_mostly_zero_window_says_it_is_too_sparse():
    """Refund amounts per order on five days of ninety, then a 900 refund: not judged (too
    few events), and the reason said so for a plain amount but blamed `min_volume 0` for
    the same series as an amount per order."""
    den = np.random.default_rng(0).poisson(50, 90).astype(float)
    num = np.zeros(90)
    num[[5, 20, 33, 47, 61]] = [30, 45, 25, 60, 40]
    num[-1] = 900
    out = score(frame(num / den, numerator=num, denominator=den), shape="amount_ratio", first=89)
    (reason,) = out.reason
    assert not out.is_anomaly.any() and "min_volume" not in reason
    assert re.search(r"above the band but its window is mostly zeros with only \d non-zero buckets, under 8: "
                     r"too sparse to judge$", reason), reason
    # not judged: no score (the band of a spread collapsed on zeros scored it 1,000,000)
    assert out.score.isna().all()


@pytest.mark.parametrize("grain, need", [("day", 21), ("month", 12)])
def test_a_training_window_as_long_as_the_minimum_history_survives_a_missing_bucket(grain, need):
    """`training_buckets` equal to the grain's minimum history needed every bucket: one
    month never built left the next twelve unscored ("11 of 12 buckets")."""
    x = np.random.default_rng(1).poisson(200, 90).astype(float)
    x[50] = np.nan
    f = frame(x)
    f["bucket_start"] = pd.date_range("2018-01-01", periods=90, freq="MS" if grain == "month" else "D")
    end = dt.datetime(2025, 7, 1) if grain == "month" else dt.datetime(2018, 4, 1)
    out = score_series(f, shape="count", grain=grain, settings=DetectorSettings(training_buckets=need),
                       score_from=f.bucket_start.iloc[40].to_pydatetime(), score_until=end, now=end, settle_buckets=0)
    assert len(out) == 49 and out.score.notna().all(), out[out.score.isna()].reason.iloc[0]
    assert min_history(grain, DetectorSettings(training_buckets=need)) < need


def test_a_wide_band_keeps_its_expected_value_in_the_reason_and_the_row():
    """Daily revenue near 100 with large orders on one day in ten: the band reaches tens
    of millions, and its expected value (about 96) read as 0 beside it ("36 vs expected
    0 (0..91,828,668)")."""
    rng = np.random.default_rng(1)
    x = rng.gamma(2, 50, 120) + np.where(rng.random(120) < 0.1, rng.gamma(2, 50000, 120), 0)
    out = score(frame(x), shape="fraction", first=0)
    banded = out[out.score.notna()]
    assert len(banded) > 50 and (banded.expected > 0).all()
    _band_holds(out, 3.0)
    for r in banded.itertuples():
        assert f" vs expected {number(r.expected, 'fraction')} (" in r.reason, r.reason


@pytest.mark.parametrize("shape, sensitivity, training", [("fraction", 15, None), ("count", 10, 6)])
def test_a_high_sensitivity_on_a_short_window_keeps_a_finite_band(shape, sensitivity, training):
    """The band edge of a high sensitivity with few residuals is thousands of sds out: in
    the log scale that overflowed (upper = inf), and the expected value was then stored
    and shown as 0 (a count of 2 'above' an expected 0 with a negative score)."""
    rng = np.random.default_rng(3 if shape == "fraction" else 5)
    if shape == "fraction":
        f = frame(np.exp(rng.normal(5, 1.5, 40)))
    else:
        f = frame(rng.poisson(3, 40).astype(float))
    settings = DetectorSettings(sensitivity=sensitivity, training_buckets=training)
    out = score(f, shape=shape, settings=settings, first=0)
    banded = out[out.score.notna()]
    assert len(banded) > 10 and (banded.expected > 0).all()
    _band_holds(out, sensitivity)


def test_a_rate_is_judged_the_same_whatever_its_denominators_unit():
    """Signups (a count) per ad spend: in dollars or in millions of dollars the same
    buckets are flagged. The overdispersion search stopped at a fixed bound, so a
    denominator of 0.0001 got a band far too narrow (52 of 470 flagged, 6 in dollars);
    its reason printed the denominator as a count, "(43 / 0.0)"."""
    flagged = {}
    for unit in (1.0, 1e-4, 1e-6):
        rows = []
        for seed in range(3):
            rng = np.random.default_rng(seed)
            den = rng.gamma(5, 1 / 5, 150) * unit
            num = rng.poisson(40, 150).astype(float)
            out = score(frame(num / den, numerator=num, denominator=den), shape="ratio", first=56)
            rows.append(out.is_anomaly.to_numpy())
        flagged[unit] = np.concatenate(rows)
    assert flagged[1.0].sum() < 10
    assert (flagged[1e-4] == flagged[1.0]).all() and (flagged[1e-6] == flagged[1.0]).all()
    assert re.search(r" \(\d+ / 0\.0+[1-9]\d\d\) vs expected", out.reason.iloc[-1]), out.reason.iloc[-1]


def test_an_infinite_value_is_a_gap_not_a_record():
    """A float division by zero in the warehouse stores inf: it was scored and flagged
    ("m inf vs expected 1,018 ..., highest in 8 weeks") and trained on after."""
    x = np.random.default_rng(6).normal(1000, 30, 90)
    x[80] = np.inf
    f = frame(x)
    out = score(f, shape="fraction")
    assert f.bucket_start[80] not in set(out.bucket_start) and len(out) == 90 - 56 - 1
    assert not out.is_anomaly.any() and not out.reason.str.contains("inf").any()


@pytest.mark.parametrize("level", [-1e160, -1e300, 1e200])
def test_values_beyond_1e154_keep_a_finite_band(level):
    """The spread of residuals was computed from their squares, which overflow past 1e154:
    a series near -1e160 had the band (-inf..inf), and a value three times its level was
    "within the expected range". (A positive one is fitted in the log scale.)"""
    rng = np.random.default_rng(3)
    x = level * (1 + 0.1 * rng.standard_normal(60))
    x[-1] = 3 * level
    out = score(frame(x), shape="fraction", settings=DetectorSettings(seasonality="none"), first=21)
    _band_holds(out, default_sensitivity("day"))
    assert out.score.notna().sum() > 30 and out.is_anomaly.iloc[-1]
    assert ("lowest" if level < 0 else "highest") in out.reason.iloc[-1]


def test_an_infinite_first_guess_of_the_spread_stays_infinite():
    """Computed in units of the first guess, an infinite one gave inf * 0: NaN, read as
    the smallest spread (1e-150), where the squares' formula gave inf."""
    from dagster_project.anomaly.stats import winsorized_scale
    r = np.array([[1.0, -2.0, 3.0], [1e300, -1e300, 3.0]])
    out = winsorized_scale(r, np.array([np.inf, 1e300]))
    assert np.isinf(out[0]) and np.isfinite(out[1]) and out[1] > 1e299


@pytest.mark.parametrize("training", [4, 5])
@pytest.mark.parametrize("shape", ["count", "fraction", "ratio"])
def test_a_past_outlier_in_a_short_training_window_is_not_the_expected_value(shape, training):
    """With `training_buckets: 4` or 5 the level span is one bucket: the first pass's median
    fit of one-bucket blocks fitted every value, so it never left an outlier out, and the
    bucket after a spike expected the spike (400 after a 400 among 100s). The next ones,
    with the spike out, could take it as the bias: the median of two residuals, one of
    them its own. The oracle: the median of the window's other values."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        den = rng.poisson(20000, 30).astype(float)
        if shape == "ratio":
            num = rng.binomial(den.astype(int), 0.3).astype(float)
            num[20] = den[20] * 0.9
            f = frame(num / den, numerator=num, denominator=den)
        else:
            x = rng.poisson(5000, 30).astype(float) if shape == "count" else rng.normal(100, 2, 30)
            x[20] *= 4
            f = frame(x)
        out = score(f, shape=shape, settings=DetectorSettings(training_buckets=training), first=21, last=20 + training)
        assert len(out) == training and out.expected.notna().all()
        for i, row in enumerate(out.itertuples(), start=21):
            usual = np.median(np.delete(f.value.to_numpy()[i - training:i], 20 - (i - training)))
            assert abs(row.expected / usual - 1) < 0.15, (seed, i, row.expected, usual)


def test_an_expected_value_left_by_float_rounding_beside_a_zero_reads_as_zero():
    """A weekday gauge that is 0 at weekends: its weekend level plus profile cancel to
    1.4e-17, not 0. Beside a value of 0 the middle of the band's numbers was that
    expected value itself, so it was not read as noise: "m 0 vs expected 1.388e-17
    (0..0.608)". Beside values of tenths, anything under 1e-9 is rounding."""
    rng = np.random.default_rng(2)
    x = np.where(np.arange(90) % 7 >= 5, 0.0, rng.poisson(3, 90)).astype(float) * 0.1
    out = score(frame(x), shape="fraction", first=21)
    assert out.expected.notna().sum() > 60
    shown = out.expected.abs()
    assert not ((shown > 0) & (shown < 1e-9)).any()
    assert not out.reason.str.contains(r"e-\d", regex=True).any()


def test_a_zero_level_in_the_square_root_comes_back_as_zero():
    """A mostly-zero sum (refunds per hour and country) is fitted in the square root of
    x + offset; its zeros' level, a mean of equal roots, came back as the offset's square
    less the offset: 2e-13, not 0 ("refunds [country=FR] 0 vs expected 1.723e-13 (0..1.28)")."""
    from dagster_project.anomaly.domain import SQRT, back, forward
    offset = np.random.default_rng(0).uniform(0.01, 500, 1000)
    level = np.mean(np.stack([forward(np.zeros(1000), SQRT, offset)] * 7), axis=0)
    assert (back(level, SQRT, offset) == 0).all()
    # a real value near 0 stays
    assert np.allclose(back(forward(np.full(1000, 0.01), SQRT, offset), SQRT, offset), 0.01)


@pytest.mark.parametrize("shape", ["count", "ratio"])
def test_a_zero_where_zeros_are_ordinary_scores_near_zero_not_at_the_band_edge(shape):
    """An hourly count of 0.8 on average is 0 in 45% of its hours; its band's low edge is
    0, and every 0 scored exactly -sensitivity (-3.5) as if on the edge of the rare: the
    scores of `--all`, the JSON and the API could not rank how surprising a bucket was.
    A 0 now scores as far below the expected value as the normal half-width says (its
    Poisson probability e^-expected is at least 13% here: well inside)."""
    rng = np.random.default_rng(1)
    x = rng.poisson(0.8, 24 * 40).astype(float)
    if shape == "count":
        f = frame(x, grain="hour")
    else:
        den = x + rng.poisson(3, x.size)  # a share of small denominators: 0 of 3 is ordinary
        f = frame(np.where(den > 0, x / np.maximum(den, 1), np.nan), grain="hour", numerator=x, denominator=den)
    out = score(f, shape=shape, grain="hour", first=24 * 10)
    volume = out.expected if shape == "count" else out.expected * out.denominator
    zeros = out[(out.value == 0) & (volume < 2) & out.score.notna()]
    assert len(zeros) > 100
    assert (zeros.score.abs() < 2.0).all(), zeros.score.describe()
    assert not out.is_anomaly.any()


@pytest.mark.parametrize("shape", ["fraction", "count"])
def test_a_record_after_a_launch_counts_only_the_days_since_it(shape):
    """An hourly sum at 0 for 8 weeks (a metric `start` before its source had rows), then
    launched: a spike on its sixth day was "highest for 12:00 in 8 weeks", every earlier
    12:00 being a 0 from before there was any data."""
    rng = np.random.default_rng(2)
    before, after = 24 * 56, 24 * 6
    hour = np.arange(before + after) % 24
    x = np.where(np.arange(before + after) < before, 0.0,
                 rng.lognormal(np.log(100 * (0.5 + np.sin(hour / 24 * np.pi) ** 2)), 0.2))
    x[before + 24 * 5 + 12] *= 6
    out = score(frame(np.round(x) if shape == "count" else x, grain="hour"), shape=shape, grain="hour",
                first=before + 72)
    (reason,) = out.reason[out.is_anomaly]
    assert reason.endswith("highest for 12:00 in 6 days"), reason


def test_a_small_slices_day_at_40_percent_is_still_a_run_of_hours():
    """The demo's checkout incident (orders at 40% for a day) in a country with about one
    order an hour: each hour's 0 is ordinary on its own, the day of them is not. The runs
    rule weighs each hour's score on the band's edge (a 0 where the band stops at 0 is as
    low as a count goes), not the milder score shown for it since: with the shown one the
    slice lost every flagged hour of the incident."""
    from dagster_project.demo.generator import INCIDENTS, generate_range
    first = dt.date(2026, 8, 31)
    end = first + dt.timedelta(days=90)
    orders = generate_range(first, end, seed=7, now=dt.datetime.combine(end, dt.time()))["orders"]
    hours = pd.date_range(pd.Timestamp(first), pd.Timestamp(end), freq="h", inclusive="left")
    fr = orders[orders.country == "FR"].ordered_at.dt.floor("h").value_counts().reindex(hours, fill_value=0)
    assert fr.mean() < 2  # a small slice
    out = score(frame(fr.to_numpy(float), grain="hour", start=first), shape="count", grain="hour", first=24 * 21)
    (checkout,) = [i for i in INCIDENTS if i.table == "orders"]
    day = pd.Timestamp(first) + pd.Timedelta(days=checkout.day_offset)
    during = out[(out.bucket_start >= day) & (out.bucket_start < day + pd.Timedelta(days=1))]
    assert during.is_anomaly.sum() >= 3, during[["bucket_start", "value", "expected", "score", "reason"]]


@pytest.mark.parametrize("shape", ["count", "fraction"])
def test_a_spike_in_the_oldest_weeks_of_a_week_window_stays_out_of_training(shape):
    """The week grain trains on 26 weeks, six blocks of its 4-week level span and 2 weeks
    more: those 2 oldest weeks were never fitted by the first pass, so a spike there stayed
    in training and widened the band fivefold (485..1,511 around 1,000 instead of about
    908..1,121) until it left the window. The oracle: the same series without the spike."""
    rng = np.random.default_rng(4)
    x = rng.poisson(1000, 60).astype(float)
    t = 50
    spiked = x.copy()
    spiked[t - 26] = 3000  # the oldest bucket of t's window
    weeks = pd.date_range("2024-01-01", periods=60, freq="W-MON")

    def scored(values):
        f = frame(values)
        f["bucket_start"] = weeks
        out = score_series(f, shape=shape, grain="week", settings=DetectorSettings(),
                           score_from=weeks[t].to_pydatetime(), score_until=weeks[t + 1].to_pydatetime(),
                           now=weeks[-1].to_pydatetime(), settle_buckets=0)
        return out.iloc[0]

    clean, with_spike = scored(x), scored(spiked)
    assert abs(with_spike.expected / clean.expected - 1) < 0.03
    assert (with_spike.upper - with_spike.lower) < 1.25 * (clean.upper - clean.lower)


@pytest.mark.parametrize("level,noise", [(1e8, 0.15), (1e10, 0.02), (1e15, 0.02)])
def test_a_huge_count_is_banded_by_its_own_noise(level, noise):
    """The negative binomial's extra variance was searched up to 10^6 times the Poisson
    variance: a count of 10^10 a day moving by 2% (4 * 10^6 times) got a band too narrow
    for its noise, and a tenth of its days were flagged (10^12: every other day)."""
    flagged = 0
    for seed in range(5):
        x = np.round(level * (1 + noise * np.random.default_rng(seed).standard_normal(120)))
        x[100] = level * (1 - 6 * noise)  # 6 sds down: still found
        out = score(frame(x), first=56)
        _band_holds(out, 3.0)
        assert out.set_index(out.bucket_start.dt.date).is_anomaly.loc[(START + dt.timedelta(days=100)).date()]
        flagged += int(out.is_anomaly.sum()) - 1
    # 320 ordinary days: by chance about one (0.27% two-sided), not the 30-280 before
    assert flagged <= 4, flagged


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_one_bucket_above_100_percent_does_not_turn_a_proportion_into_a_rate(grain):
    """A late row counted in the numerator before its denominator (1,003 of 1,000) made
    every window holding it a Poisson rate, whose band is many times wider: for 8 weeks a
    drop from 95% to 90% (day) or 75% (hour) went unflagged. A ratio that passes 1 in many
    buckets is still a rate."""
    hour = grain == "hour"
    at, glitch = (24 * 65 + 12, 24 * 55 + 12) if hour else (100, 70)
    n, volume, drop = (24 * 70, 100, 0.75) if hour else (110, 2000, 0.90)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        den = rng.poisson(volume, n).astype(float)
        num = rng.binomial(den.astype(int), 0.95).astype(float)
        num[at] = np.round(den[at] * drop)
        num[glitch] = den[glitch] + 3
        f = frame(num / den, grain=grain, numerator=num, denominator=den)
        out = score(f, shape="ratio", grain=grain, first=at - 5).set_index("bucket_start")
        row = out.loc[f.bucket_start.iloc[at]]
        assert row.is_anomaly and row.direction == "down" and row.model.startswith("beta-binomial"), row.reason
    # downloads per user: above 1 in a tenth of the buckets, a rate
    rng = np.random.default_rng(0)
    den = rng.poisson(50, 110).astype(float)
    num = rng.poisson(0.8 * den).astype(float)
    num[::10] = den[::10] + 5
    out = score(frame(num / den, numerator=num, denominator=den), shape="ratio")
    assert out.model.str.startswith("poisson-rate").all()


@pytest.mark.parametrize("shape", ["amount_ratio", "ratio"])
@pytest.mark.parametrize("grain", ["day", "hour"])
def test_min_volume_reads_the_denominator_as_it_is_now_not_the_window_median(shape, grain):
    """With a seasonal fit the expected denominator was the median of its phase over the
    whole window: a month after orders fell from 1,000 to 10 a day, it still said
    about 1,000, and a bucket of 10 orders was flagged despite `min_volume: 100`."""
    hour = grain == "hour"
    n, fall, at = (24 * 75, 24 * 50, 24 * 72 + 12) if hour else (100, 60, 90)
    rng = np.random.default_rng(0)
    cycle = np.array([1.0, 1.1, 1.0, 0.9, 1.0, 0.7, 0.6])[np.arange(n) // (24 if hour else 1) % 7]
    den = np.round(np.where(np.arange(n) < fall, 1000.0, 10.0) * cycle)
    if shape == "amount_ratio":
        num = rng.normal(50, 5, n) * den
        num[at] = den[at] * 150
    else:
        num = rng.binomial(den.astype(int), 0.3).astype(float)
        num[at] = den[at]
    settings = DetectorSettings(min_volume=100, seasonality="day_of_week")
    f = frame(num / den, grain=grain, numerator=num, denominator=den)
    first = at - (24 if hour else 5)
    out = score(f, shape=shape, grain=grain, settings=settings, first=first).set_index("bucket_start")
    row = out.loc[f.bucket_start.iloc[at]]
    assert not row.is_anomaly, row.reason
    assert "below min_volume 100" in row.reason, row.reason
    # the same jump while the volume is high is flagged
    num2, den2 = num.copy(), den.copy()
    den2[:] = np.round(1000.0 * cycle)
    num2 = (rng.normal(50, 5, n) if shape == "amount_ratio" else rng.binomial(den2.astype(int), 0.3) / den2) * den2
    num2[at] = den2[at] * (150 if shape == "amount_ratio" else 0.6)
    f2 = frame(num2 / den2, grain=grain, numerator=num2, denominator=den2)
    out2 = score(f2, shape=shape, grain=grain, settings=settings, first=first).set_index("bucket_start")
    assert out2.loc[f2.bucket_start.iloc[at]].is_anomaly


def _bursts(seed, n, share, size=30.0):
    """An error counter: most buckets 0, a burst of about `size` in `share` of them."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < share, rng.poisson(size, n), 0).astype(float)


# (a day grain's 8 weeks hold MIN_SIZES = 8 bursts from about one day in seven on)
@pytest.mark.parametrize("grain,share", [("day", 0.2), ("hour", 0.03), ("hour", 0.1)])
def test_a_count_of_bursts_is_judged_by_the_size_of_a_burst(grain, share):
    """Every burst of an error counter was flagged: the first pass read each one as an
    outlier of its zeros, so the negative binomial saw only zeros (a band of 0..5 under
    dozens of bursts of 30 in the window). A burst ten times the usual is still flagged."""
    hour = grain == "hour"
    n, first = (24 * 70, 24 * 56) if hour else (200, 100)
    normal = bursts = 0
    for seed in range(4):
        x = _bursts(seed, n, share)
        big = n - 5
        x[big] = 300.0
        f = frame(x, grain=grain)
        out = score(f, grain=grain, first=first)
        flagged = flagged_positions(f, out)
        assert big in flagged
        row = out[f.bucket_start.searchsorted(out.bucket_start) == big].iloc[0]
        assert row.model.startswith("event-size/"), row.model
        normal += len(flagged - {big})
        bursts += int(np.count_nonzero(x[first:])) - 1
        assert not out[out.value == 0].is_anomaly.any()
    assert bursts > 20 and normal <= 2, (normal, bursts)


def test_a_count_that_is_zero_at_night_keeps_its_seasonal_fit():
    """Zeros at known hours (a shop closed at night) are the count's cycle, not a list of
    events: a day-time outage is still flagged, by the count model."""
    rng = np.random.default_rng(3)
    n = 24 * 70
    hour = np.arange(n) % 24
    x = rng.poisson(np.where((hour >= 8) & (hour < 20), 40.0, 0.0)).astype(float)  # half the hours are 0
    out_at = 24 * 65 + 12
    x[out_at - 2:out_at + 2] = 0.0
    f = frame(x, grain="hour")
    out = score(f, grain="hour", first=24 * 56)
    assert out_at in flagged_positions(f, out)
    assert not out.model.str.startswith("event-size").any()


def test_a_thin_count_stays_a_poisson_count():
    """A count of about 0.3 a bucket (mostly 0, now and then 1 or 2) is a Poisson count:
    its non-zero buckets are single events, not bursts."""
    rng = np.random.default_rng(4)
    x = rng.poisson(0.3, 24 * 70).astype(float)
    f = frame(x, grain="hour")
    out = score(f, grain="hour", first=24 * 56)
    assert out.model.str.startswith("poisson").all()


@pytest.mark.parametrize("value, lower, upper, shape, prop, edge", [
    (1371.0, 1338.2, 1370.58, "fraction", False, "1,370.6"),  # a follower count a hair above its edge
    (22.0, 0.0, 21.6, "count", False, "21.6"),
    (0.12345, 0.05, 0.1234, "ratio", True, "12.34%"),
    (845.26, 126.0, 845.2, "fraction", False, "845.2"),  # the value needs its digits too: "845.3"
    (3.0, 3.04, 9.0, "fraction", False, "3.04"),  # below the low edge
    (8.71e-05, 2e-05, 8.705e-05, "fraction", False, "0.00008705"),  # in fixed decimals, as the value is shown
])
def test_a_value_beyond_its_band_never_reads_as_on_its_edge(value, lower, upper, shape, prop, edge):
    """Rounded to the row's format, a flagged value and the edge it passed read alike:
    "1,371 vs expected 1,354 (1,338..1,371)" said the value was in its band."""
    expected = (lower + upper) / 2
    text = sentence(label="m", shape=shape, proportion=prop, value=value, expected=expected, lower=lower,
                    upper=upper, flagged=True, outside=True, side_ok=True, volume_ok=True, volume=100.0,
                    min_volume=0.0, record="", phase="", span="", numerator=math.nan, denominator=math.nan)
    band = re.search(r"\((\S+)\.\.(\S+)\)", text)
    assert edge in band.groups(), text
    shown = re.match(r"m (\S+) vs", text).group(1)
    def read(t):
        return float(t.replace(",", "").rstrip("%"))
    if value > upper:
        assert read(shown) > read(band.group(2)), text
    else:
        assert read(shown) < read(band.group(1)), text


def test_a_candidate_without_a_band_yields_to_one_that_has_one():
    """A gap-free gauge at its first scored day chose the square root with a day-of-week
    profile on 4 common residuals, whose fit had too few residuals for a band: the row
    said "too few recent values to fit a baseline" (a reason meant for gaps)."""
    v = [1212, 1217, 1212, 1209, 1207, 1208, 1209, 1214, 1221, 1226, 1220, 1214, 1219, 1229, 1223, 1227, 1220,
         1220, 1217, 1224, 1232, 1235, 1226, 1223]
    f = frame(v)
    f["count"] = np.nan
    out = score(f, shape="fraction", first=0)
    scored = out[~out.reason.str.contains("not enough history")]
    assert len(scored) == 3
    assert scored.expected.notna().all() and scored.score.notna().all(), scored.reason.tolist()
    assert not scored.reason.str.contains("too few recent values").any()


@pytest.mark.parametrize("grain", ["day", "hour"])
def test_min_volume_applies_to_an_average_by_the_values_it_reads(grain):
    """An average's volume is its count: `min_volume` was accepted and ignored for avg and
    percentile metrics."""
    rng = np.random.default_rng(8)
    n, at = (24 * 70, 24 * 66 + 12) if grain == "hour" else (90, 85)
    count = rng.poisson(30, n).astype(float)
    value = rng.normal(10, 2, n) / np.sqrt(count / 30)
    value[at] = 40.0
    f = frame(value, grain=grain)
    f["count"] = count
    first = at - 3
    flags = {}
    for need in (0, 20, 1000):
        out = score(f, shape="average", grain=grain, settings=DetectorSettings(min_volume=need), first=first)
        row = out[f.bucket_start.searchsorted(out.bucket_start) == at].iloc[0]
        flags[need] = bool(row.is_anomaly)
        if need == 1000:
            assert "below min_volume 1,000" in row.reason, row.reason
    assert flags == {0: True, 20: True, 1000: False}


def test_a_value_equal_to_its_expected_one_moved_neither_way():
    out = score(frame([5.0] * 40), first=30)
    steady = out[out.value == out.expected]
    assert len(steady) > 0 and steady.direction.isna().all(), steady.direction.tolist()
    assert set(out.direction.dropna()) <= {"up", "down"}
