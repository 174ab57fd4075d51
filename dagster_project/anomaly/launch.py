"""A count series that opens on a run of zeros and then runs at a level at which such a
run is improbable has launched inside its window: a new source, a new slice, a metric
whose `start` predates its data. The zeros before the launch are not its past: read as
training values they would make "no seasonality" fit best (a run of zeros fits any
model perfectly), and the trailing levels across the launch would set the baseline's
bias to two or three times the new level, so the weeks after a launch would be flagged
as drops. The launch bucket itself is still judged against them (its window holds no
value after the zeros yet): a jump from nothing is flagged."""
from __future__ import annotations

import numpy as np

from .stats import nansum

LAUNCH_EVENTS = 10.0  # k zeros in a row at the level after them: at most exp(-10), one in 22,000


def before_launch(x: np.ndarray, k: int) -> np.ndarray:
    """(n, W) bool: the positions before the launch, in the windows that launched (at
    least k zeros before their first value above 0, and a mean after it at which k zeros
    in a row are improbable under Poisson: mean * k >= LAUNCH_EVENTS)."""
    n, w = x.shape
    started = np.nan_to_num(x, nan=0.0) > 0
    first = np.where(started.any(axis=1), np.argmax(started, axis=1), w)
    pos = np.arange(w)[None, :]
    before = pos < first[:, None]
    zeros = np.count_nonzero(before & (x == 0), axis=1)
    after = ~before & ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = nansum(np.where(after, x, np.nan), 1) / np.maximum(np.count_nonzero(after, axis=1), 1)
    launched = (first < w) & (zeros >= k) & (mean * k >= LAUNCH_EVENTS)
    return launched[:, None] & before
