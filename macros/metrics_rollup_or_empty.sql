{#- A rollup table, or no rows while it does not exist yet: the series view of a grain
    reads every source's rollup, and a `metrics run --metric` builds only its metrics'
    sources, so another source may never have been built. Its buckets then read as never
    built (gaps), as they would after a build of an empty window. -#}
{% macro metrics_rollup_or_empty(relation) %}
  {%- if execute and not metrics_relation_exists(relation) -%}
    (select cast('' as {{ metrics_type('string') }}) as metric,
        {{ metrics_timestamp('1970-01-01 00:00:00') }} as bucket_start,
        cast('' as {{ metrics_type('string') }}) as dimension,
        cast('' as {{ metrics_type('string') }}) as dimension_value,
        cast(null as {{ metrics_type('double') }}) as value,
        cast(null as {{ metrics_type('bigint') }}) as count,
        cast(null as {{ metrics_type('double') }}) as sum,
        {{ metrics_run_id() }} as run_id,
        {{ metrics_now() }} as computed_at
     where 1 = 0)
  {%- else -%}
    {{ relation }}
  {%- endif -%}
{% endmacro %}
