{#- Serialize runs that rewrite the same rollup relation. Postgres: a transaction-scoped
    advisory lock keyed by the relation's name, so two runs over overlapping windows (a
    schedule and a backfill, two `metrics run`s, plain dbt) take turns, and the lock is
    released by the commit or rollback. DuckDB and chDB allow one writing process per
    file; `metrics` and the Dagster steps wait for that file (warehouse/lock.py). -#}
{% macro metrics_lock_relation(relation) %}
  {{- return(adapter.dispatch('metrics_lock_relation')(relation)) -}}
{% endmacro %}

{% macro default__metrics_lock_relation(relation) -%}
{%- endmacro %}

{% macro postgres__metrics_lock_relation(relation) -%}
  {% call statement('lock_relation') -%}
    select pg_advisory_xact_lock(hashtext('metric_rollup:' || {{ dbt.string_literal(relation.schema ~ '.' ~ relation.identifier) }}))
  {%- endcall %}
{%- endmacro %}
