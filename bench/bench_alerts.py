"""Alerting benchmark (a table, not a timed test): one `metric_alerts_sensor` tick, run
through Dagster's `build_sensor_context` exactly as the daemon runs it, with 10,000 open
alerts (one metric, 10,000 slices, day grain, a log channel), on DuckDB. Goal: a tick
with 10,000 open alerts under 1 s.

Usage: .venv/bin/python bench/bench_alerts.py [--alerts 10000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_dagster import copy_project  # noqa: E402
from bench.table import print_table  # noqa: E402

NOW = dt.datetime(2026, 11, 20, 12, 0)
METRIC = """name: orders
owner: shop@example.com
source: stg_entity_events
timestamp: created_at
aggregation: count
dimensions: [entity_id]
grains: [day]
start: 2026-10-01
"""
ALERTS = """channels:
  audit: {type: log, path: warehouse/alerts.log}
default_route: {channels: [audit], group_wait: 0s, repeat_interval: 4h}
"""


def scored(n: int, computed_at: dt.datetime):
    import pandas as pd

    from dagster_project.warehouse.anomaly_store import NAMES
    rows = [{"metric": "orders", "grain": "day", "bucket_start": dt.datetime(2026, 11, 19), "dimension": "entity_id",
             "dimension_value": str(i), "value": 3.0, "expected": 100.0, "lower": 80.0, "upper": 120.0, "score": -7.5,
             "is_anomaly": True, "direction": "down", "provisional": False, "numerator": None, "denominator": None,
             "model": "bench", "reason": f"orders 3 vs expected 100 (80..120) for entity {i}", "chart_path": None,
             "run_id": "bench", "computed_at": computed_at} for i in range(n)]
    return pd.DataFrame(rows, columns=NAMES)


def tick(cursor: str | None) -> tuple[float, str, str | None]:
    from dagster import DagsterInstance, build_sensor_context

    from dagster_project.defs.alerts import metric_alerts_sensor
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, cursor=cursor)
        started = time.perf_counter()
        (result,) = list(metric_alerts_sensor(context))
        return time.perf_counter() - started, result.skip_message, context.cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = copy_project(root, metrics={"commerce/orders.yml": METRIC})
        (root / "alerts.yml").write_text(ALERTS)
        # no raw tables in this project: leave out the example's source freshness checks
        (root / "models" / "staging" / "_sources.yml").write_text(
            "version: 2\nsources:\n  - name: raw\n    tables: [{name: entity_events}]\n")
        os.environ.update(METRICS_PROJECT_DIR=str(root), METRICS_DUCKDB_PATH=str(root / "warehouse" / "metrics.duckdb"),
                          METRICS_NOW=NOW.isoformat(), METRICS_TARGET="duckdb")
        from dagster_project.warehouse.anomaly_store import replace_window
        from dagster_project.warehouse.connection import Warehouse
        wh = Warehouse("duckdb", paths)
        window = (dt.datetime(2026, 11, 19), dt.datetime(2026, 11, 20))
        replace_window(wh, "day", *window, scored(args.alerts, NOW - dt.timedelta(minutes=5)))
        # the daemon imports the code location once; a tick pays none of that
        import dagster_project.alerting.channels  # noqa: F401
        import dagster_project.defs.resources  # noqa: F401
        rows = []
        seconds, message, cursor = tick(None)
        rows.append(("new detections: all open", f"{seconds:.2f}", message))
        seconds, message, cursor = tick(cursor)
        rows.append(("no new scoring (timers only)", f"{seconds:.2f}", message))
        replace_window(wh, "day", *window, scored(args.alerts, NOW - dt.timedelta(minutes=1)))
        seconds, message, cursor = tick(cursor)
        rows.append(("rescored, nothing changes", f"{seconds:.2f}", message))
        os.environ["METRICS_NOW"] = (NOW + dt.timedelta(hours=4, minutes=1)).isoformat()
        seconds, message, cursor = tick(cursor)
        rows.append(("repeat due for every alert", f"{seconds:.2f}", message))
        lines = (root / "warehouse" / "alerts.log").read_text().splitlines()
        alerts_logged = sum(len(json.loads(line)["alerts"]) for line in lines)
    print(f"metric_alerts_sensor tick, {args.alerts:,} alerts, DuckDB, log channel ({len(lines)} messages, "
          f"{alerts_logged:,} alert entries written)")
    print_table(["tick", "seconds", "tick summary"], rows, right=("seconds",))
    print("goal: a tick with 10,000 open alerts < 1 s")


if __name__ == "__main__":
    main()
