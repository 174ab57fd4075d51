{#-
  One aggregate of a rollup scan, restricted to the rows whose boolean column `flag` is
  true (no flag: every row). `value` is the measured column ('' for count(*)).
  DuckDB and Postgres: FILTER (WHERE ...); ClickHouse: the -If combinators.
    count | sum | min | max | count_distinct | percentile (continuous) | latest
-#}
{% macro metrics_aggregate(kind, value, flag, percentile=none, order_by=none) %}
  {{- return(adapter.dispatch('metrics_aggregate')(kind, value, flag, percentile, order_by)) -}}
{% endmacro %}

{% macro _metrics_filter(flag) -%}
  {%- if flag %} filter (where {{ flag }}){% endif -%}
{%- endmacro %}

{% macro default__metrics_aggregate(kind, value, flag, percentile, order_by) -%}
  {%- if kind == 'count' -%} count({{ value or '*' }}){{ _metrics_filter(flag) }}
  {%- elif kind in ('sum', 'min', 'max') -%} {{ kind }}({{ value }}){{ _metrics_filter(flag) }}
  {%- elif kind == 'count_distinct' -%} count(distinct {{ value }}){{ _metrics_filter(flag) }}
  {%- elif kind == 'percentile' -%} percentile_cont({{ percentile }}) within group (order by {{ value }}){{ _metrics_filter(flag) }}
  {%- elif kind == 'latest' -%}
    {#- last observed value; on a tie, the larger value -#}
    (array_agg({{ value }} order by {{ order_by }} desc, {{ value }} desc) filter (where {{ value }} is not null{% if flag %} and {{ flag }}{% endif %}))[1]
  {%- else -%} {{ exceptions.raise_compiler_error("unknown aggregate " ~ kind) }}
  {%- endif -%}
{%- endmacro %}

{% macro duckdb__metrics_aggregate(kind, value, flag, percentile, order_by) -%}
  {%- if kind == 'percentile' -%} quantile_cont({{ value }}, {{ percentile }}){{ _metrics_filter(flag) }}
  {%- elif kind == 'latest' -%}
    arg_max({{ value }}, ({{ order_by }}, {{ value }})) filter (where {{ value }} is not null{% if flag %} and {{ flag }}{% endif %})
  {%- else -%} {{ default__metrics_aggregate(kind, value, flag, percentile, order_by) }}
  {%- endif -%}
{%- endmacro %}

{% macro postgres__metrics_aggregate(kind, value, flag, percentile, order_by) -%}
  {{ default__metrics_aggregate(kind, value, flag, percentile, order_by) }}
{%- endmacro %}

{% macro clickhouse__metrics_aggregate(kind, value, flag, percentile, order_by) -%}
  {%- set cond = flag or '1' -%}
  {%- if kind == 'count' and not value -%} countIf({{ cond }})
  {%- elif kind == 'count' -%} countIf({{ value }}, {{ cond }})
  {%- elif kind in ('sum', 'min', 'max') -%}
    {#- NULL when no non-NULL value matched; a count guard is measured ~25% faster than
        the -OrNull combinator over a whole rollup (bench/bench_engines.py) -#}
    {#- a sum is taken in Float64, as the rollup stores it: an Int64 sum wrapped around past
        2^63 (DuckDB and Postgres sum integers exactly, then store the double) -#}
    if(countIf({{ value }}, {{ cond }}) > 0,
       {{ kind }}If({{ 'toFloat64(' ~ value ~ ')' if kind == 'sum' else value }}, {{ cond }}), null)
  {%- elif kind == 'count_distinct' -%} uniqExactIf({{ value }}, {{ cond }} and {{ value }} is not null)
  {%- elif kind == 'percentile' -%} quantileExactInclusiveOrNullIf({{ percentile }})({{ value }}, {{ cond }} and {{ value }} is not null)
  {%- elif kind == 'latest' -%} argMaxOrNullIf({{ value }}, ({{ order_by }}, {{ value }}), {{ cond }} and {{ value }} is not null)
  {%- else -%} {{ exceptions.raise_compiler_error("unknown aggregate " ~ kind) }}
  {%- endif -%}
{%- endmacro %}
