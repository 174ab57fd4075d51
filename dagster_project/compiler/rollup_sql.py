"""One rollup model: every metric on one source (and timestamp column) at one grain,
in one scan.

The source is read once for the window; every metric's aggregates are computed in one
GROUP BY with grouping sets (the total and each dimension alone, all from raw rows);
the wide result is turned into long rows (metric, bucket, slice). The total is dense
over the window's buckets; slices are stored sparse (only buckets with rows). How each
aggregate is spelled per warehouse lives in macros/metrics_aggregate.sql."""
from __future__ import annotations

from .plan import RollupModel, floor_to_grain
from .sql_text import config_block, fragment, header, ident, jinja_str, string

NULL_LABEL = "(null)"  # slice value for rows whose dimension is NULL
TS_FORMAT = "%Y-%m-%d %H:%M:%S"


def _ts(value) -> str:
    return "{{ metrics_timestamp(" + jinja_str(value.strftime(TS_FORMAT)) + ") }}"


def _macro(name: str, *args: str, **kwargs: str) -> str:
    parts = [jinja_str(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()]
    return "{{ " + name + "(" + ", ".join(parts) + ") }}"


# (value, count, sum) columns of the long form, per aggregation, from m{i}_* columns.
_OUTPUTS = {
    "count": ("m{i}_count", "m{i}_count", "null"),
    "sum": ("coalesce(m{i}_sum, 0)", "m{i}_count", "coalesce(m{i}_sum, 0)"),
    "avg": ("m{i}_sum / nullif(m{i}_count, 0)", "m{i}_count", "m{i}_sum"),
    "min": ("m{i}_value", "m{i}_count", "null"),
    "max": ("m{i}_value", "m{i}_count", "null"),
    "count_distinct": ("m{i}_value", "m{i}_rows", "null"),
    "percentile": ("m{i}_value", "m{i}_count", "null"),
    "latest": ("m{i}_value", "m{i}_count", "null"),
}
# Which aggregate columns each aggregation needs.
_NEEDS = {
    "count": ("count",), "sum": ("sum", "count"), "avg": ("sum", "count"), "min": ("min", "count"),
    "max": ("max", "count"), "count_distinct": ("count_distinct",), "percentile": ("percentile", "count"),
    "latest": ("latest", "count"),
}


def render_rollup(model: RollupModel, tags: list[str]) -> str:
    grain, metrics, series_start = model.grain, model.metrics, model.series_start
    ts = ident(model.timestamp)
    dims: list[str] = []
    for m in metrics:
        dims += [d for d in m.dimensions if d not in dims]
    dim_alias = {d: f"dim_{n + 1}" for n, d in enumerate(dims)}

    source_cols = [f"{_macro('metrics_time_bucket', ts, grain)} as bucket_start", f"{ts} as event_at"]
    source_cols += [f"{ident(d)} as {a}" for d, a in dim_alias.items()]
    agg_cols = ["bucket_start"] + [f"{_macro('metrics_grouping', a)} as g_{a}" for a in dim_alias.values()] + list(dim_alias.values())
    for i, m in enumerate(metrics, start=1):
        meas = m.measure
        conds = []
        if meas.filter is not None:
            conds.append(f"({fragment(meas.filter.tree)})")
        first_bucket = floor_to_grain(m.start, grain)
        if first_bucket > series_start:
            conds.append(f"bucket_start >= {_ts(first_bucket)}")
        flag = f"f_{i}" if conds else ""
        if conds:
            source_cols.append(f"coalesce({' and '.join(conds)}, false) as {flag}")
        value = f"x_{i}" if meas.expression is not None else ""
        if value:
            source_cols.append(f"{fragment(meas.expression.tree)} as {value}")
        agg_cols.append(f"{_macro('metrics_aggregate', 'count', '', flag)} as m{i}_rows")
        for need in _NEEDS[meas.aggregation]:
            column = {"count": "count", "sum": "sum"}.get(need, "value")
            extra = {}
            if need == "percentile":
                extra["percentile"] = repr(meas.percentile)
            if need == "latest":
                extra["order_by"] = jinja_str("event_at")
            if need == "count" and not value:
                agg = _macro("metrics_aggregate", "count", "", flag)
            else:
                agg = _macro("metrics_aggregate", need, value, flag, **extra)
            agg_cols.append(f"{agg} as m{i}_{column}")

    def grouping_is(on: str | None) -> str:
        parts = [f"g_{a} = {0 if a == on else 1}" for a in dim_alias.values()]
        return " and ".join(parts) if parts else "1 = 1"

    observed, gauge_totals, metric_list = [], [], []
    for i, m in enumerate(metrics, start=1):
        agg = m.measure.aggregation
        v, c, s = (col.format(i=i) for col in _OUTPUTS[agg])
        name = string(m.name)
        if agg == "latest" and m.dimensions:
            # a gauge's total is the sum of each first-dimension value's latest value
            first = dim_alias[m.dimensions[0]]
            gauge_totals.append(
                f"    select {name} as metric, bucket_start, '' as dimension, '' as dimension_value,\n"
                f"        sum(m{i}_value) as value, sum(m{i}_count) as count_, cast(null as {{{{ metrics_type('double') }}}}) as sum_\n"
                f"    from aggregated\n    where {grouping_is(first)} and m{i}_rows > 0\n    group by bucket_start")
        else:
            observed.append(
                f"    select {name} as metric, bucket_start, '' as dimension, '' as dimension_value,\n"
                f"        {v} as value, {c} as count_, {s} as sum_\n"
                f"    from aggregated\n    where {grouping_is(None)} and m{i}_rows > 0")
        for d in m.dimensions:
            a = dim_alias[d]
            observed.append(
                f"    select {name} as metric, bucket_start, {string(d)} as dimension,\n"
                f"        coalesce(cast({a} as {{{{ metrics_type('string') }}}}), {string(NULL_LABEL)}) as dimension_value,\n"
                f"        {v} as value, {c} as count_, {s} as sum_\n"
                f"    from aggregated\n    where {grouping_is(a)} and m{i}_rows > 0")
        empty_value = "0" if m.fill == 0 else "null"
        empty_sum = "0" if agg in ("sum", "avg") else "null"
        metric_list.append(
            f"    select {name} as metric, {_ts(max(floor_to_grain(m.start, grain), series_start))} as first_bucket,\n"
            f"        cast({empty_value} as {{{{ metrics_type('double') }}}}) as empty_value,\n"
            f"        cast({empty_sum} as {{{{ metrics_type('double') }}}}) as empty_sum")
    observed += gauge_totals

    start_text = series_start.strftime(TS_FORMAT)
    cfg = config_block({
        "materialized": "metric_rollup",
        "grain": grain,
        "series_start": start_text,
        "metric_names": [m.name for m in metrics],
        "tags": tags,
    })
    sets = ", ".join(["(bucket_start)"] + [f"(bucket_start, {a})" for a in dim_alias.values()])
    union = "\n    union all\n"
    return f"""{header([m.path for m in metrics])}{cfg}
{{%- set w = metrics_window({jinja_str(grain)}, {jinja_str(start_text)}) %}}

with source_rows as (
    -- one scan of the source: the rows of the window's buckets
    select
        {(','+chr(10)+'        ').join(source_cols)}
    from {{{{ ref({jinja_str(model.source)}) }}}}
    where {ts} >= {{{{ metrics_timestamp(w.start) }}}}
      and {ts} < {{{{ metrics_timestamp(w.end) }}}}
),

aggregated as (
    -- every metric at once: the total and each dimension alone, from raw rows
    select
        {(','+chr(10)+'        ').join(agg_cols)}
    from source_rows
    group by grouping sets ({sets})
),

observed as (
{union.join(observed)}
),

metric_list as (
{union.join(metric_list)}
),

spine as (
    {{{{ metrics_bucket_spine(w.start, w.end, {jinja_str(grain)}) }}}}
),

dense_totals as (
    -- the total has a row for every bucket from the metric's start: empty is 0 or a gap
    select l.metric, s.bucket_start, '' as dimension, '' as dimension_value,
        case when o.metric is null then l.empty_value else o.value end as value,
        coalesce(o.count_, 0) as count_,
        case when o.metric is null then l.empty_sum else o.sum_ end as sum_
    from spine as s
    cross join metric_list as l
    left join observed as o
        on o.metric = l.metric and o.bucket_start = s.bucket_start and o.dimension = ''
    where s.bucket_start >= l.first_bucket
),

rows_out as (
    select * from dense_totals
    union all
    select * from observed where dimension <> ''
)

select
    cast(metric as {{{{ metrics_type('string') }}}}) as metric,
    cast(bucket_start as {{{{ metrics_type('timestamp') }}}}) as bucket_start,
    cast(dimension as {{{{ metrics_type('string') }}}}) as dimension,
    cast(dimension_value as {{{{ metrics_type('string') }}}}) as dimension_value,
    cast(value as {{{{ metrics_type('double') }}}}) as value,
    cast(count_ as {{{{ metrics_type('bigint') }}}}) as count,
    cast(sum_ as {{{{ metrics_type('double') }}}}) as sum,
    {{{{ metrics_run_id() }}}} as run_id,
    {{{{ metrics_now() }}}} as computed_at
from rows_out
"""
