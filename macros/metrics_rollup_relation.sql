{#- A rollup table for the series view to read, created empty (with the layout its
    rollup model gives it, macros/metrics_create_rollup_table.sql) when no run built it
    yet: a `metrics run --metric` builds only its metrics' sources, and the view of a grain
    reads every source's rollup. The view then reads the table itself, so the source's
    rows show as soon as any later run (a CLI run, a sensor, the UI) builds it; until then
    its buckets read as never built (gaps). Only a build creates it: parsing and `dbt
    compile` change nothing. -#}
{% macro metrics_rollup_relation(relation) %}
  {%- if execute and flags.WHICH in ('run', 'build') and not metrics_relation_exists(relation) -%}
    {%- do metrics_lock_relation(relation) -%}
    {%- if not metrics_relation_exists(relation) -%}
      {%- set empty -%}
        select cast('' as {{ metrics_type('string') }}) as metric,
            {{ metrics_timestamp('1970-01-01 00:00:00') }} as bucket_start,
            cast('' as {{ metrics_type('string') }}) as dimension,
            cast('' as {{ metrics_type('string') }}) as dimension_value,
            cast(null as {{ metrics_type('double') }}) as value,
            cast(null as {{ metrics_type('bigint') }}) as count,
            cast(null as {{ metrics_type('double') }}) as sum,
            {{ metrics_run_id() }} as run_id,
            {{ metrics_now() }} as computed_at
        where 1 = 0
      {%- endset -%}
      {%- do run_query(metrics_create_rollup_table(relation, empty)) -%}
    {%- endif -%}
  {%- endif -%}
  {{- return(relation) -}}
{% endmacro %}
