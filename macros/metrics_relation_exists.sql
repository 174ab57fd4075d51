{#- Whether a table exists now, asked of the warehouse rather than dbt's relation cache:
    after waiting for a lock, another run may have created it meanwhile. -#}
{% macro metrics_relation_exists(relation) %}
  {{- return(adapter.dispatch('metrics_relation_exists')(relation)) -}}
{% endmacro %}

{% macro default__metrics_relation_exists(relation) -%}
  {%- set found = run_query("select count(*) from information_schema.tables where table_schema = '"
      ~ relation.schema ~ "' and table_name = '" ~ relation.identifier ~ "'") -%}
  {{- return(found.columns[0].values()[0] > 0) -}}
{%- endmacro %}

{% macro clickhouse__metrics_relation_exists(relation) -%}
  {%- set found = run_query("select count() from system.tables where database = '"
      ~ relation.schema ~ "' and name = '" ~ relation.identifier ~ "'") -%}
  {{- return(found.columns[0].values()[0] > 0) -}}
{%- endmacro %}
