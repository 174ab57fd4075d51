{# One row per bucket start in [start, end): the dense series' skeleton. #}
{% macro metrics_bucket_spine(start, end, grain) %}
  {{- return(adapter.dispatch('metrics_bucket_spine')(start, end, grain)) -}}
{% endmacro %}

{% macro default__metrics_bucket_spine(start, end, grain) -%}
  select cast(generate_series as timestamp) as bucket_start
  from generate_series({{ metrics_timestamp(start) }}, {{ metrics_timestamp(end) }} - interval '1 {{ grain }}', interval '1 {{ grain }}')
{%- endmacro %}

{% macro duckdb__metrics_bucket_spine(start, end, grain) -%}
  select range as bucket_start
  from range({{ metrics_timestamp(start) }}, {{ metrics_timestamp(end) }}, interval '1 {{ grain }}')
{%- endmacro %}

{% macro clickhouse__metrics_bucket_spine(start, end, grain) -%}
  {%- set unit = {'hour': 'Hour', 'day': 'Day', 'week': 'Week', 'month': 'Month'}[grain] -%}
  select add{{ unit }}s({{ metrics_timestamp(start) }}, toInt64(number)) as bucket_start
  from numbers(toUInt64(greatest(0, dateDiff('{{ grain }}', {{ metrics_timestamp(start) }}, {{ metrics_timestamp(end) }}))))
{%- endmacro %}
