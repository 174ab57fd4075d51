{#- The shared end of both metric_rollup materializations: delete exactly the window's rows
    of this model's metrics, then insert the staged rows. -#}
{% macro metrics_replace_window(target_relation, staged, window, metric_names) %}
  {% call statement('delete_window') -%}
    {{ metrics_delete_window(target_relation, window.start, window.end, metric_names) }}
  {%- endcall %}
  {% call statement('main') -%}
    insert into {{ target_relation }} (metric, bucket_start, dimension, dimension_value, value, count, sum, run_id, computed_at)
    select metric, bucket_start, dimension, dimension_value, value, count, sum, run_id, computed_at from {{ staged }}
  {%- endcall %}
{% endmacro %}
