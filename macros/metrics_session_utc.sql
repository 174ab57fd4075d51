{#- Make the session's time zone UTC before a rollup query runs, so time zone-aware
    columns are bucketed and compared with the window in UTC whatever the server's,
    the client's (TZ, PGTZ) or the profile's zone. Postgres: for this transaction only.
    ClickHouse needs nothing: metrics_time_bucket converts to UTC explicitly. -#}
{% macro metrics_session_utc() %}
  {{- return(adapter.dispatch('metrics_session_utc')()) -}}
{% endmacro %}

{% macro default__metrics_session_utc() -%}
{%- endmacro %}

{% macro duckdb__metrics_session_utc() -%}
  {% call statement('session_utc') %}set TimeZone = 'UTC'{% endcall %}
{%- endmacro %}

{% macro postgres__metrics_session_utc() -%}
  {% call statement('session_utc') %}set local time zone 'UTC'{% endcall %}
{%- endmacro %}
