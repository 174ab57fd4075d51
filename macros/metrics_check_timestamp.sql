{#- Fail a rollup at once, naming the metric files and the column, when the column that
    places rows in buckets is not a time type (validation checks the declared
    `data_type` where the dbt YAML gives one; this covers the rest). -#}
{% macro metrics_check_timestamp(relation, column, metric_files) %}
  {%- if execute -%}
    {%- set found = [] -%}
    {%- for c in adapter.get_columns_in_relation(relation) -%}
      {%- if c.name | lower == column | lower -%}{%- do found.append(c.data_type | lower) -%}{%- endif -%}
    {%- endfor -%}
    {%- set kind = found[0] if found else '' -%}
    {%- if found and not ('time' in kind or 'date' in kind) -%}
      {{ exceptions.raise_compiler_error(metric_files | join(', ') ~ ": timestamp column `" ~ column ~ "` of "
          ~ relation.identifier ~ " is " ~ kind ~ ", not a timestamp: cast it in the model, or point `timestamp:` at a time column") }}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}
