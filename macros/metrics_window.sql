{#-
  The window a rollup model computes, as grain-aligned UTC timestamps [start, end).

  The window reaches dbt through environment variables that are read only at execution
  time (`if execute`), so a new window does not invalidate dbt's partial parse
  (a changed --vars value forces a full re-parse on every run).

    METRICS_WINDOW_START / METRICS_WINDOW_END  ISO dates or timestamps; a bucket belongs
        to the window when its start does, so both are rounded up to the grain.
        Unset: from the metric's start to now.
    METRICS_NOW  overrides the current time (tests); the bucket containing now is the
        last one built, so no future bucket is ever written as empty.
    A value with an offset is read as the same instant in UTC.
-#}
{% macro metrics_window(grain, series_start) %}
  {%- set dt = modules.datetime -%}
  {%- set raw = {'start': '', 'end': '', 'now': ''} -%}
  {%- if execute -%}
    {%- do raw.update({
        'start': env_var('METRICS_WINDOW_START', ''),
        'end': env_var('METRICS_WINDOW_END', ''),
        'now': env_var('METRICS_NOW', '')}) -%}
  {%- endif -%}
  {%- set now = metrics_naive_utc(dt.datetime.fromisoformat(raw.now)) if raw.now else dt.datetime.utcnow() -%}
  {%- set first = metrics_floor_ts(dt.datetime.fromisoformat(series_start), grain) -%}
  {%- set last = metrics_add_grain(metrics_floor_ts(now, grain), grain) -%}
  {%- set start = first -%}
  {%- set end = last -%}
  {%- if raw.start -%}
    {%- set s = metrics_ceil_ts(metrics_naive_utc(dt.datetime.fromisoformat(raw.start)), grain) -%}
    {%- set start = [s, first] | max -%}
  {%- endif -%}
  {%- if raw.end -%}
    {%- set e = metrics_ceil_ts(metrics_naive_utc(dt.datetime.fromisoformat(raw.end)), grain) -%}
    {%- set end = [e, last] | min -%}
  {%- endif -%}
  {%- if end < start -%}{%- set end = start -%}{%- endif -%}
  {{ return({
      'start': start.strftime('%Y-%m-%d %H:%M:%S'),
      'end': end.strftime('%Y-%m-%d %H:%M:%S'),
      'windowed': (raw.start or raw.end) | length > 0}) }}
{% endmacro %}

{#- a timestamp with an offset as the same instant in naive UTC (dropping the offset moved
    `METRICS_NOW=...T20:30:00-05:00` five hours from what the Python side reads) -#}
{% macro metrics_naive_utc(ts) %}
  {%- if ts.tzinfo is none -%}{{ return(ts) }}{%- endif -%}
  {{ return((ts - ts.utcoffset()).replace(tzinfo=none)) }}
{% endmacro %}

{% macro metrics_floor_ts(ts, grain) %}
  {%- set dt = modules.datetime -%}
  {%- set hour = ts.replace(minute=0, second=0, microsecond=0) -%}
  {%- set day = hour.replace(hour=0) -%}
  {%- if grain == 'hour' -%}{{ return(hour) }}
  {%- elif grain == 'day' -%}{{ return(day) }}
  {%- elif grain == 'week' -%}{{ return(day - dt.timedelta(days=day.weekday())) }}
  {%- elif grain == 'month' -%}{{ return(day.replace(day=1)) }}
  {%- else -%}{{ exceptions.raise_compiler_error("unknown grain " ~ grain) }}
  {%- endif -%}
{% endmacro %}

{% macro metrics_add_grain(ts, grain) %}
  {%- set dt = modules.datetime -%}
  {%- if grain == 'hour' -%}{{ return(ts + dt.timedelta(hours=1)) }}
  {%- elif grain == 'day' -%}{{ return(ts + dt.timedelta(days=1)) }}
  {%- elif grain == 'week' -%}{{ return(ts + dt.timedelta(days=7)) }}
  {%- elif ts.month == 12 -%}{{ return(ts.replace(year=ts.year + 1, month=1)) }}
  {%- else -%}{{ return(ts.replace(month=ts.month + 1)) }}
  {%- endif -%}
{% endmacro %}

{% macro metrics_ceil_ts(ts, grain) %}
  {%- set floor = metrics_floor_ts(ts, grain) -%}
  {{ return(floor if floor == ts else metrics_add_grain(floor, grain)) }}
{% endmacro %}
