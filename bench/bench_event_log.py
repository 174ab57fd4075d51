"""Recording partitions on the local sqlite instance (docs/orchestration.md, "Recording a
partition"): the same ranged run (N daily partitions x 2 assets, single-run backfill
policy, no warehouse) on Dagster's default sqlite storage and on the project's
dagster_home.yaml (event log connections kept open), without and with its batched writes
(DAGSTER_EVENT_BATCH_SIZE=0 turns them off), each in a fresh process and a fresh
DAGSTER_HOME, in one run.

Usage: .venv/bin/python bench/bench_event_log.py [--partitions 200]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
DEFAULT = "telemetry:\n  enabled: false\n"

RUN = """
import datetime as dt, os, sys, time
from dagster import (BackfillPolicy, DagsterInstance, DailyPartitionsDefinition, Definitions, asset,
                     define_asset_job)
days = DailyPartitionsDefinition(start_date="2025-01-01",
                                 end_date=(dt.date(2025, 1, 1) + dt.timedelta(days=int(sys.argv[1]))).isoformat())

@asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run())
def first(context) -> None:
    pass

@asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run(), deps=[first])
def second(context) -> None:
    pass

job = Definitions(assets=[first, second], jobs=[define_asset_job("j", selection=[first, second])]).resolve_job_def("j")
keys = days.get_partition_keys()
with DagsterInstance.get() as instance:
    t0 = time.perf_counter()
    result = job.execute_in_process(instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                                    tags={"dagster/asset_partition_range_start": keys[0],
                                          "dagster/asset_partition_range_end": keys[-1]})
    wall = time.perf_counter() - t0
    print("RESULT", f"{wall:.2f}", len(instance.all_logs(result.run_id)), type(instance.event_log_storage).__name__)
"""


def measure(config: str, partitions: int, batch: str | None = None) -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text(config)
        env = {"PATH": "/usr/bin:/bin", "DAGSTER_HOME": home, "PYTHONPATH": str(HERE)}
        if batch is not None:
            env["DAGSTER_EVENT_BATCH_SIZE"] = batch
        done = subprocess.run([sys.executable, "-c", RUN, str(partitions)], capture_output=True, text=True, env=env)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
        if line is None:
            raise SystemExit(done.stderr[-3000:])
        _, wall, events, storage = line.split()
        return float(wall), int(events), storage


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--partitions", type=int, default=200)
    args = p.parse_args()
    default = measure(DEFAULT, args.partitions)
    kept = measure((HERE / "dagster_home.yaml").read_text(), args.partitions)
    unbatched = measure((HERE / "dagster_home.yaml").read_text(), args.partitions, batch="0")
    rows = [(name, storage, f"{events:,}", f"{wall:.2f}", f"{1000 * wall / events:.1f}")
            for name, (wall, events, storage) in (("Dagster's default sqlite", default),
                                                  ("dagster_home.yaml, DAGSTER_EVENT_BATCH_SIZE=0", unbatched),
                                                  ("dagster_home.yaml", kept))]
    rows.append(("ratio default / dagster_home.yaml", "", "", f"{default[0] / kept[0]:.2f}", ""))
    print(f"\n{args.partitions} daily partitions x 2 assets, one ranged run (single-run backfill)\n")
    print_table(["instance", "event log storage", "events", "seconds", "ms per event"], rows,
                right=("events", "seconds", "ms per event"))


if __name__ == "__main__":
    main()
