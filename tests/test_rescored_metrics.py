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


def test_a_metric_run_scores_its_rollups_neighbours_when_its_own_detection_is_off(tmp_path, monkeypatch):
    """`metrics run --metric orders` with orders' detection off still re-scores revenue,
    whose rows the same rollup rebuilt (the anomaly asset is tagged with scored metrics only)."""
    from dagster_project.compiler.writer import compile_project
    from dagster_project.defs import resources
    from dagster_project.defs.builder import build_definitions
    from dagster_project.defs.runner import metric_selection, wanted_metrics
    from dagster_project.defs.translator import metric_tag
    metrics = {**METRICS, "c/orders.yml": METRICS["c/orders.yml"] + "anomaly: {enabled: false}\n"}
    paths = make_project(tmp_path, metrics, "start: 2026-09-01\n")
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(paths.root))
    project = load_project(paths).project
    compile_project(paths, project)
    resources.metrics_dbt_project.cache_clear()
    resources.parse_manifest(paths)
    defs = build_definitions()
    job = defs.resolve_job_def("rollups_day_job")
    selection, _ = metric_selection(job, defs.resolve_asset_graph(), project,
                                    {metric_tag(n) for n in wanted_metrics(project, ["orders"])})
    chosen = {k.path[-1] for k in selection}
    assert "anomalies_day" in chosen and any(c.startswith("rollup_stg_orders") for c in chosen), chosen
    assert not any(c.startswith("rollup_stg_entity_events") for c in chosen), chosen
