"""Metric files are data, never template code. dbt renders every generated model and
properties file as Jinja, so a payload that raises when rendered is put in each field:
validation refuses it with file:line, and, should text ever get past validation, the
compiler emits it only as escaped data: `dbt parse` and a real build succeed and the
text arrives in the warehouse unchanged."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from dagster_project.cli.main import main
from dagster_project.compiler.writer import compile_project
from dagster_project.validation import project as project_module
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse
from dagster_project.warehouse.dbt_runner import run_dbt

from .conftest import make_project

PAYLOAD = '{{ exceptions.raise_compiler_error("INJECTED") }}'
BLOCK = '{% do exceptions.raise_compiler_error("INJECTED") %}'
COMMENT = '{# hidden #}'

BASE = ("name: m\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n")


def _yaml(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# (field, metric file text, line of the field)
CASES = [
    ("description", BASE + f"description: {_yaml(PAYLOAD)}\n", 5),
    ("owner", BASE + f"owner: {_yaml(BLOCK)}\n", 5),
    ("filter", BASE + "filter: " + _yaml(f"metric_type = '{PAYLOAD}'") + "\n", 5),
    ("expression", "name: m\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count_distinct\n"
                   "expression: " + _yaml(f"coalesce(user_id, '{PAYLOAD}')") + "\n", 5),
    ("dimensions.0", BASE + f"dimensions: [{_yaml(COMMENT)}]\n", 5),
    ("alerts.0", BASE + f"alerts: [{_yaml(PAYLOAD)}]\n", 5),
    ("numerator.filter", "name: m\nkind: ratio\ndenominator: d\nnumerator:\n  source: stg_entity_events\n  timestamp: created_at\n"
                         "  aggregation: count\n  filter: " + _yaml(f"entity_type = '{PAYLOAD}'") + "\n", 8),
    ("source", f"name: m\nsource: {_yaml(PAYLOAD)}\ntimestamp: created_at\naggregation: count\n", 2),
]
DENOMINATOR = "name: d\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"


@pytest.mark.parametrize("field,text,line", CASES, ids=[c[0] for c in CASES])
def test_a_template_delimiter_in_any_field_is_refused_with_file_and_line(tmp_path, capsys, field, text, line):
    paths = make_project(tmp_path, {"growth/m.yml": text, "growth/d.yml": DENOMINATOR})
    assert main(["--project-dir", str(paths.root), "compile"]) == 1
    err = capsys.readouterr().err
    assert f"metrics/growth/m.yml:{line}: `{field}` contains `{{" in err, err
    assert "template" in err
    assert not any(paths.generated_dir.iterdir())  # nothing compiled


def test_the_project_config_is_checked_too(tmp_path, capsys):
    paths = make_project(tmp_path, {"growth/d.yml": DENOMINATOR}, config=f"start: 2024-01-01\nowner: {_yaml(PAYLOAD)}\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "metrics/_config.yml:2: `owner` contains `{{`" in capsys.readouterr().err


def test_double_underscore_names_are_reserved(tmp_path, capsys):
    """`x__numerator` would silently replace ratio x's inline numerator."""
    paths = make_project(tmp_path, {
        "growth/x.yml": "name: x\nkind: ratio\nnumerator: {source: stg_entity_events, timestamp: created_at, aggregation: count}\ndenominator: d\n",
        "growth/d.yml": DENOMINATOR,
        "growth/x__numerator.yml": "name: x__numerator\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Like'\"\n",
    })
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/growth/x__numerator.yml:1: `name`" in err and "__" in err, err


@pytest.mark.dbt
def test_text_that_gets_past_validation_is_emitted_as_data(tmp_path, monkeypatch):
    """The second line of defence: with the validation rule switched off, payloads in the
    description, owner, a filter literal and an expression literal compile, parse and
    build on a real DuckDB file without being executed, and come back as the same text."""
    monkeypatch.setattr(project_module, "template_issues", lambda rel, located: [])
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    literal = f"odd {PAYLOAD} {BLOCK} {COMMENT} {{"
    metric = ("name: m\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count_distinct\n"
              f"description: {_yaml(PAYLOAD)}\nowner: {_yaml(BLOCK)}\n"
              "expression: " + _yaml(f"coalesce(user_id, '{literal}')") + "\n"
              "filter: " + _yaml(f"entity_type <> '{literal}'") + "\nstart: 2024-03-01\n")
    paths = make_project(tmp_path / "p", {"growth/m.yml": metric})
    loaded = load_project(paths)
    assert loaded.ok, [str(i) for i in loaded.issues]
    compile_project(paths, loaded.project)
    assert run_dbt(paths, "duckdb", ["parse"], quiet=True).ok
    wh = Warehouse("duckdb", paths)
    with wh.connect() as con:  # one raw row, so the staging views resolve
        con.execute("create schema raw")
        con.execute("create table raw.entity_events (event_id varchar, user_id varchar, entity_type varchar, "
                    "entity_id varchar, metric_type varchar, metric_value double, created_at timestamp)")
        con.execute("insert into raw.entity_events values ('e1', 'u1', 'model', 'x', 'Like', 1, '2024-03-01 10:00:00')")
        con.execute("create table raw.orders (order_id varchar, user_id varchar, country varchar, ordered_at timestamp, "
                    "amount double, refunded boolean, latency_ms double)")
        con.execute("create table raw.follower_snapshots (user_id varchar, observed_at timestamp, followers double)")
    out = run_dbt(paths, "duckdb", ["build"], window=(dt.date(2024, 3, 1), dt.date(2024, 3, 2)), quiet=True)
    assert out.ok, out.failures
    catalog = wh.frame("select owner, definition from analytics.metric_catalog where metric = 'm'")
    assert catalog.owner.iloc[0] == BLOCK
    assert json.loads(catalog.definition.iloc[0])["description"] == PAYLOAD
    day = wh.frame("select value from analytics.metric_series_day where metric = 'm' and dimension = '' "
                   "and bucket_start = '2024-03-01'")
    assert day.value.iloc[0] == 1


def test_a_folder_name_that_breaks_a_line_is_refused_and_never_starts_sql(tmp_path, capsys):
    """A path reaches the comment heading every generated model: a line break in a folder
    name would end that comment and start SQL (`drop table`)."""
    evil = "x\nselect 1 as a); drop table raw.orders; create view dummy as (--"
    paths = make_project(tmp_path, {f"growth/{evil}/d.yml": DENOMINATOR})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "folder `x\\nselect 1 as a); drop table raw.orders; create view dummy as (--` may hold only" in err, err
    assert all(line.startswith("metrics/") or "problem(s)" in line for line in err.splitlines()), err
    assert main(["--project-dir", str(paths.root), "compile"]) == 1
    # and should one get past validation, the header keeps it on its comment line
    from dagster_project.compiler.sql_text import header
    lines = header([f"metrics/growth/{evil}/d.yml"]).splitlines()
    assert all(line.startswith("--") for line in lines), lines


def test_a_string_with_a_backslash_is_spelled_for_each_warehouse():
    """`'ops\\'` is a closed string in DuckDB and Postgres, an unclosed one in ClickHouse,
    where the backslash escapes the quote (the catalog's owner, a metric's description)."""
    import chdb
    import duckdb

    from dagster_project.compiler.sql_text import string
    rendered = string("ops\\")
    assert rendered.startswith("{{ metrics_sql(")
    spelled = json.loads(rendered[len("{{ metrics_sql("):-len(") }}")])
    assert duckdb.connect().execute(f"select {spelled['duckdb']} as o").fetchone()[0] == "ops\\"
    assert chdb.query(f"select {spelled['clickhouse']} as o", "CSV").bytes().decode().strip() == '"ops\\"'
