"""A dimension's NULL is the slice '(null)'; a real value '(null)' in the same bucket is
that slice too, one row, on every warehouse. The rollup grouped by the raw value and
named both groups '(null)': two rows of one key were written, then the unique-rows test
failed the run after the write (and `metrics series` showed one of the two)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dagster_project.demo.generator import generate_range
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import compile_and_build, load_raw

pytestmark = pytest.mark.dbt

CONFIG = "start: 2026-09-01\ngrains: [day]\nowner: data@example.com\n"
METRICS = {"growth/by_user.yml": "name: by_user\nsource: stg_entity_events\ntimestamp: created_at\n"
                                 "aggregation: count\ndimensions: [user_id]\n"}


def test_a_null_and_a_literal_null_are_one_slice(target, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"null_slice_{target}")
    paths = make_project(root, METRICS, CONFIG)
    wh = Warehouse(target, paths)
    raw = generate_range(dt.date(2026, 9, 1), dt.date(2026, 9, 2), events_per_day=200)
    events = raw["entity_events"].copy()
    events["user_id"] = events["user_id"].astype(object)
    events.loc[events.index[:7], "user_id"] = None
    events.loc[events.index[7:12], "user_id"] = "(null)"
    raw["entity_events"] = events
    load_raw(wh, raw)
    compile_and_build(paths, target, (dt.date(2026, 9, 1), dt.date(2026, 9, 2)))
    rows = wh.frame(f"select dimension_value, value from {wh.relation('metric_series_day')} "
                    "where metric = 'by_user' and dimension = 'user_id' and dimension_value = '(null)'")
    assert len(rows) == 1 and float(rows.value.iloc[0]) == 12.0
    # every other slice matches the raw rows (pandas, the oracle)
    expect = events.dropna(subset=["user_id"]).query("user_id != '(null)'").groupby("user_id").size()
    got = wh.frame(f"select dimension_value, value from {wh.relation('metric_series_day')} "
                   "where metric = 'by_user' and dimension = 'user_id' and dimension_value <> '(null)' and value > 0")
    assert dict(zip(got.dimension_value, got.value.astype(float))) == {k: float(v) for k, v in expect.items()}
