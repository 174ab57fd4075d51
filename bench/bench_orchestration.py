"""Orchestration overhead (issue: a backfill costs about what its SQL costs). Ratios and
figures from one run, printed as a table; each measure runs in fresh processes on a
fresh copy of a checkout, so `--before PATH` (an older checkout, e.g. from
`git worktree add /tmp/before <commit>`) is measured the same way in the same run.

  1. the demo's `metrics run` (90 days of demo data, all grains): wall time, the dbt time
     `metrics run` reports per grain, Dagster events written and instance growth
  2. a 365-day single-run backfill of hour rollups for one source: the ranged run the
     UI's backfill launches (single-run policy), executed on a sqlite instance
  3. `metrics run --metric revenue` over 7 days
  4. `metrics series model_downloads --grain day`, median of 10

Usage: .venv/bin/python bench/bench_orchestration.py [--before /tmp/before] [--days 90]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
PROJECT_PARTS = ["dbt_project/dbt_project.yml", "dbt_project/profiles.yml", "macros", "models", "seeds", "metrics"]
TIMING = re.compile(r"^\s+(\w+) rollups.*: ([\d.]+)s \(dbt ([\d.]+)s(?:, anomaly scoring ([\d.]+)s)?\)$")

BACKFILL = """
import datetime as dt, os, sys, time
from dagster import DagsterInstance
from dagster_project.defs import resources
from dagster_project.defs.builder import build_definitions
resources.parse_manifest(resources.project_paths())
defs = build_definitions()
job = defs.resolve_job_def("rollups_hour_job")
keys = job.partitions_def.get_partition_keys()
first, last = sys.argv[1], sys.argv[2]
chosen = [k for k in keys if first <= k[:10] <= last]
graph = defs.resolve_asset_graph()
selection = [k for k in job.asset_layer.executable_asset_keys if "stg_orders" in k.path[-1]]
quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
instance = DagsterInstance.get()
defs.resolve_job_def("staging_job").execute_in_process(instance=instance, raise_on_error=True, run_config=quiet)
home = os.environ["DAGSTER_HOME"]
size = lambda: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(home) for f in fs)
before = size()
t0 = time.perf_counter()
result = job.execute_in_process(instance=instance, asset_selection=selection, raise_on_error=True,
    tags={"dagster/asset_partition_range_start": chosen[0], "dagster/asset_partition_range_end": chosen[-1]},
    run_config=quiet)
wall = time.perf_counter() - t0
events = len(instance.all_logs(result.run_id))
print(f"BACKFILL {wall:.2f} {len(chosen)} {len(selection)} {events} {(size() - before) / 1e6:.2f}")
"""


def copy_checkout(checkout: Path, root: Path) -> Path:
    for rel in PROJECT_PARTS:
        src, dst = checkout / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    shutil.copy(checkout / "workspace.yaml", root / "workspace.yaml")
    return root


def env_for(checkout: Path, root: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(checkout / "dagster_home.yaml", home / "dagster.yaml")
    env.update(PYTHONPATH=str(checkout), METRICS_PROJECT_DIR=str(root), DAGSTER_HOME=str(home),
               METRICS_DUCKDB_PATH=str(root / "warehouse" / "metrics.duckdb"))
    return env


def metrics(env: dict, *args: str, check: bool = True) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dagster_project.cli.main", *args], env=env, cwd=env["METRICS_PROJECT_DIR"],
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"metrics {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0, done.stdout + done.stderr


def events_and_size(home: Path) -> tuple[int, float]:
    n = 0
    for db in home.rglob("*.db"):
        try:
            con = sqlite3.connect(db)
            if con.execute("select count(*) from sqlite_master where name = 'event_logs'").fetchone()[0]:
                n += con.execute("select count(*) from event_logs").fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
    size = sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) / 1e6
    return n, size


def measure(label: str, checkout: Path, days: int, backfill_days: int, work: Path) -> dict:
    out: dict = {"label": label}
    today = dt.datetime.now(dt.timezone.utc).date()
    # 1. the demo's main job
    root = copy_checkout(checkout, work / f"{label}_demo")
    env = env_for(checkout, root, work / f"{label}_demo_home")
    metrics(env, "demo-data", "--days", str(days), "--seed", "7")
    out["run"], text = metrics(env, "run")
    out["grains"] = {m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(4) or 0))
                     for m in map(TIMING.match, text.splitlines()) if m}
    out["events"], out["home_mb"] = events_and_size(Path(env["DAGSTER_HOME"]))
    # 3. one metric over 7 days, on the same warehouse
    start = (today - dt.timedelta(days=7)).isoformat()
    out["one_metric"], text = metrics(env, "run", "--metric", "revenue", "--start", start)
    out["one_metric_dbt"] = sum(float(m.group(3)) for m in map(TIMING.match, text.splitlines()) if m)
    # 4. a read
    times = [metrics(env, "series", "model_downloads", "--grain", "day", "--start", start)[0] for _ in range(10)]
    out["series"] = statistics.median(times)
    # 2. a year of hour rollups for one source, one ranged run (what a UI backfill launches)
    root = copy_checkout(checkout, work / f"{label}_year")
    env = env_for(checkout, root, work / f"{label}_year_home")
    cfg = root / "metrics" / "_config.yml"
    first = today - dt.timedelta(days=backfill_days)
    cfg.write_text(re.sub(r"(?m)^start: .*$", f"start: {first}", cfg.read_text()))
    metrics(env, "demo-data", "--days", str(backfill_days + 1), "--seed", "7", "--events-per-day", "1000")
    metrics(env, "compile")
    done = subprocess.run([sys.executable, "-c", BACKFILL, first.isoformat(), (first + dt.timedelta(days=backfill_days - 1)).isoformat()],
                          env=env, cwd=root, capture_output=True, text=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BACKFILL")), None)
    if line is None:
        raise SystemExit(f"backfill failed:\n{done.stderr[-3000:]}")
    _, wall, parts, assets, events, grown = line.split()
    out["backfill"], out["backfill_partitions"], out["backfill_assets"] = float(wall), int(parts), int(assets)
    out["backfill_events"], out["backfill_mb"] = int(events), float(grown)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, help="an older checkout to measure the same way")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--backfill-days", type=int, default=365)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_orch_"))
    results = []
    try:
        if args.before:
            results.append(measure("before", args.before.resolve(), args.days, args.backfill_days, work))
        results.append(measure("after", HERE, args.days, args.backfill_days, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for r in results:
        dbt_total = sum(d for _, d, _ in r["grains"].values())
        scoring_total = sum(a for _, _, a in r["grains"].values())
        rows.append((r["label"], f"demo `metrics run`, {args.days} days", f"{r['run']:.1f} s",
                     f"dbt {dbt_total:.1f} s" if r["grains"] else "dbt time not reported"))
        for grain, (wall, dbt, scoring) in r["grains"].items():
            rollup = wall - scoring
            rows.append((r["label"], f"  {grain} rollups: wall / dbt / anomaly scoring",
                         f"{wall:.1f} s / {dbt:.1f} s / {scoring:.1f} s",
                         f"(rollup wall - dbt) / dbt = {(rollup - dbt) / dbt:.2f}" if dbt else ""))
        if scoring_total:
            rollup_total = sum(w - a for w, _, a in r["grains"].values())
            rows.append((r["label"], "  anomaly stage / rollup stage", f"{scoring_total / rollup_total:.3f}",
                         f"{scoring_total:.1f} s / {rollup_total:.1f} s (goal <= 0.1)"))
        rows.append((r["label"], "  Dagster events written, instance size", f"{r['events']:,}", f"{r['home_mb']:.1f} MB"))
        rows.append((r["label"], f"{args.backfill_days}-day hour backfill, one source (one ranged run)", f"{r['backfill']:.1f} s",
                     f"{r['backfill_partitions']:,} partitions x {r['backfill_assets']} asset(s); {r['backfill_events']:,} events, "
                     f"instance +{r['backfill_mb']:.1f} MB"))
        rows.append((r["label"], "`metrics run --metric revenue`, 7 days", f"{r['one_metric']:.1f} s",
                     f"dbt {r['one_metric_dbt']:.1f} s" if r["one_metric_dbt"] else ""))
        rows.append((r["label"], "`metrics series`, median of 10", f"{r['series']:.2f} s", "goal < 0.4 s"))
    print_table(["code", "measure", "result", "detail"], rows, right=("result",))


if __name__ == "__main__":
    main()
