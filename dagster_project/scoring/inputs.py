"""What the detectors read: each scored metric's series at one grain, per slice, dense over
its buckets, from the `metric_series_<grain>` view (one query per grain).

Densified by the rule every reader uses (warehouse/read.py): the total is stored for
every built bucket; a slice bucket with no row is the metric's empty value (0 for
count-shaped metrics, a gap otherwise); a bucket that was never built is a gap (NaN),
never 0.

A slice exists from its first row until a training window after its last one: it is
scored only at buckets with a row of its own among the `history_needed` buckets up to
them (`alive`). Before it appeared a slice is not a series of zeros, and a slice gone
for longer than a training window is gone; and since a bucket's row depends on no
bucket older than that, it is the same whichever window a run scores (a slice first
seen late in a long window, or only far before a short one, is not scored there by
either run)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..grains import add_grain
from ..spec.raw import exclude_bounds
from ..spec.resolved import Metric, MetricsProject
from ..warehouse.connection import Warehouse
from ..warehouse.read import series_relation

FREQ = {"hour": "h", "day": "D", "week": "W-MON", "month": "MS"}
COUNT_AGGREGATIONS = ("count", "count_distinct")
VALUE_COLUMNS = ["value", "count", "numerator", "denominator"]


def shape_of(metric: Metric, project: MetricsProject | None = None) -> str:
    """count (Poisson-like volumes), ratio (a count per unit of the denominator),
    amount_ratio (a ratio whose numerator is not a count: revenue per order, judged as an
    average over the denominator's units; needs `project` to see the numerator), average
    (an avg or a percentile: its rollups carry how many values each bucket is read from)
    or fraction (the rest)."""
    if metric.kind == "ratio":
        top = project.metrics.get(metric.numerator) if project is not None else None
        counted = top is None or (top.kind == "simple" and top.measure.aggregation in COUNT_AGGREGATIONS)
        return "ratio" if counted else "amount_ratio"
    if metric.kind == "simple" and metric.measure.aggregation in COUNT_AGGREGATIONS:
        return "count"
    if metric.kind == "simple" and metric.measure.aggregation in ("avg", "percentile"):
        return "average"
    return "fraction"


def detector_settings(metric: Metric):
    from ..anomaly import DetectorSettings
    a = metric.anomaly
    # a percentile's noise has a sample extreme's tail (anomaly/bands.py, extreme_upper)
    quantile = metric.measure.percentile if metric.kind == "simple" and metric.measure.aggregation == "percentile" \
        else None
    return DetectorSettings(sensitivity=a.sensitivity, direction=a.direction, min_volume=a.min_volume,
                            seasonality=a.seasonality, training_buckets=a.training_buckets,
                            exclude=tuple(exclude_bounds(r) for r in a.exclude), quantile=quantile)


@dataclass
class SliceSeries:
    metric: Metric
    dimension: str  # '' for the total
    dimension_value: str
    frame: pd.DataFrame  # bucket_start, value, count, numerator, denominator (dense)
    alive: np.ndarray | None = None  # a slice's: per frame row, True where it exists (`alive`); None: the total


@dataclass
class GrainInputs:
    series: list[SliceSeries]
    skipped: dict[str, int]  # metric -> slices left out by max_slices


def read_inputs(wh: Warehouse, grain: str, metrics: list[Metric], lo: dt.datetime, hi: dt.datetime,
                alive_from: dt.datetime, history: dict[str, int]) -> GrainInputs:
    """Series of `metrics` over [lo, hi), the total first, then per metric at most
    `max_slices` slices. `history`: buckets per metric. Only slices that exist somewhere in
    [alive_from, hi) (`alive`) compete for those places, on their volume over the
    metric's own range [alive_from - history, hi): neither a slice gone long ago nor the
    other metrics of the run decide which are scored."""
    if not metrics:
        return GrainInputs([], {})
    by_relation: dict[str, list[str]] = {}  # drafts have their own series view
    for m in metrics:
        by_relation.setdefault(series_relation(m, grain), []).append(m.name)
    parts = [wh.frame(
        f"select metric, bucket_start, dimension, dimension_value, value, count, numerator, denominator "
        f"from {wh.relation(relation)} "
        f"where metric in ({', '.join('?' for _ in names)}) and bucket_start >= ? and bucket_start < ?",
        [*names, lo, hi]) for relation, names in sorted(by_relation.items())]
    rows = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    rows["bucket_start"] = pd.to_datetime(rows["bucket_start"])
    for c in VALUE_COLUMNS:
        rows[c] = significant(pd.to_numeric(rows[c], errors="coerce").to_numpy(dtype=float))
    rows["dimension_value"] = rows["dimension_value"].fillna("(null)").astype(str)
    out, skipped = [], {}
    by_metric = dict(tuple(rows.groupby("metric", sort=False)))
    for m in metrics:
        part = by_metric.get(m.name)
        if part is None:
            continue
        total = part[part.dimension == ""]
        if total.empty:
            continue
        spine = pd.date_range(total.bucket_start.min(), total.bucket_start.max(), freq=FREQ[grain])
        built = spine.isin(total.bucket_start)
        out.append(SliceSeries(m, "", "", _dense(_columns(total), spine, built, m, is_total=True)))
        # the dimensions the metric has now: the rollup tables keep another's rows outside
        # the windows rebuilt since it changed (no row there: its slices would read as zeros)
        slices = part[part.dimension.isin(m.dimensions)]
        if slices.empty:
            continue
        # numpy per slice: a DataFrame per slice (groupby's groups, reindex) costs more than its scoring
        at = slices.groupby(["dimension", "dimension_value"], sort=False).indices
        columns = _columns(slices)
        window = np.asarray((spine >= pd.Timestamp(alive_from)) & (spine < pd.Timestamp(hi)))
        exists = {}
        for key, rows in at.items():
            at_spine = spine.get_indexer(columns["bucket_start"][rows])
            observed = np.zeros(len(spine), bool)
            observed[at_spine[at_spine >= 0]] = True
            mask = alive(observed, history[m.name])
            if mask[window].any():
                exists[key] = mask
        own = pd.Timestamp(add_grain(alive_from, grain, -history[m.name]))
        keys = pd.MultiIndex.from_arrays([slices.dimension, slices.dimension_value])
        ranked_rows = slices[(slices.bucket_start >= own).to_numpy() & keys.isin(list(exists))]
        ranked = _volume(ranked_rows).sort_values(ascending=False, kind="stable") if len(ranked_rows) else \
            pd.Series(dtype=float)
        keep = ranked.index[: m.anomaly.max_slices]
        skipped[m.name] = len(ranked) - len(keep)
        for key in keep:
            part = {c: v[at[key]] for c, v in columns.items()}
            out.append(SliceSeries(m, key[0], key[1], _dense(part, spine, built, m, is_total=False), exists[key]))
    return GrainInputs(out, skipped)


SIGNIFICANT_DIGITS = 12


def significant(x: np.ndarray) -> np.ndarray:
    """x to SIGNIFICANT_DIGITS significant digits, and never coarser than units: the
    warehouses' float noise (an average of 38.15 read as 38.150000000000006 on Postgres)
    would otherwise round a reason's number the other way, or tip a model choice, so the
    rows differ by warehouse; a large whole number (1,234,567,890,123 cents) is kept."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        finite = np.isfinite(x) & (x != 0)
        exponent = np.where(finite, np.floor(np.log10(np.abs(np.where(finite, x, 1.0)))), 0.0)
        scale = 10.0 ** np.maximum(SIGNIFICANT_DIGITS - 1 - exponent, 0.0)
        rounded = np.round(x * scale) / scale
    return np.where(finite & np.isfinite(rounded), rounded, x)


def alive(observed: np.ndarray, history: int) -> np.ndarray:
    """Per bucket: the slice has a row of its own at it or in the `history` buckets
    before it."""
    seen = np.concatenate([[0], np.cumsum(observed)])
    at = np.arange(observed.size)
    return seen[at + 1] - seen[np.maximum(at - history, 0)] > 0


def _columns(part: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: part[c].to_numpy() for c in ["bucket_start", *VALUE_COLUMNS]}


def _volume(slices: pd.DataFrame) -> pd.Series:
    """Per (dimension, dimension_value): the denominator's sum for a ratio, the row count's
    for a metric that carries one, else the sum of absolute values."""
    keyed = slices.assign(abs_value=slices["value"].abs())
    sums = keyed.groupby(["dimension", "dimension_value"], sort=True)[["denominator", "count", "abs_value"]].sum(min_count=1)
    return sums["denominator"].fillna(sums["count"]).fillna(sums["abs_value"]).fillna(0.0)


def _dense(part: dict[str, np.ndarray], spine: pd.DatetimeIndex, built: np.ndarray, metric: Metric,
           is_total: bool) -> pd.DataFrame:
    """One series' rows (`part`: bucket_start and VALUE_COLUMNS arrays) laid on the spine
    (`built`: the spine's buckets that hold a total), NaN where it has no row."""
    at = spine.get_indexer(part["bucket_start"])
    rows = at >= 0  # a slice's rows outside the total's range are left out
    frame = {"bucket_start": spine.to_numpy()}
    for c in VALUE_COLUMNS:
        frame[c] = np.full(len(spine), np.nan)
        frame[c][at[rows]] = part[c][rows]
    if not is_total and metric.fill is not None:
        # a built bucket without a row of this slice had no rows: the empty value
        missing = np.isnan(frame["value"]) & built
        missing[at[rows]] = False
        frame["value"][missing] = metric.fill
        if shape_of(metric) == "count":
            frame["count"][missing] = 0.0
    return pd.DataFrame(frame)
