"""The scales a fraction is fitted in: its value, its square root, its log.

A level whose noise does not depend on it (a temperature) is fitted as is; one whose
noise grows with it multiplicatively (a price, a page's latency) in its log; one in
between, whose variance grows in proportion to it (a sum over a random number of
events: revenue per hour, followers of the users seen in an hour), in its square root.
The candidates are compared by likelihood in the value's own units: each scale's fit
pays the log of its Jacobian, JACOBIAN[d] * mean(log x) (y = 2 sqrt(x): dy/dx =
x^-1/2; y = log x: dy/dx = x^-1), so a transform only wins when it really fits better.

The square root and the log take positive values only (the Jacobian of either is
infinite at 0): a window, or a scored value, at or below 0 is fitted as is."""
from __future__ import annotations

import numpy as np

VALUE, SQRT, LOG = "value", "sqrt", "log"
# milder first: on a tie (core.choose) the earlier wins
DOMAINS = (VALUE, SQRT, LOG)
JACOBIAN = {VALUE: 0.0, SQRT: 0.5, LOG: 1.0}


def forward(x: np.ndarray, domain: str) -> np.ndarray:
    """x in the domain's scale; NaN where the domain cannot take x (x <= 0)."""
    x = np.asarray(x, dtype=float)
    if domain == VALUE:
        return x
    positive = x > 0
    safe = np.where(positive, x, 1.0)
    y = np.log(safe) if domain == LOG else 2.0 * np.sqrt(safe)
    return np.where(positive, y, np.nan)


def back(y: np.ndarray, domain: str) -> np.ndarray:
    """The value at y in the domain's scale (a band edge below the square root's 0 is 0)."""
    if domain == VALUE:
        return y
    if domain == LOG:
        return np.exp(y)
    return (np.maximum(y, 0.0) / 2.0) ** 2
