{# A slice's dimension value as text; a NULL value is the slice '(null)'. #}
{% macro metrics_slice_value(column) %}
  {{- return(adapter.dispatch('metrics_slice_value')(column)) -}}
{% endmacro %}

{% macro default__metrics_slice_value(column) -%}
  coalesce(cast({{ column }} as {{ metrics_type('string') }}), '(null)')
{%- endmacro %}

{% macro clickhouse__metrics_slice_value(column) -%}
  {#- toString keeps NULL for a Nullable column; casting NULL to String would fail -#}
  ifNull(toString({{ column }}), '(null)')
{%- endmacro %}
