"""Bucket arithmetic (dagster_project/grains.py) against pandas' calendar offsets."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dagster_project.grains import add_grain


@pytest.mark.parametrize("n", [-13, -6, -1, 1, 2, 14])
def test_add_grain_months_from_any_day_is_pandas_calendar_arithmetic(n):
    """Every day of two years (leap year included), at a time of day: a day the target
    month lacks is its last day, as pandas' DateOffset has it."""
    for ts in pd.date_range("2027-01-01 07:30", "2028-12-31 07:30", freq="D"):
        assert add_grain(ts.to_pydatetime(), "month", n) == (ts + pd.DateOffset(months=n)).to_pydatetime(), ts


@pytest.mark.parametrize("grain, step", [("hour", pd.Timedelta(hours=1)), ("day", pd.Timedelta(days=1)),
                                         ("week", pd.Timedelta(days=7))])
def test_add_grain_fixed_steps(grain, step):
    ts = dt.datetime(2028, 2, 29, 23)
    assert [add_grain(ts, grain, n) for n in (-3, 0, 5)] == [(pd.Timestamp(ts) + n * step).to_pydatetime()
                                                              for n in (-3, 0, 5)]
