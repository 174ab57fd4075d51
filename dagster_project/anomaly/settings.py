"""Detector settings and the per-grain constants every detector shares.

Each constant is a property of the grain (how many buckets make a day or a week), not a
value fitted to a data set:

- training window (`default_training_buckets`): 8 weeks of hours or days (8 values of
  every hour-of-week / day-of-week), half a year of weeks, two years of months;
- level span (`level_span`): the recent buckets whose mean is the current level: one
  day of hours, one week of days, a month of weeks, a quarter of months;
- minimum history (`min_history`): three level spans of hours or days (three daily
  cycles, or three weeks for day-of-week), 12 weeks or months; below it nothing is
  flagged ("not enough history").
"""
from __future__ import annotations

import datetime as dt
import numbers
from dataclasses import dataclass, replace

GRAINS = ("hour", "day", "week", "month")
SEASONALITIES = ("auto", "none", "hour_of_day", "day_of_week", "hour_and_weekday", "hour_of_week")
DIRECTIONS = ("up", "down", "both")
# count: a volume; ratio: a count per unit of its denominator; fraction: anything else;
# average: an avg or percentile of `count` values; amount_ratio: a ratio whose numerator is
# an amount, not a count (revenue per order): an average over its denominator's units
SHAPES = ("count", "ratio", "fraction", "average", "amount_ratio")

# buckets per seasonal cycle
PERIOD = {"none": 1, "hour_of_day": 24, "hour_and_weekday": 168, "hour_of_week": 168, "day_of_week": 7}
# read over a week's cycle as two parts, an hour-of-day shape and a level per weekday (weekday.py)
TWO_WAY = frozenset({"hour_and_weekday"})

_DEFAULT_TRAINING = {"hour": 1344, "day": 56, "week": 26, "month": 24}
_LEVEL_SPAN = {"hour": 24, "day": 7, "week": 4, "month": 3}
_MIN_HISTORY = {"hour": 72, "day": 21, "week": 12, "month": 12}
# seasonal candidates `auto` compares, simplest first
_AUTO = {"hour": ("none", "hour_of_day", "hour_and_weekday", "hour_of_week"), "day": ("none", "day_of_week"),
         "week": ("none",), "month": ("none",)}
# an explicit seasonality written for one grain, read at another (one anomaly spec serves
# every grain of a metric): the weekly cycle stays weekly, a daily cycle vanishes above hours
_AT_GRAIN = {
    "hour": {"day_of_week": "hour_of_week"},
    "day": {"hour_of_week": "day_of_week", "hour_and_weekday": "day_of_week", "hour_of_day": "none"},
    "week": {"hour_of_week": "none", "hour_and_weekday": "none", "hour_of_day": "none", "day_of_week": "none"},
    "month": {"hour_of_week": "none", "hour_and_weekday": "none", "hour_of_day": "none", "day_of_week": "none"},
}


# The band edge when the YAML sets none. The hour grain has 24 times the buckets of the
# day: at 3.0 a perfectly calibrated hourly series would be flagged by chance 1.9 times per
# 30 days (two-sided 0.27% of 720 buckets), at 3.5 0.33 times (0.047%), under the one
# false detection per 30 days a person tolerates. At the day grain 3.0 gives 0.08.
_DEFAULT_SENSITIVITY = {"hour": 3.5, "day": 3.0, "week": 3.0, "month": 3.0}

# A fraction (a sum, a gauge...) whose training window holds under MIN_EVENTS non-zero
# buckets per bucket (estimated as a Poisson rate, -ln(share of zeros): 1 = 37% zeros) is
# a list of events, not a series: it is judged by the size of a usual event (sparse.py).
MIN_EVENTS = 1.0


# The widest band a setting may ask for (the metric files' limit too): beyond it nothing
# is ever flagged, and the tail probability underflows.
MAX_SENSITIVITY = 20.0
# The narrowest: inside 1 robust sd lie only two thirds of ordinary buckets, and the
# first pass, which leaves the buckets beyond the sensitivity out of training, had too few
# left below about 0.3 (an average's every bucket "not scored, too few recent values").
MIN_SENSITIVITY = 1.0


@dataclass(frozen=True)
class DetectorSettings:
    sensitivity: float | None = None  # band edge at +-sensitivity (robust standard deviations / equivalent tail probability); None = per-grain default (default_sensitivity)
    direction: str = "both"           # "up" | "down" | "both": which side may be flagged
    min_volume: float = 0.0           # a bucket whose EXPECTED volume is below this is never flagged (count, a ratio's denominator, an average's count; other fractions have none, a sparse one its own rule: sparse.py)
    seasonality: str = "auto"         # one of SEASONALITIES
    training_buckets: int | None = None   # None = per-grain default (default_training_buckets)
    exclude: tuple[tuple[dt.datetime, dt.datetime], ...] = ()   # [start, end) naive-UTC ranges left out of training
    quantile: float | None = None     # an average-shaped series that is a percentile: its level (0.95 for a p95; from the metric, not the YAML); None: a mean

    def __post_init__(self) -> None:
        if self.sensitivity is not None and not MIN_SENSITIVITY <= self.sensitivity <= MAX_SENSITIVITY:
            raise ValueError(f"sensitivity must be from {MIN_SENSITIVITY:g} to {MAX_SENSITIVITY:g}, "
                             f"got {self.sensitivity!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.seasonality not in SEASONALITIES:
            raise ValueError(f"seasonality must be one of {SEASONALITIES}, got {self.seasonality!r}")
        if not 0 <= self.min_volume < float("inf"):
            raise ValueError(f"min_volume must be a number >= 0, got {self.min_volume!r}")
        if self.training_buckets is not None and not (isinstance(self.training_buckets, numbers.Integral)
                                                      and not isinstance(self.training_buckets, bool)
                                                      and self.training_buckets >= 4):
            raise ValueError(f"training_buckets must be a whole number >= 4, got {self.training_buckets!r}")
        if self.quantile is not None and not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be between 0 and 1, got {self.quantile!r}")


def _check_grain(grain: str) -> None:
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, got {grain!r}")


def default_training_buckets(grain: str) -> int:
    """hour: 1344 (8 weeks), day: 56 (8 weeks), week: 26, month: 24."""
    _check_grain(grain)
    return _DEFAULT_TRAINING[grain]


def default_sensitivity(grain: str) -> float:
    """hour: 3.5, day, week, month: 3.0 (see _DEFAULT_SENSITIVITY)."""
    _check_grain(grain)
    return _DEFAULT_SENSITIVITY[grain]


def at_grain(settings: DetectorSettings, grain: str) -> DetectorSettings:
    """The settings with the grain's default sensitivity when they set none."""
    if settings.sensitivity is not None:
        return settings
    return replace(settings, sensitivity=default_sensitivity(grain))


def training_buckets(grain: str, settings: DetectorSettings) -> int:
    return settings.training_buckets or default_training_buckets(grain)


def history_needed(grain: str, settings: DetectorSettings) -> int:
    """Buckets before `score_from` the caller must supply: the training window (hourly:
    of the start of the bucket's day, plus up to 23 hours of that day, see hourly.py).
    A scored bucket's result depends on at most these buckets before it (and itself)."""
    return training_buckets(grain, settings) + (23 if grain == "hour" else 0)


def level_span(grain: str, settings: DetectorSettings) -> int:
    """Recent buckets whose (de-seasonalised) mean is the current level."""
    _check_grain(grain)
    return max(1, min(_LEVEL_SPAN[grain], training_buckets(grain, settings) // 3))


def candidates(grain: str, settings: DetectorSettings) -> tuple[str, ...]:
    """The seasonalities compared per bucket: several for `auto`, else exactly one."""
    _check_grain(grain)
    if settings.seasonality == "auto":
        return _AUTO[grain]
    return (_AT_GRAIN[grain].get(settings.seasonality, settings.seasonality),)


def min_cycles(settings: DetectorSettings) -> int:
    """Cycles with data a seasonal profile needs: 2, so a leave-one-out profile exists
    (with few cycles its honest residuals are wide, so `auto` picks it only when the
    cycle is strong, e.g. quiet weekends after two weeks)."""
    return 2


def min_history(grain: str, settings: DetectorSettings) -> int:
    """Training buckets with a value a bucket needs before it can be flagged."""
    _check_grain(grain)
    need = _MIN_HISTORY[grain]
    if settings.seasonality != "auto":
        period = PERIOD[candidates(grain, settings)[0]]
        if period > 1:
            need = max(need, min_cycles(settings) * period + level_span(grain, settings))
    # a window shorter than that needs half its buckets: all of them left a whole window
    # unscored after every gap or `exclude` range (7 days after a 3-day one); one not much
    # longer may miss a quarter of them (`training_buckets: 12` months, one month missing)
    w = training_buckets(grain, settings)
    return min(need, w - max(1, w // 4)) if w >= need else max(3, (w + 1) // 2)
