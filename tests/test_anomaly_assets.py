"""The anomaly assets end to end on DuckDB: the demo's planted incidents (demo/generator.py
INCIDENTS) come out of a real `metrics run` (Dagster, dbt, the anomalies_<grain> assets)
as `metrics anomalies --format json`, on the right metric, grain and buckets; a recompute
of one day re-scores exactly that day."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from dagster_project.cli.main import main
from dagster_project.demo.generator import INCIDENTS
from dagster_project.paths import REPO_ROOT
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project

pytestmark = pytest.mark.dbt

FIRST_DAY = dt.date(2026, 9, 1)  # the demo metrics' start
DAYS = 75
END = FIRST_DAY + dt.timedelta(days=DAYS)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomaly_demo")
    # the metrics the planted incidents hit (scoring every example metric's slices hourly
    # would only make the test slower)
    picked = {rel: (REPO_ROOT / "metrics" / rel).read_text() for rel in
              ("growth/model_downloads.yml", "engagement/reactions_net.yml", "commerce/orders.yml")}
    paths = make_project(root, picked, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    args = ["--project-dir", str(root)]
    mp = pytest.MonkeyPatch()
    mp.setenv("METRICS_DUCKDB_PATH", str(root / "warehouse" / "metrics.duckdb"))
    mp.setenv("METRICS_NOW", f"{END.isoformat()}T00:00:00Z")  # the day after the data: every bucket settled
    assert main([*args, "demo-data", "--days", str(DAYS), "--end", END.isoformat()]) == 0
    assert main([*args, "run", "--start", FIRST_DAY.isoformat(), "--end", END.isoformat()]) == 0
    yield paths, args
    mp.undo()


def _anomalies(capsys, args, *extra) -> list[dict]:
    capsys.readouterr()
    assert main([*args, "anomalies", "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _hours(day_offset: int, hours: tuple[int, int]) -> set[str]:
    day = FIRST_DAY + dt.timedelta(days=day_offset)
    return {f"{day.isoformat()}T{h:02d}:00:00Z" for h in range(*hours)}


def test_planted_incidents_are_found_where_they_happen(demo, capsys):
    paths, args = demo
    outage, spike, checkout = INCIDENTS
    # the download outage: events fall to 15% for six hours
    found = _anomalies(capsys, args, "--metric", "model_downloads", "--grain", "hour", "--slice", "total")
    hours = {r["bucket_start"] for r in found if r["direction"] == "down"}
    assert hours & _hours(outage.day_offset, outage.hours), found[:5]
    assert all(r["slice"] == {} and r["metric"] == "model_downloads" and r["grain"] == "hour" for r in found)
    # the reaction spike: four times the reactions for two hours
    found = _anomalies(capsys, args, "--metric", "reactions_net", "--grain", "hour", "--slice", "total")
    assert {r["bucket_start"] for r in found if r["direction"] == "up"} & _hours(spike.day_offset, spike.hours)
    # the checkout incident: orders at 40% for a whole day, seen at the day grain
    day = (FIRST_DAY + dt.timedelta(days=checkout.day_offset)).isoformat() + "T00:00:00Z"
    found = _anomalies(capsys, args, "--metric", "orders", "--grain", "day", "--slice", "total")
    assert [r["direction"] for r in found if r["bucket_start"] == day] == ["down"], found
    row = next(r for r in found if r["bucket_start"] == day)
    assert row["value"] < row["lower"] <= row["expected"] and row["score"] < 0 and not row["provisional"]
    assert "orders" in row["reason"] and row["chart_path"] and Path(row["chart_path"]).is_file()


def test_few_false_detections_outside_the_incidents(demo, capsys):
    _, args = demo
    incident_hours = set().union(*(_hours(i.day_offset, i.hours) for i in INCIDENTS))
    incident_days = {(FIRST_DAY + dt.timedelta(days=i.day_offset)).isoformat() for i in INCIDENTS}
    for metric in ("model_downloads", "orders"):
        found = _anomalies(capsys, args, "--metric", metric, "--grain", "hour", "--slice", "total")
        false = [r for r in found if r["bucket_start"] not in incident_hours and r["bucket_start"][:10] not in incident_days]
        # a regression bound: two per metric per 30 days of normal hours. The goal is one
        # (issue 10); bench/anomaly_eval.py measures where the defaults stand against it.
        assert len(false) <= 2 * DAYS / 30, (metric, [(r["bucket_start"], r["reason"]) for r in false])


def test_every_scored_bucket_is_listed_with_all_and_gaps_are_not_scored(demo, capsys):
    paths, args = demo
    rows = _anomalies(capsys, args, "--metric", "orders", "--grain", "day", "--slice", "total", "--all")
    days = sorted(r["bucket_start"][:10] for r in rows)
    assert days[-1] == (END - dt.timedelta(days=1)).isoformat() and len(days) == len(set(days))
    assert any("not enough history" in r["reason"] for r in rows)  # the first days have no training data
    wh = Warehouse("duckdb", paths)
    scored = wh.frame("select count(*) as n from analytics.metric_anomalies where value is null")
    assert int(scored["n"].iloc[0]) == 0


def test_a_slice_no_scored_row_has_is_an_error_not_an_empty_list(demo, capsys):
    _, args = demo
    for sliced, words in (("country=XX", "no scored row of `orders` has country = `XX`; known values: BR, DE"),
                          ("contry=DE", "has a dimension `contry` (did you mean `country`?)")):
        capsys.readouterr()
        assert main([*args, "anomalies", "--metric", "orders", "--slice", sliced]) == 2
        out, err = capsys.readouterr()
        assert out == "" and words in err, err
    # a slice that is scored but has no detection is an empty list, as before
    scored = _anomalies(capsys, args, "--metric", "orders", "--slice", "country=DE", "--all")
    assert scored and all(r["slice"] == {"country": "DE"} for r in scored)


def test_backtest_at_the_current_sensitivity_finds_what_the_run_stored(demo, capsys):
    paths, args = demo
    capsys.readouterr()
    assert main([*args, "anomalies", "--backtest", "--metric", "orders", "--grain", "day", "--days", "400",
                 "--sensitivity", "2", "3", "--sensitivity", "5", "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["sensitivity"] for r in results] == [2, 3, 5] and [r["current"] for r in results] == [False, True, False]
    stored = Warehouse("duckdb", paths).frame(
        "select dimension, dimension_value, bucket_start, is_anomaly, score from analytics.metric_anomalies "
        "where metric = 'orders' and grain = 'day'")
    current = results[1]
    # scored: the rows with a score; unscored: those without enough history
    assert current["buckets_scored"] == int(stored.score.notna().sum()) > 0
    assert current["buckets_scored"] + current["buckets_unscored"] == len(stored)
    assert current["series"] == stored.groupby(["dimension", "dimension_value"]).ngroups
    assert current["flagged"] == int(stored.is_anomaly.sum()) > 0
    flagged = [r["flagged"] for r in results]
    assert flagged[0] >= flagged[1] >= flagged[2]  # a lower sensitivity flags at least as much
    assert all(r["incidents"] <= r["flagged"] for r in results)


def test_backtest_replays_the_last_days_and_refuses_a_metric_not_started(demo, capsys):
    paths, args = demo
    capsys.readouterr()
    # --days 1 at the hour grain: the 24 complete hours before now (from 00:00 of the day
    # before, it replayed 31 on a morning); the window ends at the bucket in progress
    assert main([*args, "anomalies", "--backtest", "--metric", "orders", "--grain", "hour", "--days", "1",
                 "--sensitivity", "3.5", "--format", "json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert (result["start"], result["end"]) == (f"{END - dt.timedelta(days=1)}T00:00:00Z", f"{END}T00:00:00Z")
    assert result["buckets_scored"] + result["buckets_unscored"] == 24 * result["series"]
    # a day back holds no complete month (or week) bucket, unless today begins one: an
    # error, not a table of zeros (exit 0)
    today = dt.datetime.now(dt.timezone.utc)
    coarse = "month" if today.day != 1 else "week" if today.weekday() != 0 else None
    if coarse:
        assert main([*args, "anomalies", "--backtest", "--metric", "orders", "--grain", coarse, "--days", "1"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and f"--days 1 holds no complete {coarse} bucket" in err, err
    # a metric whose start is still ahead has nothing to replay: an error, not a reversed window
    orders = paths.metrics_dir / "commerce" / "orders.yml"
    text = orders.read_text()
    try:
        orders.write_text(text.rstrip("\n") + f"\nstart: {END + dt.timedelta(days=30)}\n")
        assert main([*args, "anomalies", "--backtest", "--metric", "orders"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "no complete day bucket to replay yet" in err, err
    finally:
        orders.write_text(text)


def test_listing_survives_a_broken_metric_file_and_lists_a_repeated_metric_once(demo, capsys):
    paths, args = demo
    once = _anomalies(capsys, args, "--metric", "orders", "--all")
    assert _anomalies(capsys, args, "--metric", "orders", "--metric", "orders", "--all") == once
    # a grain a metric no longer has: its stored rows still list (until `metrics prune`)
    orders = paths.metrics_dir / "commerce" / "orders.yml"
    text = orders.read_text()
    try:
        orders.write_text(text.rstrip("\n") + "\ngrains: [day]\n")
        hours = _anomalies(capsys, args, "--metric", "orders", "--grain", "hour", "--all")
        assert hours and {r["grain"] for r in hours} == {"hour"}
    finally:
        orders.write_text(text)
    # a grain a metric does not have, and no stored row has: a typo, not "no anomalies"
    fresh = paths.metrics_dir / "commerce" / "fresh_orders.yml"
    try:
        fresh.write_text(text.replace("name: orders", "name: fresh_orders").rstrip("\n") + "\ngrains: [day]\n")
        capsys.readouterr()
        assert main([*args, "anomalies", "--metric", "fresh_orders", "--grain", "week"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "`fresh_orders` has no week grain (its grains: day), nor stored rows of one" in err, err
    finally:
        fresh.unlink()
    broken = paths.metrics_dir / "commerce" / "half_edited.yml"
    try:
        broken.write_text("name: [\n")
        # the stored rows do not need the files: listed, with a warning
        capsys.readouterr()
        assert main([*args, "anomalies", "--metric", "orders", "--all", "--format", "json"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out) == once and "1 problem(s) in the metric files" in err
        # a name no stored row has is still an error
        assert main([*args, "anomalies", "--metric", "ordres"]) == 2
        assert "no scored row of a metric `ordres` (did you mean `orders`?)" in capsys.readouterr().err
        # a backtest scores with the files: it needs them valid
        assert main([*args, "anomalies", "--backtest", "--metric", "orders"]) == 1
        assert "half_edited.yml:" in capsys.readouterr().err
    finally:
        broken.unlink()


def test_the_stored_rows_of_a_renamed_metric_are_listed_by_its_old_name(demo, capsys):
    """After a rename the old name's rows stay (until `metrics prune`), listed by
    `metrics anomalies`, but `--metric OLD` said `unknown metric` (exit 2): no way to read
    them by name before pruning."""
    paths, args = demo
    once = _anomalies(capsys, args, "--metric", "reactions_net", "--all")
    old = paths.metrics_dir / "engagement" / "reactions_net.yml"
    text = old.read_text()
    renamed = paths.metrics_dir / "engagement" / "reactions_balance.yml"
    try:
        old.unlink()
        renamed.write_text(text.replace("name: reactions_net ", "name: reactions_balance ", 1))
        assert "name: reactions_balance " in renamed.read_text()
        assert _anomalies(capsys, args, "--metric", "reactions_net", "--all") == once and once
        # a name neither defined nor stored is still an error, naming what is
        assert main([*args, "anomalies", "--metric", "reactons_net"]) == 2
        assert "no scored row of a metric `reactons_net` (did you mean `reactions_net`?)" in capsys.readouterr().err
    finally:
        renamed.unlink(missing_ok=True)
        old.write_text(text)


def test_recompute_of_one_day_rescores_exactly_that_day(demo, capsys):
    paths, args = demo
    wh = Warehouse("duckdb", paths)
    key = ["metric", "grain", "bucket_start", "dimension", "dimension_value"]
    before = wh.frame(f"select {', '.join(key)}, run_id from analytics.metric_anomalies")
    day = END - dt.timedelta(days=3)
    assert main([*args, "run", "--start", day.isoformat(), "--end", (day + dt.timedelta(days=1)).isoformat()]) == 0
    after = wh.frame(f"select {', '.join(key)}, run_id from analytics.metric_anomalies")
    assert len(after) == len(before)
    changed = after.merge(before, on=key, suffixes=("", "_before"))
    assert len(changed) == len(after)
    changed = changed[changed.run_id != changed.run_id_before]
    inside = changed[changed.grain.isin(["hour", "day"])]
    assert len(inside) and inside.bucket_start.dt.date.eq(day).all()
    # hours and days outside the recomputed day keep their rows from the first run
    outside = after[after.grain.isin(["hour", "day"]) & (after.bucket_start.dt.date != day)]
    assert set(outside.run_id) <= set(before.run_id)


def test_a_metric_run_rescores_only_the_metrics_its_rollups_rebuilt(demo, capsys):
    """`metrics run --metric orders` rebuilds the orders source's rollups: orders' rows of
    the window are re-scored; the entity-event metrics' rows are kept as they were."""
    paths, args = demo
    wh = Warehouse("duckdb", paths)
    key = ["metric", "grain", "bucket_start", "dimension", "dimension_value"]
    before = wh.frame(f"select {', '.join(key)}, run_id from analytics.metric_anomalies")
    day = END - dt.timedelta(days=2)
    assert main([*args, "run", "--metric", "orders", "--start", day.isoformat(),
                 "--end", (day + dt.timedelta(days=1)).isoformat()]) == 0
    after = wh.frame(f"select {', '.join(key)}, run_id from analytics.metric_anomalies")
    assert len(after) == len(before)
    both = after.merge(before, on=key, suffixes=("", "_before"))
    assert len(both) == len(after)
    changed = both[both.run_id != both.run_id_before]
    assert set(changed.metric) == {"orders"}
    assert changed[changed.grain == "hour"].bucket_start.dt.date.eq(day).all()
    orders_that_day = both[(both.metric == "orders") & both.grain.isin(["hour", "day"]) & (both.bucket_start.dt.date == day)]
    assert len(orders_that_day) and (orders_that_day.run_id != orders_that_day.run_id_before).all()
