"""The bad-input matrix: every problem gets its file:line and message, a non-zero exit,
and nothing in models/metrics/ or the warehouse changes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dagster_project.cli.main import main
from dagster_project.validation.project import load_project

from .conftest import make_project

GOOD = {
    "a/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Download'\"\ndimensions: [entity_type]\n",
    "a/users.yml": "name: users\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count_distinct\nexpression: user_id\n",
}

BASE = "source: stg_entity_events\ntimestamp: created_at\n"

# (file, yaml, expected line, expected words)
CASES = [
    ("broken_yaml", "name: broken_yaml\nsource: [unclosed\n", 3, "invalid YAML"),
    ("unknown_field", f"name: unknown_field\n{BASE}aggregation: count\nfilters: \"x = 1\"\n", 5, "unknown field `filters` (did you mean `filter`?)"),
    ("wrong_type", f"name: wrong_type\n{BASE}aggregation: count\ndimensions: entity_type\n", 5, "`dimensions`: Input should be a valid list"),
    ("bad_aggregation", f"name: bad_aggregation\n{BASE}aggregation: median\n", 4, "`aggregation`"),
    ("unknown_source", "name: unknown_source\nsource: stg_entity_event\ntimestamp: created_at\naggregation: count\n", 2, "unknown source `stg_entity_event` (did you mean `stg_entity_events`?)"),
    ("unknown_column", f"name: unknown_column\n{BASE}aggregation: sum\nexpression: metric_valu\n", 5, "unknown column(s) `metric_valu`"),
    ("unknown_timestamp", "name: unknown_timestamp\nsource: stg_entity_events\ntimestamp: created\naggregation: count\n", 3, "has no column `created`"),
    ("drop_table", f"name: drop_table\n{BASE}aggregation: count\nfilter: \"1 = 1; drop table raw.entity_events\"\n", 5, "contains ';'"),
    ("comment", f"name: comment\n{BASE}aggregation: count\nfilter: \"1 = 1 -- sneaky\"\n", 5, "SQL comment"),
    ("subquery", f"name: subquery\n{BASE}aggregation: count\nfilter: \"user_id in (select user_id from raw.orders)\"\n", 5, "subquery"),
    ("ddl", f"name: ddl\n{BASE}aggregation: count\nfilter: \"drop table raw.orders\"\n", 5, "not a DROP statement"),
    ("table_function", f"name: table_function\n{BASE}aggregation: sum\nexpression: \"read_csv('/etc/passwd')\"\n", 5, "not allowed"),
    ("unknown_function", f"name: unknown_function\n{BASE}aggregation: sum\nexpression: \"evil(metric_value)\"\n", 5, "unknown function `evil`"),
    ("aggregate_inside", f"name: aggregate_inside\n{BASE}aggregation: sum\nexpression: \"sum(metric_value)\"\n", 5, "must not aggregate"),
    ("percentile_range", f"name: percentile_range\n{BASE}aggregation: percentile\npercentile: 95\nexpression: metric_value\n", 5, "outside (0, 1)"),
    ("dimension_missing", f"name: dimension_missing\n{BASE}aggregation: count\ndimensions: [country]\n", 5, "dimension `country` is not a column of `stg_entity_events`"),
    ("stem_differs", f"name: other_name\n{BASE}aggregation: count\n", 1, "differs from the file name"),
    ("downloads", f"name: downloads\n{BASE}aggregation: count\n", 1, "already defined in metrics/a/downloads.yml"),
    ("ratio_unknown", "name: ratio_unknown\nkind: ratio\nnumerator: downloads\ndenominator: user\n", 4, "unknown metric `user` (did you mean `users`?)"),
    ("derived_bad", "name: derived_bad\nkind: derived\nexpression: \"downloads + lower(users)\"\n", 3, "may only combine metric names"),
    ("missing_expression", f"name: missing_expression\n{BASE}aggregation: sum\n", 4, "needs `expression:`"),
    # YAML reads these as dates, which Python refuses
    ("impossible_date", f"name: impossible_date\n{BASE}aggregation: count\nstart: 2026-02-30\n", 5,
     "invalid value `2026-02-30`: day is out of range for month"),
    ("impossible_exclude", f"name: impossible_exclude\n{BASE}aggregation: count\nanomaly:\n  exclude:\n"
     "    - {start: 2026-13-01, end: 2026-12-02, reason: sale}\n", 7, "invalid value `2026-13-01`"),
    # YAML 1.1 reads a leading 0 as octal and `1:30` as base 60: both were taken silently (64, 90)
    ("octal_number", f"name: octal_number\n{BASE}aggregation: count\nanomaly:\n  training_buckets: 0100\n", 6,
     "`0100` reads as 64 in YAML 1.1 (a leading 0 makes it octal)"),
    ("base60_number", f"name: base60_number\n{BASE}aggregation: count\nanomaly: {{min_volume: 1:30}}\n", 5,
     "`1:30` reads as 90 in YAML 1.1 (base 60)"),
    # a number is not a date (it read as seconds after 1970); year 1 planned 1.6 million partitions
    ("numeric_start", f"name: numeric_start\n{BASE}aggregation: count\nstart: 86400\n", 5, "a date (YYYY-MM-DD), got the number 86400"),
    ("ancient_start", f"name: ancient_start\n{BASE}aggregation: count\nstart: 0001-01-01\n", 5, "a date from 1970-01-01 to 2199-12-31"),
    ("quoted_start", f"name: quoted_start\n{BASE}aggregation: count\nstart: '0001-01-01'\n", 5, "a date from 1970-01-01 to 2199-12-31"),
    ("quoted_number_start", f"name: quoted_number_start\n{BASE}aggregation: count\nstart: '86400'\n", 5,
     "a date (YYYY-MM-DD), got '86400'"),
    # a number is true to DuckDB: a filter must be a condition
    ("value_filter", f"name: value_filter\n{BASE}aggregation: count\nfilter: \"metric_value + 1\"\n", 5,
     "is a value, not a condition (`metric_value + 1`)"),
    ("text_sum", f"name: text_sum\n{BASE}aggregation: sum\nexpression: \"cast(metric_value as varchar)\"\n", 5,
     "sum needs a number; the expression is cast to varchar"),
    # a text-valued expression passed and the build then failed every metric of the source
    ("text_function_avg", f"name: text_function_avg\n{BASE}aggregation: avg\nexpression: \"lower(entity_type)\"\n", 5,
     "avg needs a number; `lower(entity_type)` is text"),
    ("text_case_sum", f"name: text_case_sum\n{BASE}aggregation: sum\n"
     "expression: \"case when metric_value > 0 then 'a' else 'b' end\"\n", 5, "is text"),
    ("condition_sum", f"name: condition_sum\n{BASE}aggregation: sum\nexpression: \"metric_value > 0\"\n", 5,
     "sum needs a number; `metric_value > 0` is boolean"),
    # inputs that made the readers recurse without end, or raise where they are used
    ("derived_constant", "name: derived_constant\nkind: derived\nexpression: \"1 + 1\"\n", 3, "names no metric"),
    # a number beyond a double became inf, an empty bucket nan: `cast(nan as double)` failed every build
    ("derived_huge", "name: derived_huge\nkind: derived\nexpression: \"downloads * 1e400\"\n", 3,
     "`1e400` is beyond the range of a double"),
    # `ab___numerator`, the hidden input of a ratio `ab_`, read as metric `ab`'s
    ("trailing_underscore", f"name: trailing_underscore_\n{BASE}aggregation: count\n", 1, "must not end in `_`"),
    ("filter_huge", f"name: filter_huge\n{BASE}aggregation: count\nfilter: \"metric_value < 1e400\"\n", 5,
     "`1e400` is beyond the range of a double"),
    ("alias_loop", f"name: alias_loop\n{BASE}aggregation: count\ntags: &a [*a]\n", 5, "nested more than 50 levels deep"),
    # YAML ends a line at U+0085, U+2028, U+2029 or a lone CR, an editor does not: a key after
    # one in a comment was hidden from review, and every line number after it was off by one
    ("next_line_in_comment", f"name: next_line_in_comment\n{BASE}aggregation: count\n# all rows\x85filter: \"1 = 0\"\n",
     5, "line break U+0085 is not allowed"),
    ("line_separator", f"name: line_separator\n{BASE}aggregation: count\ndescription: a\u2028b\n", 5,
     "line break U+2028 is not allowed"),
    ("lone_carriage_return", f"name: lone_carriage_return\n{BASE}aggregation: count\n# x\rfilter: \"1 = 0\"\n", 5,
     "line break U+000D is not allowed"),
    # a control character crashed every command with a traceback, even in a comment
    ("control_character", f"name: control_character\n{BASE}aggregation: count\n# \x07\n", 5,
     "control character U+0007 is not allowed"),
    ("escaped_control", f"name: escaped_control\n{BASE}aggregation: count\ndescription: \"x\\e[31m\"\n", 5,
     "control character U+001B is not allowed in a value"),
    # !!binary decoded to `{{ execute }}`, past the template check
    ("binary_tag", f"name: binary_tag\n{BASE}aggregation: count\ndescription: !!binary e3sgZXhlY3V0ZSB9fQ==\n", 5,
     "the tag `!!binary` is not supported"),
    ("merge_key", f"name: merge_key\n{BASE}aggregation: count\nanomaly:\n  <<: {{sensitivity: 4}}\n", 6,
     "YAML merge keys (`<<`) are not supported"),
    # lax types read `true` as 1 and "5" as 5: a typo made the metric far noisier
    ("bool_sensitivity", f"name: bool_sensitivity\n{BASE}aggregation: count\nanomaly: {{sensitivity: true}}\n", 5,
     "`anomaly.sensitivity`: Input should be a valid number"),
    ("tiny_sensitivity", f"name: tiny_sensitivity\n{BASE}aggregation: count\nanomaly: {{sensitivity: 0.1}}\n", 5,
     "`anomaly.sensitivity`: Input should be greater than or equal to 1"),
    # the detector would score without the cycle the file asks for (a profile needs two)
    ("short_cycle_window", f"name: short_cycle_window\n{BASE}aggregation: count\ngrains: [day]\nanomaly:\n"
     "  seasonality: day_of_week\n  training_buckets: 10\n", 8,
     "`seasonality: day_of_week` needs a training window of two cycles, 14 day buckets, but `training_buckets` is 10"),
    ("text_max_slices", f"name: text_max_slices\n{BASE}aggregation: count\nanomaly:\n  max_slices: '5'\n", 6,
     "`anomaly.max_slices`: Input should be a valid integer"),
    # no parentheses, but 1,100 levels: DuckDB refused it and the source's whole build failed
    ("long_chain", f"name: long_chain\n{BASE}aggregation: sum\nexpression: \"" + " + ".join(["metric_value"] * 1100) + "\"\n",
     5, "chains more than 500 operators or calls"),
    ("deep_filter", f"name: deep_filter\n{BASE}aggregation: count\nfilter: \"" + "(" * 60 + "1 = 1" + ")" * 60 + "\"\n", 5,
     "nests parentheses more than 50 deep"),
    # sqlglot writes an unknown type's, a unit's or a type parameter's text back unquoted:
    # these read /etc files into metric values, past the subquery and table-function checks
    ("quoted_cast_type", f"name: quoted_cast_type\n{BASE}aggregation: max\nexpression: |-\n  length(cast(entity_type as "
     '"""varchar"") || (select content from read_text(\'/etc/hostname\')) || cast(entity_type as varchar"))\n', 5,
     "a type not every warehouse reads the same"),
    ("quoted_extract_unit", f"name: quoted_extract_unit\n{BASE}aggregation: count\nfilter: 'extract(\"epoch from created_at) > 0 "
     "or (select count(*) from read_csv(chr(47))) > 0 or extract(epoch\" from created_at) > 1'\n", 5, "is not a time unit"),
    ("quoted_type_parameter", f"name: quoted_type_parameter\n{BASE}aggregation: sum\n"
     "expression: 'cast(metric_value as decimal(\"1, 0)) + (select 1) + cast(1 as decimal(1\", 0))'\n", 5,
     "precision and scale are whole numbers"),
    ("semicolon_type", f"name: semicolon_type\n{BASE}aggregation: count\nfilter: 'cast(entity_type as \"a;b\") = ''x'''\n", 5,
     "a type not every warehouse reads the same"),
    # sqlglot raised a TypeError on these: a traceback from `metrics validate`
    ("statement_in_type", f"name: statement_in_type\n{BASE}aggregation: count\n"
     "filter: 'cast(entity_type as \"varchar; drop table x --\") = ''x'''\n", 5, "is not valid SQL"),
    # int8 is 1 byte to sqlglot (TINYINT, SMALLINT on Postgres): every metric on the source failed
    ("int8_cast", f"name: int8_cast\n{BASE}aggregation: max\nexpression: cast(event_id as int8)\n", 5,
     "write smallint, integer or bigint"),
    ("float_cast", f"name: float_cast\n{BASE}aggregation: max\nexpression: cast(metric_value as float)\n", 5, "write double"),
    ("bare_decimal", f"name: bare_decimal\n{BASE}aggregation: sum\nexpression: cast(metric_value as decimal)\n", 5,
     "gives decimal no precision and scale"),
    # each passed validation, then failed the whole source's build on DuckDB
    ("impossible_time", f"name: impossible_time\n{BASE}aggregation: count\nfilter: \"created_at > '2026-13-45'\"\n", 5,
     "'2026-13-45' is not a date or time in a form every warehouse reads the same way"),
    ("word_time", f"name: word_time\n{BASE}aggregation: count\nfilter: \"created_at in ('yesterday')\"\n", 5,
     "'yesterday' is not a date or time"),
    ("text_boolean", "name: text_boolean\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n"
     "filter: \"refunded = 'maybe'\"\n", 5, "compare it with true or false, not 'maybe'"),
    ("text_arithmetic", f"name: text_arithmetic\n{BASE}aggregation: count\nfilter: \"metric_value + 'x' > 0\"\n", 5,
     "does arithmetic on `'x'`, which is a text"),
    ("abs_of_text", f"name: abs_of_text\n{BASE}aggregation: count\nfilter: \"abs(entity_type) > 1\"\n", 5,
     "needs a number; `entity_type` is a text"),
    ("extract_from_text", f"name: extract_from_text\n{BASE}aggregation: count\nfilter: \"extract(day from entity_type) = 1\"\n", 5,
     "needs a date or time; `entity_type` is a text"),
    # YAML 1.1 reads a bare `no` as false: say so, not just "(got False)"
    ("boolean_name", f"name: no\n{BASE}aggregation: count\n", 1,
     "`name`: Input should be a valid string (got the boolean false: YAML reads a bare yes/no/on/off/true/false so; quote it)"),
    ("interval_text", f"name: interval_text\n{BASE}aggregation: count\n"
     "filter: \"created_at > created_at - interval 'a week' day\"\n", 5, "an interval is a number and a unit"),
    # each validated, then failed the source's build on some warehouse (or gave another number)
    ("integer_division", f"name: integer_division\n{BASE}aggregation: sum\nexpression: metric_value div 2\n", 5,
     "write floor(x / y)"),
    ("try_cast", f"name: try_cast\n{BASE}aggregation: sum\nexpression: try_cast(metric_value as bigint)\n", 5,
     "try_cast is no function in Postgres"),
    ("cast_format", f"name: cast_format\n{BASE}aggregation: count\nfilter: \"cast(metric_value as double format 'x') > 1\"\n",
     5, "a cast takes a value and a type only"),
    ("is_a_number", f"name: is_a_number\n{BASE}aggregation: count\nfilter: metric_value is 1\n", 5,
     "`is` takes null, true or false"),
    ("in_a_column", f"name: in_a_column\n{BASE}aggregation: count\nfilter: entity_type in entity_id\n", 5,
     "`in` takes a list in parentheses"),
    ("ceil_digits", f"name: ceil_digits\n{BASE}aggregation: sum\nexpression: ceil(metric_value, 1)\n", 5,
     "ceil and floor take one argument"),
    ("quoted_unit", f"name: quoted_unit\n{BASE}aggregation: count\nfilter: \"extract('anything' from created_at) = 1\"\n", 5,
     "extract's unit is written unquoted"),
    ("dayofweek_unit", f"name: dayofweek_unit\n{BASE}aggregation: count\nfilter: extract(dayofweek from created_at) = 1\n", 5,
     "`DAYOFWEEK` is not a time unit"),
    ("fractional_interval", f"name: fractional_interval\n{BASE}aggregation: count\n"
     "filter: \"created_at + interval '1.5' day > '2026-01-01'\"\n", 5, "an interval is a number and a unit"),
    ("round_digits", f"name: round_digits\n{BASE}aggregation: sum\nexpression: round(metric_value, 12)\n", 5,
     "round's decimals are a whole number from -28 to 9"),
    ("round_column_digits", f"name: round_column_digits\n{BASE}aggregation: sum\nexpression: round(metric_value, event_id)\n",
     5, "round's decimals are a whole number from -28 to 9"),
    ("wide_decimal", f"name: wide_decimal\n{BASE}aggregation: sum\nexpression: cast(metric_value as decimal(76, 2))\n", 5,
     "decimal(76, 2): precision 1 to 38"),
    ("interval_dow", f"name: interval_dow\n{BASE}aggregation: count\nfilter: created_at + interval 1 dow > created_at\n", 5,
     "`DOW` is not a time unit here"),
    # DuckDB and ClickHouse count a negative start from the end, Postgres does not; ClickHouse refuses 0
    ("substring_from_end", f"name: substring_from_end\n{BASE}aggregation: count\nfilter: \"substring(user_id, -1) = 'x'\"\n",
     5, "substring's start is a whole number from 1"),
    ("substring_zero", f"name: substring_zero\n{BASE}aggregation: count\nfilter: \"substring(user_id, 0, 2) = 'x'\"\n",
     5, "substring's start is a whole number from 1"),
    ("substring_computed", f"name: substring_computed\n{BASE}aggregation: count_distinct\n"
                           "expression: substring(user_id, length(user_id) - 1)\n", 5, "substring's start is a whole number"),
    # DuckDB and Postgres drop the offset when they compare it with a timestamp without time zone
    ("offset_literal", f"name: offset_literal\n{BASE}aggregation: count\n"
                       "filter: \"created_at >= '2026-03-04 00:00:00+05:30'\"\n", 5, "has an offset"),
    # a slice's label is the value as text: '100.0' on DuckDB, '100' on Postgres and ClickHouse
    ("double_dimension", f"name: double_dimension\n{BASE}aggregation: count\ndimensions: [entity_type, metric_value]\n",
     5, "dimension `metric_value` is double"),
    ("time_dimension", f"name: time_dimension\n{BASE}aggregation: count\ndimensions: [created_at]\n",
     5, "dimension `created_at` is timestamp"),
    ("date_offset", f"name: date_offset\n{BASE}aggregation: count\nfilter: \"created_at >= '2026-03-01+01:00'\"\n", 5,
     "has an offset"),
    ("cast_offset", f"name: cast_offset\n{BASE}aggregation: count\n"
                    "filter: \"created_at >= cast('2026-03-01 02:00:00+05' as timestamp)\"\n", 5, "without an offset"),
    ("concat_double", f"name: concat_double\n{BASE}aggregation: count_distinct\nexpression: concat(user_id, metric_value)\n",
     5, "writes a number that may have a fraction"),
    ("concat_boolean", "name: concat_boolean\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n"
                       "filter: \"concat(country, refunded) = 'UStrue'\"\n", 5, "writes a boolean as text"),
    ("time_as_text", f"name: time_as_text\n{BASE}aggregation: count\nfilter: \"cast(created_at as varchar) like '2026%'\"\n",
     5, "writes a time as text"),
    ("huge_substring", f"name: huge_substring\n{BASE}aggregation: count\n"
                       "filter: \"substring(user_id, 1, 3000000000) = 'x'\"\n", 5, "each at most 2147483647"),
    ("decimal_scale", f"name: decimal_scale\n{BASE}aggregation: sum\nexpression: cast(metric_value as decimal(20, 12))\n",
     5, "at most 9"),
    # DuckDB writes 100.0, Postgres and ClickHouse 100
    ("double_as_text", f"name: double_as_text\n{BASE}aggregation: count\n"
                       "filter: \"cast(metric_value as varchar) = '1'\"\n", 5, "writes a number that may have a fraction"),
    # each guard of sqrt repeats its argument: 45 nested roots would write 2**45 nodes
    ("nested_roots", f"name: nested_roots\n{BASE}aggregation: sum\nexpression: \"" + "sqrt(" * 45 + "metric_value"
     + ")" * 45 + "\"\n", 5, "grows past 20,000 parts once made the same on every warehouse"),
    # a traceback from `metrics validate` (AttributeError in the type check)
    ("interval_type", f"name: interval_type\n{BASE}aggregation: count\n"
     "filter: \"created_at > created_at - interval day 'x'\"\n", 5, "is not a type"),
    # dbt's YAML parser refused the escape in the generated properties: no model built at all
    ("lone_surrogate", f"name: lone_surrogate\n{BASE}aggregation: count\ndescription: \"a\\ud800b\"\n", 5,
     "is half of a UTF-16 pair"),
]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name,text,line,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_reported_with_file_and_line_and_changes_nothing(tmp_path, capsys, isolated_env, name, text, line, words):
    paths = make_project(tmp_path / "p", GOOD)
    assert main(["--project-dir", str(paths.root), "compile"]) == 0
    generated = _digest(paths.generated_dir)
    (paths.metrics_dir / "b").mkdir()
    (paths.metrics_dir / "b" / f"{name}.yml").write_text(text)
    capsys.readouterr()
    for command in (["validate"], ["compile"], ["compile", "--check"], ["run"]):
        assert main(["--project-dir", str(paths.root), *command]) == 1, command
        err = capsys.readouterr().err
        assert f"metrics/b/{name}.yml:{line}: " in err, err
        assert words in err, err
    assert _digest(paths.generated_dir) == generated
    assert not paths.duckdb_path.exists()  # `run` stopped before touching the warehouse


def test_cycle_among_derived_metrics(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {
        **GOOD,
        "c/x.yml": "name: x\nkind: derived\nexpression: y + 1\n",
        "c/y.yml": "name: y\nkind: derived\nexpression: x * 2\n",
    })
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/c/y.yml:3: metrics refer to each other in a cycle: x -> y -> x" in err


def test_all_problems_are_listed_not_just_the_first(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {**GOOD, **{f"b/{c[0]}.yml": c[1] for c in CASES[:6]}})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert all(f"metrics/b/{c[0]}.yml:{c[2]}:" in err for c in CASES[:6])
    assert "6 problem(s)" in err


def test_ratio_dimension_must_be_shared(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {**GOOD, "r/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: users\ndimensions: [entity_type]\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "metrics/r/per_user.yml:5: dimension `entity_type` is not shared by all inputs" in capsys.readouterr().err


def test_an_inline_ratio_side_takes_the_ratios_grains_and_is_named_as_written(tmp_path, capsys, isolated_env):
    """The inline side had every grain (an hour rollup nobody reads was built), and a
    dimension it lacked was reported as "not shared by (.., per_order__denominator);
    shared: none" while `user_id` was shared."""
    from dagster_project.validation.project import load_project
    metrics = {**GOOD,
               "r/dl.yml": "name: dl\n" + BASE + "aggregation: count\ndimensions: [entity_type, user_id]\n"
                           "grains: [day, week]\n",
               "r/per_order.yml": "name: per_order\nkind: ratio\nnumerator: dl\n"
                                  "denominator: {source: stg_orders, timestamp: ordered_at, aggregation: count}\n"}
    paths = make_project(tmp_path, metrics)
    project = load_project(paths).project
    assert project.metrics["per_order__denominator"].grains == ("day", "week") == project.metrics["per_order"].grains
    assert project.metrics["per_order"].dimensions == ("user_id",)
    (paths.metrics_dir / "r" / "per_order.yml").write_text(metrics["r/per_order.yml"] + "dimensions: [entity_type]\n")
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert ("metrics/r/per_order.yml:5: dimension `entity_type` is not shared by all inputs: the inline denominator "
            "(stg_orders) has no `entity_type`; shared: user_id") in err, err


def test_shared_dimension_and_grain_problems_are_listed_with_the_others(tmp_path, capsys, isolated_env):
    """The checks that need resolved metrics run on the sound part of a project that has
    other problems: validate lists every problem at once."""
    paths = make_project(tmp_path, {
        **GOOD,
        "r/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: users\ndimensions: [entity_type]\n",
        "r/weekly.yml": "name: weekly\ngrains: [week]\n" + BASE + "aggregation: count\n",
        "r/daily_share.yml": "name: daily_share\nkind: ratio\nnumerator: downloads\ndenominator: weekly\ngrains: [day]\n",
        "x/broken.yml": "name: broken\n" + BASE + "aggregation: count\nfilter: \"no_such_column = 1\"\n",
        "x/on_broken.yml": "name: on_broken\nkind: ratio\nnumerator: broken\ndenominator: users\ndimensions: [nope]\n",
    })
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/x/broken.yml:5:" in err
    assert "metrics/r/per_user.yml:5: dimension `entity_type` is not shared by all inputs" in err
    assert "metrics/r/daily_share.yml:5: no grain is shared" in err
    # a metric reading a broken one is not resolved (its input's problem comes first)
    assert "on_broken.yml:5: dimension" not in err


def test_active_metric_cannot_read_a_draft(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {**GOOD, "a/users.yml": GOOD["a/users.yml"] + "status: draft\n",
                                    "r/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: users\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "metrics/r/per_user.yml:4: `users` is a draft" in capsys.readouterr().err


def test_an_impossible_date_in_config_or_alerts_is_a_file_and_line_not_a_traceback(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path / "c", GOOD, config="start: 2026-09-31\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "metrics/_config.yml:1: invalid value `2026-09-31`: day is out of range for month" in capsys.readouterr().err
    paths = make_project(tmp_path / "a", GOOD)
    (paths.root / "alerts.yml").write_text("channels:\n  log: {type: log, path: a.log}\nsilences:\n"
                                           "  - {match: {metric: downloads}, starts: 2026-11-01, ends: 2025-12-32}\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "alerts.yml:4: invalid value `2025-12-32`" in capsys.readouterr().err


def test_an_impossible_date_does_not_hide_the_file_s_other_problems(tmp_path, capsys, isolated_env):
    """YAML reads 2026-13-01 as a date and Python refuses it: that was raised at once, and
    the file's other problems only came out one run later."""
    metric = GOOD["a/users.yml"] + "start: 2026-13-01\nfoo: 1\nanomaly: {sensitivity: 0, exclude: [{start: 2026-02-30, end: 2026-03-02}]}\n"
    paths = make_project(tmp_path / "m", {**GOOD, "a/users.yml": metric})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    line = len(GOOD["a/users.yml"].splitlines())
    assert f"metrics/a/users.yml:{line + 1}: invalid value `2026-13-01`: month must be in 1..12" in err
    assert f"metrics/a/users.yml:{line + 2}: unknown field `foo`" in err
    assert f"metrics/a/users.yml:{line + 3}: `anomaly.sensitivity`" in err
    assert f"metrics/a/users.yml:{line + 3}: invalid value `2026-02-30`" in err
    # each bad date once: not also pydantic's reading of the text left in its place
    assert err.count("2026-13-01") == 1 and err.count("2026-02-30") == 1
    paths = make_project(tmp_path / "c", GOOD, config="start: 2026-09-31\nsettle_lookback: {hour: -1}\nfoo: 1\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/_config.yml:1: invalid value `2026-09-31`" in err
    assert "metrics/_config.yml:2: `settle_lookback.hour`" in err
    assert "metrics/_config.yml:3: unknown field `foo`" in err
    assert err.count("2026-09-31") == 1
    paths = make_project(tmp_path / "a", GOOD)
    (paths.root / "alerts.yml").write_text("channels:\n  log: {type: log, path: a.log}\nsilences:\n"
                                           "  - {match: {metric: downloads}, starts: 2026-11-01, ends: 2025-12-32}\n"
                                           "routes: 3\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "alerts.yml:4: invalid value `2025-12-32`" in err and err.count("2025-12-32") == 1
    assert "alerts.yml:5: `routes`" in err
    # an alias of one (`*d`) read as "found unconstructable recursive node", alone
    from dagster_project.spec.yaml_lines import YamlSyntaxError, load_located
    located = load_located(Path("f.yml"), "x: 1\na: &d 2026-13-01\nb: *d\nc: &l [010, 3]\nd: *l\n")
    assert located.problems == [(2, "invalid value `2026-13-01`: month must be in 1..12"),
                                (4, "`010` reads as 8 in YAML 1.1 (a leading 0 makes it octal): write the number "
                                    "without its leading zeros, or quote it for a text")]
    assert located.refused == {("a",), ("b",), ("c", 0), ("d", 0)}
    # a list or mapping as a key was an AttributeError traceback; a huge number one too
    for text, line, words in (("x: 1\n[1]: x\n", 2, "mapping keys must be plain words"),
                              ("? {a: 1}\n: x\n", 1, "mapping keys must be plain words")):
        with pytest.raises(YamlSyntaxError) as err:
            load_located(Path("f.yml"), text)
        assert (err.value.line, err.value.message) == (line, words)
    for number in ("0x" + "f" * 5000, "9" * 5000):
        located = load_located(Path("f.yml"), f"a: {number}\nb: 2026-02-30\n")
        assert [line for line, _ in located.problems] == [1, 2], located.problems
        assert located.problems[0][1].endswith("...`: too large a number") and len(located.problems[0][1]) < 90


def test_a_broken_metric_file_is_one_problem_not_also_an_unknown_metric_where_it_is_read(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {**GOOD, "a/users.yml": GOOD["a/users.yml"] + "anomaly:\n  sensitivty: 4\n",
                                    "r/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: users\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/users.yml:7: unknown field `anomaly.sensitivty` (did you mean `sensitivity`?)" in err
    assert "unknown metric" not in err
    # the ratio cannot be built while users.yml is broken: said so, with where to look
    assert "metrics/r/per_user.yml:4: `users` cannot be read: see the problem in metrics/a/users.yml" in err
    assert main(["--project-dir", str(paths.root), "validate", str(paths.metrics_dir / "r")]) == 1


def test_validate_given_paths_checks_them_and_says_so(tmp_path, capsys, isolated_env, monkeypatch):
    paths = make_project(tmp_path, {**GOOD, "b/broken.yml": "name: broken\nsource: [unclosed\n"})
    monkeypatch.chdir(paths.root)
    args = ["--project-dir", str(paths.root), "validate"]
    assert main([*args, "metrics/a/nope.yml"]) == 2  # a mistyped path is not "valid"
    assert "metrics/a/nope.yml: no such file or folder" in capsys.readouterr().err
    assert main([*args, "models"]) == 2
    assert "models: no metric file there" in capsys.readouterr().err
    assert main([*args, "metrics/a/users.yml"]) == 0  # the broken file is another one
    assert "1 of 3 metric file(s) valid" in capsys.readouterr().out
    assert main([*args, "metrics/b"]) == 1


def test_a_small_file_whose_aliases_expand_to_millions_of_values_is_refused(tmp_path, capsys, isolated_env):
    bomb = "name: bomb\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\ntags:\n"
    bomb += "  - &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 8):  # 10**8 values once expanded, from under 500 bytes
        bomb += f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    paths = make_project(tmp_path, {**GOOD, "b/bomb.yml": bomb})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/b/bomb.yml:" in err and "more than 200,000 values" in err, err


def test_a_filter_on_a_column_named_like_a_generated_one_is_refused(tmp_path, capsys, isolated_env):
    """The rollup's scan names its own columns bucket_start, event_at, dim_<d> and
    <x>__measured; a raw column of the same name in a filter would read those instead."""
    paths = make_project(tmp_path, GOOD)
    (paths.models_dir / "staging" / "stg_weird.yml").write_text(
        "version: 2\nmodels:\n  - name: stg_weird\n    columns:\n      - name: created_at\n      - name: country\n"
        "      - name: dim_country\n      - name: dim_region\n      - name: bucket_start\n      - name: __deleted\n")
    (paths.metrics_dir / "b").mkdir()
    for name, text in (("by_dim", "dim_country = 'DE'"), ("by_bucket", "bucket_start is not null")):
        (paths.metrics_dir / "b" / f"{name}.yml").write_text(
            f"name: {name}\nsource: stg_weird\ntimestamp: created_at\naggregation: count\nfilter: \"{text}\"\n")
    (paths.metrics_dir / "b" / "sliced.yml").write_text(  # its rollup has a dim_country column
        "name: sliced\nsource: stg_weird\ntimestamp: created_at\naggregation: count\ndimensions: [country]\n")
    # no clash: no metric of this rollup has a `region` dimension, and `__deleted` (a CDC
    # column) starts with no metric's name
    (paths.metrics_dir / "b" / "fine.yml").write_text(
        "name: fine\nsource: stg_weird\ntimestamp: created_at\naggregation: count\n"
        "filter: \"dim_region = 'EU' and __deleted = 'false'\"\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/b/by_dim.yml:5: `filter` uses column `dim_country`, a name the generated rollup" in err, err
    assert "metrics/b/by_bucket.yml:5: `filter` uses column `bucket_start`" in err and "fine.yml" not in err, err


def test_a_column_written_in_another_case_is_compiled_as_the_sources_lowercase_name():
    """Validation reads `COUNTRY` and `"Country"` as the column `country`; ClickHouse (and
    Postgres, quoted) would not find them as written."""
    from dagster_project.validation.sql_fragment import parse_scalar
    columns = {"country": None, "amount": None, "user": None}
    for text in ("COUNTRY = 'DE'", "Country = 'DE'"):
        assert parse_scalar(text, columns).tree.sql(dialect="clickhouse") == "country = 'DE'", text
    # a quoted name stays quoted (unquoted, `user` is Postgres's CURRENT_USER)
    for dialect in ("clickhouse", "postgres", "duckdb"):
        assert parse_scalar('"Country" = \'DE\'', columns).tree.sql(dialect=dialect) == '"country" = \'DE\''
        assert parse_scalar('"user" = \'a\'', columns).tree.sql(dialect=dialect) == '"user" = \'a\''
    assert parse_scalar("amount > 1", columns).tree.sql() == "amount > 1"


@pytest.mark.parametrize("text,words", [
    ("country = ", "is incomplete: nothing after `=` (column 9)"),
    ("amount +", "is incomplete: nothing after `+` (column 8)"),
    ("a = 1 and", "is incomplete: nothing after `and` (column 9)"),
    ("case when amount > 1 then", "is incomplete: nothing after `then` (column 25)"),
    ("abs(", "is incomplete: nothing after `(` (column 4)"),
    ("amount * (2", "expects `)` at column 11"),
    ("amount )", "has an unexpected `)` at column 8"),
    ("country = 'US", "has a string that is never closed: add the closing `'`"),
    ("\"country = 'US'", "has a quoted name that is never closed: add the closing `\"`"),
    ("country = 'it''s", "has a string that is never closed"),
    ("amount = = 1", "has an unexpected `=` at column 10"),
    ("(amount =)", "is incomplete before `)` (column 10)"),
    ("amount = 1 and = 2", "is missing an operand near `2`"),
    # a quote inside a comment is no string: the comment is the problem
    ("amount = 1 /* it's", "contains a SQL comment"),
    ("amount = 1 and country = 'x' -- o'k", "contains a SQL comment"),
])
def test_sql_that_does_not_parse_says_what_is_wrong_in_the_users_words(text, words):
    """sqlglot's messages named its classes (`Required keyword: 'expression' missing for
    <class 'sqlglot.expressions.core.EQ'>`) and cut the text off (`Error tokenizing 'country = 'U'`)."""
    from dagster_project.validation.sql_fragment import FragmentError, parse_scalar
    with pytest.raises(FragmentError) as err:
        parse_scalar(text, {"country": None, "amount": None})
    assert words in str(err.value) and "sqlglot" not in str(err.value) and "<class" not in str(err.value)


@pytest.mark.parametrize("args,words", [
    (["series", "orders", "--grain", "week", "--start", "0001-01-01"], "a date from 1970-01-01 to 2199-12-31"),
    (["series", "orders", "--grain", "day", "--end", "9999-12-31"], "a date from 1970-01-01 to 2199-12-31"),
    (["demo-data", "--days", "0"], "from 1 to 3,660"),
    (["demo-data", "--days", "1000000000"], "from 1 to 3,660"),
    (["demo-data", "--events-per-day", "-1"], "from 1 to 10,000,000"),
])
def test_out_of_range_dates_and_counts_are_argument_errors_not_tracebacks(tmp_path, capsys, isolated_env, args, words):
    paths = make_project(tmp_path, GOOD)
    with pytest.raises(SystemExit) as stop:
        main(["--project-dir", str(paths.root), *args])
    assert stop.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("args,words", [
    (["anomalies", "--backtest", "--metric", "downloads", "--sensitivity", "1e308"], "from 1 to 20"),
    (["anomalies", "--backtest", "--metric", "downloads", "--sensitivity", "inf"], "from 1 to 20"),
    # below 1 sd the first pass left an average nothing to fit: "not scored" everywhere
    (["anomalies", "--backtest", "--metric", "downloads", "--sensitivity", "0.1"], "from 1 to 20 (got 0.1)"),
    (["anomalies", "--backtest", "--metric", "downloads", "--days", "3000000"], "--days must be between 1 and 36,525"),
    (["anomalies", "--backtest", "--metric", "downloads", "--since", "2026-01-01"], "--since lists stored rows"),
    (["anomalies", "--backtest", "--metric", "downloads", "--slice", "total"], "--slice lists stored rows"),
    (["anomalies", "--days", "5"], "--days is for --backtest"),
    (["anomalies", "--slice", "=DE"], "names no dimension"),
    (["anomalies", "--backtest", "--metric", "downloads"], "run `metrics run` first"),
    (["anomalies", "--slice", "entity_type=model", "--slice", "entity_type=dataset"], "--slice takes one slice"),
])
def test_anomalies_arguments_out_of_range_or_ignored_are_one_line_errors(tmp_path, capsys, isolated_env, args, words):
    paths = make_project(tmp_path, GOOD)
    assert main(["--project-dir", str(paths.root), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("where", ["metrics/b/latin.yml", "metrics/_config.yml", "alerts.yml"])
def test_a_file_that_is_not_utf8_is_a_file_line_error(tmp_path, capsys, isolated_env, where):
    paths = make_project(tmp_path, GOOD)
    target = paths.root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    before = target.read_bytes() if target.exists() else b""
    name = "name: latin\n" + BASE + "aggregation: count\n" if where.endswith("latin.yml") else ""
    target.write_bytes(before + name.encode() + "description: caf\u00e9\n".encode("latin-1"))
    line = (before + name.encode()).count(b"\n") + 1
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert f"{where}:{line}: not UTF-8 text (byte 0xe9)" in err and "Traceback" not in err


def test_a_source_model_outside_staging_is_refused_not_left_unbuilt(tmp_path, capsys, isolated_env):
    """`metrics run` builds the staging models (tagged in dbt_project.yml) and seeds: a model
    declared elsewhere validated, then failed the build ("table does not exist")."""
    paths = make_project(tmp_path, {"a/on_review.yml": "name: on_review\nsource: stg_review\ntimestamp: created_at\n"
                                                       "aggregation: count\n"})
    review = paths.root / "models" / "review"
    review.mkdir(parents=True)
    (review / "stg_review.sql").write_text("select * from {{ ref('stg_entity_events') }}\n")
    (review / "_review.yml").write_text("version: 2\nmodels:\n  - name: stg_review\n    columns:\n"
                                        "      - name: created_at\n        data_type: timestamp\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/on_review.yml:2: source `stg_review` is declared in models/review/_review.yml" in err
    assert "models/staging/" in err
    staging = paths.root / "models" / "staging"
    (review / "stg_review.sql").rename(staging / "stg_review.sql")
    (review / "_review.yml").rename(staging / "_review.yml")
    assert main(["--project-dir", str(paths.root), "validate"]) == 0


@pytest.mark.parametrize("fields,words", [
    ("aggregation: count\nfilter: \"amount = 'abc'\"\n",
     "`filter`: `amount` is double: no warehouse compares it with the text 'abc'"),
    ("aggregation: count\nfilter: \"country in ('DE', 2)\"\n",
     "`filter`: `country` is varchar: Postgres refuses to compare it with the number 2"),
    ("aggregation: sum\nexpression: \"case when country = 1 then amount end\"\n", "`expression`: `country` is varchar"),
    ("aggregation: min\nexpression: ordered_at\n", "min needs a numeric column; `ordered_at` is timestamp"),
])
def test_a_type_the_warehouse_refuses_is_a_file_line_error(tmp_path, capsys, isolated_env, fields, words):
    """Before: validate passed, then the build of every metric on the source failed
    ("Could not convert string 'abc' to DOUBLE"), naming none."""
    paths = make_project(tmp_path, {"a/typed.yml": "name: typed\nsource: stg_orders\ntimestamp: ordered_at\n" + fields})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/typed.yml:" in err and words in err, err


def test_comparisons_the_warehouses_take_stay_valid(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {"a/typed.yml": "name: typed\nsource: stg_orders\ntimestamp: ordered_at\n"
                                    "aggregation: sum\nexpression: \"case when amount > -3 then amount end\"\n"
                                    "filter: \"country in ('DE', 'FR') and amount <> '12.5' and ordered_at >= "
                                    "'2026-1-1' and ordered_at < '2030-01-01 00:00:00 UTC' and not refunded and "
                                    "ordered_at > '2020-01-01 00:00:00+00:00' and ordered_at < '2031-01-01T00:00:00Z' and "
                                    "substring(country, 2, 1) <> 'x' and substring(country, 1) <> '' and "
                                    "cast(order_id as varchar) <> '7' and cast(ordered_at as date) >= '2020-01-01' and "
                                    "concat(country, order_id, cast(ordered_at as date)) <> 'x'\"\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("content", [b"models: [\n", b"models:\n  - name: stg_x\n    description: caf\xe9\n"])
def test_an_unknown_source_names_the_dbt_yaml_files_that_could_not_be_read(tmp_path, capsys, isolated_env, content):
    paths = make_project(tmp_path, {"a/on_x.yml": "name: on_x\nsource: stg_x\ntimestamp: created_at\naggregation: count\n"})
    (paths.root / "models" / "staging" / "_x.yml").write_bytes(content)
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "unknown source `stg_x`" in err and "models/staging/_x.yml could not be read" in err


@pytest.mark.parametrize("filter_, words", [
    ("country", "`country` is varchar, not a condition"),
    ("amount", "`amount` is double, not a condition"),
    ("coalesce(amount, 0)", "is a value, not a condition"),
    ("case when amount > 1 then 1 else 0 end", "is a value, not a condition"),
    ("ordered_at > 5", "DuckDB and Postgres refuse to compare it with the number 5"),
])
def test_a_filter_that_is_no_condition_is_refused(tmp_path, capsys, isolated_env, filter_, words):
    """Before: validate passed; DuckDB then failed the source's build (`country`: could
    not convert 'IN' to BOOL) or read a number as true, and Postgres refused it."""
    paths = make_project(tmp_path, {"a/f.yml": "name: f\nsource: stg_orders\ntimestamp: ordered_at\n"
                                    f"aggregation: count\nfilter: \"{filter_}\"\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/f.yml:5:" in err and words in err, err


def test_conditions_stay_valid(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, {"a/f.yml": "name: f\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n"
                                    "filter: \"refunded or (case when amount > 1 then true else false end) or "
                                    "lower(country) = 'de' or amount is null\"\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("side,words", [
    ("{source: stg_entity_events, timestamp: created_at, aggregation: count_distinct, expresion: user_id}",
     "unknown field `denominator.expresion` (did you mean `expression`?)"),
    ("{source: stg_entity_events, timestamp: created_at, aggregation: count_distinc, expression: user_id}",
     "`denominator.aggregation`: Input should be"),
    ("5", "`denominator`: a metric name or an inline measure ({aggregation, expression, source, timestamp}) (got 5)"),
])
def test_a_mistake_in_a_ratio_side_is_one_problem(tmp_path, capsys, isolated_env, side, words):
    """A side is a metric name or an inline measure: a typo inside an inline side was also
    reported as "Input should be a valid string" (the name's branch), a number twice."""
    paths = make_project(tmp_path / "p", {**GOOD, "r/per_user.yml":
                                          f"name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: {side}\n"})
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if line.startswith("metrics/r/per_user.yml:")]
    assert problems == [f"metrics/r/per_user.yml:4: {problems[0].split(': ', 1)[1]}"] and words in problems[0], err


def test_a_bad_field_does_not_hide_a_bad_column_in_the_same_file(tmp_path, capsys, isolated_env):
    """A schema problem stopped the file's checks against its source: the unknown column
    and dimension were reported only in the next run, after the grain was fixed."""
    paths = make_project(tmp_path / "p", {**GOOD, "a/staged.yml": (
        f"name: staged\n{BASE}aggregation: count\nfilter: \"nosuchcol = 1\"\ndimensions: [nope]\n"
        "grains: [day, dya]\nanomaly: {sensitivity: -1}\n")})
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    problems = sorted(line for line in err.splitlines() if line.startswith("metrics/a/staged.yml:"))
    assert [p.split(":")[1] for p in problems] == ["5", "6", "7", "8"], err
    assert "`filter` uses unknown column(s) `nosuchcol`" in problems[0] and "dimension `nope`" in problems[1], err
    # a problem in the measure's shape (here `aggregation`) leaves nothing sound to check
    (paths.metrics_dir / "a" / "staged.yml").write_text(f"name: staged\n{BASE}aggregation: cnt\nfilter: \"nosuchcol = 1\"\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("metrics/a/staged.yml:")] == [
        next(line for line in err.splitlines() if "`aggregation`" in line)], err


def test_a_key_written_twice_does_not_hide_the_other_problems_of_the_file(tmp_path, capsys, isolated_env):
    """A duplicate key stopped the file at the YAML stage: its other problems were
    reported one run later."""
    paths = make_project(tmp_path / "p", {**GOOD, "a/twice.yml": (
        f"name: twice\n{BASE}aggregation: count\nanomaly:\n  sensitivity: 3\n  sensitivity: 4\n  max_slices: -2\n"
        "  exclude: [{start: 2026-12-05, end: 2026-12-01}]\n")})
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    problems = sorted(line for line in err.splitlines() if line.startswith("metrics/a/twice.yml:"))
    assert [p.split(":")[1] for p in problems] == ["7", "8", "9"], err
    assert "key 'sensitivity' appears twice (first on line 6)" in problems[0], err
    assert "`anomaly.max_slices`" in problems[1] and "end must be after start" in problems[2], err


def test_an_accepted_value_with_a_lone_quote_is_reported_and_a_doubled_one_is_read_as_stored(tmp_path, capsys,
                                                                                              isolated_env):
    """dbt pastes accepted values into SQL as written: `customer's request` passed validate
    and the staging build failed; written `customer''s request` (the build's spelling),
    the slice `customer's request` was refused as "not an accepted value"."""
    from dagster_project.warehouse.read import accepted_values
    paths = make_project(tmp_path / "p", GOOD)
    yml = paths.models_dir / "staging" / "_staging__models.yml"
    original = yml.read_text()
    yml.write_text(original.replace("[model, dataset, space, collection, paper]",
                                    "[model, dataset, space, collection, \"paper's\"]"))
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "models/staging/_staging__models.yml:15: stg_entity_events.entity_type: accepted value `paper's` holds a `'`" \
        in err and "`paper''s`" in err, err
    yml.write_text(original.replace("[model, dataset, space, collection, paper]",
                                    "[model, dataset, space, collection, \"paper''s\"]"))
    assert main(["--project-dir", str(paths.root), "validate"]) == 0
    assert accepted_values(paths, "stg_entity_events", "entity_type")[-1] == "paper's"


def test_a_long_list_of_or_terms_is_no_deep_expression(tmp_path, capsys, isolated_env):
    """The depth limit counts real nesting: 600 `x = '..' or` terms are one list to the
    warehouses (the first limit refused 260 of them)."""
    terms = " or ".join(f"entity_id = 'e{i}'" for i in range(600))
    paths = make_project(tmp_path, {**GOOD, "a/many.yml": f"name: many\n{BASE}aggregation: count\nfilter: \"{terms}\"\n"})
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 0, capsys.readouterr().err


def test_a_number_in_exponent_form_is_a_number(tmp_path, capsys, isolated_env):
    """YAML 1.1 reads `1e3` as text: with strict types `min_volume: 1e3` was refused (and a
    quoted number is still text, refused)."""
    from dagster_project.validation.project import load_project
    paths = make_project(tmp_path, {**GOOD, "a/expo.yml": f"name: expo\n{BASE}aggregation: count\n"
                                                          "anomaly: {min_volume: 1e3, sensitivity: 3.5E0}\n"})
    project = load_project(paths).project
    assert project.metrics["expo"].anomaly.min_volume == 1000.0 and project.metrics["expo"].anomaly.sensitivity == 3.5
    (paths.metrics_dir / "a" / "expo.yml").write_text(f"name: expo\n{BASE}aggregation: count\nanomaly: {{min_volume: '1e3'}}\n")
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "`anomaly.min_volume`: Input should be a valid number" in capsys.readouterr().err


def test_compile_replaces_the_generated_models_all_or_none(tmp_path, capsys, isolated_env):
    """A file that cannot be replaced (here a folder stands where a model goes) left the
    models before it rewritten, the rest stale and a `.tmp` behind, with a traceback."""
    paths = make_project(tmp_path, GOOD)
    assert main(["--project-dir", str(paths.root), "compile"]) == 0
    (paths.metrics_dir / "a" / "likes.yml").write_text(
        "name: likes\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Like'\"\n")
    blocked = sorted((paths.generated_dir / "rollups").glob("*__month.sql"))[0]
    blocked.unlink()
    (blocked / "keep").mkdir(parents=True)
    before = _digest(paths.generated_dir)
    capsys.readouterr()
    assert main(["--project-dir", str(paths.root), "compile"]) == 1
    err = capsys.readouterr().err
    assert "cannot write the generated models" in err and "nothing changed" in err and "Traceback" not in err, err
    assert _digest(paths.generated_dir) == before
    assert not list(paths.generated_dir.rglob("*.tmp"))
    (blocked / "keep").rmdir()
    blocked.rmdir()
    assert main(["--project-dir", str(paths.root), "compile"]) == 0
    assert main(["--project-dir", str(paths.root), "compile", "--check"]) == 0


@pytest.mark.parametrize("command", [["validate"], ["compile"], ["run"], ["list"]])
def test_a_folder_that_is_no_project_is_refused(tmp_path, capsys, isolated_env, command):
    """`--project-dir` with a typo passed `validate` on 0 files; `compile` and `run`
    wrote models and a warehouse there, then failed in dbt with a traceback."""
    nowhere = tmp_path / "nowhere"
    assert main(["--project-dir", str(nowhere), *command]) == 2
    assert f"{nowhere} is not a metrics project: it has no metrics/ folder" in capsys.readouterr().err
    assert not nowhere.exists()
    half = tmp_path / "half"  # metric files but no dbt project: enough to validate and list
    (half / "metrics").mkdir(parents=True)
    code = main(["--project-dir", str(half), *command])
    err = capsys.readouterr().err
    if command[0] in ("compile", "run"):
        assert code == 2 and f"{half} is not a metrics project: it has no dbt_project/ folder" in err, err
        assert sorted(p.name for p in half.iterdir()) == ["metrics"]
    else:
        assert "not a metrics project" not in err, err


def test_a_metric_file_with_an_uppercase_extension_is_reported(tmp_path, capsys, isolated_env):
    """`orders.YML` was skipped without a word: the metric never built."""
    paths = make_project(tmp_path, GOOD)
    (paths.metrics_dir / "a" / "likes.YML").write_text(
        "name: likes\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/likes.YML:1: a metric file ends in .yml or .yaml, lowercase: rename it to `likes.yml`" in err, err


def test_a_settle_lookback_beyond_a_year_is_refused_at_its_line(tmp_path, capsys, isolated_env):
    """`month: 30000` passed validation and crashed `alerts evaluate` and `run` with an
    OverflowError."""
    paths = make_project(tmp_path, GOOD, config="start: 2026-01-01\nsettle_lookback:\n  day: 3\n  month: 30000\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/_config.yml:4: " in err and "settle_lookback.month" in err and "12" in err, err


def test_a_fragment_whose_rendering_reads_back_otherwise_is_refused():
    """The second line of defence behind the type and unit checks: a part sqlglot writes
    back as raw text (here a type, as the checks would otherwise see it) must not turn
    into a query once written for a warehouse."""
    import sqlglot

    from dagster_project.validation.sql_fragment import FragmentError, _check_rendering
    tree = sqlglot.parse_one('length(cast(x as """varchar"") || (select y from t) || cast(x as varchar"))')
    with pytest.raises(FragmentError, match="does not read back as the same expression"):
        _check_rendering(tree)
    _check_rendering(sqlglot.parse_one("cast(x as bigint) + extract(dow from y) > 1"))


def test_a_config_file_that_is_no_mapping_says_so(tmp_path, capsys, isolated_env):
    paths = make_project(tmp_path, GOOD, config="- a\n- b\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/_config.yml:1: the file: Input should be a mapping of fields" in err, err  # was "`file`: ..."


def test_a_seasonal_cycle_longer_than_half_the_training_window_is_refused_at_each_grain(tmp_path, capsys,
                                                                                     isolated_env):
    """`day_of_week` reads as `hour_of_week` at the hour grain: 200 training buckets hold
    two weeks of days but not two of hours. From `_config.yml`, the metric's file is
    named and the message says where the values came from; a window that holds two
    cycles at every grain, or `auto`, is fine."""
    seasonal = "anomaly:\n  seasonality: day_of_week\n  training_buckets: 200\n"
    paths = make_project(tmp_path / "own", {**GOOD, "a/hourly.yml": f"name: hourly\n{BASE}aggregation: count\n"
                                                                    f"grains: [hour, day]\n{seasonal}"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/hourly.yml:8: `seasonality: day_of_week`, read as `hour_of_week` at the hour grain, needs a " \
           "training window of two cycles, 336 hour buckets" in err, err
    for i, (grains, code) in enumerate((("[day, week]", 0), ("[hour]", 1))):
        paths = make_project(tmp_path / f"config{i}", {"a/hourly.yml": f"name: hourly\n{BASE}aggregation: count\n"
                                                                      f"grains: {grains}\n"}, config=seasonal)
        assert main(["--project-dir", str(paths.root), "validate"]) == code, grains
        err = capsys.readouterr().err
        assert code == 0 or "metrics/a/hourly.yml:1: " in err and \
            "(`seasonality` and `training_buckets` from metrics/_config.yml `anomaly:`)" in err, err
    # one from each file: the message names the one the metric did not set
    paths = make_project(tmp_path / "mixed", {"a/hourly.yml": f"name: hourly\n{BASE}aggregation: count\n"
                                                              "grains: [day]\nanomaly:\n  training_buckets: 10\n"},
                         config="anomaly:\n  seasonality: day_of_week\n")
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    err = capsys.readouterr().err
    assert "metrics/a/hourly.yml:7: " in err and "is 10 (`seasonality` from metrics/_config.yml `anomaly:`)" in err, err
    # an archived metric is never scored: its block is not held to it
    paths = make_project(tmp_path / "archived", {**GOOD, "a/old.yml": f"name: old\n{BASE}aggregation: count\n"
                                                 "status: archived\ngrains: [day]\nanomaly: {enabled: true, "
                                                 "seasonality: day_of_week, training_buckets: 10}\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 0, capsys.readouterr().err
    paths = make_project(tmp_path / "auto", {**GOOD, "a/hourly.yml": f"name: hourly\n{BASE}aggregation: count\n"
                                                                     "anomaly: {seasonality: auto, training_buckets: 10}\n"})
    assert main(["--project-dir", str(paths.root), "validate"]) == 0, capsys.readouterr().err


def test_a_name_in_another_case_is_suggested():
    from dagster_project.validation.issues import closest
    assert closest("ORDERS", ["orders", "refunds"]) == " (did you mean `orders`?)"
    assert closest("ordrs", ["orders", "refunds"]) == " (did you mean `orders`?)"


@pytest.mark.parametrize("command", [["series", "downloads", "--grain", "day"], ["anomalies"], ["alerts"],
                                     ["alerts", "outbox"]])
def test_a_read_of_a_missing_duckdb_file_leaves_no_lock_file_behind(tmp_path, capsys, isolated_env, command):
    paths = make_project(tmp_path, GOOD)
    # every read exits 2 on it (the alert listings exited 1)
    assert main(["--project-dir", str(paths.root), *command]) == 2
    assert "no warehouse file at" in capsys.readouterr().err
    assert not list(paths.duckdb_path.parent.glob("*.lock")), list(paths.duckdb_path.parent.iterdir())


@pytest.mark.parametrize("command", [["series", "downloads", "--grain", "day"], ["anomalies"]])
def test_a_read_of_a_missing_chdb_folder_says_so_and_creates_nothing(tmp_path, capsys, isolated_env, command):
    """A read with `--target clickhouse` on a project never run there created an empty
    `warehouse/chdb/` (and its lock file) before reporting that nothing was there."""
    paths = make_project(tmp_path, GOOD)
    assert main(["--project-dir", str(paths.root), *command, "--target", "clickhouse"]) == 2
    assert "no chDB folder at" in capsys.readouterr().err
    assert not paths.chdb_path.parent.exists() or not list(paths.chdb_path.parent.iterdir())


def test_a_metric_file_with_classic_mac_line_ends_reads_as_its_lines(tmp_path, capsys):
    """Refusing every lone CR refused such a file whole, at line 1."""
    body = "name: mac\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
    paths = make_project(tmp_path, {"growth/mac.yml": body.replace("\n", "\r")})
    assert load_project(paths).issues == []
    (paths.metrics_dir / "growth" / "mac.yml").write_text(body.replace("count", "cnt").replace("\n", "\r"))
    assert [str(i).split(": ")[0] for i in load_project(paths).issues] == ["metrics/growth/mac.yml:4"]
