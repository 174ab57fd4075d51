{#- Data test on every generated rollup: one row per (metric, bucket_start, dimension,
    dimension_value). A duplicate would mean two runs wrote the same window. -#}
{% test metrics_unique_rows(model) %}
  select metric, bucket_start, dimension, dimension_value, count(*) as copies
  from {{ model }}
  group by metric, bucket_start, dimension, dimension_value
  having count(*) > 1
{% endtest %}
