"""A metric moved to another source (or timestamp column) leaves its rows in the rollup
table it was computed in before: nothing deletes them there (a rollup rebuild deletes
only its own metrics' rows). Its series must show the new definition's rows once, not
both definitions' rows side by side."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dagster_project.demo.generator import generate_range
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import compile_and_build, load_raw, series_table

pytestmark = pytest.mark.dbt

DAYS = (dt.date(2026, 9, 1), dt.date(2026, 9, 4))
BEFORE = "name: buyers\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count_distinct\nexpression: user_id\n"
AFTER = "name: buyers\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count_distinct\nexpression: user_id\n"
# stays on the old source, so its rollup (holding buyers' old rows) is still read
EVENTS = "name: events\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"


def test_a_metric_moved_to_another_source_shows_its_new_rows_once(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    paths = make_project(tmp_path / "p", {"shop/buyers.yml": BEFORE, "shop/events.yml": EVENTS}, "start: 2026-09-01\ngrains: [day]\n")
    wh = Warehouse("duckdb", paths)
    raw = generate_range(*DAYS, seed=3, events_per_day=600, now=dt.datetime(2026, 9, 5))
    load_raw(wh, raw)
    compile_and_build(paths, "duckdb", DAYS)
    (paths.metrics_dir / "shop" / "buyers.yml").write_text(AFTER)
    compile_and_build(paths, "duckdb", DAYS)
    got = series_table(wh, "day")
    got = got[(got.metric == "buyers") & (got.dimension == "")].sort_values("bucket_start")
    # the oracle: distinct buyers per day over the raw orders
    orders = raw["orders"]
    want = orders.groupby(pd.to_datetime(orders.ordered_at).dt.floor("D")).user_id.nunique()
    assert list(got.bucket_start) == list(want.index), got[["bucket_start", "value"]]
    assert list(got.value) == [float(v) for v in want], (list(got.value), list(want))
