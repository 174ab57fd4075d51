"""Synthetic series with planted anomalies for bench/anomaly_eval.py (and the same ideas
as tests/test_anomaly_library.py). Every case is a `Case`: a dense series frame, its
shape and grain, where scoring starts, and the planted incidents as [start, end) bucket
positions; `must_flag` False marks a planted move that must NOT be flagged (a detection
there counts as a false positive)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

WEEKLY = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.45, 0.4])  # Monday first: quiet weekends
START = pd.Timestamp("2024-01-01")  # a Monday


@dataclass
class Case:
    category: str
    frame: pd.DataFrame
    shape: str
    grain: str
    score_from: int                     # first scored position
    incidents: list[tuple[int, int]] = field(default_factory=list)   # [start, end) positions
    must_flag: bool = True
    min_volume: float = 0.0
    ignore: list[tuple[int, int]] = field(default_factory=list)      # neither incident nor normal


def frame(grain: str, value, count=None, numerator=None, denominator=None) -> pd.DataFrame:
    n = len(value)
    nan = np.full(n, np.nan)
    return pd.DataFrame({
        "bucket_start": pd.date_range(START, periods=n, freq="h" if grain == "hour" else "D"),
        "value": np.asarray(value, float),
        "count": nan if count is None else np.asarray(count, float),
        "numerator": nan if numerator is None else np.asarray(numerator, float),
        "denominator": nan if denominator is None else np.asarray(denominator, float)})


def _nb(rng, mean, cv=0.05):
    """Negative binomial counts: Poisson around a gamma-distributed mean (extra CV `cv`)."""
    mean = np.asarray(mean, float)
    shape = 1 / cv ** 2
    return rng.poisson(rng.gamma(shape, mean / shape)).astype(float)


def _daily_rate(rng, n, level, weekly=True):
    dow = (np.arange(n) % 7)
    trend = np.exp(np.cumsum(rng.normal(0, 0.005, n)))  # a slow random-walk drift
    return level * trend * (WEEKLY[dow] if weekly else 1.0)


DAYS, DAY_FROM, PLANT = 150, 56, (90, 140)


def count_case(rng, category: str) -> Case:
    """Daily counts ~ 300..3,000 a day, weekly seasonal, 5% extra noise, one planted event."""
    level = float(np.exp(rng.uniform(np.log(300), np.log(3000))))
    rate = _daily_rate(rng, DAYS, level)
    at = int(rng.integers(*PLANT))
    incidents, ignore = [(at, at + 1)], []
    if category == "spike":
        rate[at] *= rng.uniform(1.6, 3.0)
    elif category == "drop":
        rate[at] *= rng.uniform(0.2, 0.6)
    elif category == "level shift":
        factor = rng.choice([rng.uniform(1.5, 2.0), rng.uniform(0.4, 0.65)])
        rate[at:] *= factor
        incidents = [(at, at + 7)]  # found when flagged in the first week after the shift
        ignore = [(at + 7, DAYS)]   # the new normal: the baseline is adapting, not judged
    x = _nb(rng, rate)
    return Case(category, frame("day", x, count=x), "count", "day", DAY_FROM, incidents, ignore=ignore)


def ratio_case(rng, category: str) -> Case:
    """A daily conversion rate ~ 30%; the same relative drop (-40%) on one day at low
    volume (~12 visits: must not be flagged) or high volume (~20,000: must be)."""
    low = category.startswith("ratio low")
    visits = rng.poisson(_daily_rate(rng, DAYS, 12.0 if low else 20000.0, weekly=False)).astype(float)
    p = np.clip(0.3 * np.exp(rng.normal(0, 0.03, DAYS)), 0, 1)  # day-to-day drift of the rate
    at = int(rng.integers(*PLANT))
    p[at] *= 0.6
    conv = rng.binomial(visits.astype(int), p).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(visits > 0, conv / visits, np.nan)
    return Case(category, frame("day", value, numerator=conv, denominator=visits), "ratio", "day", DAY_FROM,
                [(at, at + 1)], must_flag=not low)


def weekly_normal_case(rng, category: str) -> Case:
    """Weekly seasonal daily counts, weekends at 40-45%: nothing to flag."""
    x = _nb(rng, _daily_rate(rng, DAYS, float(rng.uniform(200, 2000))))
    return Case(category, frame("day", x, count=x), "count", "day", DAY_FROM)


def sparse_case(rng, category: str) -> Case:
    """Sparse daily counts (mean 0.3 a day, mostly 0) with a planted '0 -> 2' that must not be flagged."""
    x = rng.poisson(0.3, DAYS).astype(float)
    at = int(rng.integers(*PLANT))
    x[at - 3:at] = 0
    x[at] = 2
    return Case(category, frame("day", x, count=x), "count", "day", DAY_FROM, [(at, at + 1)], must_flag=False)


def quiet_case(rng, category: str) -> Case:
    """No anomaly: a count, a level (fraction) or a ratio series."""
    kind = rng.integers(3)
    if kind == 0:
        x = _nb(rng, _daily_rate(rng, DAYS, float(rng.uniform(50, 5000)), weekly=bool(rng.integers(2))))
        return Case(category, frame("day", x, count=x), "count", "day", DAY_FROM)
    if kind == 1:
        x = 250 * np.exp(np.cumsum(rng.normal(0, 0.003, DAYS))) + rng.normal(0, 8, DAYS)
        return Case(category, frame("day", x), "fraction", "day", DAY_FROM)
    visits = rng.poisson(rng.uniform(200, 5000), DAYS).astype(float)
    conv = rng.binomial(visits.astype(int), 0.1).astype(float)
    return Case(category, frame("day", conv / visits, numerator=conv, denominator=visits), "ratio", "day", DAY_FROM)


def fraction_case(rng, category: str) -> Case:
    """A level (average latency ~250 ms, weekly pattern, noise 3%) with a one-day +-25..50% move."""
    dow = np.arange(DAYS) % 7
    x = 250 * (1 + 0.1 * (dow >= 5)) * np.exp(np.cumsum(rng.normal(0, 0.003, DAYS)))
    x = x * (1 + rng.normal(0, 0.03, DAYS))
    at = int(rng.integers(*PLANT))
    x[at] *= rng.choice([rng.uniform(1.25, 1.5), rng.uniform(0.5, 0.75)])
    return Case(category, frame("day", x), "fraction", "day", DAY_FROM, [(at, at + 1)])


HOURS, HOUR_FROM = 24 * 90, 24 * 35
_HOURLY = 0.3 + 0.7 * np.sin(np.arange(24) / 24 * np.pi) ** 2


def hourly_case(rng, category: str) -> Case:
    """Hourly counts with daily and weekly seasonality (~20..400 an hour) and a 3-hour
    drop to 30% (or none, for 'hourly seasonal normal')."""
    h = np.arange(HOURS)
    level = float(rng.uniform(20, 400))
    rate = level * _HOURLY[h % 24] * WEEKLY[(h // 24) % 7] * np.exp(np.cumsum(rng.normal(0, 0.001, HOURS)))
    incidents = []
    if category == "hourly drop":
        at = int(rng.integers(24 * 60, 24 * 85)) // 24 * 24 + int(rng.integers(9, 18))
        rate[at:at + 3] *= 0.3
        incidents = [(at, at + 3)]
    x = _nb(rng, rate, cv=0.03)
    return Case(category, frame("hour", x, count=x), "count", "hour", HOUR_FROM, incidents)


def low_volume_case(rng, category: str) -> Case:
    """Daily counts expected ~5 with big relative spikes (x6): below min_volume 20, never flagged."""
    rate = np.full(DAYS, 5.0)
    at = int(rng.integers(*PLANT))
    rate[at] *= 6
    x = rng.poisson(rate).astype(float)
    return Case(category, frame("day", x, count=x), "count", "day", DAY_FROM, [(at, at + 1)], min_volume=20.0)


def burst_case(rng, category: str) -> Case:
    """An hourly error counter: 0 in most hours, a burst of ~30 errors in 1-5% of them,
    and one burst of 8-15 times the usual size (a real incident)."""
    share = float(rng.uniform(0.01, 0.05))
    x = np.where(rng.random(HOURS) < share, rng.poisson(30, HOURS), 0).astype(float)
    at = int(rng.integers(24 * 60, 24 * 85))
    x[at] = 30 * float(rng.uniform(8, 15))
    return Case(category, frame("hour", x, count=x), "count", "hour", HOUR_FROM, [(at, at + 1)])


CATEGORIES = {
    "spike": count_case, "drop": count_case, "level shift": count_case,
    "fraction move": fraction_case,
    "ratio low volume (no flag)": ratio_case, "ratio high volume": ratio_case,
    "weekly seasonal normal": weekly_normal_case, "sparse 0->2 (no flag)": sparse_case,
    "no anomaly": quiet_case, "hourly drop": hourly_case, "hourly seasonal normal": hourly_case,
    "below min_volume": low_volume_case, "hourly error bursts": burst_case,
}


def cases(seeds: int, first_seed: int = 0):
    for name, make in CATEGORIES.items():
        for seed in range(first_seed, first_seed + seeds):
            rng = np.random.default_rng([seed, _stable(name)])
            yield make(rng, name)


def _stable(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name))
