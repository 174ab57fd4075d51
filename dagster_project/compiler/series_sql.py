"""The reading surface, one view per grain: every metric in long form (metric, bucket,
slice, value, components), ratio and derived metrics computed from their inputs' values
in the same slice, plus previous_value and change_pct against the bucket before."""
from __future__ import annotations

from ..spec.resolved import Metric
from .plan import SeriesModel, floor_to_grain
from .rollup_sql import _macro, _ts
from .sql_text import config_block, fragment, header, jinja_str, string

_COLUMNS = "metric, bucket_start, dimension, dimension_value, value, count, sum, numerator, denominator, run_id, computed_at"


def _cte(name: str) -> str:
    return f"m__{name}"


def _fill(m: Metric) -> str:
    return "null" if m.fill is None else repr(float(m.fill))


def _combined(m: Metric, by_name: dict[str, Metric], grain: str) -> list[str]:
    """CTEs for a ratio or derived metric: its keys (every slice bucket any input has, in
    the buckets all inputs were built for), then its value from each input's value there
    (an input without a row in the slice counts as empty)."""
    inputs = [by_name[n] for n in m.inputs]
    dims = ", ".join(["''"] + [string(d) for d in m.dimensions])
    first = _ts(floor_to_grain(m.start, grain))
    keys = "\n        union distinct\n".join(
        f"        select bucket_start, dimension, dimension_value from {_cte(i.name)}\n"
        f"        where dimension in ({dims}) and bucket_start >= {first}" for i in inputs)
    # only buckets every input was built for (its total row is stored dense over them): an
    # input never built there is a gap, not its empty value
    built = "\n      and ".join(f"bucket_start in (select bucket_start from {_cte(n)} where dimension = '')"
                                for n in dict.fromkeys(i.name for i in inputs))
    joins, values = [], []
    for n, i in enumerate(inputs, start=1):
        joins.append(f"    left join {_cte(i.name)} as i{n}\n        on i{n}.bucket_start = k.bucket_start and i{n}.dimension = k.dimension"
                     f" and i{n}.dimension_value = k.dimension_value")
        values.append(f"case when i{n}.metric is null then {_fill(i)} else i{n}.value end as in_{n}")
    run_id = "coalesce(" + ", ".join(f"i{n}.run_id" for n in range(1, len(inputs) + 1)) + ")"
    computed = "coalesce(" + ", ".join(f"i{n}.computed_at" for n in range(1, len(inputs) + 1)) + ")"
    if m.kind == "ratio":
        value, num, den = "in_1 / nullif(in_2, 0)", "in_1", "in_2"
    else:
        mapping = {i.name: f"in_{n}" for n, i in enumerate(inputs, start=1)}
        value, num, den = fragment(m.formula.tree, column_map=mapping, guard_div=True), "null", "null"
    return [
        f"k__{m.name} as (\n    select bucket_start, dimension, dimension_value from (\n{keys}\n    ) as input_keys\n"
        f"    where {built}\n)",
        f"""{_cte(m.name)} as (
    select {string(m.name)} as metric, bucket_start, dimension, dimension_value,
        cast({value} as {{{{ metrics_type('double') }}}}) as value,
        cast(null as {{{{ metrics_type('bigint') }}}}) as count,
        cast(null as {{{{ metrics_type('double') }}}}) as sum,
        cast({num} as {{{{ metrics_type('double') }}}}) as numerator,
        cast({den} as {{{{ metrics_type('double') }}}}) as denominator,
        run_id, computed_at
    from (
        select k.bucket_start as bucket_start, k.dimension as dimension, k.dimension_value as dimension_value,
            {(','+chr(10)+'            ').join(values)},
            {run_id} as run_id, {computed} as computed_at
        from k__{m.name} as k
{chr(10).join(joins)}
    ) as joined
)""",
    ]


def render_series(model: SeriesModel, tags: list[str]) -> str:
    grain = model.grain
    by_name = {m.name: m for m in model.metrics}
    # each rollup's rows of the metrics it computes now: a metric moved to another source
    # or timestamp column leaves its old rows in the old rollup, which must not show twice
    rollups = "\n    union all\n".join(
        f"    select metric, bucket_start, dimension, dimension_value, value, count, sum,\n"
        f"        cast(null as {{{{ metrics_type('double') }}}}) as numerator, cast(null as {{{{ metrics_type('double') }}}}) as denominator,\n"
        f"        run_id, computed_at\n    from {{{{ metrics_rollup_relation(ref({jinja_str(r.name)})) }}}}\n"
        f"    where metric in ({', '.join(string(m.name) for m in r.metrics)})" for r in model.rollups)
    # inputs of ratio/derived metrics, in dependency order
    needed: list[Metric] = []

    def need(m: Metric) -> None:
        for n in m.inputs:
            need(by_name[n])
        if m not in needed:
            needed.append(m)

    for m in model.outputs:
        if m.kind != "simple":
            need(m)
    ctes = [f"rollup_rows as (\n{rollups}\n)"]
    for m in needed:
        if m.kind == "simple":
            ctes.append(f"{_cte(m.name)} as (\n    select * from rollup_rows where metric = {string(m.name)}\n)")
        else:
            ctes += _combined(m, by_name, grain)
    simple_outputs = [m for m in model.outputs if m.kind == "simple"]
    parts = []
    if simple_outputs:
        parts.append(f"    select {_COLUMNS} from rollup_rows\n    where metric in ({', '.join(string(m.name) for m in simple_outputs)})")
    parts += [f"    select {_COLUMNS} from {_cte(m.name)}" for m in model.outputs if m.kind != "simple"]
    ctes.append("all_values as (\n" + "\n    union all\n".join(parts) + "\n)")
    ctes.append("series_catalog as (\n" + "\n    union all\n".join(
        f"    select {string(m.name)} as metric, {_ts(floor_to_grain(m.start, grain))} as first_bucket, "
        f"cast({_fill(m)} as {{{{ metrics_type('double') }}}}) as empty_value" for m in model.outputs) + "\n)")
    prev = _macro("metrics_bucket_prev", "v.bucket_start", grain)
    ctes.append("""visible as (
    -- only buckets from each metric's first one: a reused name or a later `start`
    -- never shows rows left behind by an earlier definition
    select v.*, c.empty_value as empty_value
    from all_values as v
    inner join series_catalog as c on c.metric = v.metric
    where v.bucket_start >= c.first_bucket
)""")
    ctes.append("""built_buckets as (
    -- the buckets that were built: the total is stored dense over them
    select metric, bucket_start from visible where dimension = ''
)""")
    # previous_value, one rule (README, "previous_value"): the value of the bucket before
    # when that bucket was built (a slice with no row there has the empty-bucket value),
    # NULL when it was never built; warehouse/read.py applies the same rule
    ctes.append(f"""with_previous as (
    select v.*,
        case
            when lag(v.bucket_start) over w = {prev} then lag(v.value) over w
            when b.metric is not null then v.empty_value
            else null
        end as previous_value
    from visible as v
    left join built_buckets as b on b.metric = v.metric and b.bucket_start = {prev}
    window w as (partition by v.metric, v.dimension, v.dimension_value order by v.bucket_start)
)""")
    cfg = config_block({"materialized": "view", "tags": tags})
    return f"""{header([m.path for m in model.outputs])}{cfg}
with {(','+chr(10)+chr(10)).join(ctes)}

select
    metric,
    {string(grain)} as grain,
    bucket_start,
    dimension,
    dimension_value,
    value,
    count,
    sum,
    numerator,
    denominator,
    previous_value,
    case when previous_value is null or previous_value = 0 or value is null then null
         else (value - previous_value) / abs(previous_value) * 100 end as change_pct,
    -- false for the bucket in progress: its change_pct compares part of a bucket
    {_macro("metrics_bucket_complete", "bucket_start", grain)} as complete,
    run_id,
    computed_at
from with_previous
{{{{ metrics_query_settings() }}}}
"""
