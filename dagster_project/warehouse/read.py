"""Reading a series back: from the metric_series_<grain> views, densified by the same
rule everywhere (an empty bucket is 0 for count-shaped metrics, a gap otherwise), with
previous_value and change_pct recomputed on the dense series."""
from __future__ import annotations

import datetime as dt
import math
import os
from typing import TYPE_CHECKING

import yaml

from ..grains import add_grain, ceil_to_grain, floor_to_grain  # noqa: F401 (re-exported)
from ..printable import as_typed, listed, one_line
from .connection import Warehouse

if TYPE_CHECKING:  # imported where used: a CLI read never loads pandas, pydantic or sqlglot
    import pandas as pd

    from ..spec.resolved import Metric, MetricsProject

SERIES_COLUMNS = ["metric", "grain", "bucket_start", "slice", "value", "previous_value", "change_pct", "complete"]


def now_utc() -> dt.datetime:
    """The current time, naive UTC. METRICS_NOW (an ISO timestamp) overrides it, as the
    metrics_window macro reads it, so tests and the builds agree on the bucket in progress."""
    raw = os.environ.get("METRICS_NOW", "").strip()
    if not raw:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        ts = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"METRICS_NOW=`{raw}` is not an ISO timestamp (e.g. 2026-09-03T10:30:00Z)") from None
    return ts.astimezone(dt.timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


class NotBuiltError(ValueError):
    """The metric has no rows at that grain yet: its series relation does not exist, or
    holds none of them."""

    def __init__(self, message: str, run_args: list[str]):
        super().__init__(message)
        self.run_args = run_args  # `metrics <run_args>` builds it

    def with_command(self, metrics_exe: str) -> str:
        return f"{self}: run `{' '.join([metrics_exe, *self.run_args])}`"


def series_relation(metric: Metric, grain: str) -> str:
    return f"metric_series_draft_{grain}" if metric.status == "draft" else f"metric_series_{grain}"


def read_series(wh: Warehouse, metric: Metric, grain: str, start: dt.date | None = None,
                end: dt.date | None = None, slice_: dict[str, str] | None = None,
                project: MetricsProject | None = None, now: dt.datetime | None = None) -> "pd.DataFrame":
    """series_records as a DataFrame (object columns keep None, a gap, as None)."""
    import pandas as pd
    records = series_records(wh, metric, grain, start, end, slice_, project, now)
    dtypes = {"bucket_start": "datetime64[us]", "complete": bool}
    return pd.DataFrame({c: pd.Series([r[c] for r in records], dtype=dtypes.get(c, object)) for c in SERIES_COLUMNS})


def series_records(wh: Warehouse, metric: Metric, grain: str, start: dt.date | None = None,
                   end: dt.date | None = None, slice_: dict[str, str] | None = None,
                   project: MetricsProject | None = None, now: dt.datetime | None = None) -> list[dict]:
    """One dict per bucket: metric, grain, bucket_start (naive UTC datetime), slice (dict),
    value, previous_value, change_pct, complete (False for the bucket holding `now`,
    default now_utc(), and any later one). Plain Python: a CLI read never imports pandas.
    An archived metric is read from the rollup rows it left behind (a ratio or derived
    one is recombined from its inputs, which `project` resolves).

    Raises ValueError for a slice value the dbt YAML does not accept or no stored row has,
    NotBuiltError when the series relation holds no row of the metric at that grain."""
    if grain not in metric.grains:
        raise ValueError(f"`{metric.name}` has no {grain} grain (its grains: {', '.join(metric.grains)})")
    slice_ = slice_ or {}
    if len(slice_) > 1:
        raise ValueError("a slice names one dimension and its value (each dimension is its own breakdown)")
    dimension, dimension_value = next(iter(slice_.items())) if slice_ else ("", "")
    if dimension and dimension not in metric.dimensions:
        raise ValueError(f"`{metric.name}` has no dimension `{dimension}` (its dimensions: {', '.join(metric.dimensions) or 'none'})")
    now = now or now_utc()
    if dimension and ("\\" in str(dimension_value) or str(dimension_value).startswith('"')):  # typed as listed
        with wh.reading():
            dimension_value = as_typed(str(dimension_value), _known_values(wh, metric, grain, dimension, project))
        slice_ = {dimension: dimension_value}
    accepted = _check_accepted(wh, metric, dimension, str(dimension_value), project) if dimension else set()
    # nothing before the metric's first bucket, even rows an earlier `start` left until the
    # next run rebuilds the metric: its first bucket has no previous value
    first = floor_to_grain(metric.start, grain)
    lo = max(ceil_to_grain(start, grain), first) if start else first
    fetch_lo = max(add_grain(lo, grain, -1), first)
    hi = ceil_to_grain(end, grain) if end else dt.datetime(9999, 1, 1)
    with wh.reading():
        stored = _stored(wh, metric, grain, fetch_lo, hi, dimension, str(dimension_value), project)
        if not stored:  # nothing in the window: tell "never built" apart from "outside the history"
            _check_built(wh, metric, grain, project)
        if dimension:
            _check_seen(wh, metric, grain, dimension, str(dimension_value), project, accepted)
    buckets = sorted(stored)
    values = [stored[b] for b in buckets]
    out = []
    for i, b in enumerate(buckets):
        if b < lo:
            continue
        # the previous value exists only when the bucket before is really the previous bucket
        consecutive = i > 0 and add_grain(buckets[i - 1], grain) == b
        prev = values[i - 1] if consecutive else None
        v = values[i]
        change = None if (prev is None or v is None or prev == 0) else (v - prev) / abs(prev) * 100
        out.append({"metric": metric.name, "grain": grain, "bucket_start": b, "slice": dict(slice_), "value": v,
                    "previous_value": prev, "change_pct": change, "complete": add_grain(b, grain) <= now})
    return out


def _as_datetime(value) -> dt.datetime:
    """A bucket_start from any driver (datetime, pandas Timestamp, ISO text) as naive UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):  # a date
        return dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)


def _stored(wh: Warehouse, metric: Metric, grain: str, lo: dt.datetime, hi: dt.datetime, dimension: str,
            dimension_value: str, project: MetricsProject | None) -> dict[dt.datetime, float | None]:
    """bucket -> value over the total's buckets (dense), for the total or one slice."""
    if metric.status == "archived" and metric.kind != "simple":
        if project is None:
            raise ValueError(f"`{metric.name}` is archived: its inputs are needed to read it")
        inputs = [project.metrics[name] for name in metric.inputs]
        parts = [_stored(wh, i, grain, lo, hi, dimension, dimension_value, project) for i in inputs]
        out = {}
        # each part is dense over its input's built buckets: a bucket some input was never
        # built for is a gap (not that input's empty value), as in the series views
        for b in sorted(set(parts[0]).intersection(*parts[1:])):
            values = [p[b] for p in parts]
            if metric.kind == "ratio":
                out[b] = None if values[0] is None or not values[1] else values[0] / values[1]
            else:
                from ..validation.sql_fragment import evaluate_arithmetic
                out[b] = evaluate_arithmetic(metric.formula.tree, {i.name.lower(): v for i, v in zip(inputs, values)})
        return out
    rel = wh.relation(_relation(wh, metric, grain))
    _, spine = wh.rows(
        f"select bucket_start, value from {rel} where metric = ? and dimension = '' "
        f"and bucket_start >= ? and bucket_start < ? order by bucket_start",
        [metric.name, lo, hi])
    if not dimension:
        return {_as_datetime(b): _num(v) for b, v in spine}
    _, rows = wh.rows(
        f"select bucket_start, value from {rel} where metric = ? and dimension = ? and dimension_value = ? "
        f"and bucket_start >= ? and bucket_start < ? order by bucket_start",
        [metric.name, dimension, dimension_value, lo, hi])
    values = {_as_datetime(b): v for b, v in rows}
    return {b: _num(values.get(b, metric.fill)) for b in (_as_datetime(b) for b, _ in spine)}


def _leaves(metric: Metric, project: MetricsProject | None) -> list[Metric]:
    """The metrics whose stored rows a read uses: the metric itself, or for an archived
    ratio or derived metric (no rows of its own) its inputs'."""
    if metric.status == "archived" and metric.kind != "simple" and project is not None:
        return [leaf for name in metric.inputs for leaf in _leaves(project.metrics[name], project)]
    return [metric]


def _check_built(wh: Warehouse, metric: Metric, grain: str, project: MetricsProject | None) -> None:
    if metric.start > now_utc().date():  # (`metrics run --metric` builds nothing of it yet)
        raise ValueError(f"{wh.target}: `{metric.name}` starts {metric.start}: it has no bucket yet")
    for leaf in _leaves(metric, project):
        rel = _relation(wh, leaf, grain)
        _, n = wh.rows(f"select count(*) as n from {wh.relation(rel)} where metric = ? and dimension = ''", [leaf.name])
        if int(n[0][0]) > 0:
            continue
        if metric.status == "archived":
            raise ValueError(f"{wh.target}: `{metric.name}` is archived and {rel} holds no {grain} rows of "
                             f"`{leaf.name}`: there is no history to read")
        run_args = ["run", "--metric", metric.name]
        if metric.status == "draft":
            run_args.append("--include-drafts")
        if wh.target != "duckdb":
            run_args += ["--target", wh.target]
        raise NotBuiltError(f"{wh.target}: `{metric.name}` has not been built at the {grain} grain "
                            f"({rel} holds none of its rows)", run_args)


def _known_values(wh: Warehouse, metric: Metric, grain: str, dimension: str,
                  project: MetricsProject | None) -> set[str]:
    known: set[str] = set()
    for leaf in _leaves(metric, project):
        _, rows = wh.rows(f"select distinct dimension_value from {wh.relation(_relation(wh, leaf, grain))} "
                          f"where metric = ? and dimension = ?", [leaf.name, dimension])
        known |= {str(r[0]) for r in rows if r[0] is not None}
    return known


def _check_seen(wh: Warehouse, metric: Metric, grain: str, dimension: str, value: str,
                project: MetricsProject | None, accepted: set[str]) -> None:
    """A slice value no stored row has is a typo far more often than a quiet slice: an
    all-zero series would hide it."""
    known = _known_values(wh, metric, grain, dimension, project)
    if value in known:
        return
    from ..validation.issues import closest
    # an accepted value is no typo: it just never occurs in this metric's rows
    why = " (an accepted value that none of its rows has)" if value in accepted else closest(value, known)
    raise ValueError(f"no {grain} row of `{metric.name}` has {dimension} = `{one_line(value)}`{why}; "
                     f"known values: {_listing(known)}")


def _check_accepted(wh: Warehouse, metric: Metric, dimension: str, value: str,
                    project: MetricsProject | None) -> set[str]:
    """Against the `accepted_values` test the dbt YAML declares for the column, when it does.
    `(null)` labels NULL, which accepted_values does not reject either."""
    accepted: set[str] = set()
    sources = sorted(_sources(metric, project))
    for source in sources:
        accepted |= set(accepted_values(wh.paths, source, dimension) or ())
    if accepted and value not in accepted and value != "(null)":
        from ..validation.issues import closest
        raise ValueError(f"`{value}` is not an accepted value of {dimension}{closest(value, accepted)}; known values: "
                         f"{_listing(accepted)} (accepted_values of {', '.join(sources)}.{dimension} in the dbt YAML)")
    return accepted


def _sources(metric: Metric, project: MetricsProject | None) -> set[str]:
    if metric.measure is not None:
        return {metric.measure.source}
    if project is None:
        return set()
    return set().union(*(_sources(project.metrics[name], project) for name in metric.inputs))


def _listing(values, limit: int = 30) -> str:
    shown = [listed(v) for v in sorted(values)]
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return (", ".join(shown[:limit]) + more) if shown else "none"


def accepted_values(paths, relation: str, column: str) -> list[str] | None:
    """The values of `relation`.`column`'s accepted_values test in the dbt YAML under
    models/ and seeds/ (either the `values:` or the newer `arguments: {values:}` form),
    as the warehouse stores them, or None when it declares none."""
    from ..validation.catalog import accepted_spec
    for root in (paths.models_dir, paths.seeds_dir):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.yml")):
            if paths.generated_dir in path.parents:
                continue
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, OSError, ValueError, OverflowError):
                continue  # dbt reports broken property files itself
            if not isinstance(doc, dict):
                continue
            for entry in (doc.get("models") or []) + (doc.get("seeds") or []):
                if not isinstance(entry, dict) or str(entry.get("name")) != relation:
                    continue
                for col in entry.get("columns") or []:
                    if not isinstance(col, dict) or str(col.get("name", "")).lower() != column.lower():
                        continue
                    spec = accepted_spec(col)
                    if spec is not None and spec.get("values"):
                        if spec.get("quote", True) is False:  # SQL expressions, not values: nothing to compare
                            return None
                        # quoted into SQL as written: `customer''s request` is the value `customer's request`
                        return [str(v).replace("''", "'") for v in spec["values"]]
    return None


def _relation(wh: Warehouse, metric: Metric, grain: str) -> str:
    """Where a metric's rows are: its series view, or for an archived metric (no longer
    compiled) the rollup table its rows stay in."""
    if metric.status == "archived":
        from ..compiler.plan import rollup_name
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
        run_args = ["run", *(["--include-drafts"] if metric.status == "draft" else []),
                    *(["--target", wh.target] if wh.target != "duckdb" else [])]
        raise NotBuiltError(f"{wh.target}: {name} has not been built yet (a run over a window that holds at least "
                            f"one whole {grain} builds it)", run_args)
    return name


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None  # (JSON has no NaN or Infinity)
