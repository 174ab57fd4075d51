"""A young hourly series (its first three weeks) whose noise has a long upper side: the
scale it is fitted in is chosen on few residuals, and a band symmetric in the value
flags its ordinary large values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dagster_project.anomaly import DetectorSettings, SeriesJob, score_many

START = pd.Timestamp("2024-01-02")  # a Tuesday
DAYS = 21


def _lognormal_hours(seed: int, sigma: float) -> pd.DataFrame:
    """A price-like gauge: lognormal around a daily cycle (its log is normal)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=24 * DAYS, freq="h")
    cycle = 0.35 + 0.65 * np.sin(np.arange(ts.size) % 24 / 24 * np.pi) ** 2
    nan = np.full(ts.size, np.nan)
    return pd.DataFrame({"bucket_start": ts, "value": rng.lognormal(3.0 + 0.3 * cycle, sigma), "count": nan,
                         "numerator": nan, "denominator": nan})


@pytest.mark.parametrize("sigma", [0.3, 0.5])
def test_a_young_series_with_a_long_upper_side_is_rarely_flagged(sigma):
    frames = [_lognormal_hours(seed, sigma) for seed in range(12)]
    end = (START + pd.Timedelta(days=DAYS)).to_pydatetime()
    jobs = [SeriesJob(f, "fraction", "hour", DetectorSettings(), START.to_pydatetime(), end, end, 6, "m")
            for f in frames]
    out = score_many(jobs)
    out = out[out.score.notna()]  # from the minimum history on (3 days)
    flagged = out.is_anomaly.to_numpy(bool)
    first = flagged & ~np.r_[False, flagged[:-1]] | flagged & np.r_[True, np.diff(out.job.to_numpy()) != 0]
    runs = int(first.sum())
    months = len(out) / 720  # series x 30 days of scored hours
    # a well-fitted series is flagged by chance about 0.3 times in 30 days at the hour's
    # sensitivity; a young window knows its tails less well, so up to 1.5 here. Fitted as
    # if symmetric in the value (the scales compared on too few residuals), 2.2 to 2.5.
    assert runs <= 1.5 * months, (runs, round(months, 1))
