{#- The source relation as a rollup scans it: its time columns read in UTC.
    DuckDB and Postgres: the relation itself (metric_rollup sets the session zone to UTC,
    metrics_session_utc). ClickHouse: a DateTime or DateTime64 column not typed with the
    zone UTC (`DateTime('Asia/Tokyo')`, and a zone-less one, which toHour or a cast to
    date read in the server's or chDB's process's zone, even under session_timezone) is
    read through toTimeZone, so a filter's `extract(hour ...)`, `cast(... as date)` or a
    comparison with a literal works in UTC; a `Date` timestamp column becomes a UTC
    DateTime64, which the bucket functions take (toTimeZone refuses a Date). -#}
{% macro metrics_source_scan(relation, timestamp) %}
  {{- return(adapter.dispatch('metrics_source_scan')(relation, timestamp)) -}}
{% endmacro %}

{% macro default__metrics_source_scan(relation, timestamp) -%}
  {{ relation }}
{%- endmacro %}

{% macro clickhouse__metrics_source_scan(relation, timestamp) -%}
  {%- set re = modules.re -%}
  {%- set swaps = [] -%}
  {%- if execute -%}
    {%- for c in adapter.get_columns_in_relation(relation) -%}
      {%- set kind = re.sub("^(Nullable|LowCardinality)\\((.*)\\)$", "\\2", c.data_type | trim) -%}
      {%- set name = adapter.quote(c.name) -%}
      {%- if kind.startswith('DateTime') and not kind.endswith("'UTC')") -%}
        {%- do swaps.append("toTimeZone(" ~ name ~ ", 'UTC') as " ~ name) -%}
      {%- elif kind in ('Date', 'Date32') and c.name | lower == timestamp | replace('"', '') | replace('`', '') | lower -%}
        {%- do swaps.append("toDateTime64(" ~ name ~ ", 0, 'UTC') as " ~ name) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {%- if swaps -%}
    (select * replace ({{ swaps | join(", ") }}) from {{ relation }})
  {%- else -%}
    {{ relation }}
  {%- endif -%}
{%- endmacro %}
