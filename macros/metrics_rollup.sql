{#-
  The SQL of one rollup model: every metric on one source at one grain, in one scan of
  the window `w` (metrics_window). `rollup` is the data compiler/rollup_sql.py writes
  into the model (rollup_data): SQL text to print as is (identifiers and literals
  already quoted) and the names of the columns each metric reads, e.g.
    source, timestamp, grain     ref() of the source, its timestamp column, the grain
    event_at                     a `latest` metric needs the row's timestamp
    dimensions, measured         source_rows columns: [{"column", "sql"}]
    filter_columns               raw columns the filters read
    key_columns, aggregates, partials, distinct
                                 the aggregated CTE (metrics_rollup_aggregated)
    metrics                      per metric: its value/count/sum/present expressions,
                                 its slices (slot, dimension, rows) and empty values
                                 (metrics_rollup_observed)
  The CTE chain: source_rows -> aggregated [-> distinct_long] -> slots -> observed;
  metric_list -> spine -> expected_totals; rows_out joins them; the final select casts
  every column to its rollup table type.
-#}
{% macro metrics_rollup(rollup, w) -%}
{%- set long_form = metrics_distinct_long_form() -%}
{%- set source_cols = [metrics_time_bucket(rollup.timestamp, rollup.grain) ~ " as bucket_start"] -%}
{%- if rollup.event_at -%}{%- do source_cols.append(rollup.timestamp ~ " as event_at") -%}{%- endif -%}
{#- a dimension is grouped by its slice text: a NULL and a real '(null)' are one slice, not two
    rows of one key (the unique-rows test failed after they were written) -#}
{%- for c in rollup.dimensions -%}{%- do source_cols.append(metrics_slice_value(c.sql) ~ " as " ~ c.column) -%}{%- endfor -%}
{%- for c in rollup.measured -%}{%- do source_cols.append(c.sql ~ " as " ~ c.column) -%}{%- endfor -%}
{%- set slots = [] -%}
{%- for m in rollup.metrics -%}{%- for s in m.slices -%}
  {%- do slots.append("select " ~ s.slot ~ " as slot, " ~ m.metric ~ " as metric, " ~ s.dimension ~ " as dimension") -%}
{%- endfor -%}{%- endfor -%}
with source_rows as (
    -- one scan of the source: the rows of the window's buckets
    select
        {{ (source_cols + rollup.filter_columns) | join(",\n        ") }}
    from {{ metrics_source_scan(rollup.source, rollup.timestamp) }}
    where {{ rollup.timestamp }} >= {{ metrics_timestamp(w.start) }}
      and {{ rollup.timestamp }} < {{ metrics_timestamp(w.end) }}
),

{{ metrics_rollup_aggregated(rollup, long_form) }}
{%- if long_form and rollup.distinct %}

{{ metrics_rollup_distinct_long(rollup) }}
{%- endif %}

slots as (
    -- one row per metric and slice (its dimension; '' for the total) this model emits
    {{ slots | join("\n    union all\n    ") }}
),

observed as (
    {{- metrics_rollup_observed(rollup, long_form) }}
),

metric_list as (
    -- each metric's first bucket and its value in a bucket without rows
    {%- for m in rollup.metrics %}
    {{ "union all\n    " if not loop.first }}select {{ m.metric }} as metric, {{ metrics_timestamp(m.first_bucket) }} as first_bucket,
        cast({{ m.empty_value }} as {{ metrics_type('double') }}) as empty_value,
        cast({{ m.empty_sum }} as {{ metrics_type('double') }}) as empty_sum,
        cast({{ m.empty_count }} as {{ metrics_type('bigint') }}) as empty_count,
        '' as dimension
    {%- endfor %}
),

spine as (
    {{ metrics_bucket_spine(w.start, w.end, rollup.grain) }}
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
    cast(metric as {{ metrics_type('string') }}) as metric,
    cast(bucket_start as {{ metrics_type('timestamp') }}) as bucket_start,
    cast(dimension as {{ metrics_type('string') }}) as dimension,
    cast(dimension_value as {{ metrics_type('string') }}) as dimension_value,
    cast(value as {{ metrics_type('double') }}) as value,
    cast(count_ as {{ metrics_type('bigint') }}) as count,
    cast(sum_ as {{ metrics_type('double') }}) as sum,
    {{ metrics_run_id() }} as run_id,
    {{ metrics_now() }} as computed_at
from rows_out
{{ metrics_query_settings(writes=true) }}
{%- endmacro %}
