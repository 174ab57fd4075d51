{#- Trailing query settings a generated query needs to mean the same on every warehouse.
    ClickHouse: outer joins must give NULL for a missing row (not the type's default);
    written into the query so a view behaves the same whichever session reads it.
    `writes` (a rollup's query, which creates or fills a table): a zone-less DateTime
    and a time literal are read in UTC, not in the server's (or chDB's process's) zone,
    and a first build over more than 100 months may write more than 100 month
    partitions at once (the default limit failed the build). -#}
{% macro metrics_query_settings(writes=false) %}
  {{- return(adapter.dispatch('metrics_query_settings')(writes)) -}}
{% endmacro %}

{% macro default__metrics_query_settings(writes) -%}
{%- endmacro %}

{% macro clickhouse__metrics_query_settings(writes) -%}
  settings join_use_nulls = 1
  {%- if writes %}, session_timezone = 'UTC', max_partitions_per_insert_block = 0{% endif %}
{%- endmacro %}
