{#- The start of the UTC bucket of `grain` holding `column`; weeks start on Monday (ISO).
    UTC whatever the session and the column type: on DuckDB and Postgres the
    metric_rollup materialization sets the session time zone to UTC first
    (metrics_session_utc), so a `timestamptz` is truncated in UTC and a plain
    `timestamp` is read as UTC; on ClickHouse the value is converted to UTC explicitly,
    since toStartOfDay/toMonday work in the column's (or the server's) zone. -#}
{% macro metrics_time_bucket(column, grain) %}
  {{- return(adapter.dispatch('metrics_time_bucket')(column, grain)) -}}
{% endmacro %}

{% macro default__metrics_time_bucket(column, grain) -%}
  cast(date_trunc('{{ grain }}', {{ column }}) as timestamp)
{%- endmacro %}

{% macro duckdb__metrics_time_bucket(column, grain) -%}
  {#- date_trunc('week') is ISO (Monday) in DuckDB; cast keeps a timestamp for every grain -#}
  cast(date_trunc('{{ grain }}', {{ column }}) as timestamp)
{%- endmacro %}

{% macro postgres__metrics_time_bucket(column, grain) -%}
  {#- Postgres' date_trunc('week') starts on Monday too; a timestamptz is truncated in
      the session zone (UTC here) and cast to a plain UTC timestamp -#}
  cast(date_trunc('{{ grain }}', {{ column }}) as timestamp)
{%- endmacro %}

{% macro clickhouse__metrics_time_bucket(column, grain) -%}
  {%- set utc = "toTimeZone(" ~ column ~ ", 'UTC')" -%}
  {%- if grain == 'hour' -%} toStartOfHour({{ utc }})
  {%- elif grain == 'day' -%} toStartOfDay({{ utc }})
  {%- elif grain == 'week' -%} toDateTime(toMonday({{ utc }}), 'UTC')
  {%- else -%} toDateTime(toStartOfMonth({{ utc }}), 'UTC')
  {%- endif -%}
{%- endmacro %}
