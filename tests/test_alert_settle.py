"""A detection scored provisional opens when its bucket leaves the settle lookback, by the
clock, on every warehouse: not only at the next scoring."""
from __future__ import annotations

import datetime as dt

from dagster_project.alerting.evaluate import evaluate_once
from dagster_project.validation.project import load_project
from dagster_project.warehouse.alert_store import OUTBOX, STATE, read_table
from dagster_project.warehouse.anomaly_store import replace_window
from dagster_project.warehouse.connection import Warehouse
from tests.conftest import make_project, without_freshness
from tests.test_alert_store import ALERTS, METRIC, NOW, _scored


def test_a_detection_scored_provisional_opens_when_it_settles_without_new_scoring(target, tmp_path, monkeypatch):
    """A project that runs once a day: day 19 was scored provisional and flagged below
    twice the sensitivity (it waits to settle); it leaves the settle lookback (3 days) on
    the 23rd at 00:00 and nothing scores it again. The evaluations between scorings read
    no scored rows, so it opened only at the next scoring."""
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    paths = make_project(tmp_path, {"commerce/orders.yml": METRIC})
    (tmp_path / "alerts.yml").write_text(ALERTS)
    without_freshness(paths)
    project = load_project(paths).project
    wh = Warehouse(target, paths)
    rows = _scored({18: False, 19: True}, NOW - dt.timedelta(minutes=3)).assign(provisional=True, score=[0.2, -4.0])
    replace_window(wh, "day", dt.datetime(2026, 11, 18), dt.datetime(2026, 11, 20), rows)
    assert evaluate_once(paths, target, project, NOW).counts.get("opened", 0) == 0  # provisional, not strong
    assert evaluate_once(paths, target, project, dt.datetime(2026, 11, 22, 23, 50)).counts.get("opened", 0) == 0
    settled = evaluate_once(paths, target, project, dt.datetime(2026, 11, 23, 0, 10))
    assert not settled.new_scoring and settled.counts["opened"] == 1
    (state,) = read_table(wh, STATE)
    assert (state["status"], state["bucket_start"]) == ("open", dt.datetime(2026, 11, 19))
    again = evaluate_once(paths, target, project, dt.datetime(2026, 11, 23, 0, 20))
    assert again.counts.get("opened", 0) == 0 and len(read_table(wh, STATE)) == 1
    assert [m["status"] for m in read_table(wh, OUTBOX)] == ["firing"]
