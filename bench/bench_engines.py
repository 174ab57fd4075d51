"""Per-warehouse rollup benchmarks on the same generated events (DuckDB, Postgres,
ClickHouse on chDB), printed as one table:

  - generated rollup (10 metrics) / hand-written GROUP BY, same engine (goal <= 1.2)
  - the keyed form / the one-pass form of the same rollup (which one each engine uses)
  - one scan for 10 metrics / sum of 10 single-metric rollups (goal <= 0.4 ClickHouse, <= 0.5 DuckDB)
  - rows per second per core: hourly count+sum, and hourly exact distinct users

Usage: .venv/bin/python bench/bench_engines.py [--events 10000000] [--targets duckdb,postgres,clickhouse]
Postgres must be running (bash scripts/postgres.sh).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402
from bench.bench_rollups import TEN, WINDOW, project  # noqa: E402
from dagster_project.compiler.writer import compile_project  # noqa: E402
from dagster_project.validation.project import load_project  # noqa: E402
from dagster_project.warehouse.connection import Warehouse, pg_settings  # noqa: E402
from dagster_project.warehouse.dbt_runner import environ, run_dbt  # noqa: E402

W = "created_at >= '2026-01-01' and created_at < '2026-04-01'"
HAND = {
    "duckdb": "select date_trunc('day', created_at) b, entity_type, {aggs} from analytics.stg_entity_events where {w} group by grouping sets ((b), (b, entity_type))",
    "postgres": "select date_trunc('day', created_at) b, entity_type, {aggs} from analytics.stg_entity_events where {w} group by grouping sets ((1), (1, 2))",
    "clickhouse": "select toStartOfDay(created_at) b, entity_type, {aggs} from analytics.stg_entity_events where {w} group by grouping sets ((b), (b, entity_type))",
}
_FILTER = ["count(*) filter (where metric_type = 'Download')", "count(*) filter (where metric_type = 'Like')",
           "count(*) filter (where metric_type = 'View')", "count(*)",
           "sum(metric_value) filter (where metric_type in ('ReactionLike', 'ReactionHeart'))", "sum(metric_value)",
           "avg(metric_value)", "max(metric_value)", "min(metric_value)", "sum(metric_value) filter (where metric_type = 'ReactionHeart')"]
_IF = ["countIf(metric_type = 'Download')", "countIf(metric_type = 'Like')", "countIf(metric_type = 'View')", "count()",
       "sumIf(metric_value, metric_type in ('ReactionLike', 'ReactionHeart'))", "sum(metric_value)", "avg(metric_value)",
       "max(metric_value)", "min(metric_value)", "sumIf(metric_value, metric_type = 'ReactionHeart')"]
AGGS = {"filter": ", ".join(f"{a} as a{i}" for i, a in enumerate(_FILTER)),
        "clickhouse": ", ".join(f"{a} as a{i}" for i, a in enumerate(_IF))}
RATE = {
    "count_sum": {"duckdb": "select date_trunc('hour', created_at) h, count(*) as n, sum(metric_value) as s from raw.entity_events group by 1",
                  "postgres": "select date_trunc('hour', created_at) h, count(*) as n, sum(metric_value) as s from raw.entity_events group by 1",
                  "clickhouse": "select toStartOfHour(created_at) h, count() as n, sum(metric_value) as s from raw.entity_events group by h"},
    "distinct": {"duckdb": "select date_trunc('hour', created_at) h, count(distinct user_id) as n from raw.entity_events group by 1",
                 "postgres": "select date_trunc('hour', created_at) h, count(distinct user_id) as n from raw.entity_events group by 1",
                 "clickhouse": "select toStartOfHour(created_at) h, uniqExact(user_id) as n from raw.entity_events group by h"},
}
GEN_SQL = """select i as event_id,
  ['model','dataset','space','collection','paper'][1 + cast(hash(i, 1) % 5 as bigint)] as entity_type,
  'e' || (hash(i, 2) % 20000) as entity_id, 'u' || (hash(i, 3) % 50000) as user_id,
  ['Download','Download','View','Like','ReactionLike','ReactionHeart'][1 + cast(hash(i, 4) % 6 as bigint)] as metric_type,
  case when hash(i, 5) % 5 = 0 then -1.0 else 1.0 end as metric_value,
  timestamp '2026-01-01' + to_microseconds(cast(hash(i, 6) % 7776000000000 as bigint)) as created_at
from range({n}) t(i)"""
OTHER_RAW = {"orders": ("order_id", "user_id", "country", "ordered_at", "amount", "refunded", "latency_ms"),
             "follower_snapshots": ("user_id", "observed_at", "followers")}


class Engine:
    def __init__(self, target: str, paths):
        self.target, self.wh = target, Warehouse(target, paths)

    def run(self, sql: str) -> float:
        t0 = time.perf_counter()
        with self.wh.connect() as con:
            if self.target == "duckdb":
                con.execute(f"create or replace temp table bench_out as {sql}")
            elif self.target == "postgres":
                cur = con.cursor()
                cur.execute("drop table if exists bench_out")
                cur.execute(f"create temp table bench_out as {sql}")
            else:
                con.command("drop table if exists bench_out")
                con.command(f"create table bench_out engine = Memory as {sql}")
        return time.perf_counter() - t0

    def best(self, sql: str, repeat: int) -> float:
        return min(self.run(sql) for _ in range(repeat))

    def best_pair(self, a: str, b: str, repeat: int) -> tuple[float, float]:
        """Best of `repeat` for two queries run alternately, so a noisy neighbour on a
        shared machine weighs on both sides of a ratio alike."""
        times = [(self.run(a), self.run(b)) for _ in range(repeat)]
        return min(t[0] for t in times), min(t[1] for t in times)


def load(engine: Engine, n: int, tmp: Path) -> None:
    """The same events on every engine: generated by DuckDB, copied over."""
    parquet = tmp / "events.parquet"
    if not parquet.exists():
        duckdb.sql(f"copy ({GEN_SQL.format(n=n)}) to '{parquet}' (format parquet)")
    frame = duckdb.sql(f"select * from '{parquet}'").df()
    import datetime as dt
    engine.wh.replace_rows("entity_events", frame, "created_at", dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
    import pandas as pd
    for table, cols in OTHER_RAW.items():  # empty, so every staging view builds
        empty = pd.DataFrame({c: pd.Series(dtype="float64" if c in ("amount", "latency_ms") else
                                           "datetime64[us]" if c.endswith("_at") else "int64" if c in ("order_id", "followers") else
                                           "bool" if c == "refunded" else "object") for c in cols})
        engine.wh.replace_rows(table, empty, cols[3] if table == "orders" else "observed_at", dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))


def compiled(paths, target: str, form: str = "") -> str:
    """The day rollup's SQL; `form` forces the keyed or the direct form (else the engine's choice)."""
    with environ({"METRICS_ROLLUP_FORM": form}):
        out = run_dbt(paths, target, ["compile", "--log-level", "none", "--select", "rollup_stg_entity_events__by_created_at__day"], window=WINDOW, run_id="bench", quiet=True)
    assert out.ok, out.failures
    return next((paths.dbt_project_dir / "target" / "compiled").rglob("rollup_stg_entity_events__by_created_at__day.sql")).read_text()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--targets", default="duckdb,postgres,clickhouse")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="metrics-bench-engines-"))
    rows, cores = [], os.cpu_count() or 1
    try:
        os.environ["METRICS_DUCKDB_PATH"] = str(tmp / "bench.duckdb")
        os.environ["METRICS_CHDB_PATH"] = str(tmp / "chdb")
        ten = project(tmp / "ten", TEN)
        compile_project(ten, load_project(ten).project)
        singles = []
        for i, (k, v) in enumerate(TEN.items()):
            p = project(tmp / f"one_{i}", {k: v})
            compile_project(p, load_project(p).project)
            singles.append(p)
        for target in args.targets.split(","):
            print(f"[{target}] loading {args.events:,} events ...", flush=True)
            engine = Engine(target, ten)
            if target == "postgres":
                import psycopg2
                admin = psycopg2.connect(**pg_settings())
                admin.autocommit = True
                admin.cursor().execute("drop schema if exists analytics cascade; drop schema if exists raw cascade")
                admin.close()
            load(engine, args.events, tmp)
            out = run_dbt(ten, target, ["build", "--select", "+stg_entity_events"], quiet=True)
            assert out.ok, out.failures
            if target == "postgres":
                with engine.wh.connect() as con:
                    con.cursor().execute("analyze raw.entity_events")
            print(f"[{target}] compiling and timing ...", flush=True)
            gen = compiled(ten, target)
            keyed, direct = compiled(ten, target, "keyed"), compiled(ten, target, "direct")
            assert "partials as" in keyed and "partials as" not in direct
            one = [compiled(p, target) for p in singles]
            hand = HAND[target].format(aggs=AGGS["clickhouse" if target == "clickhouse" else "filter"], w=W)
            t_gen, t_hand = engine.best_pair(gen, hand, args.repeat)
            t_keyed, t_direct = engine.best_pair(keyed, direct, args.repeat)
            t_one = [engine.best(q, args.repeat) for q in one]
            t_cs = engine.best(RATE["count_sum"][target], args.repeat)
            t_d = engine.best(RATE["distinct"][target], args.repeat)
            goal = {"clickhouse": "<= 0.4", "duckdb": "<= 0.5"}.get(target, "info")
            rows += [
                (target, "generated rollup / hand-written GROUP BY", f"{t_gen:.3f}s / {t_hand:.3f}s", f"{t_gen / t_hand:.2f}", "<= 1.2"),
                (target, "keyed form / one-pass form (categorical filters)", f"{t_keyed:.3f}s / {t_direct:.3f}s", f"{t_keyed / t_direct:.2f}",
                 "picks keyed" if "partials as" in gen else "picks one-pass"),
                (target, "10 metrics in one scan / sum of 10 single-metric", f"{t_gen:.3f}s / {sum(t_one):.3f}s", f"{t_gen / sum(t_one):.2f}", goal),
                (target, "hourly count+sum, rows/s/core", f"{t_cs:.3f}s", f"{args.events / t_cs / cores / 1e6:.1f}M", "info"),
                (target, "hourly exact distinct, rows/s/core", f"{t_d:.3f}s", f"{args.events / t_d / cores / 1e6:.1f}M", "info"),
            ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.events:,} events, {cores} cores, best of {args.repeat}\n")
    print_table(["engine", "measure", "time", "ratio", "goal"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
