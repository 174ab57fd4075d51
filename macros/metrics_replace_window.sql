{#- The end of the metric_rollup materialization on DuckDB and Postgres (one transaction):
    delete exactly the window's rows of this model's metrics, then insert the staged rows
    inside the window.
    ClickHouse swaps whole partitions instead (metrics_replace_partitions.sql). -#}
{% macro metrics_replace_window(target_relation, staged, window, metric_names) %}
  {% call statement('delete_window') -%}
    {{ metrics_delete_window(target_relation, window.start, window.end, metric_names) }}
  {%- endcall %}
  {% call statement('main') -%}
    insert into {{ target_relation }} (metric, bucket_start, dimension, dimension_value, value, count, sum, run_id, computed_at)
    select metric, bucket_start, dimension, dimension_value, value, count, sum, run_id, computed_at from {{ staged }}
    {#- only rows inside the deleted window: what is deleted is exactly what is rewritten #}
    where bucket_start >= {{ metrics_timestamp(window.start) }}
      and bucket_start < {{ metrics_timestamp(window.end) }}
  {%- endcall %}
{% endmacro %}
