"""A snapshot of the example project's Dagster definitions (asset keys, groups,
partitions, jobs, schedules), so an accidental change shows in review.
Refresh with: UPDATE_SQL_SNAPSHOTS=1 pytest tests/test_dagster_snapshot.py"""
from __future__ import annotations

import json
import os
from pathlib import Path

from dagster_project.paths import REPO_ROOT

SNAPSHOT = Path(__file__).parent / "snapshots" / "dagster_definitions.json"


def _describe_partitions(pdef) -> str | None:
    if pdef is None:
        return None
    start = pdef.start.strftime("%Y-%m-%d %H:%M")
    return f"{type(pdef).__name__}(start={start}, cron={pdef.cron_schedule}, tz={pdef.timezone}, end_offset={pdef.end_offset})"


def test_definitions_snapshot(monkeypatch):
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(REPO_ROOT))
    from dagster_project.defs import resources
    from dagster_project.defs.builder import build_definitions
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _describe_partitions(node.partitions_def),
            "parents": sorted(p.to_user_string() for p in node.parent_keys),
            "metric_tags": sorted(t for t in node.tags if t.startswith("metric_")),
        }
    snapshot = {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in defs.schedules},
        "sensors": sorted(s.name for s in (defs.sensors or [])),
    }
    text = json.dumps(snapshot, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SQL_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), "no snapshot: run with UPDATE_SQL_SNAPSHOTS=1"
    assert text == SNAPSHOT.read_text(), "Dagster definitions changed: review, then refresh the snapshot"
