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
of non-zero buckets ((1 - share) ** k). A non-zero bucket followed by k zeros is a
stray, not a launch (a test row weeks before a source goes live), when the window
opens on k zeros before it too. Up to STRAYS of them may come before the launch, which
then must have run a level span without k zeros in a row: until then a rare-event
count's incident (1, 6, 15, 30 errors after two lone ones in 8 weeks) is no launch,
and is judged against the zeros. A window that does not open on k zeros, or has more
strays before its zeros end, was running, not launching (a shop closed at weekends is
not launched every Monday, whatever day its window starts on).

`exclude` ranges: the rule reads the training values (an excluded bucket is a gap), and
also the values with the excluded buckets in (`seen`): a launch hidden inside a range
(its first week excluded) is still a launch, or every bucket of the range would be
judged against the zeros before it. It is the launch when the training values show
none, or show one after fewer than k zeros (a range that ends on a Friday: the
weekend's zeros after it are the new series' own); after more, the excluded one was a
test, and the later one is the launch. The level after an excluded launch is read from
the training values once they hold a level span of values after it (before that, from
all of them: a range that ends before a quiet night would leave only the night). An
excluded one-off spike on a series of zeros is a stray like any other: its zeros after
it still train."""
from __future__ import annotations

import numpy as np

LAUNCH_EVENTS = 10.0  # k zeros in a row at the level after them: at most exp(-10), one in 22,000
STRAYS = 2  # non-zero buckets a launch may have among the zeros before it


def _launched(count: bool, zeros, total, nonzero, n, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        if count:
            rate = total / np.maximum(n, 1)
        else:
            rate = -np.log1p(-np.minimum(nonzero / np.maximum(n, 1), 1.0))
    return (n > 0) & (zeros >= k) & (rate * k >= LAUNCH_EVENTS)


def _launch_in_rows(x: np.ndarray, level: np.ndarray, k: int, count: bool) -> np.ndarray:
    """Per row of x (n, W): the launch's column by the rule, with the level after it
    read from `level` where that has k values after it (else from x); -1: none."""
    n, w = x.shape
    at = np.full(n, -1)
    valid = ~np.isnan(x)
    rows = np.nonzero(np.count_nonzero(valid & (x == 0), axis=1) >= k)[0]  # a launch needs k zeros
    if rows.size == 0:
        return at
    x, level = x[rows], level[rows]
    started = np.nan_to_num(x, nan=0.0) != 0
    rank = np.cumsum(started, axis=1)  # non-zero buckets up to each column
    zeros = np.cumsum(valid[rows] & (x == 0), axis=1)

    def after(a):  # per column: total, non-zero buckets and values from it on
        have = ~np.isnan(a)
        return [np.cumsum(v[:, ::-1], axis=1)[:, ::-1] for v in (np.where(have, a, 0.0), have & (a != 0), have)]

    sums = after(level)
    if level is not x:
        own = after(x)
        sums = [np.where(sums[2] < k, b, a) for a, b in zip(sums, own)]
    col = np.arange(w)
    # the last column that ends k zeros in a row (-1: none)
    run = col - np.maximum.accumulate(np.where(valid[rows] & (x == 0), -1, col), axis=1)
    last_run = np.where(run >= k, col, -1).max(axis=1)
    found, r = np.full(rows.size, -1), np.arange(rows.size)
    opens = None  # the window opens on k zeros: a stray needs them before it too
    for j in range(STRAYS + 1):  # the launch at the (j+1)-th non-zero bucket
        has = rank[:, -1] > j
        p = np.argmax(rank > j, axis=1)
        before = np.where(p > 0, zeros[r, np.maximum(p - 1, 0)], 0)
        if j == 0:  # a stray: k zeros before the next non-zero bucket
            opens = before >= k
            nxt = np.where(rank[:, -1] > 1, np.argmax(rank > 1, axis=1), w)
            blocked = zeros[r, nxt - 1] - zeros[r, p] >= k
        else:  # after strays: a level span run since, without k zeros in a row
            blocked = ~opens | (w - p < k) | (last_run > p)
        ok = has & ~blocked & (found < 0) & _launched(count, before, *(s[r, p] for s in sums), k)
        found = np.where(ok, p, found)
    at[rows] = found
    return at


def before_launch(x: np.ndarray, k: int, count: bool = True, seen: np.ndarray | None = None) -> np.ndarray:
    """(n, W) bool: the positions before the launch, in the windows (rows of x, the
    training values; `seen`: the same with the excluded buckets in) that launched."""
    at = _launch_in_rows(x, x, k, count)
    if seen is not None:
        hidden = _launch_in_rows(seen, x, k, count)
        zeros = np.cumsum(~np.isnan(x) & (x == 0), axis=1)
        r = np.arange(x.shape[0])

        def zeros_before(c):
            return np.where(c > 0, zeros[r, np.maximum(c - 1, 0)], 0)

        at = np.where((hidden >= 0) & ((at < 0) | (zeros_before(at) - zeros_before(hidden) < k)), hidden, at)
    return (at >= 0)[:, None] & (np.arange(x.shape[1])[None, :] < at[:, None])


def since_launch(windows: list[np.ndarray], shape: str, k: int, seen: np.ndarray | None = None) -> list[np.ndarray]:
    """The training windows (count or fraction: their first array is the value) with the
    positions before a launch left out (NaN); other shapes unchanged. `seen`: the first
    array's windows with the `exclude` ranges in (None: nothing excluded)."""
    if shape not in ("count", "fraction"):
        return windows
    pre = before_launch(windows[0], k, shape == "count", seen)
    return [np.where(pre, np.nan, a) for a in windows] if pre.any() else windows


def _prefix(a) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(a)])


def _sums(x: np.ndarray) -> list[np.ndarray]:
    """Prefix sums of x's zeros, values, non-zero buckets and buckets with a value."""
    valid = ~np.isnan(x)
    return [_prefix(valid & (x == 0)), _prefix(np.where(valid, x, 0.0)),
            _prefix(valid & (np.nan_to_num(x, nan=0.0) != 0)), _prefix(valid)]


def _launch_in_series(x: np.ndarray, own: list[np.ndarray], level: list[np.ndarray] | None, t: np.ndarray,
                      lo: np.ndarray, k: int, count: bool) -> np.ndarray:
    """launch_start's rule on the 1-D x (`own`: its _sums) for the windows [lo, t): the
    launch's position, or -1; the level after it from the prefix sums `level` where they
    hold k values after it (None: x's own)."""
    cz = own[0]
    nonzero = np.flatnonzero(np.nan_to_num(x, nan=0.0) != 0)
    first = np.searchsorted(nonzero, lo)
    found = np.full(t.size, -1)
    at = np.append(nonzero, x.size)  # the j-th non-zero position from an index; x.size: none
    idx = np.arange(x.size)
    # per position, the last one at or before it that ends k zeros in a row (-1: none)
    run = idx - np.maximum.accumulate(np.where(~np.isnan(x) & (x == 0), -1, idx))
    last_run = np.maximum.accumulate(np.where(run >= k, idx, -1))
    opens = None  # the window opens on k zeros: a stray needs them before it too
    for j in range(STRAYS + 1):
        i = np.minimum(first + j, nonzero.size)
        p = np.minimum(at[i], t)
        if j == 0:  # a stray: k zeros before the next non-zero bucket
            opens = cz[p] - cz[lo] >= k
            blocked = cz[np.minimum(at[np.minimum(i + 1, nonzero.size)], t)] - cz[np.minimum(p + 1, t)] >= k
        else:  # after strays: a level span run since, without k zeros in a row
            blocked = ~opens | (t - p < k) | (last_run[np.maximum(t - 1, 0)] > p)
        total, nz, m = (s[t] - s[p] for s in own[1:])
        if level is not None:
            lt, lnz, lm = (s[t] - s[p] for s in level[1:])
            trained = lm >= k
            total, nz, m = np.where(trained, lt, total), np.where(trained, lnz, nz), np.where(trained, lm, m)
        ok = (p < t) & ~blocked & (found < 0) & _launched(count, cz[p] - cz[lo], total, nz, m, k)
        found = np.where(ok, p, found)
    return found


def launch_start(x: np.ndarray, t: np.ndarray, w: int, k: int, count: bool = True,
                 seen: np.ndarray | None = None) -> np.ndarray:
    """Per scored position t of the 1-D series x (its window [t - w, t); `seen`: x with
    the excluded buckets in): the launch's position when the window launched
    (before_launch's rule), else t - w."""
    lo = t - w
    sums = _sums(x)
    at = _launch_in_series(x, sums, None, t, lo, k, count)
    if seen is not None:  # a launch the excluded buckets hide: its level from the training values after it
        hidden = _launch_in_series(seen, _sums(seen), sums, t, lo, k, count)
        cz = sums[0]
        at = np.where((hidden >= 0) & ((at < 0) | (cz[np.maximum(at, 0)] - cz[np.maximum(hidden, 0)] < k)), hidden, at)
    return np.where(at >= 0, at, lo)
