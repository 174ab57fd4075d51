"""Which metrics `metrics run --metric` re-scores (defs/runner.py fed_by): the metrics
whose rollups it rebuilt and every metric computed from them, through ratios and derived
metrics, however indirectly; nothing else."""
from __future__ import annotations

from dagster_project.defs.runner import fed_by
from dagster_project.validation.project import load_project

from .conftest import make_project

METRICS = {
    "c/orders.yml": "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\ngrains: [day]\n",
    "c/revenue.yml": "name: revenue\nsource: stg_orders\ntimestamp: ordered_at\naggregation: sum\n"
                     "expression: amount\ngrains: [day]\n",
    "c/aov.yml": "name: aov\nkind: ratio\nnumerator: revenue\ndenominator: orders\ngrains: [day]\n",
    "c/aov_x2.yml": "name: aov_x2\nkind: derived\nexpression: \"aov * 2\"\ngrains: [day]\n",
    "e/events.yml": "name: events\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\ngrains: [day]\n",
}


def test_a_rebuilt_metric_re_scores_what_is_computed_from_it(tmp_path):
    loaded = load_project(make_project(tmp_path, METRICS, "start: 2026-09-01\n"))
    assert loaded.ok, [str(i) for i in loaded.issues]
    project = loaded.project
    assert fed_by(project, {"orders"}) == {"orders", "aov", "aov_x2"}
    assert fed_by(project, {"revenue"}) == {"revenue", "aov", "aov_x2"}
    assert fed_by(project, {"events"}) == {"events"}
    assert fed_by(project, set()) == set()
