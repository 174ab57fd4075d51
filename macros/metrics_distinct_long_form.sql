{#- Exact distinct counts in a long-form GROUP BY (bucket, slice, metric key) instead of
    count(DISTINCT ...) FILTER (...): on DuckDB the long form is ~3x faster (bench/);
    Postgres and ClickHouse (uniqExactIf) keep the one-pass aggregate. -#}
{% macro metrics_distinct_long_form() %}
  {{- return(adapter.dispatch('metrics_distinct_long_form')()) -}}
{% endmacro %}

{% macro default__metrics_distinct_long_form() -%}
  {{ return(false) }}
{%- endmacro %}

{% macro duckdb__metrics_distinct_long_form() -%}
  {{ return(true) }}
{%- endmacro %}
