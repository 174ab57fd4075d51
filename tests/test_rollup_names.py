"""A rollup's name is a function of its own source and timestamp column: adding a
metric bucketed by another column of the same source renames nothing, so history and
Dagster asset keys stay put."""
from __future__ import annotations

from dagster_project.compiler.plan import MAX_RELATION_NAME, build_plan, rollup_name
from dagster_project.validation.project import load_project

from .conftest import make_project

ORDERS = "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n"
EVENTS = "name: likes\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
# stg_follower_snapshots has one time column; a second metric on stg_orders needs
# another one, so the test declares it
SECOND = "name: orders_by_user_seen\nsource: stg_orders\ntimestamp: refreshed_at\naggregation: count\n"


def _names(paths) -> set[str]:
    loaded = load_project(paths)
    assert loaded.ok, [str(i) for i in loaded.issues]
    return {r.name for r in build_plan(loaded.project).rollups}


def test_adding_a_metric_with_a_second_timestamp_renames_no_rollup(tmp_path):
    paths = make_project(tmp_path, {"c/orders.yml": ORDERS, "e/likes.yml": EVENTS})
    before = _names(paths)
    assert "rollup_stg_orders__by_ordered_at__day" in before
    staging = paths.root / "models" / "staging" / "_staging__models.yml"
    staging.write_text(staging.read_text().replace(
        "      - {name: ordered_at, data_type: timestamp, description: UTC}",
        "      - {name: ordered_at, data_type: timestamp, description: UTC}\n      - {name: refreshed_at, data_type: timestamp}"))
    (paths.metrics_dir / "c" / "orders_by_user_seen.yml").write_text(SECOND)
    after = _names(paths)
    assert before < after  # every old name is still there
    assert {n for n in after - before} == {f"rollup_stg_orders__by_refreshed_at__{g}" for g in ("hour", "day", "week", "month")}


def test_long_names_are_shortened_stably_within_the_postgres_limit():
    long_source, ts = "stg_" + "salesforce_opportunity_line_items" * 2, "closed_won_at"
    names = {rollup_name(long_source, ts, g, lc) for g in ("hour", "month") for lc in ("active", "draft")}
    assert all(len(n) <= MAX_RELATION_NAME for n in names)
    assert len(names) == 4 and rollup_name(long_source, ts, "month", "draft").endswith("__month__draft")
    assert rollup_name(long_source, ts, "day") == rollup_name(long_source, ts, "day")
    assert rollup_name(long_source, ts, "day") != rollup_name(long_source, ts + "_x", "day")
