{#-
  metric_rollup: a long-form rollup table rewritten one window at a time.

  - No table yet: create it from the model's query.
  - Otherwise: stage the window's rows in a temporary table, then in one transaction
    delete exactly that window's rows of this model's metrics and insert the staged
    rows that fall inside the window. A failing query fails before anything is deleted;
    re-running a window is idempotent; rows outside the window (and of metrics no longer
    in the model) are untouched.
  - The session is in UTC first (metrics_session_utc), and on Postgres runs over the same
    relation take turns (metrics_lock_relation) before the table's existence is read.
  - --full-refresh drops the table: refused while a window is set, since only the
    window would be rebuilt and the rest of the history lost.
-#}
{% materialization metric_rollup, default %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set w = metrics_window(config.get('grain'), config.get('series_start')) -%}
  {%- set metric_names = config.get('metric_names') or [] -%}
  {%- if should_full_refresh() and w.windowed -%}
    {{ exceptions.raise_compiler_error(metrics_full_refresh_refusal(this)) }}
  {%- endif -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ metrics_session_utc() }}
  {{ metrics_lock_relation(target_relation) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {%- set existing = load_cached_relation(this) -%}
  {%- if existing is not none and not existing.is_table -%}
    {{ adapter.drop_relation(existing) }}
  {%- endif -%}
  {%- set exists = metrics_relation_exists(target_relation) -%}

  {% if not exists or should_full_refresh() %}
    {% if exists %}
      {{ adapter.drop_relation(target_relation) }}
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
