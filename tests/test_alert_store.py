"""Alert state and outbox on every warehouse (DuckDB, Postgres, ClickHouse through chDB):
an evaluation opens an alert and delivers to a log channel; the same outbox rows written
twice (an evaluation repeated after a crash) stay one row each; a resolution follows."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from dagster_project.alerting.evaluate import evaluate_once
from dagster_project.validation.project import load_project
from dagster_project.warehouse.alert_store import OUTBOX, STATE, commit, read_cursor, read_table
from dagster_project.warehouse.anomaly_store import NAMES, replace_window
from dagster_project.warehouse.connection import Warehouse
from tests.conftest import make_project, without_freshness

NOW = dt.datetime(2026, 11, 20, 12, 0)
METRIC = """name: orders
source: stg_entity_events
timestamp: created_at
aggregation: count
grains: [day]
start: 2026-10-01
"""
ALERTS = """channels:
  audit: {type: log, path: warehouse/alerts.log}
default_route: {channels: [audit], group_wait: 0s}
"""


def _scored(days: dict[int, bool], computed_at: dt.datetime) -> pd.DataFrame:
    rows = [{"metric": "orders", "grain": "day", "bucket_start": dt.datetime(2026, 11, d), "dimension": "",
             "dimension_value": "", "value": 20.0 if flagged else 100.0, "expected": 100.0, "lower": 80.0,
             "upper": 120.0, "score": -6.0 if flagged else 0.2, "is_anomaly": flagged,
             "direction": "down" if flagged else None, "provisional": False, "numerator": None, "denominator": None,
             "model": "test", "reason": "orders low" if flagged else "in band", "chart_path": None, "run_id": "t",
             "computed_at": computed_at} for d, flagged in days.items()]
    return pd.DataFrame(rows, columns=NAMES)


def test_alert_state_and_outbox_on_each_warehouse(target, tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    paths = make_project(tmp_path, {"commerce/orders.yml": METRIC})
    (tmp_path / "alerts.yml").write_text(ALERTS)
    without_freshness(paths)  # no raw tables here: only anomaly alerts are under test
    loaded = load_project(paths)
    assert loaded.ok, loaded.issues
    wh = Warehouse(target, paths)
    replace_window(wh, "day", dt.datetime(2026, 11, 18), dt.datetime(2026, 11, 20),
                   _scored({18: False, 19: True}, NOW - dt.timedelta(minutes=3)))

    report = evaluate_once(paths, target, loaded.project, NOW)
    assert report.counts["opened"] == 1 and len(report.delivery.delivered) == 1
    (state,) = read_table(wh, STATE)
    assert (state["alert_key"], state["status"], state["bucket_start"]) == \
        ("anomaly:orders:day:total", "open", dt.datetime(2026, 11, 19))
    (message,) = read_table(wh, OUTBOX)
    assert message["delivered_at"] == NOW and message["attempts"] == 1
    assert read_cursor(wh) == NOW - dt.timedelta(minutes=3)
    logged = [json.loads(line) for line in (tmp_path / "warehouse" / "alerts.log").read_text().splitlines()]
    assert [m["idempotency_key"] for m in logged] == [message["idempotency_key"]]

    # ClickHouse has no transactions: a repeated write of the same message keeps one row
    again = dict(message, delivered_at=None, attempts=0)
    commit(wh, [], [again], None)
    (kept,) = read_table(wh, OUTBOX)
    assert kept["delivered_at"] == NOW

    if target == "clickhouse":
        # a crash after inserting a new version and before deleting the old one leaves
        # both: reads see the newest
        with wh.connect() as con:
            con.command(f"insert into {wh.relation(STATE)} (alert_key, route, status, version) "
                        f"values ('{state['alert_key']}', '{state['route']}', 'stale-copy', 0)")
        (state,) = read_table(wh, STATE)
        assert state["status"] == "open"

    replace_window(wh, "day", dt.datetime(2026, 11, 18), dt.datetime(2026, 11, 21),
                   _scored({18: False, 19: True, 20: False}, NOW))
    later = evaluate_once(paths, target, loaded.project, NOW + dt.timedelta(hours=1))
    assert later.counts["resolved"] == 1
    (state,) = read_table(wh, STATE)
    assert state["status"] == "resolved" and state["resolved_at"] == NOW + dt.timedelta(hours=1)
    statuses = [m["status"] for m in read_table(wh, OUTBOX, order="created_at, seq")]
    assert statuses == ["firing", "resolved"]
