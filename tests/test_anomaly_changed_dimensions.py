"""A metric whose dimensions change: the rollup tables keep the old dimension's rows
outside the windows rebuilt since (until a backfill), but scoring takes only the slices
of the dimensions the metric has now, and `metrics prune` lists and deletes the old
dimension's rows. Before, every old slice was scored in each new window as zeros (no row
there: a count's empty value) and flagged as a drop to 0, at every scheduled run. Real
dbt build on DuckDB."""
from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.demo.generator import generate_range
from dagster_project.paths import REPO_ROOT
from dagster_project.scoring.window import score, write
from dagster_project.validation.project import load_project
from dagster_project.warehouse.anomaly_store import read_anomalies
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import compile_and_build, load_raw

pytestmark = pytest.mark.dbt

FIRST = dt.date(2026, 1, 1)
DAYS = 70
END = FIRST + dt.timedelta(days=DAYS)
NOW = dt.datetime.combine(END, dt.time())
ORDERS = "name: orders\ndescription: Orders placed.\nsource: stg_orders\ntimestamp: ordered_at\n" \
         "aggregation: count\ndimensions: [{dims}]\n"
CHANGED_FROM = DAYS - 5  # the last five days are rebuilt after the change


def _day(n: int) -> dt.datetime:
    return dt.datetime.combine(FIRST + dt.timedelta(days=n), dt.time())


def _anomaly_rows(wh) -> pd.DataFrame:
    columns, rows = read_anomalies(wh, grain="day", flagged_only=False)
    out = pd.DataFrame(rows, columns=columns)
    out["bucket_start"] = pd.to_datetime(out["bucket_start"])
    return out


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    root = tmp_path_factory.mktemp("changed_dimensions")
    config = re.sub(r"(?m)^start: .*$", f"start: {FIRST}", (REPO_ROOT / "metrics" / "_config.yml").read_text())
    paths = make_project(root, {"commerce/orders.yml": ORDERS.format(dims="country")}, config)
    wh = Warehouse("duckdb", paths)
    load_raw(wh, generate_range(FIRST, END, seed=3, events_per_day=600, now=NOW))
    compile_and_build(paths, "duckdb", (FIRST, END))
    frame, summary = score(wh, load_project(paths).project, "day", _day(0), _day(DAYS), NOW)
    write(wh, "day", frame, summary, "before", NOW)
    before = _anomaly_rows(wh)
    (paths.metrics_dir / "commerce" / "orders.yml").write_text(ORDERS.format(dims="refunded"))
    compile_and_build(paths, "duckdb", (FIRST + dt.timedelta(days=CHANGED_FROM), END), run_id="after")
    frame, summary = score(wh, load_project(paths).project, "day", _day(CHANGED_FROM), _day(DAYS), NOW)
    write(wh, "day", frame, summary, "after", NOW)
    return wh, before, _anomaly_rows(wh)


def test_a_window_scored_after_a_dimension_change_has_only_the_new_dimensions_slices(changed):
    wh, before, after = changed
    assert set(before.dimension) == {"", "country"}
    window = after[after.bucket_start >= _day(CHANGED_FROM)]
    assert set(window.dimension) == {"", "refunded"}, window.groupby("dimension").size()
    assert set(window.dimension_value[window.dimension == "refunded"]) == {"true", "false"}
    # the rows before the window are the first run's, old dimension included
    older = after[after.bucket_start < _day(CHANGED_FROM)]
    assert len(older) == len(before[before.bucket_start < _day(CHANGED_FROM)])


def test_prune_lists_and_deletes_the_rows_of_a_dimension_the_metric_no_longer_has(changed, capsys):
    wh, _, _ = changed
    series = wh.frame(f"select dimension, count(*) as n from {wh.relation('rollup_stg_orders__by_ordered_at__day')} "
                      "where metric = 'orders' group by dimension")
    old_rollup = int(series.n[series.dimension == "country"].sum())
    old_scored = wh.frame(f"select count(*) as n from {wh.relation('metric_anomalies')} "
                          "where metric = 'orders' and dimension = 'country'").n.iloc[0]
    assert old_rollup > 0 and old_scored > 0
    root = str(wh.paths.root)
    capsys.readouterr()
    assert main(["--project-dir", root, "prune"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"rollup_stg_orders__by_ordered_at__day: orders: {old_rollup:,} row\(s\) of the dimension "
                     r"`country`, which the metric no longer has", out), out
    assert re.search(rf"metric_anomalies: orders: {old_scored:,} row\(s\) of the dimension `country`", out), out
    assert main(["--project-dir", root, "prune", "--apply"]) == 0
    left = wh.frame(f"select count(*) as n from {wh.relation('metric_series_day')} where dimension = 'country'").n.iloc[0]
    scored = wh.frame(f"select count(*) as n from {wh.relation('metric_anomalies')} where dimension = 'country'").n.iloc[0]
    kept = wh.frame(f"select count(*) as n from {wh.relation('metric_series_day')} where dimension = 'refunded'").n.iloc[0]
    assert left == 0 and scored == 0 and kept == 2 * (DAYS - CHANGED_FROM)
    assert main(["--project-dir", root, "prune"]) == 0
    assert "nothing to prune" in capsys.readouterr().out
