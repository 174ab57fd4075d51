"""Snapshots of the SQL each warehouse receives for a small fixed project, so a change in
a macro or the compiler shows up in review as a diff per adapter.
Refresh with: UPDATE_SQL_SNAPSHOTS=1 pytest tests/test_sql_snapshots.py"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from dagster_project.compiler.writer import compile_project
from dagster_project.validation.project import load_project
from dagster_project.warehouse.dbt_runner import run_dbt

from .conftest import make_project

pytestmark = pytest.mark.dbt

SNAPSHOTS = Path(__file__).parent / "snapshots"
METRICS = {
    "s/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Download'\"\ndimensions: [entity_type]\n",
    "s/users.yml": "name: users\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count_distinct\nexpression: user_id\ndimensions: [entity_type]\n",
    "s/p90.yml": "name: p90\nsource: stg_entity_events\ntimestamp: created_at\naggregation: percentile\npercentile: 0.9\nexpression: metric_value\n",
    "s/latest_value.yml": "name: latest_value\nsource: stg_entity_events\ntimestamp: created_at\naggregation: latest\nexpression: metric_value\ndimensions: [user_id]\n",
    "s/per_user.yml": "name: per_user\nkind: ratio\nnumerator: downloads\ndenominator: users\n",
    "s/net.yml": "name: net\nkind: derived\nexpression: downloads - users / 2\n",
    # a filter on a boolean (categorical) column only: the keyed form
    "s/refunds.yml": "name: refunds\nsource: stg_orders\ntimestamp: ordered_at\naggregation: sum\nexpression: amount\nfilter: refunded\ndimensions: [country]\n",
}
MODELS = ("rollup_stg_entity_events__by_created_at__day", "rollup_stg_orders__by_ordered_at__day", "metric_series_day")


def test_generated_sql_per_adapter(tmp_path, target):
    paths = make_project(tmp_path, METRICS, "start: 2026-01-01\ngrains: [day]\n")
    compile_project(paths, load_project(paths).project)
    out = run_dbt(paths, target, ["compile", "--select", *MODELS], window=(dt.date(2026, 1, 5), dt.date(2026, 1, 12)),
                  run_id="snapshot", quiet=True)
    assert out.ok, out.failures
    for model in MODELS:
        compiled = next((paths.dbt_project_dir / "target" / "compiled").rglob(f"{model}.sql")).read_text()
        compiled = compiled.replace(str(paths.root), "<project>")
        if os.environ.get("METRICS_PG_DATABASE"):  # each test module has its own database
            compiled = compiled.replace(os.environ["METRICS_PG_DATABASE"], "<database>")
        compiled = compiled.replace(f'"{paths.duckdb_path.stem}".', '"<database>".')
        snap = SNAPSHOTS / target / f"{model}.sql"
        if os.environ.get("UPDATE_SQL_SNAPSHOTS"):
            snap.parent.mkdir(parents=True, exist_ok=True)
            snap.write_text(compiled)
        assert snap.exists(), f"no snapshot {snap}: run with UPDATE_SQL_SNAPSHOTS=1"
        assert compiled == snap.read_text(), f"{target} SQL for {model} changed: review, then refresh the snapshot"
