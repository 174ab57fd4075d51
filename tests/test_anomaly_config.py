"""The `anomaly:` block: validated with file:line, merged field by field (metric, then
`_config.yml`, then defaults), on for active metrics and off for drafts by default."""
from __future__ import annotations

import datetime as dt

from dagster_project.cli.main import main
from dagster_project.spec.raw import exclude_bounds
from dagster_project.validation.project import load_project

from .conftest import make_project

BASE = "source: stg_orders\ntimestamp: ordered_at\naggregation: count\n"


def _load(tmp_path, metrics: dict[str, str], config: str = ""):
    paths = make_project(tmp_path, metrics, "start: 2026-01-01\n" + config)
    return paths, load_project(paths)


def test_bad_anomaly_blocks_are_file_line_errors(tmp_path, capsys):
    metrics = {
        "a/typo.yml": "name: typo\n" + BASE + "anomaly:\n  sensitivty: 3\n",
        "a/wrong_type.yml": "name: wrong_type\n" + BASE + "anomaly:\n  sensitivity: high\n",
        "a/bad_range.yml": "name: bad_range\n" + BASE + "anomaly:\n  exclude:\n    - {start: 2026-03-05, end: 2026-03-01}\n",
        "a/bad_slices.yml": "name: bad_slices\n" + BASE + "anomaly: {max_slices: -1, direction: sideways}\n",
    }
    paths, result = _load(tmp_path, metrics)
    text = "\n".join(map(str, result.issues))
    assert "metrics/a/typo.yml:6: unknown field `anomaly.sensitivty` (did you mean `sensitivity`?)" in text
    assert "metrics/a/wrong_type.yml:6: `anomaly.sensitivity`" in text
    assert "metrics/a/bad_range.yml:" in text and "end must be after start" in text
    assert "metrics/a/bad_slices.yml:5: `anomaly.max_slices`" in text and "`anomaly.direction`" in text
    assert main(["--project-dir", str(paths.root), "validate"]) == 1
    assert "problem(s)" in capsys.readouterr().err


def test_defaults_merge_field_by_field_and_drafts_are_off(tmp_path):
    metrics = {
        "a/plain.yml": "name: plain\n" + BASE,
        "a/own.yml": "name: own\n" + BASE + "anomaly: {sensitivity: 5, exclude: [{start: 2026-12-24, end: 2026-12-26, reason: holidays}]}\n",
        "a/draft_one.yml": "name: draft_one\nstatus: draft\n" + BASE,
        "a/draft_on.yml": "name: draft_on\nstatus: draft\n" + BASE + "anomaly: {enabled: true}\n",
    }
    _, result = _load(tmp_path, metrics, "anomaly: {sensitivity: 4, min_volume: 10, max_slices: 5}\n")
    assert result.ok, [str(i) for i in result.issues]
    m = result.project.metrics
    assert (m["plain"].anomaly.sensitivity, m["plain"].anomaly.min_volume, m["plain"].anomaly.max_slices) == (4, 10, 5)
    assert m["plain"].anomaly.enabled and m["plain"].anomaly.training_buckets is None
    assert (m["own"].anomaly.sensitivity, m["own"].anomaly.min_volume) == (5, 10)
    assert exclude_bounds(m["own"].anomaly.exclude[0]) == (dt.datetime(2026, 12, 24), dt.datetime(2026, 12, 27))
    assert not m["draft_one"].anomaly.enabled and m["draft_on"].anomaly.enabled


def test_project_defaults_are_validated_too(tmp_path):
    _, result = _load(tmp_path, {"a/plain.yml": "name: plain\n" + BASE}, "anomaly: {sensitivity: 0}\n")
    assert any("_config.yml" in str(i) and "anomaly.sensitivity" in str(i) for i in result.issues)


def test_an_unset_sensitivity_is_the_grains_default_everywhere_it_is_read(tmp_path):
    """No sensitivity in the metric or _config.yml: the detectors, the alert engine's
    strong threshold (twice the sensitivity) and the shape follow the grain and the
    aggregation; one that is set is kept at every grain."""
    from dagster_project.alerting.evaluate import metric_infos
    from dagster_project.anomaly.settings import at_grain
    from dagster_project.scoring.inputs import detector_settings, shape_of
    metrics = {"a/plain.yml": "name: plain\n" + BASE,
               "a/set.yml": "name: set\n" + BASE + "anomaly: {sensitivity: 3}\n",
               "a/latency.yml": "name: latency\nsource: stg_orders\ntimestamp: ordered_at\naggregation: avg\n"
                                "expression: amount\n",
               "a/p95.yml": "name: p95\nsource: stg_orders\ntimestamp: ordered_at\naggregation: percentile\n"
                            "percentile: 0.95\nexpression: amount\n"}
    _, result = _load(tmp_path, metrics)
    assert result.ok, [str(i) for i in result.issues]
    m = result.project.metrics
    assert m["plain"].anomaly.sensitivity is None
    assert [at_grain(detector_settings(m["plain"]), g).sensitivity for g in ("hour", "day")] == [3.5, 3.0]
    assert [at_grain(detector_settings(m["set"]), g).sensitivity for g in ("hour", "day")] == [3.0, 3.0]
    infos = metric_infos(result.project)
    assert (infos["plain"].strong_score("hour"), infos["plain"].strong_score("day")) == (7.0, 6.0)
    assert infos["set"].strong_score("hour") == 6.0
    assert [shape_of(m[n]) for n in ("plain", "latency", "p95")] == ["count", "average", "average"]
    # a percentile's level reaches the detector (anomaly/bands.py, extreme_upper)
    assert [detector_settings(m[n]).quantile for n in ("plain", "latency", "p95")] == [None, None, 0.95]


def test_a_ratio_of_an_amount_is_judged_as_an_average_over_its_denominator(tmp_path):
    """Revenue per order is an average order's amount over `orders` orders, not a count
    of revenue's units (a Poisson band would take 127 of revenue for 127 events, and a
    price in cents for a hundred times the evidence of one in dollars); a ratio of
    counts keeps the count-ratio model, inline sides included."""
    from dagster_project.scoring.inputs import shape_of
    metrics = {"a/orders.yml": "name: orders\n" + BASE,
               "a/revenue.yml": "name: revenue\nsource: stg_orders\ntimestamp: ordered_at\naggregation: sum\n"
                                "expression: amount\n",
               "a/per_order.yml": "name: per_order\nkind: ratio\nnumerator: revenue\ndenominator: orders\n",
               "a/refund_rate.yml": "name: refund_rate\nkind: ratio\ndenominator: orders\nnumerator: {source: "
                                    "stg_orders, timestamp: ordered_at, aggregation: count, filter: refunded}\n",
               "a/inline_amount.yml": "name: inline_amount\nkind: ratio\ndenominator: orders\nnumerator: {source: "
                                      "stg_orders, timestamp: ordered_at, aggregation: sum, expression: amount}\n"}
    _, result = _load(tmp_path, metrics)
    assert result.ok, [str(i) for i in result.issues]
    m = result.project.metrics
    assert [shape_of(m[n], result.project) for n in ("per_order", "refund_rate", "inline_amount")] == \
        ["amount_ratio", "ratio", "amount_ratio"]
