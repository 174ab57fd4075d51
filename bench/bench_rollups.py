"""Rollup benchmarks on DuckDB (ratios from one run, printed as a table):

  1. generated rollup / one hand-written GROUP BY over the same rows (goal <= 1.2x)
  2. 10 metrics on one source / 1 metric (goal <= 1.5x); filters on categorical columns
     (accepted_values in the dbt YAML) take the keyed form, see README "Categorical columns"
  3. validate + compile of 1,000 generated metric files (goal < 5 s), and `dbt parse` of them

Usage: .venv/bin/python bench/bench_rollups.py [--events 10000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402
from dagster_project.compiler.writer import compile_project  # noqa: E402
from dagster_project.paths import REPO_ROOT, ProjectPaths  # noqa: E402
from dagster_project.validation.project import load_project  # noqa: E402
from dagster_project.warehouse.dbt_runner import run_dbt  # noqa: E402

E = "source: stg_entity_events\ntimestamp: created_at\n"
TEN = {
    "b/downloads.yml": f"name: downloads\n{E}aggregation: count\nfilter: \"metric_type = 'Download'\"\ndimensions: [entity_type]\n",
    "b/likes.yml": f"name: likes\n{E}aggregation: count\nfilter: \"metric_type = 'Like'\"\ndimensions: [entity_type]\n",
    "b/views.yml": f"name: views\n{E}aggregation: count\nfilter: \"metric_type = 'View'\"\n",
    "b/events.yml": f"name: events\n{E}aggregation: count\ndimensions: [entity_type]\n",
    "b/reactions_net.yml": f"name: reactions_net\n{E}aggregation: sum\nexpression: metric_value\nfilter: \"metric_type in ('ReactionLike', 'ReactionHeart')\"\n",
    "b/value_sum.yml": f"name: value_sum\n{E}aggregation: sum\nexpression: metric_value\ndimensions: [entity_type]\n",
    "b/value_avg.yml": f"name: value_avg\n{E}aggregation: avg\nexpression: metric_value\n",
    "b/value_max.yml": f"name: value_max\n{E}aggregation: max\nexpression: metric_value\n",
    "b/value_min.yml": f"name: value_min\n{E}aggregation: min\nexpression: metric_value\n",
    "b/heart_sum.yml": f"name: heart_sum\n{E}aggregation: sum\nexpression: metric_value\nfilter: \"metric_type = 'ReactionHeart'\"\n",
}
ONE = {"b/downloads.yml": TEN["b/downloads.yml"]}
HAND = """
select date_trunc('day', created_at) as bucket_start, entity_type,
  count(*) filter (where metric_type = 'Download') as downloads,
  count(*) filter (where metric_type = 'Like') as likes,
  count(*) filter (where metric_type = 'View') as views,
  count(*) as events,
  sum(metric_value) filter (where metric_type in ('ReactionLike', 'ReactionHeart')) as reactions_net,
  sum(metric_value) as value_sum, avg(metric_value) as value_avg,
  max(metric_value) as value_max, min(metric_value) as value_min,
  sum(metric_value) filter (where metric_type = 'ReactionHeart') as heart_sum
from analytics.stg_entity_events
where created_at >= '2026-01-01' and created_at < '2026-04-01'
group by grouping sets ((date_trunc('day', created_at)), (date_trunc('day', created_at), entity_type))
"""
WINDOW = (dt.date(2026, 1, 1), dt.date(2026, 4, 1))


def project(root: Path, metrics: dict[str, str]) -> ProjectPaths:
    for rel in ["dbt_project/dbt_project.yml", "dbt_project/profiles.yml", "macros", "models/staging", "seeds"]:
        src, dst = REPO_ROOT / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    (root / "metrics").mkdir()
    (root / "metrics" / "_config.yml").write_text("start: 2026-01-01\ngrains: [day]\n")
    for rel, text in metrics.items():
        (root / "metrics" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "metrics" / rel).write_text(text)
    return ProjectPaths(root)


def load_events(db: Path, n: int) -> None:
    con = duckdb.connect(str(db))
    con.execute("create schema if not exists raw")
    con.execute(f"""
        create or replace table raw.entity_events as
        select i as event_id,
          ['model','dataset','space','collection','paper'][1 + cast(hash(i, 1) % 5 as bigint)] as entity_type,
          'e' || (hash(i, 2) % 20000) as entity_id,
          'u' || (hash(i, 3) % 50000) as user_id,
          ['Download','Download','View','Like','ReactionLike','ReactionHeart'][1 + cast(hash(i, 4) % 6 as bigint)] as metric_type,
          case when hash(i, 5) % 5 = 0 then -1.0 else 1.0 end as metric_value,
          timestamp '2026-01-01' + to_microseconds(cast(hash(i, 6) % 7776000000000 as bigint)) as created_at
        from range({n}) t(i)""")
    for t, cols in (("orders", "order_id bigint, user_id varchar, country varchar, ordered_at timestamp, amount double, refunded boolean, latency_ms double"),
                    ("follower_snapshots", "user_id varchar, observed_at timestamp, followers bigint")):
        con.execute(f"create table if not exists raw.{t} ({cols})")
    con.close()


def compiled_sql(paths: ProjectPaths, model: str) -> str:
    path = paths.dbt_project_dir / "target" / "compiled" / "metrics_project" / ".." / "models" / "metrics" / "rollups" / f"{model}.sql"
    return path.resolve().read_text() if path.exists() else next((paths.dbt_project_dir / "target" / "compiled").rglob(f"{model}.sql")).read_text()


def best(con, sql: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        con.execute(f"create or replace temp table bench_out as {sql}")
        times.append(time.perf_counter() - t0)
    return min(times)


DISTINCT = {
    f"d/users_{i}.yml": f"name: users_{i}\n{E}aggregation: count_distinct\nexpression: user_id\n"
    + (f"filter: \"{f}\"\n" if f else "") + "dimensions: [entity_type]\n"
    for i, f in enumerate(["metric_type = 'Download'", "metric_type = 'Like'", "metric_type = 'View'",
                           "metric_type in ('ReactionLike', 'ReactionHeart')", None])
}
COUNTS = {
    f"c/events_{i}.yml": f"name: events_{i}\n{E}aggregation: count\nfilter: \"{f}\"\ndimensions: [entity_type]\n"
    for i, f in enumerate(["metric_type = 'Download'", "metric_type = 'Like'", "metric_type = 'View'",
                           "metric_type = 'ReactionLike'", "metric_type = 'ReactionHeart'", "metric_value < 0",
                           "metric_value > 0", "entity_type = 'model'", "entity_type = 'dataset'", "user_id like 'u1%'"])
}
FILTER_DISTINCT = """
select date_trunc('day', created_at) as bucket_start, entity_type, {aggs}
from analytics.stg_entity_events
where created_at >= '2026-01-01' and created_at < '2026-04-01'
group by grouping sets ((date_trunc('day', created_at)), (date_trunc('day', created_at), entity_type))
"""


def rollup_sql(tmp: Path, label: str, metrics: dict[str, str], build: bool = False) -> tuple[str, float]:
    """The compiled SQL of the day rollup for `metrics` (and the dbt build time if built)."""
    paths = project(tmp / label, metrics)
    compile_project(paths, load_project(paths).project)
    t0 = time.perf_counter()
    out = run_dbt(paths, "duckdb", ["build" if build else "compile", "--log-level", "none", "--select", "+rollup_stg_entity_events__by_created_at__day"],
                  window=WINDOW, run_id="bench", quiet=True)
    assert out.ok, out.failures
    return compiled_sql(paths, "rollup_stg_entity_events__by_created_at__day"), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    rows = []
    try:
        db = tmp / "bench.duckdb"
        os.environ["METRICS_DUCKDB_PATH"] = str(db)
        print(f"loading {args.events:,} events ...", flush=True)
        load_events(db, args.events)
        ten, build_time = rollup_sql(tmp, "ten", TEN, build=True)
        print("compiling single-metric rollups ...", flush=True)
        singles = [rollup_sql(tmp, f"one_{i}", {k: v})[0] for i, (k, v) in enumerate(TEN.items())]
        counts = rollup_sql(tmp, "counts", COUNTS)[0]
        count_singles = [rollup_sql(tmp, f"count_{i}", {k: v})[0] for i, (k, v) in enumerate(list(COUNTS.items())[:1])]
        distinct = rollup_sql(tmp, "distinct", DISTINCT)[0]
        distinct_singles = [rollup_sql(tmp, f"distinct_{i}", {k: v})[0] for i, (k, v) in enumerate(DISTINCT.items())]
        filters = [m.split('filter: "')[1].split('"')[0] if "filter:" in m else "true" for m in DISTINCT.values()]
        filter_sql = FILTER_DISTINCT.format(aggs=", ".join(f"count(distinct user_id) filter (where {f})" for f in filters))

        con = duckdb.connect(str(db))
        print("timing ...", flush=True)
        hand = best(con, HAND, args.repeat)
        gen10 = best(con, ten, args.repeat)
        one = [best(con, q, args.repeat) for q in singles]
        c10, c1 = best(con, counts, args.repeat), best(con, count_singles[0], args.repeat)
        d5 = best(con, distinct, args.repeat)
        d1 = [best(con, q, args.repeat) for q in distinct_singles]
        dfilter = best(con, filter_sql, args.repeat)
        con.close()
        rows += [
            ("generated rollup (10 mixed metrics) / hand-written GROUP BY", f"{gen10:.3f}s / {hand:.3f}s", gen10 / hand, "<= 1.2"),
            ("10 mixed metrics on one source / 1 metric (downloads)", f"{gen10:.3f}s / {one[0]:.3f}s", gen10 / one[0], "<= 1.5"),
            ("  same, hand-written 10-aggregate query / 1 metric", f"{hand:.3f}s / {one[0]:.3f}s", hand / one[0], "(floor)"),
            # filters on non-categorical columns (ranges, like): the one-pass form
            ("10 counts, non-categorical filters (one-pass) / 1 count", f"{c10:.3f}s / {c1:.3f}s", c10 / c1, "info"),
            ("10 mixed metrics in one scan / sum of 10 single-metric rollups", f"{gen10:.3f}s / {sum(one):.3f}s", gen10 / sum(one), "<= 0.5"),
            ("5 distinct counts, long form (generated) / sum of 5 single", f"{d5:.3f}s / {sum(d1):.3f}s", d5 / sum(d1), "<= 1"),
            ("5 distinct counts, count(DISTINCT) FILTER / long form", f"{dfilter:.3f}s / {d5:.3f}s", dfilter / d5, "> 1"),
            ("dbt build (seed, staging, rollup), 10 metrics", f"{build_time:.2f}s", None, "info"),
        ]

        many = {f"d{i % 10}/m{i}.yml": f"name: m{i}\n{E}aggregation: {'count' if i % 2 else 'sum'}\n"
                + ("" if i % 2 else "expression: metric_value\n") + f"filter: \"entity_type = 'model' and metric_value > {i % 7}\"\n"
                for i in range(1000)}
        paths = project(tmp / "many", many)
        t0 = time.perf_counter()
        result = load_project(paths)
        compile_project(paths, result.project)
        vc = time.perf_counter() - t0
        assert result.ok
        t0 = time.perf_counter()
        out = run_dbt(paths, "duckdb", ["parse", "--no-partial-parse"], quiet=True)
        parse = time.perf_counter() - t0
        assert out.ok, out.failures
        rows.append(("validate + compile, 1,000 metric files", f"{vc:.2f}s", None, "< 5 s"))
        rows.append(("dbt parse of the result (full parse)", f"{parse:.2f}s", None, "info"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.events:,} events, DuckDB {duckdb.__version__}, {os.cpu_count()} cores, best of {args.repeat}\n")
    print_table(["measure", "time", "ratio", "goal"],
                [(name, t, None if ratio is None else f"{ratio:.2f}", goal) for name, t, ratio, goal in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
