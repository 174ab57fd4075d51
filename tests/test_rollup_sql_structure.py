"""The rollup builder's pieces without dbt: a generated model is a Jinja literal of data
plus one `metrics_rollup` call (compiler/rollup_sql.py), and macros/metrics_rollup*.sql
turn that data into SQL. Both are rendered here with plain Jinja and DuckDB-flavoured
stubs for the engine-specific macros, and the SQL is read back with sqlglot: one query,
the fixed CTE chain, columns named after their metrics, valid whichever way the
engine-dependent branches (keyed form, long-form distinct counts) go."""
from __future__ import annotations


import jinja2
import pytest
import sqlglot
from sqlglot import exp

from dagster_project.compiler.plan import build_plan
from dagster_project.compiler.rollup_sql import render_rollup
from dagster_project.paths import REPO_ROOT
from dagster_project.validation import project as project_module
from dagster_project.validation.project import load_project

from .conftest import make_project

PAYLOAD = '{{ exceptions.raise_compiler_error("INJECTED") }}'
O = "source: stg_orders\ntimestamp: ordered_at\n"
METRICS = {
    "o/revenue.yml": f"name: revenue\n{O}aggregation: sum\nexpression: amount\ndimensions: [country]\n",
    "o/refunds.yml": f"name: refunds\n{O}aggregation: sum\nexpression: amount\nfilter: refunded\ndimensions: [country]\n",
    "o/buyers.yml": f"name: buyers\n{O}aggregation: count_distinct\nexpression: user_id\nstart: 2024-03-01\n",
    "o/latency.yml": f"name: latency\n{O}aggregation: avg\nexpression: latency_ms\n",
    "o/last_amount.yml": f"name: last_amount\n{O}aggregation: latest\nexpression: amount\ndimensions: [country]\n",
}


def _model(tmp_path, metrics=METRICS):
    paths = make_project(tmp_path, metrics, "start: 2024-02-20\ngrains: [day]\n")
    loaded = load_project(paths)
    assert loaded.ok, [str(i) for i in loaded.issues]
    (model,) = [r for r in build_plan(loaded.project).rollups if r.source == "stg_orders"]
    return model


def _render(model_sql: str, *, long_form: bool, keyed: bool) -> tuple[str, dict]:
    """Render a generated model as dbt would on DuckDB, with stub macros; returns the SQL
    and the `rollup` data the model handed to metrics_rollup."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(REPO_ROOT / "macros")), extensions=["jinja2.ext.do"],
                             undefined=jinja2.StrictUndefined)
    aggregate = {"count": "count({v})", "sum": "sum({v})", "count_distinct": "count(distinct {v})",
                 "percentile": "quantile_cont({v}, {p})", "latest": "arg_max({v}, {o})", "min": "min({v})", "max": "max({v})"}
    env.globals.update(
        config=lambda **kw: "", ref=lambda name: name, metrics_check_timestamp=lambda *a: None,
        metrics_window=lambda grain, start: {"start": "2024-03-01 00:00:00", "end": "2024-03-08 00:00:00"},
        metrics_timestamp=lambda text: f"cast('{text}' as timestamp)", metrics_sql=lambda by: by["duckdb"],
        metrics_time_bucket=lambda c, g: f"cast(date_trunc('{g}', {c}) as timestamp)",
        metrics_grouping=lambda c: f"grouping({c})", metrics_type=lambda t: {"double": "double", "bigint": "bigint"}.get(t, "varchar"),
        metrics_slice_value=lambda c: f"coalesce(cast({c} as varchar), '(null)')",
        metrics_aggregate=lambda kind, v, flag, percentile=None, order_by=None: (
            aggregate[kind].format(v=v or "*", p=percentile, o=order_by) + (f" filter (where {flag})" if flag else "")),
        metrics_bucket_spine=lambda s, e, g: f"select range as bucket_start from range(cast('{s}' as timestamp), cast('{e}' as timestamp), interval '1 {g}')",
        metrics_distinct_long_form=lambda: long_form, metrics_keyed_rollup=lambda: keyed,
        metrics_run_id=lambda: "'run'", metrics_now=lambda: "now()", metrics_query_settings=lambda writes=False: "",
        metrics_source_scan=lambda relation, timestamp: relation)
    # the rollup macros call each other by name, as dbt's macro namespace allows
    macros, seen = {}, {}
    names = ("metrics_rollup", "metrics_rollup_aggregated", "metrics_rollup_distinct_long", "metrics_rollup_observed")
    for name in names:
        env.globals[name] = lambda *args, _name=name: macros[_name](*args)
    for name in names:
        macros[name] = getattr(env.get_template(f"{name}.sql").module, name)
    real = macros["metrics_rollup"]
    macros["metrics_rollup"] = lambda rollup, w: seen.setdefault("rollup", rollup) and real(rollup, w)
    return env.from_string(model_sql).render(), seen["rollup"]


def _ctes(query: exp.Expression) -> dict[str, exp.Select]:
    return {cte.alias: cte.this for cte in query.find(exp.With).expressions}


@pytest.mark.parametrize("long_form,keyed", [(False, False), (True, False), (True, True)])
def test_the_model_renders_to_one_query_with_the_cte_chain(tmp_path, long_form, keyed):
    sql, _ = _render(render_rollup(_model(tmp_path), tags=[]), long_form=long_form, keyed=keyed)
    query = sqlglot.parse_one(sql, dialect="duckdb")
    ctes = _ctes(query)
    want = ["source_rows", "aggregated", "slots", "observed", "metric_list", "spine", "expected_totals", "rows_out"]
    if long_form:
        want.insert(2, "distinct_long")
    assert list(ctes) == want
    assert [s.alias_or_name for s in query.selects] == ["metric", "bucket_start", "dimension", "dimension_value", "value",
                                                        "count", "sum", "run_id", "computed_at"]
    # one scan of the source, one GROUP BY with grouping sets; columns named after metrics
    assert [t.name for t in query.find_all(exp.Table)].count("stg_orders") == 1
    aggregated = [s.alias_or_name for s in ctes["aggregated"].selects]
    assert aggregated[:3] == ["bucket_start", "g_dim_country", "dim_country"]
    assert {"revenue__sum", "refunds__sum", "latency__sum", "latency__count", "last_amount__latest"} <= set(aggregated)
    # distinct counts: inline unless computed in long form
    assert ("buyers__distinct" in aggregated) is not long_form
    assert ctes["aggregated"].args["group"].find(exp.GroupingSets) is not None


def test_each_metric_names_the_columns_it_reads(tmp_path):
    _, data = _render(render_rollup(_model(tmp_path), tags=[]), long_form=False, keyed=False)
    metrics = {m["metric"]: m for m in data["metrics"]}
    assert list(metrics) == ["'buyers'", "'last_amount'", "'latency'", "'refunds'", "'revenue'"]
    assert metrics["'revenue'"]["value"] == "COALESCE(revenue__sum, 0)"
    assert metrics["'latency'"]["value"] == "latency__sum * 1.0 / NULLIF(latency__count, 0)"
    assert metrics["'buyers'"]["distinct_key"] == 1 and metrics["'buyers'"]["first_bucket"] == "2024-03-01 00:00:00"
    # a gauge's total sums its first dimension's latest values
    assert metrics["'last_amount'"]["total_from_rows"] == "g_dim_country = 0"
    assert [s["rows"] for s in metrics["'revenue'"]["slices"]] == ["g_dim_country = 1", "g_dim_country = 0"]
    # revenue and refunds share the measured column, not the aggregate (refunds is filtered)
    assert [c["column"] for c in data["measured"]] == ["buyers__measured", "last_amount__measured", "latency__measured"]
    assert {a["column"]: a["filter"] for a in data["aggregates"]}["refunds__sum"] == "(refunded)"


def test_metric_file_text_is_data_in_the_literal(tmp_path, monkeypatch):
    """A template payload in a filter literal (past validation, switched off here)
    reaches the SQL unchanged and is never run."""
    monkeypatch.setattr(project_module, "template_issues", lambda rel, located: [])
    yaml_filter = "'country <> ''" + PAYLOAD.replace("'", "''") + "'''"
    metrics = {"o/odd.yml": f"name: odd\n{O}aggregation: count\nfilter: {yaml_filter}\n"}
    model_sql = render_rollup(_model(tmp_path, metrics), tags=[])
    assert PAYLOAD not in model_sql  # escaped in the generated file
    sql, _ = _render(model_sql, long_form=True, keyed=False)
    assert f"(country <> '{PAYLOAD}')" in sql
    sqlglot.parse_one(sql, dialect="duckdb")
