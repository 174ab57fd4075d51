"""The grains and their bucket arithmetic (naive UTC): one list for the whole package,
importable without pydantic, sqlglot or pandas so a CLI read starts fast."""
from __future__ import annotations

import calendar
import datetime as dt

GRAINS = ("hour", "day", "week", "month")


def floor_to_grain(day: dt.date, grain: str) -> dt.datetime:
    """The start of the bucket of `grain` that contains midnight of `day` (UTC)."""
    ts = dt.datetime(day.year, day.month, day.day)
    if grain == "week":
        return ts - dt.timedelta(days=ts.weekday())
    if grain == "month":
        return ts.replace(day=1)
    return ts


def bucket_of(ts: dt.datetime, grain: str) -> dt.datetime:
    """The start of the bucket of `grain` that holds `ts` (the bucket in progress, for now)."""
    return ts.replace(minute=0, second=0, microsecond=0) if grain == "hour" else floor_to_grain(ts.date(), grain)


def add_grain(ts: dt.datetime, grain: str, n: int = 1) -> dt.datetime:
    if grain == "hour":
        return ts + dt.timedelta(hours=n)
    if grain == "day":
        return ts + dt.timedelta(days=n)
    if grain == "week":
        return ts + dt.timedelta(days=7 * n)
    month = ts.month - 1 + n
    year, month = ts.year + month // 12, month % 12 + 1
    # a day the target month lacks is its last (now, Dec 31, minus 6 months: June 30)
    return ts.replace(year=year, month=month, day=min(ts.day, calendar.monthrange(year, month)[1]))


def ceil_to_grain(day: dt.date, grain: str) -> dt.datetime:
    floor = floor_to_grain(day, grain)
    midnight = dt.datetime(day.year, day.month, day.day)
    return floor if floor == midnight else add_grain(floor, grain)
