"""Raw metric specs: exactly what a YAML file says, checked for shape only. Frozen and
`extra="forbid"`, so a typo is an error, never a silently ignored key. Cross-file
meaning (does the source exist, is the expression safe) is checked in validation/."""
from __future__ import annotations

import datetime as dt
import re
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..grains import GRAINS as _GRAINS

Grain = Literal["hour", "day", "week", "month"]
GRAINS: tuple[Grain, ...] = _GRAINS
Aggregation = Literal["count", "sum", "avg", "min", "max", "count_distinct", "percentile", "latest"]
Status = Literal["draft", "active", "archived"]
Kind = Literal["simple", "ratio", "derived"]

# lowercase, digits and single underscores: `__` is reserved for generated names (an
# inline ratio side is the hidden metric `<ratio>__numerator`)
NAME_PATTERN = r"^[a-z](?:[a-z0-9]|_[a-z0-9])*$"


class _Frozen(BaseModel):
    # strict: `sensitivity: true` or `max_slices: "5"` is a mistake, not 1 and 5 (int still fits a float)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# a history from before 1970 or after 2200 is a typo (0001-01-01 plans 1.6 million hour
# partitions); a number is one too (pydantic would read 86400 as 1970-01-02)
EARLIEST_DAY, LATEST_DAY = dt.date(1970, 1, 1), dt.date(2199, 12, 31)
# What the rules check, told to the JSON Schema too (editors flag it as it is typed); the
# rules keep their own messages with the file and line
PERCENTILE_SCHEMA = {"exclusiveMinimum": 0, "exclusiveMaximum": 1}
DAY_SCHEMA = {"pattern": r"^(19[7-9][0-9]|2[01][0-9][0-9])-"}  # EARLIEST_DAY .. LATEST_DAY
_DAY_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def _a_day(value: object, timestamps: bool = False) -> object:
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError(f"a date (YYYY-MM-DD), got the number {value!r}")
    if isinstance(value, str):  # quoted: read as YAML would read it unquoted, then checked the same
        text = value.strip()
        try:
            if not _DAY_TEXT.match(text):  # fromisoformat also reads 2026-W01-3 and 20260901
                raise ValueError
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"a date (YYYY-MM-DD){' or a timestamp' if timestamps else ''}, got {value!r}") from None
    if isinstance(value, dt.datetime) and not timestamps:
        raise ValueError("a date (YYYY-MM-DD), not a timestamp")  # a timestamp would silently truncate
    if isinstance(value, dt.date):
        day = value.date() if isinstance(value, dt.datetime) else value
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValueError(f"a date from {EARLIEST_DAY} to {LATEST_DAY}, got {value}")
    return value


class ExcludeRange(_Frozen):
    """A stretch of history left out of anomaly training (a holiday, a known incident).
    Dates are whole UTC days with `end` included; timestamps are [start, end)."""

    start: dt.datetime | dt.date
    end: dt.datetime | dt.date
    reason: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _plain_date(cls, value: object) -> object:
        # a quoted '2026-12-24' means the same whole day as an unquoted one (_a_day reads it)
        return _a_day(value, timestamps=True)

    @model_validator(mode="after")
    def _ordered(self) -> "ExcludeRange":
        if exclude_bounds(self)[1] <= exclude_bounds(self)[0]:
            raise ValueError("end must be after start")
        return self


def exclude_bounds(r: ExcludeRange) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) as naive UTC datetimes."""
    def as_utc(v: dt.date | dt.datetime, end: bool) -> dt.datetime:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.timezone.utc).replace(tzinfo=None) if v.tzinfo else v
        midnight = dt.datetime(v.year, v.month, v.day)
        return midnight + dt.timedelta(days=1) if end else midnight
    return as_utc(r.start, False), as_utc(r.end, True)


class AnomalySpec(_Frozen):
    """Anomaly scoring options. Each field a metric sets wins over `_config.yml`
    `anomaly:`, which wins over these defaults (merged field by field)."""

    enabled: bool = Field(True, description="Score this metric (default: true for active metrics, false for drafts).")
    sensitivity: float | None = Field(None, ge=1, le=20, allow_inf_nan=False, description="Band edge in robust standard deviations (or the same tail probability), 1 to 20; default per grain: hour 3.5, day, week and month 3.0.")
    direction: Literal["up", "down", "both"] = "both"
    min_volume: float = Field(0, ge=0, allow_inf_nan=False, description="A bucket whose expected volume (the count, a ratio's denominator, the values an avg or percentile reads) is below this is never flagged; sums, min, max, latest and derived metrics have none.")
    seasonality: Literal["auto", "none", "hour_of_day", "day_of_week", "hour_and_weekday", "hour_of_week"] = Field(
        "auto", description="The cycle of the baseline: auto compares them; hour_and_weekday is an hour-of-day shape with a level per day of the week (hour grain).")
    training_buckets: int | None = Field(None, ge=4, le=10_000, description="Past buckets that train the baseline (default per grain: hour 1344 = 8 weeks, day 56, week 26, month 24).")
    exclude: list[ExcludeRange] = Field(default_factory=list, description="Ranges left out of training.")
    max_slices: int = Field(50, ge=0, le=10_000, description="Slices scored per metric and grain: the total plus the slices with the most volume.")


class InlineMeasure(_Frozen):
    """A ratio input written in place instead of naming another metric."""

    source: str
    timestamp: str
    aggregation: Aggregation
    expression: str | None = None
    filter: str | None = None
    percentile: float | None = Field(None, json_schema_extra=PERCENTILE_SCHEMA)


class MetricSpec(_Frozen):
    """One metric file, `metrics/<domain>/<name>.yml`."""

    name: str = Field(pattern=NAME_PATTERN, max_length=60)
    kind: Kind = "simple"
    description: str | None = None
    owner: str | None = None
    status: Status = "active"
    # simple metrics
    source: str | None = None
    timestamp: str | None = None
    aggregation: Aggregation | None = None
    expression: str | None = Field(None, description="Measured column or scalar SQL; for derived metrics, arithmetic over metric names.")
    filter: str | None = None
    percentile: float | None = Field(None, json_schema_extra=PERCENTILE_SCHEMA)
    # ratio metrics
    numerator: Union[str, InlineMeasure, None] = None
    denominator: Union[str, InlineMeasure, None] = None
    # every kind
    dimensions: list[str] | None = Field(None, max_length=3)
    grains: list[Grain] | None = Field(None, min_length=1)
    start: dt.date | None = Field(None, json_schema_extra=DAY_SCHEMA)
    anomaly: AnomalySpec | None = None
    alerts: list[str] = Field(default_factory=list, description="Routes of alerts.yml this metric's alerts go to (default: the first matching route).")
    tags: list[str] = Field(default_factory=list, description="Free labels; alert routes can match them (`match: {tag: ...}`).")

    @field_validator("name", mode="before")
    @classmethod
    def _no_double_underscore(cls, value: object) -> object:
        if isinstance(value, str) and "__" in value:
            raise ValueError("must not contain `__` (reserved for generated names such as `<ratio>__numerator`)")
        # `ab_`'s hidden input `ab___numerator` read as metric `ab`'s (its tags, `--metric ab`)
        if isinstance(value, str) and value.endswith("_"):
            raise ValueError("must not end in `_` (generated names join a metric's name to `__<part>`)")
        return value

    @field_validator("start", mode="before")
    @classmethod
    def _start_is_a_date(cls, value: object) -> object:
        return _a_day(value)  # YAML turns 2026-01-01 into a date


class SettleLookback(_Frozen):
    """How many past buckets per grain are recomputed on every scheduled run (late data)."""

    # at most a year back: every scheduled run rebuilds the lookback (and a month
    # lookback of 30,000 reached past year 9999 and crashed the run)
    hour: int = Field(6, ge=0, le=8784)
    day: int = Field(3, ge=0, le=366)
    week: int = Field(1, ge=0, le=53)
    month: int = Field(1, ge=0, le=12)


class ProjectConfig(_Frozen):
    """`metrics/_config.yml`: project-wide defaults."""

    start: dt.date = dt.date(2026, 1, 1)
    grains: list[Grain] = Field(default_factory=lambda: list(GRAINS), min_length=1)
    settle_lookback: SettleLookback = Field(default_factory=SettleLookback)
    owner: str | None = None
    # project-wide anomaly defaults; a metric's own `anomaly:` fields win
    anomaly: AnomalySpec | None = None
    # the example's demo collection asset (raw/*, generated rows): only in the example
    demo: bool = False

    @field_validator("start", mode="before")
    @classmethod
    def _start_is_a_date(cls, value: object) -> object:
        return _a_day(value)
