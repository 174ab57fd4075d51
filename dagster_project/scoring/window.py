"""Score one grain's window: read each enabled metric's series (the window plus its
training history), run the detectors of dagster_project/anomaly, draw a chart per
recent incident (charts.py), and replace the window's rows of metric_anomalies. The anomalies_<grain>
assets and `metrics anomalies --backtest` call this; it imports no Dagster."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..anomaly.incidents import incident_labels
from ..grains import add_grain
from ..printable import slice_text
from ..spec.resolved import Metric, MetricsProject
from ..warehouse.anomaly_store import NAMES, chart_paths, replace_window
from ..warehouse.connection import Warehouse, WarehouseError
from . import charts
from .inputs import SliceSeries, detector_settings, read_inputs, shape_of


@dataclass
class WindowSummary:
    grain: str
    start: dt.datetime
    end: dt.datetime
    metrics: int = 0
    series_scored: int = 0
    slices_skipped: int = 0
    buckets_scored: int = 0
    flagged: int = 0
    worst: list[dict] = field(default_factory=list)  # the strongest detections, for metadata
    charts: list[str] = field(default_factory=list)
    skipped_by_metric: dict[str, int] = field(default_factory=dict)
    # (series read, its scored rows) per slice, for the charts; not in frame.attrs, which
    # pandas deep-copies on every operation
    parts: list = field(default_factory=list, repr=False)


def scored_metrics(project: MetricsProject, grain: str, names: set[str] | None = None,
                   status: str = "active") -> list[Metric]:
    """Public metrics of this grain and status (drafts: `metrics run --include-drafts`)
    whose anomaly detection is enabled."""
    return sorted((m for m in project.metrics.values()
                   if m.status == status and m.public and grain in m.grains and m.anomaly.enabled
                   and (names is None or m.name in names)), key=lambda m: m.name)


def score(wh: Warehouse, project: MetricsProject, grain: str, start: dt.datetime, end: dt.datetime,
          now: dt.datetime, *, metrics: list[Metric] | None = None, settings_for=None) -> tuple[pd.DataFrame, WindowSummary]:
    """Rows for metric_anomalies (without chart_path, run_id, computed_at) over [start, end)
    and a summary. `settings_for(metric)` overrides the detector settings (backtests)."""
    from ..anomaly import SeriesJob, history_needed, score_many
    metrics = scored_metrics(project, grain) if metrics is None else metrics
    settings_for = settings_for or detector_settings
    summary = WindowSummary(grain, start, end, metrics=len(metrics))
    if not metrics:
        return pd.DataFrame(columns=NAMES), summary
    settings = {m.name: settings_for(m) for m in metrics}
    history = max(history_needed(grain, s) for s in settings.values())
    lo = add_grain(start, grain, -history)
    inputs = read_inputs(wh, grain, metrics, lo, end, alive_from=start,
                         history={name: history_needed(grain, s) for name, s in settings.items()})
    summary.skipped_by_metric = {k: v for k, v in inputs.skipped.items() if v}
    summary.slices_skipped = sum(inputs.skipped.values())
    settle = getattr(project.config.settle_lookback, grain)
    series = inputs.series
    jobs = [SeriesJob(series=s.frame, shape=shape_of(s.metric, project), grain=grain, settings=settings[s.metric.name],
                      score_from=start, score_until=end, now=now, settle_buckets=settle,
                      label=s.metric.name + (f" [{slice_text(s.dimension, s.dimension_value)}]" if s.dimension else ""))
            for s in series]
    summary.series_scored = len(jobs)
    # one call for every slice: the detectors batch series of the same shape and settings
    with np.errstate(all="ignore"):  # NaN gaps and empty windows are expected: no warning per bucket
        scored_all = score_many(jobs) if jobs else pd.DataFrame(columns=["job"])
    scored_all = _while_alive(scored_all, series)
    # the slice's key columns from the job index: rows come in job order, so each series'
    # rows are one contiguous run (its part, for the charts)
    frame, parts = pd.DataFrame(columns=NAMES), []
    if len(scored_all):
        job = scored_all["job"].to_numpy(dtype=int)
        frame = scored_all.drop(columns="job")
        for column, key in (("metric", lambda s: s.metric.name), ("grain", lambda s: grain),
                            ("dimension", lambda s: s.dimension), ("dimension_value", lambda s: s.dimension_value)):
            frame[column] = np.array([key(s) for s in series], dtype=object)[job]
        bounds = np.flatnonzero(np.diff(job, prepend=-1, append=-1))
        parts = [(series[job[lo]], frame.iloc[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    summary.buckets_scored = len(frame)
    if len(frame):
        flagged = frame[frame.is_anomaly.astype(bool)]
        summary.flagged = len(flagged)
        worst = flagged.reindex(flagged.score.abs().sort_values(ascending=False).index).head(5)
        summary.worst = [{"metric": r.metric, "slice": slice_text(r.dimension, r.dimension_value),
                          "bucket_start": pd.Timestamp(r.bucket_start).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "score": round(float(r.score), 2), "reason": r.reason} for r in worst.itertuples()]
    summary.parts = parts
    return frame, summary


def _while_alive(scored: pd.DataFrame, series: list[SliceSeries]) -> pd.DataFrame:
    """`scored` (score_many's rows, in job order) without a slice's rows where it does
    not exist (SliceSeries.alive)."""
    if not len(scored) or all(s.alive is None for s in series):
        return scored
    job = scored["job"].to_numpy(dtype=int)
    bucket = scored["bucket_start"].to_numpy(dtype="datetime64[ns]")
    keep = np.ones(len(scored), bool)
    bounds = np.flatnonzero(np.diff(job, prepend=-1, append=-1))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = series[job[lo]].alive
        if mask is not None:
            spine = series[job[lo]].frame.bucket_start.to_numpy(dtype="datetime64[ns]")
            keep[lo:hi] = mask[np.searchsorted(spine, bucket[lo:hi])]
    return scored[keep].reset_index(drop=True)


def write(wh: Warehouse, grain: str, frame: pd.DataFrame, summary: WindowSummary, run_id: str,
          computed_at: dt.datetime, chart_root=None, metrics: list[str] | None = None,
          keep: list[str] | None = None) -> int:
    """Draw the flagged buckets' charts (when chart_root is given) and replace the window
    (its rows of `metrics` only, when given: a re-score of some metrics; else of every
    metric but `keep`: the drafts `metrics run --include-drafts` scored)."""
    frame = frame.copy()
    paths: dict[tuple, str] = {}
    if chart_root is not None and len(frame):
        recent = pd.Timestamp(add_grain(computed_at, grain, -charts.RECENT_BUCKETS[grain]))
        for s, scored in summary.parts:
            flagged = scored[scored.is_anomaly.astype(bool) & (pd.to_datetime(scored.bucket_start) >= recent)]
            for incident in _incidents(flagged, grain):
                first, last = pd.Timestamp(incident.bucket_start.iloc[0]), pd.Timestamp(incident.bucket_start.iloc[-1])
                worst = incident.loc[incident.score.abs().idxmax()]
                earlier = _begun_before(wh, grain, s, first) if first == pd.Timestamp(summary.start) else None
                path = None
                if earlier is not None and len(earlier):  # one incident across windows: one chart
                    first = pd.Timestamp(earlier.bucket_start.iloc[0])
                    path = earlier.chart_path.iloc[-1]  # the incident's chart, named after its first bucket
                    path = Path(path) if path and Path(path).is_relative_to(chart_root) else None
                path = path or charts.chart_path(chart_root, grain, s.metric.name, s.dimension, s.dimension_value,
                                                 first)
                lo = last - (pd.Timestamp(add_grain(last.to_pydatetime(), grain, 1)) - last) * charts.CONTEXT[grain]
                history = s.frame[(s.frame.bucket_start >= lo) & (s.frame.bucket_start <= last)]
                band = scored[(scored.bucket_start >= lo) & (scored.bucket_start <= last)]
                points = incident.bucket_start
                if earlier is not None and len(earlier):
                    band = pd.concat([earlier[band.columns.intersection(earlier.columns)], band], ignore_index=True)
                    points = pd.concat([earlier.bucket_start, points], ignore_index=True)
                charts.draw(path, history, band, points, worst.reason)
                for bucket in incident.bucket_start:
                    paths[(s.metric.name, s.dimension, s.dimension_value, pd.Timestamp(bucket))] = str(path)
                summary.charts.append(str(path))
    chart = np.full(len(frame), None, dtype=object)
    if paths:  # look up only the rows of a charted bucket: a key per row costs a second per 100,000
        bucket = pd.to_datetime(frame.bucket_start)
        rows = np.flatnonzero(bucket.isin({k[3] for k in paths}))
        keys = zip(frame.metric.iloc[rows], frame.dimension.iloc[rows], frame.dimension_value.iloc[rows],
                   bucket.iloc[rows])
        chart[rows] = [paths.get(k) for k in keys]
    frame["chart_path"] = chart.tolist()
    frame["run_id"] = run_id
    frame["computed_at"] = pd.Timestamp(computed_at)
    for c in ("is_anomaly", "provisional"):
        frame[c] = frame[c].astype(bool)
    written = replace_window(wh, grain, summary.start, summary.end, frame[NAMES], metrics=metrics, restamp=True,
                             keep=keep)
    if chart_root is not None:  # the charts the replaced rows referenced and these do not
        try:
            charts.sweep(Path(chart_root), grain, chart_paths(wh, grain))
        except WarehouseError:  # best effort, the rows are written: the next scoring sweeps
            pass
    return written


def _begun_before(wh: Warehouse, grain: str, s: SliceSeries, first: pd.Timestamp) -> pd.DataFrame:
    """The stored flagged buckets of the series right before `first` (an earlier run's
    window: the hour schedule's windows split at midnight), oldest first, with their
    band and chart: an incident that crosses the window's start keeps its first bucket's
    chart. Read back as far as a chart shows; the last one's chart_path names the
    incident's chart however long ago it began."""
    from ..warehouse.anomaly_store import read_anomalies
    lo = add_grain(first.to_pydatetime(), grain, -charts.CONTEXT[grain])
    columns, rows = read_anomalies(wh, metric=s.metric.name, grain=grain, since=lo, until=first.to_pydatetime(),
                                   dimension=s.dimension, dimension_value=s.dimension_value, flagged_only=False)
    stored = pd.DataFrame(rows, columns=columns)  # newest first
    run, expect = [], first
    for r in stored.itertuples():
        expect = pd.Timestamp(add_grain(expect.to_pydatetime(), grain, -1))
        if pd.Timestamp(r.bucket_start) != expect or not r.is_anomaly:
            break
        run.append(r.Index)
    out = stored.loc[run[::-1], ["bucket_start", "expected", "lower", "upper", "chart_path"]]
    out["bucket_start"] = pd.to_datetime(out["bucket_start"])
    return out.reset_index(drop=True)


def _incidents(flagged: pd.DataFrame, grain: str) -> list[pd.DataFrame]:
    """The flagged rows of one series split into runs of consecutive buckets."""
    flagged = flagged.sort_values("bucket_start")
    labels = incident_labels(flagged.bucket_start.to_numpy(dtype="datetime64[ns]"), grain)
    return [part for _, part in flagged.groupby(labels, sort=True)]

