"""`anomaly.max_slices`: a run scores the total and the slices with the most volume that
exist in its window, ranked on the metric's own range (its window and its training
history), whichever other metrics the run scores; the rest are counted as skipped. The
expected slices come from pandas over the raw rows. Real dbt build on DuckDB."""
from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from dagster_project.anomaly import DetectorSettings, history_needed
from dagster_project.demo.generator import generate_range
from dagster_project.paths import REPO_ROOT
from dagster_project.scoring.window import score
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import compile_and_build, load_raw

pytestmark = pytest.mark.dbt

FIRST = dt.date(2026, 1, 1)
DAYS = 150
END = FIRST + dt.timedelta(days=DAYS)
NOW = dt.datetime.combine(END, dt.time())
WINDOW = (100, DAYS)  # the days scored
GONE_AFTER = 40       # FR: the most orders of all until day 40, none after
KEPT = 2
LONG_TRAINING = 100   # the other metric's training window reaches back to FR's days
BODY = "source: stg_orders\ntimestamp: ordered_at\naggregation: count\ndimensions: [country]\n"
METRICS = {
    "commerce/orders.yml": f"name: orders\ndescription: Orders placed.\n{BODY}anomaly: {{max_slices: {KEPT}}}\n",
    "commerce/orders_long.yml": f"name: orders_long\ndescription: Orders, a long training window.\n{BODY}"
                                f"anomaly: {{training_buckets: {LONG_TRAINING}}}\n",
}


def _day(n: int) -> dt.datetime:
    return dt.datetime.combine(FIRST + dt.timedelta(days=n), dt.time())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("max_slices")
    config = re.sub(r"(?m)^start: .*$", f"start: {FIRST}", (REPO_ROOT / "metrics" / "_config.yml").read_text())
    paths = make_project(root, METRICS, config)
    raw = generate_range(FIRST, END, seed=9, events_per_day=300, now=NOW)
    orders = raw["orders"].copy()
    day = (pd.to_datetime(orders.ordered_at).dt.tz_localize(None) - pd.Timestamp(FIRST)).dt.days
    orders.loc[(day < GONE_AFTER) & orders.country.isin(["US", "IN"]), "country"] = "FR"
    orders = orders[~((orders.country == "FR") & (day >= GONE_AFTER))].reset_index(drop=True)
    raw["orders"] = orders
    wh = Warehouse("duckdb", paths)
    load_raw(wh, raw)
    compile_and_build(paths, "duckdb", (FIRST, END))
    return wh, load_project(paths).project, orders


def _oracle(orders: pd.DataFrame, history: int) -> tuple[list[str], int]:
    """The countries with an order among the `history` days before a scored day or on it
    (those that exist in the window), by their orders from `history` days before the
    window to its end; the top KEPT, and how many others."""
    day = (pd.to_datetime(orders.ordered_at).dt.tz_localize(None) - pd.Timestamp(FIRST)).dt.days
    own = orders[(day >= WINDOW[0] - history) & (day < WINDOW[1])]
    volume = own.country.value_counts()
    assert volume.is_unique, volume  # a tie would make the top KEPT ambiguous
    return sorted(volume.index[:KEPT]), len(volume) - KEPT


def test_max_slices_keeps_the_largest_slices_that_exist_in_the_window(built):
    wh, project, orders = built
    history = history_needed("day", DetectorSettings())
    long_history = history_needed("day", DetectorSettings(training_buckets=LONG_TRAINING))
    # FR is gone from orders' window, not from the other metric's (so the run reads its days)
    assert GONE_AFTER - 1 + history < WINDOW[0] <= GONE_AFTER - 1 + long_history
    frame, summary = score(wh, project, "day", _day(WINDOW[0]), _day(WINDOW[1]), NOW)
    kept, skipped = _oracle(orders, history)
    assert "FR" not in kept
    scored = frame[frame.metric == "orders"]
    assert sorted(set(scored.dimension_value[scored.dimension == "country"])) == kept
    assert len(scored[scored.dimension == ""]) == WINDOW[1] - WINDOW[0]
    assert summary.skipped_by_metric.get("orders") == skipped
    # the metric scored with it keeps every slice (FR included: its training window holds FR's days)
    long = frame[frame.metric == "orders_long"]
    assert set(long.dimension_value[long.dimension == "country"]) == set(orders.country)
    assert "orders_long" not in summary.skipped_by_metric
    assert summary.slices_skipped == skipped
