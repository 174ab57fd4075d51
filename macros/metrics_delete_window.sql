{# Delete one window's rows of the given metrics from a rollup table. #}
{% macro metrics_delete_window(relation, start, end, metric_names) %}
  {{- return(adapter.dispatch('metrics_delete_window')(relation, start, end, metric_names)) -}}
{% endmacro %}

{% macro default__metrics_delete_window(relation, start, end, metric_names) -%}
  delete from {{ relation }}
  where bucket_start >= {{ metrics_timestamp(start) }}
    and bucket_start < {{ metrics_timestamp(end) }}
    and metric in ({% for m in metric_names %}'{{ m }}'{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}
