{# When the row was computed (UTC). #}
{% macro metrics_now() %}
  {{- return(adapter.dispatch('metrics_now')()) -}}
{% endmacro %}

{% macro default__metrics_now() -%}
  cast(now() at time zone 'UTC' as timestamp)
{%- endmacro %}

{% macro duckdb__metrics_now() -%}
  cast(get_current_timestamp() at time zone 'UTC' as timestamp)
{%- endmacro %}

{% macro clickhouse__metrics_now() -%}
  now64(6, 'UTC')
{%- endmacro %}
