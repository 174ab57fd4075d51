"""Windows on every warehouse: a late event recomputed in its window only, and the same
window twice."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import as_dict, assert_series_equal, compile_and_build, load_raw, series_table

pytestmark = pytest.mark.dbt

KEY = ["metric", "bucket_start", "dimension", "dimension_value"]


def _rollup_rows(wh: Warehouse) -> pd.DataFrame:
    if wh.target == "clickhouse":
        names = wh.frame("select name as table_name from system.tables where database = 'analytics' and name like 'rollup_%'")
    else:
        names = wh.frame("select table_name from information_schema.tables where table_schema = 'analytics' and table_name like 'rollup_%'")
    frames = [wh.frame(f"select * from analytics.{t}").assign(model=t) for t in names.table_name]
    out = pd.concat(frames, ignore_index=True)
    out["bucket_start"] = pd.to_datetime(out["bucket_start"])
    return out


def test_late_event_recomputes_only_its_window_and_reruns_are_idempotent(tmp_path, target):
    paths = make_project(tmp_path, cases.METRICS, cases.CONFIG)
    wh = Warehouse(target, paths)
    raw = cases.make_raw()
    load_raw(wh, raw)
    compile_and_build(paths, target, cases.WINDOW, run_id="initial")
    before = _rollup_rows(wh)
    assert not before.duplicated(KEY + ["model"]).any()

    # a download that arrives after its week was built
    late = raw["entity_events"].iloc[[0]].assign(event_id=999_999, created_at=pd.Timestamp("2024-03-05 10:30"),
                                                 metric_type="Download", entity_type="model")
    raw["entity_events"] = pd.concat([raw["entity_events"], late], ignore_index=True)
    load_raw(wh, raw)
    week = (dt.date(2024, 3, 4), dt.date(2024, 3, 11))
    compile_and_build(paths, target, week, run_id="recompute")
    after = _rollup_rows(wh)

    in_window = (after.bucket_start >= pd.Timestamp(week[0])) & (after.bucket_start < pd.Timestamp(week[1]))
    rewritten = after[after.run_id == "recompute"]
    assert len(rewritten) and in_window[rewritten.index].all()
    assert set(rewritten.model.str.extract(r"__(hour|day|week|month)$")[0]) == {"hour", "day", "week"}  # no month starts in it
    untouched = after[after.run_id == "initial"].drop(columns=["computed_at"]).sort_values(KEY + ["model"]).reset_index(drop=True)
    kept = before[~((before.bucket_start >= pd.Timestamp(week[0])) & (before.bucket_start < pd.Timestamp(week[1])) & ~before.model.str.endswith("__month"))]
    kept = kept.drop(columns=["computed_at"]).sort_values(KEY + ["model"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(untouched, kept)

    for grain in ("hour", "day", "week"):
        table = series_table(wh, grain)
        for metric, want in cases.expected(raw, grain).items():
            assert_series_equal(as_dict(table, metric), want, f"{metric}@{grain} after recompute")
    month = series_table(wh, "month")
    feb_mar = as_dict(month, "downloads")[(pd.Timestamp("2024-03-01"), "", "")]
    assert feb_mar == cases.expected({**raw, "entity_events": raw["entity_events"][raw["entity_events"].event_id != 999_999]}, "month")["downloads"][(pd.Timestamp("2024-03-01"), "", "")]

    # recompute March (its month too); then the same window again changes nothing
    march = (dt.date(2024, 3, 1), dt.date(2024, 4, 1))
    compile_and_build(paths, target, march, run_id="march-1")
    first = _rollup_rows(wh).drop(columns=["computed_at", "run_id"]).sort_values(KEY + ["model"]).reset_index(drop=True)
    compile_and_build(paths, target, march, run_id="march-2")
    second = _rollup_rows(wh).drop(columns=["computed_at", "run_id"]).sort_values(KEY + ["model"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, second)
    assert not second.duplicated(KEY + ["model"]).any()
    month = series_table(wh, "month")
    for metric, want in cases.expected(raw, "month").items():
        assert_series_equal(as_dict(month, metric), want, f"{metric}@month after March recompute")
