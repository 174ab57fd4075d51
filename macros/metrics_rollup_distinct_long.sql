{#-
  DuckDB's exact distinct counts (metrics_distinct_long_form): the measured column of
  every distinct metric in rollup.distinct, tagged with its key k, in one long-form
  GROUP BY (bucket, slice, k), so no count(DISTINCT ...) FILTER is needed.
-#}
{% macro metrics_rollup_distinct_long(rollup) -%}
{%- set dims = rollup.dimensions | map(attribute='column') | list -%}
{%- set branches = [] -%}
{%- for d in rollup.distinct -%}
  {%- do branches.append("select " ~ (["bucket_start"] + dims + [d.value ~ " as v", d.key ~ " as k"]) | join(", ")
      ~ " from source_rows" ~ (" where " ~ d.filter if d.filter else "")) -%}
{%- endfor -%}
{%- set sets = ["(bucket_start, k)"] -%}
{%- for d in dims -%}{%- do sets.append("(bucket_start, " ~ d ~ ", k)") -%}{%- endfor -%}
distinct_long as (
    -- exact distinct counts: one long-form GROUP BY for every distinct metric (key k)
    select
        bucket_start,
        {%- for d in dims %}
        {{ metrics_grouping(d) }} as g_{{ d }},
        {%- endfor %}
        {{ (dims + ["k"]) | join(", ") }},
        count(distinct v) as n
    from (
        {{ branches | join("\n        union all\n        ") }}
    ) as keyed
    group by grouping sets ({{ sets | join(", ") }})
),
{%- endmacro %}
