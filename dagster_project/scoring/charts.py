"""One PNG per recent flagged bucket: the last weeks of the series, the expected band where
it was scored, the flagged point marked. Written under the warehouse folder; the path goes
to metric_anomalies.chart_path (alert messages attach it). Only detections of the last
RECENT_DAYS get one: a backfill of history flags old buckets nobody is paged about, and a
chart costs a tenth of a second."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

RECENT_DAYS = 14
# buckets of context shown before the flagged one
CONTEXT = {"hour": 24 * 14, "day": 56, "week": 26, "month": 24}


def chart_path(root: Path, grain: str, metric: str, dimension: str, dimension_value: str, bucket: pd.Timestamp) -> Path:
    label = "total" if not dimension else f"{dimension}={dimension_value}"
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)[:60]
    # slice values are arbitrary text: a digest keeps two values that sanitize alike apart
    digest = hashlib.sha1(f"{dimension}\0{dimension_value}".encode()).hexdigest()[:8]
    return root / grain / metric / f"{safe}-{digest}" / f"{bucket.strftime('%Y%m%dT%H%M')}.png"


def draw(path: Path, history: pd.DataFrame, scored: pd.DataFrame, bucket: pd.Timestamp, title: str) -> None:
    """history: bucket_start, value (the series); scored: bucket_start, expected, lower, upper."""
    # the object API renders with Agg and never imports pyplot (no GUI backend, no global state)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=90)
    ax = fig.subplots()
    ax.plot(history.bucket_start, history.value, color="#3b6ea5", linewidth=1, label="value")
    band = scored.dropna(subset=["expected"])
    if not band.empty:
        ax.fill_between(band.bucket_start, band.lower, band.upper, color="#9ecae1", alpha=0.5, step="mid",
                        label="expected band")
        ax.plot(band.bucket_start, band.expected, color="#636363", linewidth=0.8, linestyle="--", label="expected")
    point = history[history.bucket_start == bucket]
    ax.scatter(point.bucket_start, point.value, color="#d62728", zorder=5, s=30, label="flagged")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
