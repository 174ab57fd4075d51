"""One rollup model: every metric on one source (and timestamp column) at one grain,
in one scan.

The source is read once for the window; every metric's aggregates are computed in one
GROUP BY with grouping sets (the total and each dimension alone, all from raw rows;
compiler/aggregated_sql.py, which may group by categorical filter columns first);
the wide result is turned into long rows (metric, bucket, slice). The total is dense
over the window's buckets; slices are stored sparse (only buckets with rows). How each
aggregate is spelled per warehouse lives in macros/metrics_aggregate.sql."""
from __future__ import annotations

import re

from .aggregated_sql import aggregate_sql, aggregated_ctes, keyable
from .plan import RollupModel, floor_to_grain
from .sql_text import config_block, fragment, fragment_expr, header, ident, jinja_str, string

TS_FORMAT = "%Y-%m-%d %H:%M:%S"


def _ts(value) -> str:
    return "{{ metrics_timestamp(" + jinja_str(value.strftime(TS_FORMAT)) + ") }}"


def _macro(name: str, *args: str, **kwargs: str) -> str:
    parts = [jinja_str(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()]
    return "{{ " + name + "(" + ", ".join(parts) + ") }}"


def render_rollup(model: RollupModel, tags: list[str], depends_on: str | None = None) -> str:
    grain, metrics, series_start = model.grain, model.metrics, model.series_start
    ts = ident(model.timestamp)
    dims: list[str] = []
    for m in metrics:
        dims += [d for d in m.dimensions if d not in dims]
    # a dimension's column is named after it (`dim_country`), an aggregate after the
    # first metric that needs it (`revenue__sum`), so a reader of the generated model
    # sees which column carries which metric
    dim_alias = {d: f"dim_{d}" if re.fullmatch(r"[a-z0-9_]{1,40}", d) else f"dim_{n + 1}" for n, d in enumerate(dims)}
    names_used: set[str] = set()

    def column_name(metric: str, what: str) -> str:
        base = f"{metric[:40]}__{what}"
        name, n = base, 1
        while name in names_used:
            n += 1
            name = f"{base}_{n}"
        names_used.add(name)
        return name

    source_cols = [f"{_macro('metrics_time_bucket', ts, grain)} as bucket_start"]
    if any(m.measure.aggregation == "latest" for m in metrics):
        source_cols.append(f"{ts} as event_at")
    source_cols += [f"{ident(d)} as {a}" for d, a in dim_alias.items()]
    agg_cols = ["bucket_start"] + [f"{_macro('metrics_grouping', a)} as g_{a}" for a in dim_alias.values()] + list(dim_alias.values())

    # Metrics that share a measured expression or a whole aggregate share one column:
    # ten metrics cost as few aggregates as they really need.
    expressions: dict[str, str] = {}  # SQL -> source column

    def expression_column(sql: str, metric: str) -> str:
        if sql not in expressions:
            expressions[sql] = column_name(metric, "measured")
            source_cols.append(f"{sql} as {expressions[sql]}")
        return expressions[sql]

    aggs: dict[tuple, str] = {}  # (kind, value, flag, extra) -> output column

    def aggregate(metric: str, kind: str, value: str, flag: str, **extra: str) -> str:
        key = (kind, value, flag, tuple(extra.items()))
        if key not in aggs:
            aggs[key] = column_name(metric, kind)
        return aggs[key]

    filter_columns: list[str] = []
    distinct: list[tuple[int, str, str, str]] = []  # (key, value column, filter, output column)
    outputs: list[tuple[str, str, str, str]] = []  # (value, count, sum, present) per metric
    for m in metrics:
        meas = m.measure
        conds = []
        if meas.filter is not None:
            conds.append(fragment_expr(meas.filter.tree, parenthesize=True))
            filter_columns += [c for c in meas.filter.columns if c not in filter_columns]
        first_bucket = floor_to_grain(m.start, grain)
        if first_bucket > series_start:
            conds.append(f'"bucket_start >= " ~ metrics_timestamp({jinja_str(first_bucket.strftime(TS_FORMAT))})')
        flag = ' ~ " and " ~ '.join(conds)
        x = expression_column(fragment(meas.expression.tree), m.name) if meas.expression is not None else ""
        # A slice row is stored when its value could differ from the empty-bucket value;
        # that is read off the aggregate itself, so no extra row count is computed.
        a = meas.aggregation
        if a == "count_distinct":
            # DuckDB: count(DISTINCT) FILTER is ~3x slower than one query per metric, so
            # there distinct counts come from a long-form GROUP BY (bucket, slice, key)
            same = [d for d in distinct if d[1] == x and d[2] == flag]
            if same:
                n = same[0][3]
            else:
                k = len(distinct) + 1
                n = column_name(m.name, "distinct")
                distinct.append((k, x, flag, n))
            outputs.append((n, "null", "null", f"{n} > 0"))
        elif a == "count":
            n = aggregate(m.name, a, x, flag) if x else aggregate(m.name, "count", "", flag)
            outputs.append((n, n, "null", f"{n} > 0"))
        elif a == "sum":
            total = aggregate(m.name, "sum", x, flag)
            outputs.append((f"coalesce({total}, 0)", "null", f"coalesce({total}, 0)", f"{total} is not null"))
        elif a == "avg":
            total, n = aggregate(m.name, "sum", x, flag), aggregate(m.name, "count", x, flag)
            outputs.append((f"{total} / nullif({n}, 0)", n, total, f"{n} > 0"))
        else:
            extra = {}
            if a == "percentile":
                extra["percentile"] = repr(meas.percentile)
            if a == "latest":
                extra["order_by"] = jinja_str("event_at")
            v = aggregate(m.name, a, x, flag, **extra)
            outputs.append((v, "null", "null", f"{v} is not null"))

    def grouping_is(on: str | None, prefix: str = "") -> str:
        parts = [f"{prefix}g_{a} = {0 if a == on else 1}" for a in dim_alias.values()]
        return " and ".join(parts) if parts else "1 = 1"

    # One row per (metric, slice dimension) this model emits: the wide aggregates are
    # turned into long rows by one cross join with this list, so `aggregated` is read
    # once (ClickHouse inlines a CTE at every reference).
    slots, wide, long_form, gauge_totals, metric_list = [], [], [], [], []
    for m, (v, c, s_, present) in zip(metrics, outputs):
        agg = m.measure.aggregation
        name = string(m.name)
        slices: list[str | None] = [None] + list(m.dimensions)
        for d in slices:
            slot = len(slots) + 1
            slots.append(f"    select {slot} as slot, {name} as metric, {string(d or '')} as dimension")
            dim_value = "''" if d is None else _macro("metrics_slice_value", dim_alias[d])
            if agg == "latest" and m.dimensions and d is None:
                # a gauge's total is the sum of each first-dimension value's latest value
                first = dim_alias[m.dimensions[0]]
                gauge_totals.append(
                    f"    select {name} as metric, bucket_start, '' as dimension, '' as dimension_value,\n"
                    f"        cast(sum({v}) as {{{{ metrics_type('double') }}}}) as value,\n"
                    f"        cast(null as {{{{ metrics_type('bigint') }}}}) as count_, cast(null as {{{{ metrics_type('double') }}}}) as sum_\n"
                    f"    from aggregated\n    where {grouping_is(first)} and {present}\n    group by bucket_start")
                continue
            case = (slot, f"{grouping_is(dim_alias[d] if d else None)} and {present}", dim_value, v, c, s_)
            if agg == "count_distinct":
                long_form.append((slot, v, d))
                wide.append(("{% if not metrics_distinct_long_form() %}", case, "{% endif %}"))
            else:
                wide.append(("", case, ""))
        empty_value = "0" if m.fill == 0 else "null"
        empty_sum = "0" if agg in ("sum", "avg") else "null"
        metric_list.append(
            f"    select {name} as metric, {_ts(max(floor_to_grain(m.start, grain), series_start))} as first_bucket,\n"
            f"        cast({empty_value} as {{{{ metrics_type('double') }}}}) as empty_value,\n"
            f"        cast({empty_sum} as {{{{ metrics_type('double') }}}}) as empty_sum,\n"
            f"        cast({'0' if agg in ('count', 'avg') else 'null'} as {{{{ metrics_type('bigint') }}}}) as empty_count,\n"
            f"        '' as dimension")

    def case_of(index: int, cast_to: str | None) -> str:
        # every branch cast to the column's type: ClickHouse finds no common type for
        # UInt64 and Float64 branches
        def typed(sql: str) -> str:
            return f"cast({sql} as {{{{ metrics_type('{cast_to}') }}}})" if cast_to else sql
        branches = "".join(f"{pre} when {case[0]} then {typed(case[index])}{post}" for pre, case, post in wide)
        if all(pre for pre, _, _ in wide):
            # every branch may be left out (only long-form distinct counts): keep one
            branches = f" when 0 then {typed('null')}" + branches
        return f"case s.slot{branches} end"

    # `1 = 0 or ...`: each condition brings its own `or`, so a part left out by a Jinja
    # condition leaves valid SQL
    conditions = "1 = 0" + "".join(f"\n        {pre}or (s.slot = {case[0]} and {case[1]}){post}" for pre, case, post in wide)
    observed = [
        "    select s.metric as metric, a.bucket_start as bucket_start, s.dimension as dimension,\n"
        f"        {case_of(2, None)} as dimension_value,\n"
        f"        {case_of(3, 'double')} as value,\n"
        f"        {case_of(4, 'bigint')} as count_,\n"
        f"        {case_of(5, 'double')} as sum_\n"
        "    from aggregated as a\n    cross join slots as s\n"
        f"    where {conditions}"
    ]
    if long_form:
        # the long-form rows (alias l) carry a key k per distinct metric instead of a column
        key_of = {n: k for k, _, _, n in distinct}
        lf_value = "".join(f" when {slot} then " + ("''" if d is None else _macro("metrics_slice_value", "l." + dim_alias[d]))
                           for slot, _, d in long_form)
        lf_cond = "\n        or ".join(f"(s.slot = {slot} and l.k = {key_of[n]} and {grouping_is(dim_alias[d] if d else None, 'l.')})"
                                       for slot, n, d in long_form)
        observed.append(
            "{% if metrics_distinct_long_form() %}\n"
            "    select s.metric as metric, l.bucket_start as bucket_start, s.dimension as dimension,\n"
            f"        case s.slot{lf_value} end as dimension_value,\n"
            f"        cast(l.n as {{{{ metrics_type('double') }}}}) as value,\n"
            f"        cast(null as {{{{ metrics_type('bigint') }}}}) as count_, cast(null as {{{{ metrics_type('double') }}}}) as sum_\n"
            "    from distinct_long as l\n    cross join slots as s\n"
            f"    where l.n > 0 and (\n        {lf_cond})\n"
            "{% endif %}")
    observed += gauge_totals

    source_cols += [ident(c) for c in filter_columns]
    keyed = bool(filter_columns) and all(keyable(m, model.categorical) for m in metrics)
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
    distinct_filter_cols, distinct_long = "", ""
    if distinct:
        fallback = [f"{aggregate_sql('count_distinct', x, flag)} as {n}" for _, x, flag, n in distinct]
        distinct_filter_cols = "{%- if not metrics_distinct_long_form() %},\n        " + ",\n        ".join(fallback) + "{% endif %}"
        dims_sel = "".join(f"{a}, " for a in dim_alias.values())
        branches = "\n        union all\n".join(
            f"        select bucket_start, {dims_sel}{x} as v, {k} as k from source_rows" + (f" where {{{{ {flag} }}}}" if flag else "")
            for k, x, flag, _ in distinct)
        long_sets = ", ".join(["(bucket_start, k)"] + [f"(bucket_start, {a}, k)" for a in dim_alias.values()])
        groupings = "".join(f"\n        {_macro('metrics_grouping', a)} as g_{a}," for a in dim_alias.values())
        distinct_long = f"""{{% if metrics_distinct_long_form() %}}
distinct_long as (
    -- exact distinct counts: one long-form GROUP BY for every distinct metric (key k)
    select
        bucket_start,{groupings}
        {dims_sel}k,
        count(distinct v) as n
    from (
{branches}
    ) as keyed
    group by grouping sets ({long_sets})
),
{{% endif %}}
"""
    lineage = f"-- depends_on: {{{{ ref({jinja_str(depends_on)}) }}}}\n" if depends_on else ""
    return f"""{header([m.path for m in metrics])}{cfg}{lineage}
{{%- set w = metrics_window({jinja_str(grain)}, {jinja_str(start_text)}) %}}
{{%- do metrics_check_timestamp(ref({jinja_str(model.source)}), {jinja_str(model.timestamp)}, [{", ".join(jinja_str(p) for p in sorted({m.path for m in metrics}))}]) %}}

with source_rows as (
    -- one scan of the source: the rows of the window's buckets
    select
        {(','+chr(10)+'        ').join(source_cols)}
    from {{{{ ref({jinja_str(model.source)}) }}}}
    where {ts} >= {{{{ metrics_timestamp(w.start) }}}}
      and {ts} < {{{{ metrics_timestamp(w.end) }}}}
),

{aggregated_ctes(aggs, agg_cols, distinct_filter_cols, sets, list(dim_alias.values()),
                  [ident(c) for c in filter_columns] if keyed else [], bool(distinct))}

{distinct_long}
slots as (
{union.join(slots)}
),

observed as (
{_union_with_optional(observed)}
),

metric_list as (
{union.join(metric_list)}
),

spine as (
    {{{{ metrics_bucket_spine(w.start, w.end, {jinja_str(grain)}) }}}}
),

expected_totals as (
    -- the total has a row for every bucket from the metric's start: empty is 0 or a gap
    select l.metric as metric, s.bucket_start as bucket_start, l.dimension as dimension,
        l.empty_value as empty_value, l.empty_count as empty_count, l.empty_sum as empty_sum
    from spine as s
    cross join metric_list as l
    where s.bucket_start >= l.first_bucket
),

rows_out as (
    -- observed rows pass through; a total bucket with no rows gets the empty value
    select
        coalesce(o.metric, t.metric) as metric,
        coalesce(o.bucket_start, t.bucket_start) as bucket_start,
        coalesce(o.dimension, t.dimension) as dimension,
        coalesce(o.dimension_value, '') as dimension_value,
        case when o.metric is null then t.empty_value else o.value end as value,
        case when o.metric is null then t.empty_count else o.count_ end as count_,
        case when o.metric is null then t.empty_sum else o.sum_ end as sum_
    from observed as o
    full outer join expected_totals as t
        on o.metric = t.metric and o.bucket_start = t.bucket_start and o.dimension = t.dimension
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
{{{{ metrics_query_settings() }}}}
"""


def _union_with_optional(parts: list[str]) -> str:
    """UNION ALL of selects, some wrapped in `{% if %}...{% endif %}`: the UNION ALL
    keyword goes inside the condition so a dropped part leaves valid SQL."""
    out = parts[0]
    for part in parts[1:]:
        if part.startswith("{% if"):
            head, _, rest = part.partition("\n")
            out += f"\n{head}\n    union all\n{rest}"
        else:
            out += f"\n    union all\n{part}"
    return out

