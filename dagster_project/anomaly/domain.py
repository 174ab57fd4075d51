"""The scales a fraction is fitted in: its value, its square root, its log.

A level whose noise does not depend on it (a temperature) is fitted as is; one whose
noise grows with it multiplicatively (a price, a page's latency) in its log; one in
between, whose variance grows in proportion to it (a sum over a random number of
events: revenue per hour, followers of the users seen in an hour), in its square root.
The candidates are compared by likelihood in the value's own units: each scale's fit
pays the log of its Jacobian, JACOBIAN[d] * mean(log(x + offset)) (y = 2 sqrt(x +
offset): dy/dx = (x + offset)^-1/2; y = log x: dy/dx = x^-1), so a transform only wins
when it really fits better.

The log takes positive values only (its Jacobian is infinite at 0). So does the square
root of a window without zeros. A window with zeros among values >= 0 (a sum over few
events: an hour with no order has revenue 0) takes the square root of x + offset, the
offset (`sqrt_offset`) being 3/8 of a usual event's size, as Anscombe's 2 sqrt(x + 3/8)
for a count: 0 and one event stay apart by the same few sds at any money scale. Any
other window, or a scored value the scale cannot take, is fitted as is."""
from __future__ import annotations

import numpy as np

VALUE, SQRT, LOG = "value", "sqrt", "log"
JACOBIAN = {VALUE: 0.0, SQRT: 0.5, LOG: 1.0}
ANSCOMBE = 0.375


def sqrt_offset(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per row of windows x (ok: the values present): 0 when every value is > 0; with
    zeros among values >= 0, 3/8 of the mean event size, mean / rate with the events per
    bucket estimated as a Poisson rate, -ln(share of zeros); NaN (the square root cannot
    take the window) when a value is < 0 or every value is 0."""
    with np.errstate(invalid="ignore"):
        present = np.count_nonzero(ok, axis=1)
        zeros = np.count_nonzero(ok & (x == 0), axis=1)
        negative = np.any(ok & (x < 0), axis=1)
        total = np.sum(np.where(ok, x, 0.0), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = -np.log(zeros / np.maximum(present, 1))
        offset = np.where(zeros > 0, ANSCOMBE * total / np.maximum(present, 1) / rate, 0.0)
    bad = negative | (present == 0) | (zeros == present) | ~np.isfinite(offset)
    return np.where(bad, np.nan, offset)


def takes(x: np.ndarray, domain: str, offset=0.0) -> np.ndarray:
    """Where the domain's scale takes x: the log x > 0, the square root x >= 0 with x +
    offset > 0 (NaN offset: nowhere)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore"):
        if domain == VALUE:
            return np.ones(x.shape, bool)
        if domain == LOG:
            return x > 0
        return (x >= 0) & (x + offset > 0)


def forward(x: np.ndarray, domain: str, offset=0.0) -> np.ndarray:
    """x in the domain's scale; NaN where the domain cannot take x (`takes`)."""
    x = np.asarray(x, dtype=float)
    if domain == VALUE:
        return x
    fine = takes(x, domain, offset)
    if domain == LOG:
        return np.where(fine, np.log(np.where(fine, x, 1.0)), np.nan)
    return np.where(fine, 2.0 * np.sqrt(np.where(fine, x + offset, 1.0)), np.nan)


_LOG_MAX = float(np.log(np.finfo(float).max)) - 1.0


def back(y: np.ndarray, domain: str, offset=0.0) -> np.ndarray:
    """The value at y in the domain's scale (a band edge below the square root's 0 is
    -offset: the caller clips a series that never goes below 0 at 0). Back from the square
    root, a value within ROUNDED of the offset is 0: a zero's level, a mean of equal roots,
    squared less the offset left 1.7e-13 (rounding is about 1e-16 of the offset; the
    offset is 3/8 of a usual event, so nothing that small is a real level)."""
    if domain == VALUE:
        return y
    if domain == LOG:  # (a band edge thousands of sds out, a high sensitivity on a young window: finite)
        return np.exp(np.minimum(y, _LOG_MAX))
    x = (np.maximum(y, 0.0) / 2.0) ** 2 - offset
    return np.where(np.abs(x) <= ROUNDED * np.abs(offset), 0.0, x)


ROUNDED = 1e-9  # of the square root's offset: far above the rounding its square and difference leave
