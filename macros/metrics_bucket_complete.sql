{#- True when the bucket starting at `column` has ended (UTC now is past its end): the
    bucket in progress is not complete, so its change against the bucket before is not
    a drop. -#}
{% macro metrics_bucket_complete(column, grain) %}
  {{- return(adapter.dispatch('metrics_bucket_complete')(column, grain)) -}}
{% endmacro %}

{% macro default__metrics_bucket_complete(column, grain) -%}
  ({{ column }} <= {{ metrics_bucket_prev(metrics_now(), grain) }})
{%- endmacro %}

{% macro clickhouse__metrics_bucket_complete(column, grain) -%}
  toBool({{ column }} <= {{ metrics_bucket_prev(metrics_now(), grain) }})
{%- endmacro %}
