"""Validation against the column types the dbt YAML declares: the `timestamp:` column must
be a time type, and aggregations that produce a number (sum, avg, percentile, min, max,
latest) refuse a bare string or boolean column. Each problem is reported at its file:line
with the column, its type and the dbt YAML file that declares it."""
from __future__ import annotations

import pytest

from dagster_project.cli.main import main

from .conftest import make_project

TYPED_YAML = "models/staging/_typed.yml"
TYPED = """version: 2
models:
  - name: stg_typed
    columns:
      - {name: amount, data_type: double}
      - {name: untyped_amount}
      - {name: label, data_type: varchar}
      - {name: note, data_type: text}
      - {name: ch_label, data_type: Nullable(String)}
      - {name: ch_plain, data_type: String}
      - {name: code, data_type: "char(3)"}
      - {name: long_name, data_type: "character varying(200)"}
      - {name: flag, data_type: boolean}
      - {name: ts, data_type: timestamp}
      - {name: ts_tz, data_type: timestamptz}
      - {name: ts_with, data_type: timestamp with time zone}
      - {name: ts_without, data_type: TIMESTAMP WITHOUT TIME ZONE}
      - {name: ts_datetime, data_type: datetime}
      - {name: ts_dt64, data_type: "DateTime64(3, 'UTC')"}
      - {name: ts_dt_zone, data_type: "DateTime('UTC')"}
      - {name: ts_nullable, data_type: "Nullable(DateTime64(6))"}
      - {name: ts_date, data_type: date}
      - {name: ts_untyped}
      - {name: ts_varchar, data_type: varchar}
      - {name: ts_text, data_type: text}
      - {name: ts_string, data_type: String}
      - {name: ts_int, data_type: integer}
"""
T = "source: stg_typed\ntimestamp: ts\n"


def _project(tmp_path, metrics: dict[str, str]):
    paths = make_project(tmp_path / "p", metrics)
    (paths.root / TYPED_YAML).write_text(TYPED)
    return paths


def _validate(paths, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--project-dir", str(paths.root), "validate"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("column,declared", [("ts_varchar", "varchar"), ("ts_text", "text"), ("ts_string", "String"), ("ts_int", "integer")])
def test_timestamp_column_must_be_a_time_type(tmp_path, capsys, isolated_env, column, declared):
    paths = _project(tmp_path, {"t/bad_ts.yml": f"name: bad_ts\nsource: stg_typed\ntimestamp: {column}\naggregation: count\n"})
    code, err = _validate(paths, capsys)
    assert code == 1
    assert (f"metrics/t/bad_ts.yml:3: timestamp column `{column}` is {declared} in {TYPED_YAML}: "
            "it must be a time type (timestamp, timestamptz, datetime, date)") in err, err
    assert "1 problem(s)" in err, err


def test_every_time_type_is_accepted_and_an_undeclared_type_is_left_to_the_build(tmp_path, capsys, isolated_env):
    good = ["ts", "ts_tz", "ts_with", "ts_without", "ts_datetime", "ts_dt64", "ts_dt_zone", "ts_nullable", "ts_date", "ts_untyped"]
    metrics = {f"t/n_{c}.yml": f"name: n_{c}\nsource: stg_typed\ntimestamp: {c}\naggregation: count\n" for c in good}
    metrics["t/n_bad.yml"] = "name: n_bad\nsource: stg_typed\ntimestamp: ts_varchar\naggregation: count\n"
    code, err = _validate(_project(tmp_path, metrics), capsys)
    assert code == 1
    assert "metrics/t/n_bad.yml:3: timestamp column `ts_varchar` is varchar" in err, err
    assert "1 problem(s)" in err, err  # only the varchar one


@pytest.mark.parametrize("aggregation", ["sum", "avg", "percentile", "min", "max", "latest"])
@pytest.mark.parametrize("column,declared", [("label", "varchar"), ("note", "text"), ("ch_label", "Nullable(String)"), ("ch_plain", "String"),
                                              ("code", "char(3)"), ("long_name", "character varying(200)"), ("flag", "boolean")])
def test_numeric_aggregation_refuses_a_string_column(tmp_path, capsys, isolated_env, aggregation, column, declared):
    extra = "percentile: 0.5\n" if aggregation == "percentile" else ""
    paths = _project(tmp_path, {"t/bad_sum.yml": f"name: bad_sum\n{T}aggregation: {aggregation}\n{extra}expression: {column}\n"})
    code, err = _validate(paths, capsys)
    assert code == 1
    line = 6 if extra else 5
    assert (f"metrics/t/bad_sum.yml:{line}: {aggregation} needs a numeric column; `{column}` is {declared} in {TYPED_YAML} "
            "(count and count_distinct accept any column)") in err, err
    assert "1 problem(s)" in err, err


def test_message_names_the_shipped_staging_yaml(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path / "p", {"e/user_sum.yml": "name: user_sum\nsource: stg_entity_events\ntimestamp: created_at\n"
                                                           "aggregation: sum\nexpression: user_id\n"})
    code, err = _validate(paths, capsys)
    assert code == 1
    assert ("metrics/e/user_sum.yml:5: sum needs a numeric column; `user_id` is varchar in models/staging/_staging__models.yml "
            "(count and count_distinct accept any column)") in err, err


def test_counts_numbers_untyped_columns_and_expressions_are_accepted(tmp_path, capsys, isolated_env):
    metrics = {
        "t/labels.yml": f"name: labels\n{T}aggregation: count_distinct\nexpression: label\n",
        "t/notes.yml": f"name: notes\n{T}aggregation: count\nexpression: note\n",
        "t/flags.yml": f"name: flags\n{T}aggregation: count_distinct\nexpression: flag\n",
        "t/amount_sum.yml": f"name: amount_sum\n{T}aggregation: sum\nexpression: amount\n",
        "t/amount_max.yml": f"name: amount_max\n{T}aggregation: max\nexpression: \"(amount)\"\n",
        "t/untyped_avg.yml": f"name: untyped_avg\n{T}aggregation: avg\nexpression: untyped_amount\n",
        "t/label_length.yml": f"name: label_length\n{T}aggregation: sum\nexpression: length(label)\n",
        "t/flag_sum.yml": f"name: flag_sum\n{T}aggregation: sum\nexpression: \"case when flag then 1 else 0 end\"\n",
        "t/bad_latest.yml": f"name: bad_latest\n{T}aggregation: latest\nexpression: \"(label)\"\n",
    }
    code, err = _validate(_project(tmp_path, metrics), capsys)
    assert code == 1
    assert "metrics/t/bad_latest.yml:5: latest needs a numeric column; `label` is varchar" in err, err
    assert "1 problem(s)" in err, err  # only the latest over a varchar


def test_inline_ratio_sides_are_checked_too(tmp_path, capsys, isolated_env):
    metrics = {
        "t/amount_sum.yml": f"name: amount_sum\n{T}aggregation: sum\nexpression: amount\n",
        "t/per_label.yml": ("name: per_label\nkind: ratio\n"
                            "numerator:\n  source: stg_typed\n  timestamp: ts\n  aggregation: avg\n  expression: label\n"
                            "denominator:\n  source: stg_typed\n  timestamp: ts_text\n  aggregation: count\n"),
        "t/inline_flow.yml": ("name: inline_flow\nkind: ratio\nnumerator: amount_sum\n"
                              "denominator: {source: stg_typed, timestamp: ts, aggregation: max, expression: flag}\n"),
    }
    code, err = _validate(_project(tmp_path, metrics), capsys)
    assert code == 1
    assert f"metrics/t/per_label.yml:7: avg needs a numeric column; `label` is varchar in {TYPED_YAML}" in err, err
    assert f"metrics/t/per_label.yml:10: timestamp column `ts_text` is text in {TYPED_YAML}" in err, err
    assert f"metrics/t/inline_flow.yml:4: max needs a numeric column; `flag` is boolean in {TYPED_YAML}" in err, err
    assert "3 problem(s)" in err, err


def test_seed_columns_are_checked_and_named_by_their_yaml(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path / "p", {"s/types_max.yml": "name: types_max\nsource: entity_types\ntimestamp: entity_type\n"
                                                            "aggregation: max\nexpression: entity_category\n"})
    code, err = _validate(paths, capsys)
    assert code == 1
    assert "metrics/s/types_max.yml:3: timestamp column `entity_type` is varchar in seeds/_seeds.yml" in err, err
    assert "metrics/s/types_max.yml:5: max needs a numeric column; `entity_category` is varchar in seeds/_seeds.yml" in err, err
