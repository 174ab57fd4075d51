{# Create a rollup table from a query, with the storage layout that fits each warehouse. #}
{% macro metrics_create_rollup_table(relation, sql) %}
  {{- return(adapter.dispatch('metrics_create_rollup_table')(relation, sql)) -}}
{% endmacro %}

{% macro default__metrics_create_rollup_table(relation, sql) -%}
  {{ get_create_table_as_sql(False, relation, sql) }}
{%- endmacro %}

{% macro postgres__metrics_create_rollup_table(relation, sql) -%}
  {{ get_create_table_as_sql(False, relation, sql) }};
  {#- the window delete and series reads filter by metric and bucket -#}
  create index if not exists {{ relation.identifier }}__metric_bucket on {{ relation }} (metric, bucket_start)
{%- endmacro %}

{% macro clickhouse__metrics_create_rollup_table(relation, sql) -%}
  create table {{ relation }}
  engine = MergeTree()
  partition by toYYYYMM(bucket_start)
  order by (metric, dimension, dimension_value, bucket_start)
  as {{ sql }}
{%- endmacro %}
