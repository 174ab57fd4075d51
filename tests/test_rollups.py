"""Real dbt on each warehouse (a DuckDB file, a Postgres server, ClickHouse on chDB),
checked against the pandas oracle for every aggregation, kind, grain and slice. The
same oracle on every target is the parity check: all three give the same series."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse
from dagster_project.warehouse.read import read_series

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import as_dict, assert_series_equal, compile_and_build, load_raw, same_number, series_table

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    paths = make_project(tmp_path_factory.mktemp(f"rollups_{target}"), cases.METRICS, cases.CONFIG)
    wh = Warehouse(target, paths)
    raw = cases.make_raw()
    load_raw(wh, raw)
    compile_and_build(paths, target, cases.WINDOW)
    return paths, wh, raw


@pytest.mark.parametrize("grain", ["hour", "day", "week", "month"])
def test_every_metric_matches_the_pandas_oracle(built, grain):
    _, wh, raw = built
    table = series_table(wh, grain)
    want = cases.expected(raw, grain)
    assert set(table.metric) == set(want)
    for metric, series in want.items():
        assert_series_equal(as_dict(table, metric), series, f"{metric}@{grain}")


def test_distinct_total_is_computed_from_raw_rows_not_summed_over_slices(built):
    _, wh, _ = built
    day = series_table(wh, "day")
    au = day[day.metric == "active_users"]
    total = au[au.dimension == ""].set_index("bucket_start")["value"]
    by_type = au[au.dimension == "entity_type"].groupby("bucket_start")["value"].sum()
    # the same user acts on several entity types: the slices overlap
    assert (total < by_type.reindex(total.index).fillna(0)).sum() > 10


def test_zero_denominator_and_empty_buckets(built):
    _, wh, _ = built
    hour = series_table(wh, "hour")
    at = pd.Timestamp("2024-03-12 23:00")
    row = lambda m: hour[(hour.metric == m) & (hour.bucket_start == at) & (hour.dimension == "")].iloc[0]  # noqa: E731
    assert row("likes").value == 1 and row("downloads").value == 0
    assert pd.isna(row("likes_per_download").value)  # x / 0 is a gap, not 0 or an error
    day = series_table(wh, "day")
    empty = day[(day.bucket_start == pd.Timestamp(cases.EMPTY_DAY)) & (day.dimension == "")].set_index("metric")["value"]
    assert empty["downloads"] == 0 and empty["revenue"] == 0 and empty["net_revenue"] == 0
    assert pd.isna(empty["avg_latency"]) and pd.isna(empty["p90_latency"]) and pd.isna(empty["aov"])
    assert pd.isna(empty["max_amount"]) and pd.isna(empty["followers"])


def test_week_and_month_edges(built):
    _, wh, raw = built
    week = series_table(wh, "week")
    likes = week[(week.metric == "likes") & (week.dimension == "")].set_index("bucket_start")["value"]
    ev = raw["entity_events"]
    in_week = lambda a, b: ((ev.metric_type == "Like") & (ev.created_at >= a) & (ev.created_at < b)).sum()  # noqa: E731
    assert likes[pd.Timestamp("2024-02-26")] == in_week("2024-02-26", "2024-03-04")  # includes Sunday 23:59:59
    assert likes[pd.Timestamp("2024-03-04")] == in_week("2024-03-04", "2024-03-11")  # starts Monday 00:00
    assert set(likes.index.day_of_week) == {0}
    day = series_table(wh, "day")
    leap = day[(day.metric == "downloads") & (day.bucket_start == pd.Timestamp("2024-02-29")) & (day.dimension == "")]
    assert leap.value.iloc[0] == ((ev.metric_type == "Download") & (ev.created_at.dt.date == dt.date(2024, 2, 29))).sum()


def test_previous_value_in_sql_matches_the_densified_reader(built):
    paths, wh, _ = built
    project = load_project(paths).project
    for name, grain, slice_ in [("downloads", "day", {}), ("avg_latency", "hour", {}), ("likes", "day", {"entity_type": "space"}),
                                ("net_revenue", "week", {"country": "DE"})]:
        metric = project.metrics[name]
        got = read_series(wh, metric, grain, start=dt.date(2024, 2, 20), end=dt.date(2024, 3, 20), slice_=slice_)
        table = series_table(wh, grain)
        stored = table[(table.metric == name) & (table.dimension == (next(iter(slice_)) if slice_ else ""))]
        if slice_:
            stored = stored[stored.dimension_value == next(iter(slice_.values()))]
        stored = stored.set_index("bucket_start")
        for r in got.itertuples():
            if r.bucket_start in stored.index:  # slices are stored sparse; the reader fills the rest
                sp = stored.loc[r.bucket_start, "previous_value"]
                assert same_number(None if pd.isna(sp) else sp, r.previous_value), (name, r.bucket_start)
            elif slice_:
                assert r.value == metric.fill or (r.value is None and metric.fill is None)
        dense = got["bucket_start"].tolist()
        assert len(dense) == len(set(dense)) and dense == sorted(dense)
