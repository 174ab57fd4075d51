"""One rollup model: every metric on one source (and timestamp column) at one grain,
in one scan.

The SQL's shape lives in macros; this module writes only what is particular to the
model, as data. A generated model is

    {{ config(...) }}
    {%- set w = metrics_window(...) %}                      the window to compute
    {%- do metrics_check_timestamp(...) %}
    {%- set rollup = {...} %}                               rollup_data() below
    {{ metrics_rollup(rollup, w) }}                         macros/metrics_rollup.sql

and the macros write the CTE chain:

    source_rows      one scan of the source for the window: bucket, dimension, measured
                     and filter columns
    aggregated       every metric's aggregates in one GROUP BY with grouping sets (the
                     total and each dimension alone, all from raw rows), directly or
                     from partials keyed by categorical filter columns
                     (macros/metrics_rollup_aggregated.sql, compiler/aggregated_sql.py)
    distinct_long    DuckDB only: exact distinct counts in a long-form GROUP BY
    slots            one row per (metric, slice dimension) the model emits
    observed         the wide aggregates turned into long rows by one cross join with
                     `slots`, so `aggregated` is read once (ClickHouse inlines a CTE at
                     every reference) (macros/metrics_rollup_observed.sql)
    metric_list, spine, expected_totals, rows_out
                     the total is dense over the window's buckets from each metric's
                     first bucket (empty is 0 or a gap); slices are stored sparse
    final select     every column cast to its rollup table type

Every column is named after what it carries: `dim_country` for a dimension,
`revenue__measured` for a measured expression and `revenue__sum` for an aggregate, after
the first metric that needs it (metrics that share one share the column). The small SQL
expressions of the data (which column is a metric's value, when a slice row exists) are
built as sqlglot trees; text from a metric file reaches the data only through the
sql_text helpers, and the data only as Jinja literals (compiler/jinja_data.py). How each
aggregate is spelled per warehouse lives in macros/metrics_aggregate.sql."""
from __future__ import annotations

import re

from sqlglot import exp

from .aggregated_sql import Aggregates, keyable
from .jinja_data import JinjaExpr, jinja_literal
from .plan import RollupModel, floor_to_grain
from .sql_text import BASE_DIALECT, config_block, fragment_expr, header, jinja_str

TS_FORMAT = "%Y-%m-%d %H:%M:%S"


def _ts(value) -> str:
    return "{{ metrics_timestamp(" + jinja_str(value.strftime(TS_FORMAT)) + ") }}"


def _macro(name: str, *args: str, **kwargs: str) -> str:
    parts = [jinja_str(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()]
    return "{{ " + name + "(" + ", ".join(parts) + ") }}"


def _sql(tree: exp.Expression) -> str:
    """SQL text of a tree that every warehouse spells alike (identifiers, string and
    number literals, comparisons, COALESCE / NULLIF / division): one text for all."""
    return tree.sql(dialect=BASE_DIALECT)


def _col(name: str) -> exp.Column:
    return exp.column(exp.to_identifier(name))


def _zero() -> exp.Literal:
    return exp.Literal.number(0)


def _reads(m, agg: Aggregates, x: str, flag: str) -> dict:
    """Which aggregate columns a metric reads: its value, count and sum (the rollup row's
    columns) and when a slice row is stored: when its value could differ from the
    empty-bucket value, read off the aggregate itself (no extra row count)."""
    null, aggregation, metric = exp.null(), m.measure.aggregation, m.name
    if aggregation == "count_distinct":
        d = agg.add_distinct(metric, x, flag)
        n = _col(d["column"])
        value, count, sum_, present = n, null, null, exp.GT(this=n, expression=_zero())
        key = d["key"]
    elif aggregation == "count":
        n = _col(agg.add(metric, "count", x, flag))
        value, count, sum_, present = n, n, null, exp.GT(this=n, expression=_zero())
        key = None
    elif aggregation == "sum":
        total = _col(agg.add(metric, "sum", x, flag))
        value = sum_ = exp.func("coalesce", total, _zero())
        count, present, key = null, total.is_(null).not_(), None
    elif aggregation == "avg":
        total, n = _col(agg.add(metric, "sum", x, flag)), _col(agg.add(metric, "count", x, flag))
        # `* 1.0`: Postgres divides an integer sum by a count with truncation
        value = exp.Div(this=exp.Mul(this=total, expression=exp.Literal.number("1.0")),
                        expression=exp.func("nullif", n, _zero()))
        count, sum_, present, key = n, total, exp.GT(this=n, expression=_zero()), None
    else:
        extra = {}
        if aggregation == "percentile":
            extra["percentile"] = m.measure.percentile
        if aggregation == "latest":
            extra["order_by"] = "event_at"
        v = _col(agg.add(metric, aggregation, x, flag, **extra))
        value, count, sum_, present, key = v, null, null, v.is_(null).not_(), None
        if aggregation == "percentile":  # the values it is read from: its noise shrinks with them
            count = _col(agg.add(metric, "count", x, flag))
    reads = {"value": _sql(value), "count": _sql(count), "sum": _sql(sum_), "present": _sql(present)}
    return reads | ({"distinct_key": key} if key else {})


def rollup_data(model: RollupModel) -> dict:
    """Everything macros/metrics_rollup.sql needs to write this model: SQL text (quoted
    identifiers and literals, rendered by sqlglot) or Jinja expressions, never template
    code. The keys are documented beside each part below and in the macros."""
    grain, metrics, series_start = model.grain, model.metrics, model.series_start
    dims: list[str] = []
    for m in metrics:
        dims += [d for d in m.dimensions if d not in dims]
    dim_alias = {d: f"dim_{d}" if re.fullmatch(r"[a-z0-9_]{1,40}", d) else f"dim_{n + 1}" for n, d in enumerate(dims)}
    names_used: set[str] = set()

    def column_name(metric: str, what: str) -> str:
        base = f"{metric[:40]}__{what}"
        name, n = base, 1
        while name in names_used:
            n += 1
            name = f"{base}_{n}"
        names_used.add(name)
        return name

    # Metrics that share a measured expression or a whole aggregate share one column:
    # ten metrics cost as few aggregates as they really need.
    measured: dict[str, dict] = {}  # Jinja expression of the SQL -> source column

    def measured_column(tree: exp.Expression, metric: str) -> str:
        sql = JinjaExpr(fragment_expr(tree))
        if sql not in measured:
            measured[sql] = {"column": column_name(metric, "measured"), "sql": sql}
        return measured[sql]["column"]

    def rows_of(on: str | None) -> str:
        """The `aggregated` rows of one grouping set: `on` alone grouped (None: the total)."""
        tests = [exp.EQ(this=_col(f"g_{a}"), expression=exp.Literal.number(0 if a == on else 1)) for a in dim_alias.values()]
        return _sql(exp.and_(*tests) if tests else exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1)))

    agg = Aggregates(column_name)
    filter_columns: list[str] = []
    out_metrics: list[dict] = []
    slot = 0
    for m in metrics:
        meas = m.measure
        conds = []
        if meas.filter is not None:
            conds.append(fragment_expr(meas.filter.tree, parenthesize=True))
            filter_columns += [c for c in meas.filter.columns if c not in filter_columns]
        first_bucket = max(floor_to_grain(m.start, grain), series_start)
        if first_bucket > series_start:
            conds.append(f'"bucket_start >= " ~ metrics_timestamp({jinja_str(first_bucket.strftime(TS_FORMAT))})')
        flag = JinjaExpr(' ~ " and " ~ '.join(conds)) if conds else ""
        x = measured_column(meas.expression.tree, m.name) if meas.expression is not None else ""
        a = meas.aggregation
        entry = {"metric": _sql(exp.Literal.string(m.name)), "first_bucket": first_bucket.strftime(TS_FORMAT),
                 "empty_value": "0" if m.fill == 0 else "NULL", "empty_count": "0" if a in ("count", "avg") else "NULL",
                 "empty_sum": "0" if a in ("sum", "avg") else "NULL", **_reads(m, agg, x, flag)}
        slices = []
        for d in [None] + list(m.dimensions):
            slot += 1
            slices.append({"slot": slot, "dimension": _sql(exp.Literal.string(d or "")),
                           "column": None if d is None else dim_alias[d], "rows": rows_of(dim_alias[d] if d else None)})
        if a == "latest" and m.dimensions:
            # a gauge's total is the sum of each first-dimension value's latest value
            entry["total_from_rows"] = rows_of(dim_alias[m.dimensions[0]])
        entry["slices"] = slices
        out_metrics.append(entry)

    keyed = bool(filter_columns) and all(keyable(m, model.categorical) for m in metrics)
    return {
        "source": JinjaExpr(f"ref({jinja_str(model.source)})"),
        "timestamp": _sql(exp.to_identifier(model.timestamp)),
        "grain": grain,
        "event_at": any(m.measure.aggregation == "latest" for m in metrics),
        "dimensions": [{"column": a, "sql": _sql(exp.to_identifier(d))} for d, a in dim_alias.items()],
        "measured": list(measured.values()),
        "filter_columns": [_sql(exp.to_identifier(c)) for c in filter_columns],
        **agg.data([_sql(exp.to_identifier(c)) for c in filter_columns] if keyed else []),
        "metrics": out_metrics,
    }


def render_rollup(model: RollupModel, tags: list[str], depends_on: str | None = None, macros: str | None = None) -> str:
    start_text = model.series_start.strftime(TS_FORMAT)
    cfg = config_block({
        "materialized": "metric_rollup",
        "grain": model.grain,
        "series_start": start_text,
        "metric_names": [m.name for m in model.metrics],
        "tags": tags,
    })
    lineage = f"-- depends_on: {{{{ ref({jinja_str(depends_on)}) }}}}\n" if depends_on else ""
    if macros:
        lineage += f"-- macros/ digest {macros}: a changed macro changes this file, so Dagster marks its partitions stale\n"
    files = ", ".join(jinja_str(p) for p in sorted({m.path for m in model.metrics}))
    return (
        f"{header([m.path for m in model.metrics])}{cfg}{lineage}\n"
        f"{{%- set w = metrics_window({jinja_str(model.grain)}, {jinja_str(start_text)}) %}}\n"
        f"{{%- do metrics_check_timestamp(ref({jinja_str(model.source)}), {jinja_str(model.timestamp)}, [{files}]) %}}\n"
        "{#- what this model computes; macros/metrics_rollup.sql writes the SQL -#}\n"
        f"{{%- set rollup = {jinja_literal(rollup_data(model))} %}}\n\n"
        "{{ metrics_rollup(rollup, w) }}\n"
    )
