"""Reading a series back: from the metric_series_<grain> views, densified by the same
rule everywhere (an empty bucket is 0 for count-shaped metrics, a gap otherwise), with
previous_value and change_pct recomputed on the dense series."""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from ..compiler.plan import floor_to_grain, rollup_name
from ..spec.resolved import Metric, MetricsProject
from ..validation.sql_fragment import evaluate_arithmetic
from .connection import Warehouse


def add_grain(ts: dt.datetime, grain: str, n: int = 1) -> dt.datetime:
    if grain == "hour":
        return ts + dt.timedelta(hours=n)
    if grain == "day":
        return ts + dt.timedelta(days=n)
    if grain == "week":
        return ts + dt.timedelta(days=7 * n)
    month = ts.month - 1 + n
    return ts.replace(year=ts.year + month // 12, month=month % 12 + 1)


def ceil_to_grain(day: dt.date, grain: str) -> dt.datetime:
    floor = floor_to_grain(day, grain)
    midnight = dt.datetime(day.year, day.month, day.day)
    return floor if floor == midnight else add_grain(floor, grain)


def series_relation(metric: Metric, grain: str) -> str:
    return f"metric_series_draft_{grain}" if metric.status == "draft" else f"metric_series_{grain}"


def read_series(wh: Warehouse, metric: Metric, grain: str, start: dt.date | None = None,
                end: dt.date | None = None, slice_: dict[str, str] | None = None,
                project: MetricsProject | None = None) -> pd.DataFrame:
    """Columns: metric, grain, bucket_start, slice (dict), value, previous_value, change_pct.
    An archived metric is read from the rollup rows it left behind (a ratio or derived
    one is recombined from its inputs, which `project` resolves)."""
    if grain not in metric.grains:
        raise ValueError(f"`{metric.name}` has no {grain} grain (its grains: {', '.join(metric.grains)})")
    slice_ = slice_ or {}
    if len(slice_) > 1:
        raise ValueError("a slice names one dimension and its value (each dimension is its own breakdown)")
    dimension, dimension_value = next(iter(slice_.items())) if slice_ else ("", "")
    if dimension and dimension not in metric.dimensions:
        raise ValueError(f"`{metric.name}` has no dimension `{dimension}` (its dimensions: {', '.join(metric.dimensions) or 'none'})")
    lo = ceil_to_grain(start, grain) if start else floor_to_grain(metric.start, grain)
    fetch_lo = add_grain(lo, grain, -1)
    hi = ceil_to_grain(end, grain) if end else dt.datetime(9999, 1, 1)
    stored = _stored(wh, metric, grain, fetch_lo, hi, dimension, str(dimension_value), project)
    buckets = sorted(stored)
    dense = [stored[b] for b in buckets]
    values = [_num(v) for v in dense]
    rows = []
    for i, b in enumerate(buckets):
        if b < pd.Timestamp(lo):
            continue
        # the previous value exists only when the bucket before is really the previous bucket
        consecutive = i > 0 and add_grain(buckets[i - 1].to_pydatetime(), grain) == b.to_pydatetime()
        prev = values[i - 1] if consecutive else None
        v = values[i]
        change = None if (prev is None or v is None or prev == 0) else (v - prev) / abs(prev) * 100
        rows.append((metric.name, grain, b, dict(slice_), v, prev, change))
    columns = ["metric", "grain", "bucket_start", "slice", "value", "previous_value", "change_pct"]
    # object columns keep None (a gap) as None instead of NaN
    return pd.DataFrame({c: pd.Series([r[i] for r in rows], dtype=object if c != "bucket_start" else "datetime64[us]")
                         for i, c in enumerate(columns)})


def _stored(wh: Warehouse, metric: Metric, grain: str, lo: dt.datetime, hi: dt.datetime, dimension: str,
            dimension_value: str, project: MetricsProject | None) -> dict[pd.Timestamp, float | None]:
    """bucket -> value over the total's buckets (dense), for the total or one slice."""
    if metric.status == "archived" and metric.kind != "simple":
        if project is None:
            raise ValueError(f"`{metric.name}` is archived: its inputs are needed to read it")
        inputs = [project.metrics[name] for name in metric.inputs]
        parts = [_stored(wh, i, grain, lo, hi, dimension, dimension_value, project) for i in inputs]
        out = {}
        for b in sorted(set().union(*parts)):
            values = [p.get(b, i.fill) for p, i in zip(parts, inputs)]
            if metric.kind == "ratio":
                out[b] = None if values[0] is None or not values[1] else values[0] / values[1]
            else:
                out[b] = evaluate_arithmetic(metric.formula.tree, {i.name.lower(): v for i, v in zip(inputs, values)})
        return out
    rel = wh.relation(_relation(wh, metric, grain))
    spine = wh.frame(
        f"select bucket_start, value from {rel} where metric = ? and dimension = '' "
        f"and bucket_start >= ? and bucket_start < ? order by bucket_start",
        [metric.name, lo, hi])
    buckets = list(pd.to_datetime(spine["bucket_start"]))
    if not dimension:
        return {b: _num(v) for b, v in zip(buckets, spine["value"])}
    rows = wh.frame(
        f"select bucket_start, value from {rel} where metric = ? and dimension = ? and dimension_value = ? "
        f"and bucket_start >= ? and bucket_start < ? order by bucket_start",
        [metric.name, dimension, dimension_value, lo, hi])
    values = dict(zip(pd.to_datetime(rows["bucket_start"]), rows["value"]))
    return {b: _num(values.get(b, metric.fill)) for b in buckets}


def _relation(wh: Warehouse, metric: Metric, grain: str) -> str:
    """Where a metric's rows are: its series view, or for an archived metric (no longer
    compiled) the rollup table its rows stay in."""
    if metric.status == "archived":
        source, ts = metric.measure.source, metric.measure.timestamp
        # its own name, then the names rollups had before they depended only on their
        # source and timestamp column
        for name in (rollup_name(source, ts, grain), f"rollup_{source}__{grain}"):
            if wh.relation_exists(name):
                return name
        raise ValueError(f"{wh.target}: `{metric.name}` is archived and no rollup table holds its {grain} history "
                         f"({rollup_name(source, ts, grain)} does not exist)")
    name = series_relation(metric, grain)
    if not wh.relation_exists(name):
        hint = " --include-drafts" if metric.status == "draft" else ""
        raise ValueError(f"{wh.target}: {name} has not been built yet: run `metrics run{hint}` over a window "
                         f"that holds at least one whole {grain}")
    return name


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f
