{#- Whether a rollup whose filters read only categorical columns groups the raw rows by
    those columns first (unfiltered partial aggregates; the filters are applied to the
    few partial rows) instead of one pass with every filter inline. Measured with both
    forms on each engine (bench/bench_engines.py): keyed is faster on DuckDB; Postgres
    (FILTER) and ClickHouse (-If combinators) are faster in one pass.
    METRICS_ROLLUP_FORM=keyed|direct overrides the engine's choice (benchmarks, tests);
    it is read at execution time only, so it never invalidates dbt's partial parse. -#}
{% macro metrics_keyed_rollup() %}
  {%- set forced = env_var('METRICS_ROLLUP_FORM', '') if execute else '' -%}
  {%- if forced in ('keyed', 'direct') -%}
    {{- return(forced == 'keyed') -}}
  {%- endif -%}
  {{- return(adapter.dispatch('metrics_keyed_rollup')()) -}}
{% endmacro %}

{% macro default__metrics_keyed_rollup() -%}
  {{ return(false) }}
{%- endmacro %}

{% macro duckdb__metrics_keyed_rollup() -%}
  {{ return(true) }}
{%- endmacro %}
