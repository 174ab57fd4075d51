{#-
  The body of a rollup's `observed` CTE (metrics_rollup): the rows a bucket has, in
  long form (metric, bucket_start, dimension, dimension_value, value, count_, sum_).
  Each metric of rollup.metrics says which aggregate columns are its value, count and
  sum, and when a slice row is `present`; each of its slices has a slot (a row of
  `slots`), the dimension column (none: the total) and the grouping set's `rows`.
    wide     the `aggregated` rows cross joined with `slots` once: each slot keeps the
             rows of its grouping set and reads its metric's columns
    long     DuckDB's distinct counts, from `distinct_long` (key k per metric)
    totals   a gauge's total: the sum of its first dimension's latest values
  Every CASE branch is cast to the column's type: ClickHouse finds no common type for
  UInt64 and Float64 branches.
-#}
{% macro metrics_rollup_observed(rollup, long_form) -%}
{%- set wide, long, totals = [], [], [] -%}
{%- for m in rollup.metrics -%}
  {%- for sl in m.slices -%}
    {%- if m.get("distinct_key") and long_form -%}{%- do long.append((m, sl)) -%}
    {%- elif not (m.get("total_from_rows") and sl.column is none) -%}{%- do wide.append((m, sl)) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if m.get("total_from_rows") -%}{%- do totals.append(m) -%}{%- endif -%}
{%- endfor -%}
{%- set parts = [] -%}
{%- if wide -%}
{%- set part %}
    select s.metric as metric, a.bucket_start as bucket_start, s.dimension as dimension,
        case s.slot
        {%- for m, sl in wide %} when {{ sl.slot }} then {{ "''" if sl.column is none else metrics_slice_value(sl.column) }}{% endfor %} end as dimension_value,
        case s.slot
        {%- for m, sl in wide %} when {{ sl.slot }} then cast({{ m.value }} as {{ metrics_type('double') }}){% endfor %} end as value,
        case s.slot
        {%- for m, sl in wide %} when {{ sl.slot }} then cast({{ m.count }} as {{ metrics_type('bigint') }}){% endfor %} end as count_,
        case s.slot
        {%- for m, sl in wide %} when {{ sl.slot }} then cast({{ m.sum }} as {{ metrics_type('double') }}){% endfor %} end as sum_
    from aggregated as a
    cross join slots as s
    where
        {%- for m, sl in wide %}
        {{ "or " if not loop.first }}(s.slot = {{ sl.slot }} and {{ sl.rows }} and {{ m.present }})
        {%- endfor %}
{%- endset -%}
{%- do parts.append(part) -%}
{%- endif -%}
{%- if long -%}
{%- set part %}
    select s.metric as metric, l.bucket_start as bucket_start, s.dimension as dimension,
        case s.slot
        {%- for m, sl in long %} when {{ sl.slot }} then {{ "''" if sl.column is none else metrics_slice_value("l." ~ sl.column) }}{% endfor %} end as dimension_value,
        cast(l.n as {{ metrics_type('double') }}) as value,
        cast(null as {{ metrics_type('bigint') }}) as count_, cast(null as {{ metrics_type('double') }}) as sum_
    from distinct_long as l
    cross join slots as s
    where l.n > 0 and (
        {%- for m, sl in long %}
        {{ "or " if not loop.first }}(s.slot = {{ sl.slot }} and l.k = {{ m.distinct_key }} and {{ sl.rows }})
        {%- endfor %})
{%- endset -%}
{%- do parts.append(part) -%}
{%- endif -%}
{%- for m in totals -%}
{%- set part %}
    select {{ m.metric }} as metric, bucket_start, '' as dimension, '' as dimension_value,
        cast(sum({{ m.value }}) as {{ metrics_type('double') }}) as value,
        cast(null as {{ metrics_type('bigint') }}) as count_, cast(null as {{ metrics_type('double') }}) as sum_
    from aggregated
    where {{ m.total_from_rows }} and {{ m.present }}
    group by bucket_start
{%- endset -%}
{%- do parts.append(part) -%}
{%- endfor -%}
{{ parts | join("\n    union all") }}
{%- endmacro %}
