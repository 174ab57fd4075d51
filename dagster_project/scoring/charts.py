"""One PNG per recent incident of a series (a run of consecutive flagged buckets): the
last weeks of the series up to the incident's last bucket, the expected band where it was
scored, the incident's flagged points marked. Every bucket of the incident points to it
(metric_anomalies.chart_path; alert messages attach it): an outage of six hours is one
picture, not six near-identical ones. Written under the warehouse folder. Only detections
of the last RECENT_BUCKETS of their grain get one: charts are for alert messages, and an
alert opens only for a recent detection (alerts.yml `open_within`, by default two buckets
plus the settle lookback: 8 hours, 5 days, 3 weeks, 3 months with this project's
lookbacks), while a backfill of history flags old buckets nobody is paged about; a chart
costs about a tenth of a second. A route whose `open_within` reaches further back than
RECENT_BUCKETS gets those older alerts without a chart."""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

RECENT_BUCKETS = {"hour": 48, "day": 14, "week": 8, "month": 6}  # beyond the default open_within
# buckets of context shown before the flagged one
CONTEXT = {"hour": 24 * 14, "day": 56, "week": 26, "month": 24}


# an unreferenced chart younger than this may belong to a scoring step not yet written
# (steps of two runs can overlap; each holds the writer lock only to write its rows)
SWEEP_AFTER_SECONDS = 3600


def chart_root(warehouse_dir: Path, wh) -> Path:
    """Where the charts of warehouse `wh` go: a folder per warehouse (the target, and a
    digest of its file or database and its schema), so one warehouse's sweep never
    deletes a chart another's rows reference (two DuckDB files used from one project,
    two Postgres databases), and two never draw over each other's file."""
    from ..warehouse.lock import warehouse_identity
    digest = hashlib.sha1(repr((warehouse_identity(wh.target, wh.paths), wh.schema)).encode()).hexdigest()[:8]
    return warehouse_dir / "anomaly_charts" / f"{wh.target}-{digest}"


def sweep(root: Path, grain: str, referenced: set[str]) -> int:
    """Delete the charts of `grain` under `root` that no row references any more (their
    detection went away in a re-score, was pruned, or its incident now starts at another
    bucket), once older than SWEEP_AFTER_SECONDS, and the folders left empty as long.
    Best effort: another run may be drawing or sweeping beside it. Returns how many."""
    folder = root / grain
    cutoff = time.time() - SWEEP_AFTER_SECONDS
    # a chart is named by its place under the warehouse's folder (grain/metric/slice/file):
    # the rows' absolute paths may spell the folder another way (a symlink, a container)
    kept = {Path(p).parts[-4:] for p in referenced}
    gone = 0
    try:
        for png in list(folder.rglob("*.png")):
            try:
                if png.relative_to(root).parts not in kept and png.stat().st_mtime < cutoff:
                    png.unlink()
                    gone += 1
            except OSError:  # removed meanwhile, or not ours to remove: left as it is
                continue
        for sub in sorted((d for d in folder.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
            try:
                if sub.stat().st_mtime < cutoff:  # a folder just made is about to get its chart
                    sub.rmdir()  # only when empty
            except OSError:
                pass
    except OSError:  # the folder changed under the walk: the next scoring sweeps again
        pass
    return gone


def chart_path(root: Path, grain: str, metric: str, dimension: str, dimension_value: str, bucket: pd.Timestamp) -> Path:
    label = "total" if not dimension else f"{dimension}={dimension_value}"
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)[:60]
    # slice values are arbitrary text: a digest keeps two values that sanitize alike apart
    digest = hashlib.sha1(f"{dimension}\0{dimension_value}".encode()).hexdigest()[:8]
    return root / grain / metric / f"{safe}-{digest}" / f"{bucket.strftime('%Y%m%dT%H%M')}.png"


def draw(path: Path, history: pd.DataFrame, scored: pd.DataFrame, points, title: str) -> None:
    """history: bucket_start, value (the series); scored: bucket_start, expected, lower,
    upper; points: the flagged bucket starts to mark."""
    # the object API renders with Agg and never imports pyplot (no GUI backend, no global state)
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    def x(ts) -> np.ndarray:  # plain numbers: matplotlib's date units and locator cost most of a chart
        return date2num(pd.to_datetime(pd.Series(ts)).to_numpy(dtype="datetime64[ns]"))

    fig = Figure(figsize=(8, 3), dpi=90)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.16)  # fixed: tight_layout draws the figure twice
    ax = fig.add_subplot()
    ax.plot(x(history.bucket_start), history.value.to_numpy(float), color="#3b6ea5", linewidth=1, label="value")
    band = scored.dropna(subset=["expected"])
    if not band.empty:
        bx = x(band.bucket_start)
        ax.fill_between(bx, band.lower.to_numpy(float), band.upper.to_numpy(float), color="#9ecae1", alpha=0.5,
                        step="mid", label="expected band")
        ax.plot(bx, band.expected.to_numpy(float), color="#636363", linewidth=0.8, linestyle="--", label="expected")
    marked = history[history.bucket_start.isin(pd.to_datetime(pd.Series(points)))]
    ax.scatter(x(marked.bucket_start), marked.value.to_numpy(float), color="#d62728", zorder=5, s=30, label="flagged")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    if len(history):
        lo, hi = pd.Timestamp(history.bucket_start.min()), pd.Timestamp(history.bucket_start.max())
        ticks = pd.to_datetime(np.linspace(lo.value, hi.value, 6)).round("h")
        fmt = "%b %d %H:%M" if hi - lo <= pd.Timedelta(days=20) else "%Y-%m-%d"
        ax.xaxis.set_major_locator(FixedLocator(x(ticks)))
        ax.xaxis.set_major_formatter(FixedFormatter([t.strftime(fmt) for t in ticks]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.tick_params(axis="x", labelsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
