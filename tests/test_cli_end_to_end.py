"""The README's main job on a small demo: demo-data, run, then read series as JSON/CSV."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.demo.generator import generate_range
from dagster_project.paths import REPO_ROOT

from .conftest import make_project

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    paths = make_project(root, {}, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    shutil.copytree(REPO_ROOT / "metrics", paths.metrics_dir, dirs_exist_ok=True)
    args = ["--project-dir", str(root)]
    assert main([*args, "demo-data", "--days", "4", "--end", "2026-09-05", "--events-per-day", "1500"]) == 0
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-05"]) == 0
    return root, args


def test_series_json_has_the_documented_shape_and_matches_raw_counts(demo, capsys):
    root, args = demo
    capsys.readouterr()
    assert main([*args, "series", "model_downloads", "--grain", "day", "--start", "2026-09-01", "--end", "2026-09-05", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["bucket_start"] for r in rows] == [f"2026-09-0{d}T00:00:00Z" for d in range(1, 5)]
    assert all(set(r) >= {"metric", "grain", "bucket_start", "slice", "value"} and r["slice"] == {} for r in rows)
    raw = generate_range(dt.date(2026, 9, 1), dt.date(2026, 9, 5), seed=7, events_per_day=1500)["entity_events"]
    raw = raw[raw.metric_type == "Download"]
    want = raw.groupby(raw.created_at.dt.floor("D")).size()
    assert [r["value"] for r in rows] == [float(want[pd.Timestamp(r["bucket_start"][:10])]) for r in rows]
    assert rows[0]["previous_value"] is None and rows[1]["previous_value"] == rows[0]["value"]


def test_series_slice_csv_and_errors(demo, capsys):
    root, args = demo
    capsys.readouterr()
    # 2026-09-01 is a Tuesday: the week holding it is rebuilt with the window, so late data
    # in the window reaches every grain
    assert main([*args, "series", "orders", "--grain", "week", "--format", "json"]) == 0
    assert [w["bucket_start"] for w in json.loads(capsys.readouterr().out)] == ["2026-08-31T00:00:00Z"]
    assert main([*args, "series", "orders", "--grain", "day", "--slice", "country=DE", "--format", "csv",
                 "--start", "2026-09-01", "--end", "2026-09-05"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "metric,grain,bucket_start,dimension,dimension_value,value,previous_value,change_pct,complete"
    assert len(lines) == 5 and all(line.startswith("orders,day,") and ",country,DE," in line for line in lines[1:])
    assert main([*args, "series", "order", "--grain", "day"]) == 2
    assert "did you mean `orders`" in capsys.readouterr().err
    assert main([*args, "series", "orders", "--grain", "day", "--slice", "planet=mars"]) == 2
    assert "no dimension `planet`" in capsys.readouterr().err
    assert main([*args, "series", "max_order_amount", "--grain", "hour"]) == 2


def test_draft_metrics_are_built_only_on_demand(demo, capsys):
    root, args = demo
    assert main([*args, "series", "dataset_likes", "--grain", "day"]) == 2  # not built by the default run
    assert "metric_series_draft_day" in capsys.readouterr().err
    assert main([*args, "run", "--start", "2026-09-01", "--end", "2026-09-05", "--include-drafts"]) == 0
    capsys.readouterr()
    assert main([*args, "series", "dataset_likes", "--grain", "day", "--start", "2026-09-01", "--end", "2026-09-05", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    # the window starts on a Tuesday: the week it overlaps is built too, as for active metrics
    assert main([*args, "series", "dataset_likes", "--grain", "week", "--format", "json"]) == 0
    weeks = json.loads(capsys.readouterr().out)
    assert [w["bucket_start"] for w in weeks] == ["2026-08-31T00:00:00Z"], weeks
    assert main([*args, "series", "dataset_likes", "--grain", "day", "--start", "2026-08-31", "--end", "2026-09-07",
                 "--format", "json"]) == 0
    days = json.loads(capsys.readouterr().out)
    assert weeks[0]["value"] == sum(d["value"] or 0 for d in days) > 0  # a count: the week is its days' sum


def _runs(root, model: str) -> dict:
    from dagster_project.paths import ProjectPaths
    from dagster_project.warehouse.connection import Warehouse
    df = Warehouse("duckdb", ProjectPaths(root)).frame(
        f"select cast(bucket_start as date) as day, run_id, count(*) as n from analytics.{model} group by 1, 2")
    return {(str(pd.Timestamp(d).date()), r): n for d, r, n in zip(df.day, df.run_id, df.n)}


def test_run_one_metric_rebuilds_only_its_models(demo):
    root, args = demo
    events, orders = _runs(root, "rollup_stg_entity_events__by_created_at__day"), _runs(root, "rollup_stg_orders__by_ordered_at__day")
    assert main([*args, "run", "--metric", "model_downloads", "--start", "2026-09-02", "--end", "2026-09-03"]) == 0
    after = _runs(root, "rollup_stg_entity_events__by_created_at__day")
    rewritten = {run for (day, run) in after if day == "2026-09-02"}
    assert len(rewritten) == 1 and not rewritten & {run for (_, run) in events}  # a new run wrote that day
    assert {k: v for k, v in after.items() if k[0] != "2026-09-02"} == {k: v for k, v in events.items() if k[0] != "2026-09-02"}
    assert _runs(root, "rollup_stg_orders__by_ordered_at__day") == orders  # another source: untouched


def test_archived_metrics_history_stays_readable(demo, capsys):
    """Archiving stops compiling a metric; its rows stay in the rollup table and
    `metrics series` reads them there (a ratio recombined from its inputs)."""
    root, args = demo
    for name in ("model_downloads", "downloads_per_active_user"):
        path = root / "metrics" / "growth" / f"{name}.yml"
        text = path.read_text()
        path.write_text(text.replace("status: active", "status: archived") if "status:" in text else text + "status: archived\n")
    # rebuild part of the window without them: their rows there must survive
    assert main([*args, "run", "--start", "2026-09-03", "--end", "2026-09-05"]) == 0
    from dagster_project.paths import ProjectPaths
    from dagster_project.warehouse.connection import Warehouse
    shown = Warehouse("duckdb", ProjectPaths(root)).frame("select distinct metric from analytics.metric_series_day")
    assert "model_downloads" not in set(shown.metric) and "downloads_per_active_user" not in set(shown.metric)
    raw = generate_range(dt.date(2026, 9, 1), dt.date(2026, 9, 5), seed=7, events_per_day=1500)["entity_events"]
    day = raw.created_at.dt.floor("D")
    downloads = raw[raw.metric_type == "Download"].groupby(day).size()
    users = raw.groupby(day).user_id.nunique()
    capsys.readouterr()
    window = ["--grain", "day", "--start", "2026-09-01", "--end", "2026-09-05", "--format", "json"]
    assert main([*args, "series", "model_downloads", *window]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["value"] for r in rows] == [float(downloads[pd.Timestamp(f"2026-09-0{d}")]) for d in range(1, 5)]
    assert main([*args, "series", "downloads_per_active_user", *window]) == 0
    rows = json.loads(capsys.readouterr().out)
    want = [downloads[pd.Timestamp(f"2026-09-0{d}")] / users[pd.Timestamp(f"2026-09-0{d}")] for d in range(1, 5)]
    assert len(rows) == 4 and all(abs(r["value"] - w) <= 1e-9 * w for r, w in zip(rows, want))
    assert main([*args, "series", "model_downloads", "--grain", "day", "--slice", "entity_type=model", "--format", "json",
                 "--start", "2026-09-01", "--end", "2026-09-05"]) == 0
    sliced = json.loads(capsys.readouterr().out)
    model = raw[(raw.metric_type == "Download") & (raw.entity_type == "model")].groupby(day).size()
    assert [r["value"] for r in sliced] == [float(model.get(pd.Timestamp(f"2026-09-0{d}"), 0)) for d in range(1, 5)]


def test_a_run_over_part_of_a_changed_definitions_history_says_so(demo, capsys):
    """A max made a min, then rebuilt from one day on: scoring compares that window with
    buckets the max built, and said nothing about it (every new bucket read as a drop)."""
    root, args = demo
    path = root / "metrics" / "commerce" / "max_order_amount.yml"
    text = path.read_text()
    try:
        path.write_text(text.replace("aggregation: max", "aggregation: min"))
        capsys.readouterr()
        assert main([*args, "run", "--start", "2026-09-04", "--end", "2026-09-05", "--metric", "max_order_amount"]) == 0
        out = capsys.readouterr().out
        assert "generated model(s) changed and this run builds from 2026-09-04 on" in out, out
        assert main([*args, "run", "--start", "2026-09-04", "--end", "2026-09-05", "--metric", "max_order_amount"]) == 0
        assert "generated model(s) changed" not in capsys.readouterr().out  # nothing changed since
    finally:
        path.write_text(text)
