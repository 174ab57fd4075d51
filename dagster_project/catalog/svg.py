"""Inline SVG charts: a line chart of one metric at one grain (the total and its top
slices, anomalies marked) and a sparkline. Plain strings; every text is escaped."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from html import escape

COLORS = ["#1f4e9c", "#e07b00", "#2a9d55", "#8e44ad", "#c0392b", "#6d6d6d"]
ANOMALY = "#d62728"


@dataclass
class Line:
    label: str
    points: list[tuple[dt.datetime, float | None]]  # None: a gap
    marks: list[tuple[dt.datetime, float | None, str]] = field(default_factory=list)  # anomalies: bucket, value, reason
    partial: dt.datetime | None = None  # the bucket in progress: drawn dashed and hollow, not as a drop


def number(v: float | None) -> str:
    """A value for people: 1,234 / 12.5k / 3.2M / 0.1234."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}B"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if float(v).is_integer():
        return f"{int(v):,}"
    if a >= 100:
        return f"{v:,.1f}"
    return f"{v:.4g}"


def tick(v: float) -> str:
    """An axis label: three significant digits."""
    if not math.isfinite(v):
        return number(v)
    a = abs(v)
    if a >= 1e4 or a == 0:
        return number(round(v, -int(math.floor(math.log10(a))) + 2) if a else 0.0)
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _drawn(v: float | None) -> bool:
    """A value the chart can place: not a gap, not inf or nan (a double overflowed by a
    metric's expression), not so large that the axis arithmetic overflows."""
    return v is not None and math.isfinite(v) and abs(v) < 1e300


def _bounds(lines: list[Line]) -> tuple[float, float]:
    values = [v for ln in lines for _, v in ln.points if _drawn(v)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    lo = min(lo, 0.0) if lo >= 0 and lo < hi * 0.5 else lo  # counts start at 0; narrow bands stay readable
    if hi == lo:
        hi, lo = hi + (abs(hi) or 1) * 0.5, lo - (abs(lo) or 1) * 0.5 if lo != 0 else 0.0
    pad = (hi - lo) * 0.05
    return lo - (pad if lo != 0 else 0), hi + pad


def _path(points, x, y) -> str:
    out, pen = [], False
    for t, v in points:
        if not _drawn(v):
            pen = False
            continue
        out.append(f"{'L' if pen else 'M'}{x(t):.1f},{y(v):.1f}")
        pen = True
    return " ".join(out)


def chart(lines: list[Line], start: dt.datetime, end: dt.datetime, title: str, width: int = 760,
          height: int = 240) -> str:
    """A line chart over [start, end]: the first line is the total (thicker)."""
    left, right, top, bottom = 64, 34, 24, 40
    w, h = width - left - right, height - top - bottom
    span = max((end - start).total_seconds(), 1.0)
    lo, hi = _bounds(lines)

    def x(t: dt.datetime) -> float:
        return left + (t - start).total_seconds() / span * w

    def y(v: float) -> float:
        return top + h - (v - lo) / (hi - lo) * h

    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}">', f"<title>{escape(title)}</title>",
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafbfc" stroke="#e1e4e8"/>']
    for i in range(5):  # horizontal grid and y labels
        v = lo + (hi - lo) * i / 4
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eef0f2"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{escape(tick(v))}</text>')
    days = max((end - start).days, 1)
    for i in range(6):  # date ticks
        t = start + (end - start) * i / 5
        label = t.strftime("%b %d" if days > 2 else "%b %d %H:%M")
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + h}" y2="{top + h + 4}" stroke="#999"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{top + h + 18}" text-anchor="middle" class="tick">{escape(label)}</text>')
    for i, ln in enumerate(lines):
        color = COLORS[i % len(COLORS)]
        done = [p for p in ln.points if ln.partial is None or p[0] < ln.partial]
        open_ = [p for p in ln.points if ln.partial is not None and p[0] >= ln.partial and _drawn(p[1])]
        d = _path(done, x, y)
        single = [p for p in done if _drawn(p[1])]
        if open_ and single:  # dashed: the bucket is still filling up
            (t0, v0), (t1, v1) = single[-1], open_[0]
            parts.append(f'<path class="partial" d="M{x(t0):.1f},{y(v0):.1f} L{x(t1):.1f},{y(v1):.1f}" fill="none" '
                         f'stroke="{color}" stroke-width="1.3" stroke-dasharray="4 3"/>')
        for t, v in open_:
            parts.append(f'<circle class="partial" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="#fff" stroke="{color}" '
                         f'stroke-width="1.5"><title>{escape(ln.label)} {t:%Y-%m-%d %H:%M}: {escape(number(v))} '
                         f'so far (bucket in progress)</title></circle>')
        if d:
            parts.append(f'<path class="series" data-label="{escape(ln.label)}" d="{d}" fill="none" stroke="{color}" '
                         f'stroke-width="{2.2 if i == 0 else 1.3}" stroke-linejoin="round"/>')
        if len(single) <= 12:  # few buckets (months): show the points
            for t, v in single:
                parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                             f'<title>{escape(ln.label)} {t:%Y-%m-%d %H:%M}: {escape(number(v))}</title></circle>')
    for ln in lines:  # anomalies last: on top of every line
        for t, v, reason in ln.marks:
            if not _drawn(v) or t < start or t > end:
                continue
            parts.append(f'<circle class="anomaly" cx="{x(t):.1f}" cy="{y(v):.1f}" r="5" fill="rgba(214,39,40,0.25)" '
                         f'stroke="{ANOMALY}" stroke-width="2"><title>anomaly, {escape(ln.label)} {t:%Y-%m-%d %H:%M}: '
                         f'{escape(number(v))} ({escape(reason)})</title></circle>')
    lx = left
    for i, ln in enumerate(lines):  # legend
        color = COLORS[i % len(COLORS)]
        parts.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14}" y="15" class="legend">{escape(ln.label)}</text>')
        lx += 24 + 7 * len(ln.label)
    if any(ln.marks for ln in lines):
        parts.append(f'<circle cx="{lx + 5}" cy="11" r="4.5" fill="none" stroke="{ANOMALY}" stroke-width="2"/>')
        parts.append(f'<text x="{lx + 14}" y="15" class="legend">anomaly</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(points: list[tuple[dt.datetime, float | None]], width: int = 120, height: int = 28) -> str:
    values = [v for _, v in points if _drawn(v)]
    if len(values) < 2:
        return f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"></svg>'
    t0, t1 = points[0][0], points[-1][0]
    span = max((t1 - t0).total_seconds(), 1.0)
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1

    def x(t):
        return 1 + (t - t0).total_seconds() / span * (width - 2)

    def y(v):
        return height - 2 - (v - lo) / (hi - lo) * (height - 4)

    return (f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}"><path d="{_path(points, x, y)}" fill="none" stroke="{COLORS[0]}" stroke-width="1.4"/></svg>')
