"""Two `metrics run` processes over overlapping windows at the same time (a schedule's
lookback and a backfill, or two people) serialize on the warehouse's writer lock: both
succeed, every series equals the pandas oracle, and no rollup row is duplicated."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dagster_project.compiler.writer import compile_project
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import as_dict, assert_series_equal, load_raw, series_table
from .oracle import next_bucket

pytestmark = pytest.mark.dbt

METRICS = {k: cases.METRICS[k] for k in ("events/downloads.yml", "events/active_users.yml", "orders/revenue.yml",
                                         "orders/orders.yml", "orders/aov.yml")}
# overlapping windows: days 2024-03-04 .. 2024-03-07 (and their weeks and month) are in both
WINDOWS = (("2024-02-26", "2024-03-08"), ("2024-03-04", "2024-03-13"))
KEY = ["metric", "bucket_start", "dimension", "dimension_value"]


def _rollup_tables(wh: Warehouse) -> list[str]:
    if wh.target == "clickhouse":
        sql = "select name as table_name from system.tables where database = ? and name like 'rollup_%'"
    else:
        sql = "select table_name from information_schema.tables where table_schema = ? and table_name like 'rollup_%'"
    return sorted(wh.frame(sql, [wh.schema]).table_name)


def _in_windows(b: pd.Timestamp, grain: str) -> bool:
    """The bucket overlaps one of the windows (what the two runs rebuilt)."""
    lo, hi = pd.Timestamp(WINDOWS[0][0]), pd.Timestamp(WINDOWS[1][1])
    return b < hi and next_bucket(b, grain) > lo


def test_two_overlapping_runs_serialize(tmp_path, target):
    paths = make_project(tmp_path, METRICS, cases.CONFIG)
    wh = Warehouse(target, paths)
    raw = cases.make_raw()
    load_raw(wh, raw)
    compile_project(paths, load_project(paths).project)  # generated models are committed in a project
    env = {**os.environ, "METRICS_PROJECT_DIR": str(paths.root), "METRICS_LOCK_TIMEOUT": "900"}
    exe = str(Path(sys.executable).parent / "metrics")
    procs = []
    for i, (start, end) in enumerate(WINDOWS):
        log = open(tmp_path / f"run{i}.log", "w+")
        cmd = [exe, "run", "--target", target, "--start", start, "--end", end]
        procs.append((subprocess.Popen(cmd, cwd=paths.root, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    codes, logs = [], []
    for proc, log in procs:
        try:
            codes.append(proc.wait(timeout=1200))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
        log.seek(0)
        logs.append(log.read())
        log.close()
    def detail() -> str:
        return "\n\n".join(f"run {i} exited {c}; its errors:\n" + "\n".join(
            ln for ln in text.splitlines() if "error" in ln.lower() and "ERROR=0" not in ln)[-3000:]
            for i, (c, text) in enumerate(zip(codes, logs)))

    assert codes == [0, 0], detail()
    # they did overlap: one of them waited for the other at least once
    assert any("waiting for another run to release" in text for text in logs), "\n\n".join(logs)[-3000:]

    for table in _rollup_tables(wh):
        rows = wh.frame(f"select * from {wh.relation(table)}")
        assert len(rows) and not rows.duplicated(KEY).any(), f"{target}: duplicate rows in {table}"
    for grain in ("hour", "day", "week", "month"):
        got_all = series_table(wh, grain)
        for metric, want in cases.expected(raw, grain).items():
            if f"{metric}.yml" not in {Path(k).name for k in METRICS}:
                continue
            want = {k: v for k, v in want.items() if _in_windows(k[0], grain)}
            got = {k: v for k, v in as_dict(got_all, metric).items() if _in_windows(k[0], grain)}
            assert want, (metric, grain)
            assert_series_equal(got, want, f"{target}: {metric}@{grain} after two overlapping runs")


def test_lock_waits_reports_once_and_times_out(tmp_path, target):
    """The lock itself: a second holder (another process) waits, is told once, and gives
    up after the timeout with a clear error; then it is free again."""
    from dagster_project.warehouse.lock import WarehouseLockTimeout, warehouse_lock
    paths = make_project(tmp_path, {}, cases.CONFIG)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from dagster_project.paths import ProjectPaths\n"
         "from dagster_project.warehouse.lock import warehouse_lock\n"
         f"with warehouse_lock({target!r}, ProjectPaths.discover()):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(30)\n"],
        env={**os.environ, "METRICS_PROJECT_DIR": str(paths.root)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        told = []
        with pytest.raises(WarehouseLockTimeout) as err:
            with warehouse_lock(target, paths, on_wait=told.append, timeout=1.5):
                pass
        label = {"duckdb": "warehouse/metrics.duckdb", "clickhouse": paths.relative(paths.chdb_path),
                 "postgres": f"postgres {os.environ.get('METRICS_PG_DATABASE', 'metrics')}.analytics"}[target]
        assert told == [f"waiting for another run to release {label}"]
        assert label in str(err.value) and "METRICS_LOCK_TIMEOUT" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    with warehouse_lock(target, paths, on_wait=told.append, timeout=5):
        with warehouse_lock(target, paths, timeout=0):  # re-entrant in the holding thread
            pass
