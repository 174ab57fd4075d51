{# A UTC timestamp literal from 'YYYY-MM-DD HH:MM:SS'. #}
{% macro metrics_timestamp(text) %}
  {{- return(adapter.dispatch('metrics_timestamp')(text)) -}}
{% endmacro %}

{% macro default__metrics_timestamp(text) -%}
  cast('{{ text }}' as timestamp)
{%- endmacro %}

{% macro clickhouse__metrics_timestamp(text) -%}
  toDateTime64('{{ text }}', 6, 'UTC')
{%- endmacro %}
