{# The start of the UTC bucket of `grain` holding `column`; weeks start on Monday (ISO). #}
{% macro metrics_time_bucket(column, grain) %}
  {{- return(adapter.dispatch('metrics_time_bucket')(column, grain)) -}}
{% endmacro %}

{% macro default__metrics_time_bucket(column, grain) -%}
  date_trunc('{{ grain }}', {{ column }})
{%- endmacro %}

{% macro duckdb__metrics_time_bucket(column, grain) -%}
  {#- date_trunc('week') is ISO (Monday) in DuckDB; cast keeps a timestamp for every grain -#}
  cast(date_trunc('{{ grain }}', {{ column }}) as timestamp)
{%- endmacro %}

{% macro postgres__metrics_time_bucket(column, grain) -%}
  {#- Postgres' date_trunc('week') starts on Monday too -#}
  date_trunc('{{ grain }}', {{ column }})
{%- endmacro %}

{% macro clickhouse__metrics_time_bucket(column, grain) -%}
  {%- if grain == 'hour' -%} toStartOfHour({{ column }})
  {%- elif grain == 'day' -%} toDateTime(toStartOfDay({{ column }}), 'UTC')
  {%- elif grain == 'week' -%} toDateTime(toMonday({{ column }}), 'UTC')
  {%- else -%} toDateTime(toStartOfMonth({{ column }}), 'UTC')
  {%- endif -%}
{%- endmacro %}
