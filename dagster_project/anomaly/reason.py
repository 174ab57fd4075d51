"""The one-line explanation stored with every scored bucket, e.g.
"orders 412 vs expected 980 (740..1,220), lowest for a Tuesday 14:00 in 8 weeks".

`sentences` words many buckets of one series at once (rows.py: one string per scored
bucket, 150,000 for a quarter of hours): the number format is picked once per column
(`formatter`) instead of per value, and the rows are plain Python values."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def number(x: float, shape: str, proportion: bool = False) -> str:
    """Counts as integers with thousands separators (one decimal below 10), proportions
    as percentages, everything else with 3 significant digits."""
    if x is None:
        return "?"
    return formatter(shape, proportion)(x)


def formatter(shape: str, proportion: bool = False) -> Callable[[float], str]:
    """`number` for one shape and domain: a function of the value alone ('?' for NaN)."""
    if shape == "ratio" and proportion:
        return _percent
    return _count if shape == "count" else _significant


# The formatters: each checks for NaN itself (a wrapper would cost a call per value).
HUGE = 1e15  # and beyond: 2.190e+17, not 22 digits (the far edge of a band at a high sensitivity)
def _percent(x: float) -> str:
    return "?" if isinstance(x, float) and x != x else f"{_significant(100 * x)}%"


def _count(x: float) -> str:
    if isinstance(x, float) and x != x:
        return "?"
    if abs(x) >= HUGE:
        return f"{x:.3e}"
    return f"{x:,.0f}" if abs(x) >= 10 or float(x).is_integer() else f"{x:.1f}"


def _significant(x: float) -> str:
    if isinstance(x, float) and x != x:
        return "?"
    if 999.5 <= abs(x) < HUGE:  # (999.7 to 3 significant digits is 1,000, not 1e+03)
        return f"{x:,.0f}"
    text = f"{x:.3g}"
    if "e" not in text:
        return text
    if 1e-6 <= abs(x) < 1e-4:  # 0.0000871, not 8.709e-05
        return f"{x:.{2 - math.floor(math.log10(abs(x)))}f}"
    return f"{x:.3e}"


def phase_text(bucket: np.datetime64, seasonality: str) -> str:
    """The bucket's place in its cycle: 'a Tuesday 14:00', '14:00', 'a Tuesday', ''."""
    ts = bucket.astype("datetime64[m]").item()
    if seasonality in ("hour_of_week", "hour_and_weekday"):  # (the record compares the same hour of the week)
        return f"a {WEEKDAYS[ts.weekday()]} {ts:%H:%M}"
    if seasonality == "hour_of_day":
        return f"{ts:%H:%M}"
    if seasonality == "day_of_week":
        return f"a {WEEKDAYS[ts.weekday()]}"
    return ""


def span_text(buckets: int, grain: str) -> str:
    """A window of `buckets` buckets of `grain` in words: '8 weeks', '5 days', '24 months'."""
    hours = {"hour": 1, "day": 24, "week": 168}.get(grain)
    if hours is None:
        return _plural(buckets, "month")
    total = buckets * hours
    if total >= 14 * 24 and total % 168 == 0 or total >= 6 * 168:
        return _plural(round(total / 168), "week")
    if total >= 48:
        return _plural(round(total / 24), "day")
    return _plural(total, "hour")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def sentence(*, label: str, shape: str, proportion: bool, value: float, expected: float, lower: float,
             upper: float, flagged: bool, outside: bool, side_ok: bool, volume_ok: bool, volume: float,
             min_volume: float, record: str, phase: str, span: str, numerator: float, denominator: float,
             run: int = 0, sparse: float = math.nan, sparse_min: int = 0) -> str:
    """One scored bucket in words. `record`: 'lowest' / 'highest' when the value is beyond
    every training value of its phase, else ''. `run`: the hours of the run it completes
    (runs.py), 0 for none. `sparse`: for a bucket not judged because its window is mostly
    zeros, its non-zero buckets (fewer than `sparse_min`), else NaN."""
    return sentences(label=label, shape=shape, min_volume=min_volume, proportion=[proportion], value=[value],
                     expected=[expected], lower=[lower], upper=[upper], flagged=[flagged], outside=[outside],
                     side_ok=[side_ok], volume_ok=[volume_ok], volume=[volume], record=[record], phase=[phase],
                     span=[span], numerator=[numerator], denominator=[denominator], run=[run], sparse=[sparse],
                     sparse_min=sparse_min)[0]


def sentences(*, label: str, shape: str, min_volume: float, proportion: Sequence[bool], value: Sequence[float],
              expected: Sequence[float], lower: Sequence[float], upper: Sequence[float], flagged: Sequence[bool],
              outside: Sequence[bool], side_ok: Sequence[bool], volume_ok: Sequence[bool], volume: Sequence[float],
              record: Sequence[str], phase: Sequence[str], span: Sequence[str], numerator: Sequence[float],
              denominator: Sequence[float], run: Sequence[int] | None = None, sparse: Sequence[float] | None = None,
              sparse_min: int = 0) -> list[str]:
    """`sentence` for many buckets of one series: each argument but label, shape,
    min_volume and sparse_min is a sequence of plain Python values, one per bucket."""
    head = f"{label} " if label else ""
    fmt = {False: formatter(shape, False), True: formatter(shape, True)}
    counts = formatter("count")
    out = []
    run = [0] * len(value) if run is None else run
    sparse = [math.nan] * len(value) if sparse is None else sparse
    for (prop, v, e, lo, hi, fl, outs, sok, vok, vol, rec, ph, sp, num, den, rn, few) in zip(
            proportion, value, expected, lower, upper, flagged, outside, side_ok, volume_ok, volume, record,
            phase, span, numerator, denominator, run, sparse):
        f = fmt[bool(prop)]
        vt = f(v)
        if shape in ("ratio", "amount_ratio") and not (math.isnan(num) or math.isnan(den)):
            # "of" for a share of the denominator, "/" for a rate or an amount per unit
            top = counts(num) if shape == "ratio" else _significant(num)
            # a rate's denominator need not be a count (signups per ad spend in k$: 0.00015)
            per = counts(den) if prop or float(den).is_integer() or abs(den) >= 10 else _significant(den)
            vt += f" ({top} of {per})" if prop else f" ({top} / {per})"
        lt, ht = f(lo), f(hi)
        if outs:  # a value beyond an edge never reads as on it: "22 vs ... (0..21.6)", not "(0..22)"
            shown = f(v)
            if v > hi and ht == shown:
                exact, ht = _apart(v, hi, shown)
                vt = exact + vt[len(shown):]
            elif v < lo and lt == shown:
                exact, lt = _apart(v, lo, shown)
                vt = exact + vt[len(shown):]
        text = f"{head}{vt} vs expected {f(e)} ({lt}..{ht})"
        if fl and not outs:  # flagged as the end of a run of hours (runs.py)
            side = "above" if v > e else "below"
            before = _plural(rn - 1, "hour")
            out.append(f"{text}, {_relative(v, e, f if lo < 0 < hi else None)}; with the {before} before it today, "
                       f"together {side} their expected range")
            continue
        out.append(_verdict(text, shape, v, e, fl, outs, sok, vok, vol, min_volume, rec, ph, sp,
                            f if lo < 0 < hi else None, few, sparse_min))
    return out


def _apart(value: float, edge: float, shown: str) -> tuple[str, str]:
    """`value` and `edge` with as many digits as it takes to read them apart (`shown`: the
    value in the row's format; a percentage ends in %), in the style `shown` has: fixed
    decimals where it has no exponent (0.00008710 and 0.00008705, not 8.71e-05)."""
    scale, unit = (100.0, "%") if shown.endswith("%") else (1.0, "")
    a, b = scale * value, scale * edge
    for digits in range(4, 17):
        x, y = f"{a:,.{digits}g}", f"{b:,.{digits}g}"
        if x != y:
            if "e" in x + y and "e" not in shown:
                break
            return x + unit, y + unit
    else:
        return shown, shown
    for decimals in range(1, 40):
        x, y = f"{a:,.{decimals}f}", f"{b:,.{decimals}f}"
        if x != y:
            return x + unit, y + unit
    return shown, shown


def _verdict(text, shape, value, expected, flagged, outside, side_ok, volume_ok, volume, min_volume, record,
             phase, span, absolute=None, sparse=math.nan, sparse_min=0) -> str:
    if flagged:
        if record and (record == "highest") == (value > expected):  # (a record on the flagged side only)
            where = f" for {phase}" if phase else ""
            return f"{text}, {record}{where} in {span}"
        return f"{text}, {_relative(value, expected, absolute)}"
    if not outside:
        return f"{text}, within the expected range"
    above = value > expected
    side = "above" if above else "below"
    if not side_ok:
        return f"{text}, {side} the band but only {'drops' if above else 'rises'} are flagged"
    if not volume_ok and sparse == sparse:  # (not NaN) a mostly-zero window, whatever the shape's volume
        return (f"{text}, {side} the band but its window is mostly zeros with only {sparse:.0f} non-zero "
                f"buckets, under {sparse_min}: too sparse to judge")
    if not volume_ok and not volume == volume:  # NaN: no recent bucket has a volume
        return (f"{text}, {side} the band but no recent bucket shows its volume "
                f"(min_volume {number(min_volume, 'count')})")
    if not volume_ok:
        return (f"{text}, {side} the band but the expected volume {number(volume, 'count')} "
                f"is below min_volume {number(min_volume, 'count')}")
    return f"{text}, {side} the band"


def _relative(value: float, expected: float, absolute: Callable[[float], str] | None = None) -> str:
    """How far from expected, in percent or times; `absolute` (a number format), for a
    band that holds both signs (a net amount around 0): the difference itself, as a
    share of an expected value near 0 means nothing ("51 times the expected value")."""
    if absolute is not None and not math.isnan(expected):
        return f"{absolute(abs(value - expected))} {'above' if value > expected else 'below'} expected"
    if expected == 0 or math.isnan(expected):
        return "above expected" if value > expected else "below expected"
    pct = 100 * (value - expected) / abs(expected)
    if abs(pct) >= 1000:
        return f"{value / expected:,.0f} times the expected value" if expected > 0 else "far from expected"
    return f"{abs(pct):.0f}% {'above' if pct > 0 else 'below'} expected"


def not_enough(label: str, shape: str, proportion: bool, value: float, have: int, need: int) -> str:
    head = f"{label} " if label else ""
    return f"{head}{number(value, shape, proportion)}: not enough history ({have} of {need} buckets)"
