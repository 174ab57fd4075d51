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
