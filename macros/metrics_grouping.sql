{# 1 when `column` is rolled up (not grouped) in this grouping set's row, else 0. #}
{% macro metrics_grouping(column) %}
  {{- return(adapter.dispatch('metrics_grouping')(column)) -}}
{% endmacro %}

{% macro default__metrics_grouping(column) -%}
  grouping({{ column }})
{%- endmacro %}

{% macro clickhouse__metrics_grouping(column) -%}
  {#- ClickHouse's GROUPING is 1 when the column IS grouped: flip it to the SQL standard -#}
  (1 - grouping({{ column }}))
{%- endmacro %}
