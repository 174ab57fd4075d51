{#-
  metric_rollup: a long-form rollup table rewritten one window at a time.

  - No table yet (or --full-refresh): create it from the model's query.
  - Otherwise: stage the window's rows in a temporary table, then in one transaction
    delete exactly that window's rows of this model's metrics and insert the staged ones.
    A failing query fails before anything is deleted; re-running a window is idempotent;
    rows outside the window (and of metrics no longer in the model) are untouched.
-#}
{% materialization metric_rollup, default %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing = load_cached_relation(this) -%}
  {%- set w = metrics_window(config.get('grain'), config.get('series_start')) -%}
  {%- set metric_names = config.get('metric_names') or [] -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% if existing is none or should_full_refresh() or not existing.is_table %}
    {% if existing is not none %}
      {{ adapter.drop_relation(existing) }}
    {% endif %}
    {% call statement('main') -%}
      {{ metrics_create_rollup_table(target_relation, sql) }}
    {%- endcall %}
  {% else %}
    {%- set staged = make_temp_relation(target_relation) -%}
    {{ drop_relation_if_exists(staged) }}
    {% call statement('stage') -%}
      {{ get_create_table_as_sql(True, staged, sql) }}
    {%- endcall %}
    {{ metrics_replace_window(target_relation, staged, w, metric_names) }}
  {% endif %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
