{#- Trailing query settings a generated query needs to mean the same on every warehouse.
    ClickHouse: outer joins must give NULL for a missing row (not the type's default);
    written into the query so a view behaves the same whichever session reads it. -#}
{% macro metrics_query_settings() %}
  {{- return(adapter.dispatch('metrics_query_settings')()) -}}
{% endmacro %}

{% macro default__metrics_query_settings() -%}
{%- endmacro %}

{% macro clickhouse__metrics_query_settings() -%}
  settings join_use_nulls = 1
{%- endmacro %}
