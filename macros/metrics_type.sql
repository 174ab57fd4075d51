{# Column types of the rollup tables: double | string | bigint | timestamp. #}
{% macro metrics_type(name) %}
  {{- return(adapter.dispatch('metrics_type')(name)) -}}
{% endmacro %}

{% macro default__metrics_type(name) -%}
  {{ {'double': 'double precision', 'string': 'varchar', 'bigint': 'bigint', 'timestamp': 'timestamp'}[name] }}
{%- endmacro %}

{% macro duckdb__metrics_type(name) -%}
  {{ {'double': 'double', 'string': 'varchar', 'bigint': 'bigint', 'timestamp': 'timestamp'}[name] }}
{%- endmacro %}

{% macro clickhouse__metrics_type(name) -%}
  {{ {'double': 'Nullable(Float64)', 'string': 'String', 'bigint': 'Nullable(Int64)', 'timestamp': "DateTime64(6, 'UTC')"}[name] }}
{%- endmacro %}
