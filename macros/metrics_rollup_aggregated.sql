{#-
  The `aggregated` CTE of a rollup (metrics_rollup): one row per bucket and slice with
  every aggregate, in one of two forms (compiler/aggregated_sql.py says why):
    direct   one GROUP BY over the raw rows, each filter inline
    keyed    when every filter reads only categorical columns (rollup.key_columns) and the
             engine prefers it (metrics_keyed_rollup): unfiltered partials grouped by
             those columns too, then the filters applied to the few partial rows. It
             has no raw rows left for count(DISTINCT), so with distinct counts it is
             used only where those are computed apart (metrics_distinct_long_form).
  Aggregates: rollup.aggregates [{"column", "kind", "value", "filter", ...}]; distinct
  counts (rollup.distinct) are aggregated here unless `long_form`.
-#}
{% macro metrics_rollup_aggregated(rollup, long_form) -%}
{%- set dims = rollup.dimensions | map(attribute='column') | list -%}
{%- set slice_cols = ["bucket_start"] -%}
{%- for d in dims -%}{%- do slice_cols.append(metrics_grouping(d) ~ " as g_" ~ d) -%}{%- endfor -%}
{%- set slice_cols = slice_cols + dims -%}
{%- set sep = ",\n        " -%}
{%- if rollup.key_columns and metrics_keyed_rollup() and (long_form or not rollup.distinct) -%}
{%- set cols = slice_cols + rollup.key_columns -%}
{%- for p in rollup.partials -%}
  {%- do cols.append(metrics_aggregate(p.kind, p.value, "") ~ " as " ~ p.column) -%}
{%- endfor -%}
{%- set sets = ["(bucket_start, " ~ rollup.key_columns | join(", ") ~ ")"] -%}
{%- for d in dims -%}{%- do sets.append("(bucket_start, " ~ d ~ ", " ~ rollup.key_columns | join(", ") ~ ")") -%}{%- endfor -%}
{%- set grouped = ["bucket_start"] -%}
{%- for d in dims -%}{%- do grouped.append("g_" ~ d) -%}{%- endfor -%}
{%- set grouped = grouped + dims -%}
{%- set combined = [] -%}
{%- for a in rollup.aggregates -%}
  {%- set sql = metrics_aggregate(a.combine, a.partial, a.filter) -%}
  {%- do combined.append(("coalesce(" ~ sql ~ ", " ~ a.empty ~ ")" if a.get("empty") else sql) ~ " as " ~ a.column) -%}
{%- endfor -%}
partials as (
    -- partial aggregates per bucket, slice and value of the filtered columns: the
    -- metrics' filters are applied to these few rows, not to every raw row
    select
        {{ cols | join(sep) }}
    from source_rows
    group by grouping sets ({{ sets | join(", ") }})
),

aggregated as (
    select
        {{ (grouped + combined) | join(sep) }}
    from partials
    group by {{ grouped | join(", ") }}
),
{%- else -%}
{%- set cols = slice_cols[:] -%}
{%- for a in rollup.aggregates -%}
  {%- do cols.append(metrics_aggregate(a.kind, a.value, a.filter, percentile=a.get("percentile"), order_by=a.get("order_by")) ~ " as " ~ a.column) -%}
{%- endfor -%}
{%- if not long_form -%}
  {%- for d in rollup.distinct -%}
    {%- do cols.append(metrics_aggregate("count_distinct", d.value, d.filter) ~ " as " ~ d.column) -%}
  {%- endfor -%}
{%- endif -%}
{%- set sets = ["(bucket_start)"] -%}
{%- for d in dims -%}{%- do sets.append("(bucket_start, " ~ d ~ ")") -%}{%- endfor -%}
aggregated as (
    -- every metric at once: the total and each dimension alone, from raw rows
    select
        {{ cols | join(sep) }}
    from source_rows
    group by grouping sets ({{ sets | join(", ") }})
),
{%- endif -%}
{%- endmacro %}
