"""Dagster benchmarks (ratios from one run, printed as a table):

  - backfill of 90 daily partitions (single-run policy) / one dbt build of the same range (goal <= 1.5)
  - dbt invocations and full re-parses per backfill, for 1, 10 and 90 partitions (goal: constant)
  - definitions load time with 1,000 metrics (goal < 10 s)

Usage: .venv/bin/python bench/bench_dagster.py [--events-per-day 6000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402
from dagster import DagsterInstance  # noqa: E402
from dagster_project.defs.partitions import PARTITION_RANGE_END_TAG as ASSET_PARTITION_RANGE_END_TAG  # noqa: E402
from dagster_project.defs.partitions import PARTITION_RANGE_START_TAG as ASSET_PARTITION_RANGE_START_TAG  # noqa: E402

from dagster_project.compiler.writer import compile_project  # noqa: E402
from dagster_project.demo.generator import TIME_COLUMNS, generate_range  # noqa: E402
from dagster_project.paths import REPO_ROOT, ProjectPaths  # noqa: E402
from dagster_project.validation.project import load_project  # noqa: E402
from dagster_project.warehouse.connection import Warehouse  # noqa: E402
from dagster_project.warehouse.dbt_runner import run_dbt  # noqa: E402

START = dt.date(2026, 1, 1)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def copy_project(root: Path, metrics_from: Path | None = None, metrics: dict[str, str] | None = None) -> ProjectPaths:
    for rel in ["dbt_project/dbt_project.yml", "dbt_project/profiles.yml", "macros", "models/staging", "seeds"]:
        src, dst = REPO_ROOT / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    if metrics_from:
        shutil.copytree(metrics_from, root / "metrics")
    else:
        (root / "metrics").mkdir()
        for rel, text in (metrics or {}).items():
            (root / "metrics" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "metrics" / rel).write_text(text)
    (root / "metrics" / "_config.yml").write_text(f"start: {START}\ngrains: [hour, day, week, month]\n")
    return ProjectPaths(root)


def definitions(paths: ProjectPaths):
    os.environ["METRICS_PROJECT_DIR"] = str(paths.root)
    os.environ["METRICS_DUCKDB_PATH"] = str(paths.duckdb_path)
    from dagster_project.defs import resources
    from dagster_project.defs.builder import build_definitions
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    return build_definitions()


def full_parses(paths: ProjectPaths) -> int:
    log = paths.dbt_project_dir / "logs" / "dbt.log"
    if not log.exists():
        return 0
    text = log.read_text(errors="replace")
    return text.count("Unable to do partial parsing") + text.count("Partial parse save file not found")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events-per-day", type=int, default=6_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="metrics-bench-dagster-"))
    rows = []
    try:
        paths = copy_project(tmp / "demo", metrics_from=REPO_ROOT / "metrics")
        os.environ["METRICS_DUCKDB_PATH"] = str(paths.duckdb_path)
        print("writing 90 days of demo data ...", flush=True)
        frames = generate_range(START, START + dt.timedelta(days=90), events_per_day=args.events_per_day)
        wh = Warehouse("duckdb", paths)
        for table, frame in frames.items():
            wh.replace_rows(table, frame, TIME_COLUMNS[table], dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
        compile_project(paths, load_project(paths).project)
        defs = definitions(paths)
        instance = DagsterInstance.ephemeral()
        assert defs.resolve_job_def("staging_job").execute_in_process(instance=instance, run_config=QUIET).success
        job = defs.resolve_job_def("rollups_day_job")
        keys = job.partitions_def.get_partition_keys()[:90]

        def backfill(n: int) -> float:
            t0 = time.perf_counter()
            res = job.execute_in_process(instance=instance, run_config=QUIET,
                                         tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[n - 1]})
            assert res.success
            return time.perf_counter() - t0

        backfill(1)  # warm: the partial-parse file exists from here on
        print("backfill of 90 daily partitions ...", flush=True)
        t_backfill = backfill(90)
        # the baseline: the same build as one dbt command, the way a user would run it
        env = {**os.environ, "METRICS_WINDOW_START": START.isoformat(),
               "METRICS_WINDOW_END": (START + dt.timedelta(days=90)).isoformat(), "METRICS_RUN_ID": "bench"}
        cmd = [str(Path(sys.executable).parent / "dbt"), "build", "--select", "tag:grain_day", "--exclude", "tag:metrics_draft",
               "--project-dir", str(paths.dbt_project_dir), "--profiles-dir", str(paths.dbt_project_dir), "-q"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, cwd=paths.dbt_project_dir)
        t_build = time.perf_counter() - t0
        rows.append(("backfill, 90 daily partitions (one run) / one `dbt build` of the range",
                     f"{t_backfill:.2f}s / {t_build:.2f}s", f"{t_backfill / t_build:.2f}", "<= 1.5"))
        for n in (1, 10, 90):
            before_runs = len(instance.get_runs())
            before_parses = full_parses(paths)
            backfill(n)
            runs = len(instance.get_runs()) - before_runs
            rows.append((f"backfill of {n} partitions: Dagster runs / dbt full re-parses", f"{runs} / {full_parses(paths) - before_parses}",
                         "", "constant"))

        many = {f"d{i % 10}/m{i}.yml": f"name: m{i}\nsource: stg_entity_events\ntimestamp: created_at\n"
                f"aggregation: count\nfilter: \"metric_value > {i % 7}\"\n" for i in range(1000)}
        big = copy_project(tmp / "many", metrics=many)
        compile_project(big, load_project(big).project)
        assert run_dbt(big, "duckdb", ["parse"], quiet=True).ok
        t0 = time.perf_counter()
        big_defs = definitions(big)
        t_load = time.perf_counter() - t0
        n_assets = len(list(big_defs.resolve_asset_graph().get_all_asset_keys()))
        rows.append(("definitions load, 1,000 metrics (validate + build, manifest parsed)", f"{t_load:.2f}s", f"{n_assets} assets", "< 10 s"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores, DuckDB, demo data {args.events_per_day:,} events/day\n")
    print_table(["measure", "value", "ratio", "goal"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
