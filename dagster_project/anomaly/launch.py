"""A series that opens on a run of zeros and then runs at a level at which such a run is
improbable has launched inside its window: a new source, a new slice, a metric whose
`start` predates its data. The zeros before the launch are not its past: read as
training values they would make "no seasonality" fit best (a run of zeros fits any
model perfectly), call a sum "mostly zeros" (sparse.py), and the trailing levels across
the launch would set a count's bias to two or three times the new level, so the weeks
after a launch would be flagged as drops. A launched window's history starts at the
launch: "not enough history" until it has its minimum after it, as a new series. The
launch bucket itself is still judged against the zeros (its window holds no value
after them yet): a jump from nothing is flagged.

The rule, with k the level span: at least k zeros before the first value that is not
0, and after it a level at which k zeros in a row are improbable, at most
exp(-LAUNCH_EVENTS): a count's mean (Poisson, exp(-mean * k)), any other series' share
of non-zero buckets ((1 - share) ** k).

The rule reads the values `exclude` ranges leave out of training: a range hides values
from training, not the start of the series. A launch inside a range (its first week
excluded) is still a launch: the buckets after it are judged on what came after, not,
each of them, against the zeros before it."""
from __future__ import annotations

import numpy as np

from .stats import nansum

LAUNCH_EVENTS = 10.0  # k zeros in a row at the level after them: at most exp(-10), one in 22,000


def _launched(count: bool, zeros, total, nonzero, n, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        if count:
            rate = total / np.maximum(n, 1)
        else:
            rate = -np.log1p(-np.minimum(nonzero / np.maximum(n, 1), 1.0))
    return (n > 0) & (zeros >= k) & (rate * k >= LAUNCH_EVENTS)


def before_launch(x: np.ndarray, k: int, count: bool = True) -> np.ndarray:
    """(n, W) bool: the positions before the launch, in the windows (rows of x) that
    launched."""
    n, w = x.shape
    started = np.nan_to_num(x, nan=0.0) != 0
    first = np.where(started.any(axis=1), np.argmax(started, axis=1), w)
    pos = np.arange(w)[None, :]
    before = pos < first[:, None]
    after = ~before & ~np.isnan(x)
    zeros = np.count_nonzero(before & (x == 0), axis=1)
    total = nansum(np.where(after, x, np.nan), 1)
    nonzero = np.count_nonzero(after & (x != 0), axis=1)
    launched = _launched(count, zeros, total, nonzero, np.count_nonzero(after, axis=1), k)
    return launched[:, None] & before


def since_launch(windows: list[np.ndarray], shape: str, k: int, seen: np.ndarray | None = None) -> list[np.ndarray]:
    """The training windows (count or fraction: their first array is the value) with the
    positions before a launch left out (NaN); other shapes unchanged. `seen`: the same
    windows' values with the `exclude` ranges in (default: the first training array)."""
    if shape not in ("count", "fraction"):
        return windows
    pre = before_launch(windows[0] if seen is None else seen, k, shape == "count")
    return [np.where(pre, np.nan, a) for a in windows] if pre.any() else windows


def launch_start(x: np.ndarray, t: np.ndarray, w: int, k: int, count: bool = True) -> np.ndarray:
    """Per scored position t of the 1-D series x (its window [t - w, t)): the launch's
    position when the window launched (before_launch's rule), else t - w."""
    valid = ~np.isnan(x)
    started = np.nan_to_num(x, nan=0.0) != 0
    idx = np.where(started, np.arange(x.size), x.size)
    first = np.minimum.accumulate(idx[::-1])[::-1]  # the first position >= i that is not 0

    def prefix(a):
        return np.concatenate([[0], np.cumsum(a)])

    cz, cv, cs, cnz = prefix(valid & (x == 0)), prefix(valid), prefix(np.where(valid, x, 0.0)), \
        prefix(valid & started)
    lo = t - w
    f = np.minimum(first[lo], t)
    launched = (f < t) & _launched(count, cz[f] - cz[lo], cs[t] - cs[f], cnz[t] - cnz[f], cv[t] - cv[f], k)
    return np.where(launched, f, lo)
