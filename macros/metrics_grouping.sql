{#- 1 when `column` is rolled up (not grouped) in this grouping set's row, else 0 (the
    SQL standard's GROUPING; DuckDB, Postgres and ClickHouse all follow it). -#}
{% macro metrics_grouping(column) %}
  {{- return(adapter.dispatch('metrics_grouping')(column)) -}}
{% endmacro %}

{% macro default__metrics_grouping(column) -%}
  grouping({{ column }})
{%- endmacro %}
