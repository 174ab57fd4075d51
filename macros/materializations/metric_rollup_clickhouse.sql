{#-
  metric_rollup on ClickHouse: MergeTree ordered by (metric, dimension, dimension_value,
  bucket_start) and partitioned by month, so a window rewrite and series reads touch
  few parts. The window's rows are computed into a staging table first (a failing query
  changes nothing), then each month the window touches is swapped in whole
  (macros/metrics_replace_partitions.sql). Buckets are computed in UTC explicitly
  (metrics_time_bucket); one writer per chDB path (warehouse/lock.py).
-#}
{% materialization metric_rollup, adapter='clickhouse' %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing = load_cached_relation(this) -%}
  {%- set w = metrics_window(config.get('grain'), config.get('series_start')) -%}
  {%- set metric_names = config.get('metric_names') or [] -%}
  {%- set staged = this.incorporate(path={"identifier": this.identifier ~ "__staged"}, type='table') -%}
  {%- if should_full_refresh() and w.windowed -%}
    {{ exceptions.raise_compiler_error(metrics_full_refresh_refusal(this)) }}
  {%- endif -%}

  {{ run_hooks(pre_hooks) }}
  {% if existing is none or should_full_refresh() or not existing.is_table %}
    {% if existing is not none %}
      {% call statement('drop_existing') %}drop table if exists {{ existing }}{% endcall %}
    {% endif %}
    {% call statement('main') -%}
      {{ metrics_create_rollup_table(target_relation, sql) }}
    {%- endcall %}
  {% else %}
    {% call statement('drop_staged') %}drop table if exists {{ staged }}{% endcall %}
    {#- the model's query runs here: 'main' -#}
    {% call statement('main') -%}
      {{ metrics_create_rollup_table(staged, sql) }}
    {%- endcall %}
    {{ metrics_replace_partitions(target_relation, staged, w, metric_names) }}
    {% call statement('drop_staged_after') %}drop table if exists {{ staged }}{% endcall %}
  {% endif %}
  {{ run_hooks(post_hooks) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
