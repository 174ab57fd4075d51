{# The start of the bucket before `column`'s, at the same grain. #}
{% macro metrics_bucket_prev(column, grain) %}
  {{- return(adapter.dispatch('metrics_bucket_prev')(column, grain)) -}}
{% endmacro %}

{% macro default__metrics_bucket_prev(column, grain) -%}
  ({{ column }} - interval '1 {{ grain }}')
{%- endmacro %}

{% macro clickhouse__metrics_bucket_prev(column, grain) -%}
  ({{ column }} - INTERVAL 1 {{ grain | upper }})
{%- endmacro %}
