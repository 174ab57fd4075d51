{#- Why --full-refresh is refused while a window is set (both materializations). -#}
{% macro metrics_full_refresh_refusal(relation) -%}
  {{ return(relation.identifier ~ ": --full-refresh drops the whole table, but a window is set "
      ~ "(METRICS_WINDOW_START/END): only the window would be rebuilt and the rest of the history lost. "
      ~ "Unset the window to rebuild all history, or drop --full-refresh to recompute the window.") }}
{%- endmacro %}
