"""The `aggregated` CTE of a rollup: one row per bucket and slice with every metric's
aggregates, in one of two forms (see aggregated_ctes)."""
from __future__ import annotations

from .sql_text import jinja_str

# Aggregates that can be computed from partial aggregates: the partial kind and how the
# partials are combined (a count is the sum of partial counts).
_COMBINE = {"count": "sum", "sum": "sum", "min": "min", "max": "max"}


def keyable(metric, categorical: frozenset[str]) -> bool:
    """Whether `metric` can be computed from partials grouped by its filter's columns:
    a decomposable aggregate (DuckDB's long-form distinct counts read raw rows apart)
    filtered on columns with few, known values."""
    meas = metric.measure
    columns = set(meas.filter.columns) if meas.filter is not None else set()
    return meas.aggregation in ("count", "sum", "avg", "min", "max", "count_distinct") and columns <= categorical


def aggregate_sql(kind: str, value: str, flag: str, extra: tuple = ()) -> str:
    args = [jinja_str(kind), jinja_str(value), flag or '""'] + [f"{k}={v}" for k, v in extra]
    return "{{ metrics_aggregate(" + ", ".join(args) + ") }}"


def aggregated_ctes(aggs: dict[tuple, str], group_cols: list[str], distinct_cols: str, sets: str,
                     dims: list[str], keys: list[str], has_distinct: bool) -> str:
    """The `aggregated` CTE: one row per bucket and slice with every aggregate.

    Direct: one GROUP BY over the raw rows, each filter inline in FILTER (WHERE ...) /
    -If (measured 18% faster on DuckDB than projecting it as a boolean column first).
    Keyed, when every filter reads only categorical columns (`keys`): the raw rows are
    grouped by those columns too with unfiltered partial aggregates, and the filters
    are applied to those few partial rows. Each row then costs one update of a handful
    of aggregates instead of one per metric and filter (bench/bench_rollups.py). Both
    forms are written; the engine picks one (macros/metrics_keyed_rollup.sql)."""
    sep = ",\n        "
    direct = f"""aggregated as (
    -- every metric at once: the total and each dimension alone, from raw rows
    select
        {sep.join(group_cols + [f"{aggregate_sql(*key[:3], key[3])} as {alias}" for key, alias in aggs.items()])}{distinct_cols}
    from source_rows
    group by grouping sets ({sets})
),"""
    if not keys:
        return direct
    partials: dict[tuple[str, str], str] = {}
    combined = []
    for (kind, value, flag, _), alias in aggs.items():
        # a partial is named after the first aggregate combined from it
        part = partials.setdefault((kind, value), f"{alias}__partial")
        sql = aggregate_sql(_COMBINE[kind], part, flag)
        combined.append(f"{'coalesce(' + sql + ', 0)' if kind == 'count' else sql} as {alias}")
    key_list = ", ".join(keys)
    keyed_sets = ", ".join(["(bucket_start, " + key_list + ")"] + [f"(bucket_start, {d}, {key_list})" for d in dims])
    grouping_cols = [c for c in group_cols if c != "bucket_start" and c not in dims]
    slice_cols = ["bucket_start"] + [f"g_{d}" for d in dims] + dims
    keyed = f"""partials as (
    -- partial aggregates per bucket, slice and value of the filtered columns: the
    -- metrics' filters are applied to these few rows, not to every raw row
    select
        {sep.join(["bucket_start"] + grouping_cols + dims + keys + [f"{aggregate_sql(kind, value, '')} as {p}" for (kind, value), p in partials.items()])}
    from source_rows
    group by grouping sets ({keyed_sets})
),

aggregated as (
    select
        {sep.join(slice_cols + combined)}
    from partials
    group by {", ".join(slice_cols)}
),"""
    # which form is faster depends on the engine (macros/metrics_keyed_rollup.sql); the
    # keyed form has no raw rows left for count(DISTINCT), so with distinct counts it is
    # used only where those are computed apart (long form)
    condition = "metrics_keyed_rollup()" + (" and metrics_distinct_long_form()" if has_distinct else "")
    return f"{{% if {condition} %}}\n{keyed}\n{{% else %}}\n{direct}\n{{% endif %}}"
