"""Charts of flagged buckets (scoring/charts.py via scoring.window.write) on a real DuckDB
file: one PNG per incident (a run of consecutive flagged buckets), shared by the
incident's rows in metric_anomalies; hours older than two days (RECENT_BUCKETS) get none."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_project.anomaly import DetectorSettings, score_series
from dagster_project.scoring.charts import chart_root
from dagster_project.scoring.inputs import SliceSeries
from dagster_project.scoring.window import WindowSummary, write
from dagster_project.validation.project import load_project
from dagster_project.warehouse.anomaly_store import read_anomalies
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project

START = dt.datetime(2026, 9, 1)
HOURS = 24 * 42


def _scored_orders(tmp_path, monkeypatch, changes: dict[int, float]):
    """A project with an hourly `orders` count, its series (Poisson 400 an hour, `changes`
    {hour index: value} planted) and the series scored from day 14 on."""
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    paths = make_project(tmp_path / "repo", {"commerce/orders.yml": "name: orders\nsource: stg_orders\n"
                                             "timestamp: ordered_at\naggregation: count\n"})
    metric = load_project(paths).project.metrics["orders"]
    x = np.random.default_rng(4).poisson(400, HOURS).astype(float)
    for i, v in changes.items():
        x[i] = v
    ts = pd.date_range(START, periods=HOURS, freq="h")
    series = pd.DataFrame({"bucket_start": ts, "value": x, "count": x, "numerator": np.nan, "denominator": np.nan})
    end = ts[-1].to_pydatetime() + dt.timedelta(hours=1)
    scored = score_series(series, shape="count", grain="hour", settings=DetectorSettings(seasonality="none"),
                          score_from=ts[24 * 14].to_pydatetime(), score_until=end, now=end, settle_buckets=0)
    return paths, metric, series, scored.assign(metric="orders", grain="hour", dimension="", dimension_value=""), ts, end


def _written_in_windows(paths, metric, series, scored, bounds, charts, written_at=None) -> dict:
    """`scored` written window by window ([bounds[i], bounds[i + 1]), each at its end or at
    `written_at`), as the hour schedule's runs write it; the stored chart_path per bucket."""
    wh = Warehouse("duckdb", paths)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = scored[(scored.bucket_start >= lo) & (scored.bucket_start < hi)]
        summary = WindowSummary("hour", lo.to_pydatetime(), hi.to_pydatetime())
        summary.parts = [(SliceSeries(metric, "", "", series), part)]
        write(wh, "hour", part, summary, f"run-{lo:%d}", written_at or hi.to_pydatetime(), chart_root=charts)
    columns, rows = read_anomalies(wh, grain="hour")
    return {pd.Timestamp(r[columns.index("bucket_start")]): r[columns.index("chart_path")] for r in rows}


def test_one_chart_per_incident_shared_by_its_buckets(tmp_path, monkeypatch):
    drop = [HOURS - 30, HOURS - 29, HOURS - 28]   # one incident of three hours
    # a second incident, one hour; and one flagged but older than two days: no chart
    paths, metric, series, scored, ts, end = _scored_orders(
        tmp_path, monkeypatch, {**{i: 40 for i in drop}, HOURS - 10: 2000, 24 * 20: 2000})
    flagged = set(pd.to_datetime(scored.bucket_start[scored.is_anomaly.astype(bool)]))
    assert {ts[i] for i in drop + [HOURS - 10, 24 * 20]} <= flagged
    summary = WindowSummary("hour", ts[24 * 14].to_pydatetime(), end)
    summary.parts = [(SliceSeries(metric, "", "", series), scored)]
    write(Warehouse("duckdb", paths), "hour", scored, summary, "run-1", end, chart_root=tmp_path / "charts")

    columns, rows = read_anomalies(Warehouse("duckdb", paths), grain="hour")
    chart = {pd.Timestamp(r[columns.index("bucket_start")]): r[columns.index("chart_path")] for r in rows}
    incident = {chart[ts[i]] for i in drop}
    assert len(incident) == 1 and None not in incident
    png = Path(incident.pop())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.name == f"{ts[drop[0]]:%Y%m%dT%H%M}.png"
    assert chart[ts[HOURS - 10]] not in (None, str(png)) and Path(chart[ts[HOURS - 10]]).is_file()
    assert chart[ts[24 * 20]] is None
    # one file per incident of the last two days, whatever else was flagged there
    recent = {chart[t] for t in flagged if t >= end - pd.Timedelta(hours=48)}
    assert sorted(str(p) for p in (tmp_path / "charts").rglob("*.png")) == sorted(recent)


def test_an_incident_across_two_windows_keeps_one_chart(tmp_path, monkeypatch):
    """The hour schedule's windows split at midnight: an incident from 23:00 to 01:00 was
    charted twice (23:00.png for the first hour, 00:00.png for the rest)."""
    drop = [HOURS - 26, HOURS - 25, HOURS - 24]   # 22:00 .. 00:00
    paths, metric, series, scored, ts, end = _scored_orders(tmp_path, monkeypatch, {i: 40 for i in drop})
    assert scored.set_index("bucket_start").is_anomaly[ts[drop]].all()
    split = ts[drop[-1]]  # the window of the last day starts at the incident's last hour
    chart = _written_in_windows(paths, metric, series, scored, [ts[24 * 14], split, pd.Timestamp(end)],
                                tmp_path / "charts", written_at=end)
    (path,) = {chart[ts[i]] for i in drop}
    assert Path(path).name == f"{ts[drop[0]]:%Y%m%dT%H%M}.png"
    assert [str(p) for p in (tmp_path / "charts").rglob("*.png")] == [path]


def test_an_incident_longer_than_two_days_keeps_one_chart_across_its_windows(tmp_path, monkeypatch):
    """Each day's window (the hour schedule's) is written at its end; an incident from
    22:00 to 02:00 three days later crosses three midnights. The earlier part was looked
    for two days back only, so the last window named a new chart after the first
    bucket it found there."""
    incident = list(range(HOURS - 24 * 3 - 2, HOURS - 24 + 2))   # 22:00 .. 01:00, 52 hours
    paths, metric, series, scored, ts, end = _scored_orders(tmp_path, monkeypatch, {})
    flagged = scored.bucket_start.isin(ts[incident])
    scored.loc[flagged, "is_anomaly"] = True  # the charts follow the flags (a sustained drop becomes the level)
    midnights = [ts[i] for i in range(HOURS - 24 * 4, HOURS, 24)] + [pd.Timestamp(end)]
    chart = _written_in_windows(paths, metric, series, scored, midnights, tmp_path / "charts")
    (path,) = {chart[ts[i]] for i in incident}
    assert Path(path).name == f"{ts[incident[0]]:%Y%m%dT%H%M}.png"
    assert [str(p) for p in (tmp_path / "charts").rglob("*.png")] == [path]


def test_a_month_window_is_written_on_the_last_days_of_a_month(tmp_path, monkeypatch):
    """The chart cut-off counts six months back from now: on December 31 that was June 31,
    a ValueError, so the month grain's anomaly step failed on such days."""
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    paths = make_project(tmp_path / "repo", {"commerce/orders.yml": "name: orders\nsource: stg_orders\n"
                                             "timestamp: ordered_at\naggregation: count\n"})
    metric = load_project(paths).project.metrics["orders"]
    months = pd.date_range("2024-01-01", periods=23, freq="MS")  # to November 2025
    x = np.random.default_rng(2).poisson(9000, len(months)).astype(float)
    x[-1] = 30000  # November: flagged, within the six months that get a chart
    series = pd.DataFrame({"bucket_start": months, "value": x, "count": x, "numerator": np.nan, "denominator": np.nan})
    now = dt.datetime(2025, 12, 31, 10)
    scored = score_series(series, shape="count", grain="month", settings=DetectorSettings(seasonality="none"),
                          score_from=months[12].to_pydatetime(), score_until=dt.datetime(2025, 12, 1), now=now,
                          settle_buckets=0).assign(metric="orders", grain="month", dimension="", dimension_value="")
    assert scored.is_anomaly.iloc[-1]
    summary = WindowSummary("month", months[12].to_pydatetime(), dt.datetime(2025, 12, 1))
    summary.parts = [(SliceSeries(metric, "", "", series), scored)]
    assert write(Warehouse("duckdb", paths), "month", scored, summary, "run", now, chart_root=tmp_path / "charts") \
        == len(scored)
    columns, rows = read_anomalies(Warehouse("duckdb", paths), grain="month")
    (flagged,) = rows
    assert flagged[columns.index("chart_path")] and Path(flagged[columns.index("chart_path")]).is_file()


def test_a_chart_no_row_references_any_more_is_deleted_once_an_hour_old(tmp_path, monkeypatch):
    """A detection that a re-score drops (the late rows came in) left its PNG behind for
    ever. A chart the rows still reference stays; so does an unreferenced one under an
    hour old (another run's step may not have written its rows yet), and another
    warehouse's folder (another DuckDB file of the project) is not looked at."""
    import os
    import time

    drop = [HOURS - 30, HOURS - 29, HOURS - 28]
    paths, metric, series, scored, ts, end = _scored_orders(tmp_path, monkeypatch,
                                                            {**{i: 40 for i in drop}, HOURS - 10: 2000})
    root = chart_root(tmp_path / "warehouse", Warehouse("duckdb", paths))
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "scratch.duckdb"))
    other_root = chart_root(tmp_path / "warehouse", Warehouse("duckdb", paths))
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    assert other_root != root and root.parent == other_root.parent
    window = [ts[24 * 40], pd.Timestamp(end)]
    first = _written_in_windows(paths, metric, series, scored, window, root)
    dropped, spike = Path(first[ts[drop[0]]]), Path(first[ts[HOURS - 10]])
    assert dropped.is_file() and spike.is_file() and dropped.is_relative_to(root)
    young = root / "hour" / "orders" / "stray.png"
    other_warehouse = other_root / "hour" / "orders" / "x.png"
    pruned_slice = root / "hour" / "orders" / "country=XX-0123abcd" / "20261001T0000.png"  # its rows pruned
    for png in (young, other_warehouse, pruned_slice):
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(b"\x89PNG")
    hour_ago = time.time() - 3601
    for png in (dropped, spike, other_warehouse, pruned_slice):
        os.utime(png, (hour_ago, hour_ago))

    # re-scored after the late rows: the drop is no longer there, the spike still is
    _, _, series2, rescored, _, _ = _scored_orders(tmp_path, monkeypatch, {HOURS - 10: 2000})
    second = _written_in_windows(paths, metric, series2, rescored, window, root)
    assert not any(second.get(ts[i]) for i in drop)
    assert not dropped.exists() and not pruned_slice.exists()
    assert second[ts[HOURS - 10]] == str(spike) and spike.is_file()
    assert young.is_file() and other_warehouse.is_file()

    # the same project reached through a symlink: its rows name the charts another way;
    # and the emptied folder goes once it has been empty for an hour
    (tmp_path / "link").symlink_to(tmp_path / "warehouse")
    for kept in (spike, pruned_slice.parent):
        os.utime(kept, (hour_ago, hour_ago))
    linked = chart_root(tmp_path / "link", Warehouse("duckdb", paths))
    _written_in_windows(paths, metric, series2, rescored.iloc[:0], [ts[24 * 20], ts[24 * 21]], linked)
    assert spike.is_file()  # still referenced, spelled through the other path
    assert not pruned_slice.parent.exists()
