{#- A user SQL fragment that sqlglot rendered differently per warehouse: pick ours. -#}
{% macro metrics_sql(by_target) -%}
  {{ by_target.get(target.type, by_target.get('duckdb')) }}
{%- endmacro %}
