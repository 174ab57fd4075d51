{#- Provenance of every rollup row: which run wrote it (METRICS_RUN_ID, set by `metrics run`
    and the Dagster assets; read at execution time so it never forces a re-parse). -#}
{% macro metrics_run_id() -%}
  {%- set run_id = env_var('METRICS_RUN_ID', 'manual') if execute else 'manual' -%}
  cast('{{ run_id | replace("'", "") }}' as {{ metrics_type('string') }})
{%- endmacro %}
