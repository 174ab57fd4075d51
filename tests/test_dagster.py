"""Dagster: partitions, single-run backfills, recomputes and schedules, with real dbt on a
real DuckDB file (execute_in_process on the same jobs the UI runs)."""
from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest
from dagster import DagsterInstance, build_schedule_context, materialize

from dagster_project.cli.main import main
from dagster_project.compiler.writer import compile_project
from dagster_project.defs.partitions import PARTITION_RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG
from dagster_project.defs.partitions import PARTITION_RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import as_dict, assert_series_equal, load_raw, series_table

pytestmark = pytest.mark.dbt


def _fresh_definitions(paths):
    from dagster_project.defs import resources
    from dagster_project.defs.builder import build_definitions
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    return build_definitions()


@pytest.fixture
def dagster_project(tmp_path, monkeypatch):
    paths = make_project(tmp_path, cases.METRICS, cases.CONFIG)
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(paths.root))
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(paths.duckdb_path))
    compile_project(paths, load_project(paths).project)
    raw = cases.make_raw()
    wh = Warehouse("duckdb", paths)
    load_raw(wh, raw)
    defs = _fresh_definitions(paths)
    instance = DagsterInstance.ephemeral()
    staging = next(a for a in defs.assets if getattr(a, "op", None) is not None and a.op.name == "staging")
    result = materialize([staging], resources=defs.resources, instance=instance)
    assert result.success
    return paths, wh, raw, defs, instance


def _rows(wh, model):
    df = wh.frame(f"select * from analytics.{model}")
    df["bucket_start"] = pd.to_datetime(df["bucket_start"])
    return df


def test_one_partition_of_each_grain(dagster_project):
    paths, wh, raw, defs, instance = dagster_project
    # hours are partitioned by day: one partition rewrites the day's 24 hourly buckets
    hours = set(pd.date_range("2024-03-05 00:00", "2024-03-05 23:00", freq="h"))
    for grain, key, buckets in [("hour", "2024-03-05", hours), ("day", "2024-03-05", {pd.Timestamp("2024-03-05")}),
                                ("week", "2024-03-04", {pd.Timestamp("2024-03-04")}), ("month", "2024-02-01", {pd.Timestamp("2024-02-01")})]:
        result = defs.resolve_job_def(f"rollups_{grain}_job").execute_in_process(partition_key=key, instance=instance)
        assert result.success, grain
        rows = _rows(wh, f"rollup_stg_entity_events__by_created_at__{grain}")
        assert set(rows.bucket_start) == buckets, grain
        assert set(rows.run_id) == {result.run_id}
        want = cases.expected(raw, grain)["downloads"]
        got = as_dict(series_table(wh, grain), "downloads")
        assert_series_equal(got, {k: v for k, v in want.items() if k[0] in buckets}, f"downloads@{grain}")


def test_backfill_is_one_run_with_one_dbt_invocation(dagster_project):
    paths, wh, raw, defs, instance = dagster_project
    job = defs.resolve_job_def("rollups_day_job")
    result = job.execute_in_process(instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: "2024-02-20",
                                                             ASSET_PARTITION_RANGE_END_TAG: "2024-03-12"})
    assert result.success
    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    # a single dbt step (one dbt invocation) for 22 partitions, then one scoring step
    assert [s for s in steps if s.startswith("rollups_")] == ["rollups_day"], steps
    assert [s for s in steps if s.startswith("anomalies_")] == ["anomalies_day"], steps
    rows = _rows(wh, "rollup_stg_entity_events__by_created_at__day")
    assert rows.bucket_start.min() == pd.Timestamp("2024-02-20") and rows.bucket_start.max() == pd.Timestamp("2024-03-12")
    assert set(rows.run_id) == {result.run_id}
    table = series_table(wh, "day")
    want_all = cases.expected(raw, "day")
    for metric in ("downloads", "active_users", "revenue", "aov", "net_revenue", "followers"):
        want = {k: v for k, v in want_all[metric].items() if pd.Timestamp("2024-02-20") <= k[0] <= pd.Timestamp("2024-03-12")}
        assert_series_equal(as_dict(table, metric), want, f"{metric}@day backfill")


def test_recompute_of_a_past_day_after_a_late_event(dagster_project):
    paths, wh, raw, defs, instance = dagster_project
    job = defs.resolve_job_def("rollups_day_job")
    first = job.execute_in_process(instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: "2024-03-01",
                                                            ASSET_PARTITION_RANGE_END_TAG: "2024-03-10"})
    before = _rows(wh, "rollup_stg_entity_events__by_created_at__day")
    late = raw["entity_events"].iloc[[0]].assign(event_id=999_998, created_at=pd.Timestamp("2024-03-05 08:00"),
                                                 metric_type="Download", entity_type="model")
    raw["entity_events"] = pd.concat([raw["entity_events"], late], ignore_index=True)
    load_raw(wh, raw)
    again = job.execute_in_process(partition_key="2024-03-05", instance=instance)
    after = _rows(wh, "rollup_stg_entity_events__by_created_at__day")
    assert set(after[after.bucket_start == pd.Timestamp("2024-03-05")].run_id) == {again.run_id}
    untouched = after[after.bucket_start != pd.Timestamp("2024-03-05")]
    assert set(untouched.run_id) == {first.run_id} and len(untouched) == len(before[before.bucket_start != pd.Timestamp("2024-03-05")])
    assert not after.duplicated(["metric", "bucket_start", "dimension", "dimension_value"]).any()
    got = as_dict(series_table(wh, "day"), "downloads")
    want = cases.expected(raw, "day")["downloads"]
    assert got[(pd.Timestamp("2024-03-05"), "", "")] == want[(pd.Timestamp("2024-03-05"), "", "")]


def test_schedules_rewrite_the_settle_lookback_in_one_run(dagster_project):
    paths, wh, raw, defs, instance = dagster_project
    schedule = defs.get_schedule_def("rollups_hour_schedule")
    # hours are partitioned by day: the hour in progress and the 6 before it (the default
    # lookback) are in today's partition at 10:05, and reach back into yesterday at 03:05
    for at, first, last in [(dt.datetime(2024, 3, 5, 10, 5), "2024-03-05", "2024-03-05"),
                            (dt.datetime(2024, 3, 5, 3, 5), "2024-03-04", "2024-03-05")]:
        context = build_schedule_context(instance=instance, scheduled_execution_time=at.replace(tzinfo=dt.timezone.utc))
        requests = list(schedule.evaluate_tick(context).run_requests)
        assert len(requests) == 1
        tags = requests[0].tags
        assert (tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]) == (first, last), at


def test_grains_depend_on_finer_grains_in_the_asset_graph(dagster_project):
    paths, wh, raw, defs, instance = dagster_project
    graph = defs.resolve_asset_graph()
    key = lambda name: next(k for k in graph.get_all_asset_keys() if k.path[-1] == name)  # noqa: E731
    assert key("rollup_stg_entity_events__by_created_at__hour") in graph.get(key("rollup_stg_entity_events__by_created_at__day")).parent_keys
    assert key("rollup_stg_entity_events__by_created_at__day") in graph.get(key("rollup_stg_entity_events__by_created_at__week")).parent_keys
    assert key("rollup_stg_entity_events__by_created_at__day") in graph.get(key("rollup_stg_entity_events__by_created_at__month")).parent_keys
    week = graph.get(key("rollup_stg_entity_events__by_created_at__week")).partitions_def
    assert week.get_first_partition_key() == "2024-02-19"  # the Monday of the week holding start (Tue 2024-02-20)
    month = graph.get(key("rollup_stg_entity_events__by_created_at__month")).partitions_def
    assert month.get_first_partition_key() == "2024-02-01"
    day = graph.get(key("rollup_stg_entity_events__by_created_at__day"))
    assert "metric_downloads" in day.tags and day.owners == [] and day.group_name == "events"


def test_weeks_and_months_follow_a_changed_day(dagster_project):
    """Declarative automation: after a day is rewritten (here a late-data recompute), the
    sensor requests exactly the week and the month holding it (their rollups, series views
    and anomaly scoring), and no finer grain."""
    from dagster import evaluate_automation_conditions
    paths, wh, raw, defs, instance = dagster_project
    now = dt.datetime(2024, 3, 12, 12, 0, tzinfo=dt.timezone.utc)
    first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
    quiet = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now, cursor=first.cursor)
    assert quiet.total_requested == 0
    assert defs.resolve_job_def("rollups_day_job").execute_in_process(partition_key="2024-03-05", instance=instance).success
    after = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now, cursor=quiet.cursor)
    graph = defs.resolve_asset_graph()
    requested = {k.path[-1]: sorted(after.get_requested_partitions(k)) for k in graph.get_all_asset_keys()
                 if after.get_num_requested(k)}
    assert requested == {"rollup_stg_entity_events__by_created_at__week": ["2024-03-04"], "rollup_stg_orders__by_ordered_at__week": ["2024-03-04"],
                         "rollup_stg_follower_snapshots__by_observed_at__week": ["2024-03-04"],
                         "rollup_stg_entity_events__by_created_at__month": ["2024-03-01"], "rollup_stg_orders__by_ordered_at__month": ["2024-03-01"],
                         "rollup_stg_follower_snapshots__by_observed_at__month": ["2024-03-01"],
                         # read by the anomaly assets, which re-score what was rebuilt
                         "metric_series_week": ["2024-03-04"], "metric_series_month": ["2024-03-01"],
                         "anomalies_week": ["2024-03-04"], "anomalies_month": ["2024-03-01"]}
    # the sensor that evaluates these conditions is part of the definitions
    assert defs.get_sensor_def("coarser_grains_sensor")


def test_automation_rescores_the_weeks_and_months_it_rebuilds(dagster_project):
    """After the week and month rollups follow a changed day, the sensor goes on to their
    series views and then to anomalies_week and anomalies_month for the same partitions:
    before, the series views had no condition, so the anomaly assets' dep never updated
    and week and month buckets were scored only by `metrics run`."""
    from dagster import evaluate_automation_conditions
    paths, wh, raw, defs, instance = dagster_project
    now = dt.datetime(2024, 3, 12, 12, 0, tzinfo=dt.timezone.utc)
    cursor = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now).cursor
    cursor = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now, cursor=cursor).cursor
    assert defs.resolve_job_def("rollups_day_job").execute_in_process(partition_key="2024-03-06", instance=instance).success
    graph = defs.resolve_asset_graph()
    requested: dict[str, list[str]] = {}
    scoring_runs: dict[str, str] = {}
    for _ in range(5):  # the sensor's ticks, each running what the last one requested
        result = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now, cursor=cursor)
        cursor = result.cursor
        asked = {k: sorted(result.get_requested_partitions(k)) for k in graph.get_all_asset_keys()
                 if result.get_num_requested(k)}
        if not asked:
            break
        for key, parts in asked.items():
            requested.setdefault(key.path[-1], []).extend(parts)
        for grain in ("week", "month"):
            keys = [k for k in asked if k.path[-1].endswith(grain)]
            for part in sorted({p for k in keys for p in asked[k]}):
                run = defs.resolve_job_def(f"rollups_{grain}_job").execute_in_process(
                    partition_key=part, instance=instance, asset_selection=keys)
                assert run.success
                if any(k.path[-1] == f"anomalies_{grain}" for k in keys):
                    scoring_runs[grain] = run.run_id
    assert requested.get("anomalies_week") == ["2024-03-04"], requested
    assert requested.get("anomalies_month") == ["2024-03-01"], requested
    # the week's buckets were scored by that run
    rows = wh.frame(f"select bucket_start, run_id from {wh.relation('metric_anomalies')} where grain = 'week'")
    week = rows[pd.to_datetime(rows.bucket_start) == pd.Timestamp("2024-03-04")]
    assert not week.empty and set(week.run_id) == {scoring_runs["week"]}


def test_a_changed_definition_makes_its_built_partitions_stale(dagster_project):
    """The code version of a rollup asset is its compiled model's checksum: editing a
    metric shows the partitions built with the old definition as stale, and only those
    of the models that changed."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    paths, wh, raw, defs, instance = dagster_project
    assert defs.resolve_job_def("rollups_day_job").execute_in_process(partition_key="2024-03-05", instance=instance).success
    likes = paths.metrics_dir / "events" / "likes.yml"
    likes.write_text(likes.read_text().replace("'Like'", "'ReactionLike'"))
    compile_project(paths, load_project(paths).project)
    (paths.dbt_project_dir / "target" / "manifest.json").unlink()  # parse the changed project
    graph = _fresh_definitions(paths).resolve_asset_graph()
    key = lambda name: next(k for k in graph.get_all_asset_keys() if k.path[-1] == name)  # noqa: E731
    from dagster._core.loader import LoadingContextForTest
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    events, orders = key("rollup_stg_entity_events__by_created_at__day"), key("rollup_stg_orders__by_ordered_at__day")
    assert resolver.get_status(events, "2024-03-05") == StaleStatus.STALE
    assert any("code version" in c.reason for c in resolver.get_stale_causes(events, "2024-03-05"))
    assert resolver.get_status(orders, "2024-03-05") == StaleStatus.FRESH


def test_partition_range_tags_are_dagsters():
    """The ranged-run tag names are written out (Dagster exports no public constant):
    they must stay the ones Dagster reads."""
    from dagster._core.storage import tags
    assert (ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG) == (
        tags.ASSET_PARTITION_RANGE_START_TAG, tags.ASSET_PARTITION_RANGE_END_TAG)


def test_partition_range_takes_every_bucket_the_window_overlaps():
    """A window widens outward to whole buckets: a recompute from a Wednesday rebuilds
    that day, and the week and the month that contain it."""
    from dagster_project.defs.partitions import partitions_for
    from dagster_project.defs.runner import partition_range
    now = dt.datetime(2024, 4, 10, 12, tzinfo=dt.timezone.utc)
    parts = {g: partitions_for(g, dt.date(2024, 2, 20)) for g in ("hour", "day", "week", "month")}
    wed, thu = dt.date(2024, 3, 6), dt.date(2024, 3, 7)
    assert partition_range(parts["hour"], wed, thu, now) == ("2024-03-06", "2024-03-06")  # hours: by day
    assert partition_range(parts["day"], wed, thu, now) == ("2024-03-06", "2024-03-06")
    assert partition_range(parts["week"], wed, thu, now) == ("2024-03-04", "2024-03-04")
    assert partition_range(parts["month"], wed, thu, now) == ("2024-03-01", "2024-03-01")
    # March: the weeks that overlap it (from the one holding Mar 1 to the one holding
    # Mar 31), its month only (April starts at the exclusive end)
    march = (dt.date(2024, 3, 1), dt.date(2024, 4, 1))
    assert partition_range(parts["week"], *march, now) == ("2024-02-26", "2024-03-25")
    assert partition_range(parts["month"], *march, now) == ("2024-03-01", "2024-03-01")
    assert partition_range(parts["day"], *march, now) == ("2024-03-01", "2024-03-31")
    # open ends: from the first partition, to the bucket in progress
    assert partition_range(parts["week"], None, None, now) == ("2024-02-19", "2024-04-08")
    assert partition_range(parts["month"], wed, None, now) == ("2024-03-01", "2024-04-01")
    # before the first partition or after now: nothing
    assert partition_range(parts["day"], dt.date(2024, 1, 1), dt.date(2024, 2, 1), now) is None
    assert partition_range(parts["week"], dt.date(2024, 5, 1), None, now) is None


RUN_METRICS = {k: cases.METRICS[k] for k in ("events/downloads.yml", "events/active_users.yml", "orders/revenue.yml")}
GHOST = "name: ghost_downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\nfilter: \"ghost_column = 'x'\"\n"


def _run(paths, *window) -> int:
    return main(["--project-dir", str(paths.root), "run", "--target", "duckdb", *window])


def _add_ghost_metric(paths):
    """A metric on a column the dbt YAML declares but the relation lacks: it validates and
    compiles, and its rollup fails at run time (tests/test_warehouse_failures.py)."""
    props = paths.models_dir / "staging" / "_staging__models.yml"
    text = props.read_text()
    anchor = "      - {name: created_at, data_type: timestamp, description: UTC}\n  - name: stg_orders"
    assert anchor in text
    props.write_text(text.replace(anchor, "      - {name: created_at, data_type: timestamp, description: UTC}\n"
                                          "      - {name: ghost_column}\n  - name: stg_orders"))
    (paths.metrics_dir / "events" / "ghost_downloads.yml").write_text(GHOST)


def test_catalog_never_lists_a_metric_whose_rollup_failed(tmp_path):
    """metric_catalog is built last, only when every grain succeeded."""
    window = ["--start", "2024-03-04", "--end", "2024-03-06"]
    # a fresh project whose first run fails: no catalog at all
    fresh = make_project(tmp_path / "fresh", RUN_METRICS, cases.CONFIG)
    _add_ghost_metric(fresh)
    wh = Warehouse("duckdb", fresh)
    load_raw(wh, cases.make_raw())
    assert _run(fresh, *window) == 1
    assert not wh.relation_exists("metric_catalog")
    # a built project, then a metric that fails: the catalog stays as it was
    built = make_project(tmp_path / "built", RUN_METRICS, cases.CONFIG)
    wh = Warehouse("duckdb", built)
    load_raw(wh, cases.make_raw())
    assert _run(built, *window) == 0
    listed = lambda: set(wh.frame("select metric from analytics.metric_catalog").metric)  # noqa: E731
    assert listed() == {"downloads", "active_users", "revenue"}
    _add_ghost_metric(built)
    assert _run(built, *window) == 1
    assert listed() == {"downloads", "active_users", "revenue"}


def test_run_from_a_wednesday_recomputes_its_week_and_month(tmp_path):
    """Late data on a Wednesday: `metrics run --start <wed> --end <thu>` rewrites that day
    and the week and month containing it, and nothing else."""
    paths = make_project(tmp_path, RUN_METRICS, cases.CONFIG)
    wh = Warehouse("duckdb", paths)
    raw = cases.make_raw()
    load_raw(wh, raw)
    assert _run(paths, "--start", "2024-02-20", "--end", "2024-03-13") == 0
    before = {g: _rows(wh, f"rollup_stg_entity_events__by_created_at__{g}") for g in ("day", "week", "month")}
    late = raw["entity_events"].iloc[[0]].assign(event_id=999_997, created_at=pd.Timestamp("2024-03-06 09:15"),
                                                 metric_type="Download", entity_type="model")
    raw["entity_events"] = pd.concat([raw["entity_events"], late], ignore_index=True)
    load_raw(wh, raw)
    assert _run(paths, "--start", "2024-03-06", "--end", "2024-03-07") == 0
    for grain, bucket in [("day", "2024-03-06"), ("week", "2024-03-04"), ("month", "2024-03-01")]:
        after = _rows(wh, f"rollup_stg_entity_events__by_created_at__{grain}")
        old_runs = set(before[grain].run_id)
        inside = after.bucket_start == pd.Timestamp(bucket)
        assert inside.any() and not set(after[inside].run_id) & old_runs, f"{grain} {bucket} was not rewritten"
        kept = before[grain][before[grain].bucket_start != pd.Timestamp(bucket)]
        assert set(after[~inside].run_id) <= old_runs and len(after[~inside]) == len(kept), grain
        assert not after.duplicated(["metric", "bucket_start", "dimension", "dimension_value"]).any()
        want = cases.expected(raw, grain)["downloads"][(pd.Timestamp(bucket), "", "")]
        assert as_dict(series_table(wh, grain), "downloads")[(pd.Timestamp(bucket), "", "")] == want, grain


def test_only_owners_dagster_accepts_reach_dagster():
    """`metrics validate` takes any owner text; Dagster refuses to load definitions whose
    asset owners are neither emails by its own rule (a TLD of 2 to 7 letters, no `'`) nor
    `team:<name>`; a `team:` owner reaches Dagster (it was dropped as no email)."""
    from dagster import AssetSpec

    from dagster_project.defs.translator import MetricsTranslator
    owners = ["analytics@corp.internal", "o'brien@example.com", "data-platform", "ok@example.com", "team@x.io",
              "team:growth", "team:"]
    props = {"meta": {"metrics": {"kind": "rollup", "metrics": [{"owner": o, "domain": "d"} for o in owners]}}}
    kept = MetricsTranslator().get_owners(props)
    assert kept == ["ok@example.com", "team:growth", "team@x.io"]
    AssetSpec("x", owners=kept)  # Dagster takes them
    for refused in set(owners) - set(kept):
        with pytest.raises(Exception):
            AssetSpec("x", owners=[refused])


def test_a_scheduled_run_rewrites_the_bucket_the_last_tick_saw_in_progress_even_without_lookback():
    """settle_lookback 0 still rewrites the bucket in progress at the previous tick once it
    has closed: yesterday's 23:00 hour at 00:05, yesterday at the 00:10 day tick."""
    from dagster_project.defs.automation import lookback_keys
    from dagster_project.defs.partitions import partitions_for
    utc = dt.timezone.utc
    hours = partitions_for("hour", dt.date(2026, 1, 1))
    days = partitions_for("day", dt.date(2026, 1, 1))
    assert lookback_keys(hours, dt.datetime(2026, 3, 10, 0, 5, tzinfo=utc), "hour", 0) == ["2026-03-09", "2026-03-10"]
    assert lookback_keys(days, dt.datetime(2026, 3, 10, 0, 10, tzinfo=utc), "day", 0) == ["2026-03-09", "2026-03-10"]
    # mid-day, the previous tick's bucket is today's: one partition (not yesterday all day long)
    assert lookback_keys(hours, dt.datetime(2026, 3, 10, 12, 5, tzinfo=utc), "hour", 0) == ["2026-03-10"]
    assert lookback_keys(days, dt.datetime(2026, 3, 10, 12, 10, tzinfo=utc), "day", 0) == ["2026-03-10"]
    # a lookback goes further back, as before
    assert lookback_keys(days, dt.datetime(2026, 3, 10, 12, 10, tzinfo=utc), "day", 3)[0] == "2026-03-07"
    # a tick given in another zone is the same instant (its hour in Kolkata started the
    # window at a half hour, one day early), and before the first partition begins none is due
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert lookback_keys(days, dt.datetime(2026, 3, 10, 6, 45, tzinfo=kolkata), "day", 0) == ["2026-03-10"]
    assert lookback_keys(days, dt.datetime(2025, 12, 31, 23, 5, tzinfo=utc), "day", 1) == []
