"""Read API latency (a table, not a timed test), through HTTP on loopback, on DuckDB and
ClickHouse (chDB): `/totals` for 1,000 entity values with windows day..all over a year of
daily rollups, and `/series` for one metric over 180 days, cached and uncached; against
the same per-entity totals computed without the API: straight from the raw events, and
from the day rollup by one query per call (what /totals did before its totals index).
Goals (issue 13): /totals p99 < 100 ms; /series p99 < 20 ms cached, < 100 ms uncached.

The rollup table is written by SQL from the raw events here (what the generated rollup
computes for a count, with the ClickHouse model's ordering and partitioning), with a
stand-in `metric_series_day` view over it: no dbt, so the set-up scales.
Usage: .venv/bin/python bench/bench_api.py [--entities 100000] [--days 365] [--targets duckdb,clickhouse]
                                          [--postgres-raw]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_dagster import copy_project  # noqa: E402
from bench.table import print_table  # noqa: E402

METRIC = "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n" \
         "dimensions: [entity_id]\ngrains: [day]\nstart: {start}\n"
WINDOW_DAYS = (1, 7, 30, 365)


def _events_sql(entities: int, days: int, start: dt.date, target: str) -> str:
    """~1.1 events per entity and day, skewed so totals differ per entity."""
    if target == "clickhouse":
        return f"""select concat('e', toString(e.number % {entities})) as entity_id,
                toDateTime64('{start} 00:00:00', 6, 'UTC') + toIntervalSecond(intDiv(s.number * 86400, 2)) as created_at
            from numbers({entities}) e cross join numbers({days} * 2) s where cityHash64(e.number, s.number) % 7 < 4"""
    return f"""select 'e' || (e % {entities}) as entity_id, timestamp '{start}' + to_seconds(s * 86400 // 2) as created_at
        from range({entities}) t(e), range({days} * 2) u(s) where hash(e, s) % 7 < 4"""


def build(target: str, paths, entities: int, days: int, end: dt.date):
    """Raw events and the day rollup; returns (event count, a query function on the source)."""
    from dagster_project.compiler.plan import rollup_name
    start = end - dt.timedelta(days=days)
    table = rollup_name("stg_entity_events", "created_at", "day")
    rollup = f"""select 'downloads' as metric, {{day}} as bucket_start, 'entity_id' as dimension,
            entity_id as dimension_value, {{value}} as value, count(*) as count, {{null_sum}} as sum,
            'bench' as run_id, {{now}} as computed_at from raw.entity_events group by entity_id, bucket_start
        union all
        select 'downloads', {{day}}, '', '', {{value}}, count(*), {{null_sum}}, 'bench', {{now}}
        from raw.entity_events group by 2"""
    if target == "clickhouse":
        import clickhouse_connect
        con = clickhouse_connect.get_client(interface="chdb", path=str(paths.chdb_path))
        con.command("create database if not exists raw")
        con.command("create database if not exists analytics")
        con.command("create table raw.entity_events (entity_id String, created_at DateTime64(6, 'UTC')) "
                    "engine = MergeTree order by created_at")
        con.command(f"insert into raw.entity_events {_events_sql(entities, days, start, target)}")
        con.command(f"""create table analytics.{table} engine = MergeTree partition by toYYYYMM(bucket_start)
            order by (metric, dimension, dimension_value, bucket_start) as """ + rollup.format(
            day="toStartOfDay(created_at)", value="toFloat64(count())", null_sum="CAST(NULL, 'Nullable(Float64)')",
            now="toDateTime64(now64(6), 6, 'UTC')"))
        con.command(f"create view analytics.metric_series_day as select * from analytics.{table}")
        # settle the background merges this process started, as a finished run leaves the
        # folder (a merge changes the folder, and so starts a new snapshot)
        for t in ("raw.entity_events", f"analytics.{table}"):
            con.command(f"optimize table {t} final")
        while con.query("select count() from system.merges").result_rows[0][0]:
            time.sleep(0.5)
        n = con.query("select count() from raw.entity_events").result_rows[0][0]

        def query(sql: str, params: list):
            from dagster_project.warehouse.connection import _inline_params
            return con.query(_inline_params(sql, params)).result_rows
        return n, query, con.close
    import duckdb
    con = duckdb.connect(str(paths.duckdb_path))
    con.execute("create schema raw; create schema analytics")
    con.execute(f"create table raw.entity_events as {_events_sql(entities, days, start, target)}")
    con.execute(f"create table analytics.{table} as " + rollup.format(
        day="date_trunc('day', created_at)", value="count(*)::double", null_sum="null::double", now="now()::timestamp"))
    con.execute(f"create view analytics.metric_series_day as select * from analytics.{table}")
    n = con.execute("select count(*) from raw.entity_events").fetchone()[0]
    con.close()
    reader = duckdb.connect(str(paths.duckdb_path), read_only=True)
    return n, lambda sql, params: reader.execute(sql, params).fetchall(), reader.close


def timed(fn, n: int) -> tuple[float, float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return statistics.median(out), out[min(len(out) - 1, int(len(out) * 0.99))]


def run_target(target: str, args, end: dt.date) -> list[tuple]:
    import httpx
    import uvicorn
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(METRICS_PROJECT_DIR=tmp, METRICS_DUCKDB_PATH=str(root / "warehouse" / "metrics.duckdb"),
                          METRICS_CHDB_PATH=str(root / "warehouse" / "chdb"))
        paths = copy_project(root, metrics={"growth/downloads.yml": METRIC.format(start=end - dt.timedelta(days=args.days))})
        paths.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        events, query, close = build(target, paths, args.entities, args.days, end)
        print(f"{target}: {events:,} raw events, {args.entities:,} entities x {args.days} days "
              f"(built in {time.perf_counter() - t0:.0f} s)", flush=True)
        from dagster_project.api.app import create_app
        server = uvicorn.Server(uvicorn.Config(create_app(paths, target), host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        t0 = time.perf_counter()
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit(f"{target}: the server did not start (see the error above)")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        c.get("/health").raise_for_status()
        ready = time.perf_counter() - t0

        def values(i: int) -> str:
            return ",".join(f"e{(i * 7919 + k * 17) % args.entities}" for k in range(1000))

        def totals(i: int) -> None:
            c.get(f"/metrics/downloads/totals?dimension=entity_id&values={values(i)}").raise_for_status()

        label = {"duckdb": "DuckDB", "clickhouse": "ClickHouse (chDB)"}[target]
        rows.append((label, "server start to first answer (snapshot copy)", f"{ready * 1000:.0f}", ""))
        t0 = time.perf_counter()
        totals(10_000)
        rows.append((label, "/totals, first call after a materialization (builds the index)",
                     f"{(time.perf_counter() - t0) * 1000:.0f}", ""))
        rows.append((label, "/totals 1,000 values, uncached", *timed(totals, args.requests)))
        rows.append((label, "/totals 1,000 values, cached", *timed(lambda i: totals(0), args.requests)))
        rows.append((label, "/series 180 days, uncached", *timed(
            lambda i: c.get(f"/metrics/downloads/series?days=180&_={i}").raise_for_status(), args.requests)))
        c.get("/metrics/downloads/series?days=180").raise_for_status()  # the cached rows: after one miss
        rows.append((label, "/series 180 days, cached", *timed(
            lambda i: c.get("/metrics/downloads/series?days=180").raise_for_status(), args.requests)))
        server.should_exit = True
        thread.join(timeout=30)

        today = dt.datetime.combine(end, dt.time())
        lows = [today - dt.timedelta(days=d) for d in WINDOW_DAYS] + [dt.datetime(1970, 1, 1)]
        raw_cols = ", ".join("sum(case when created_at >= ? then 1 else 0 end)" for _ in lows)
        roll_cols = ", ".join("sum(case when bucket_start >= ? then value else 0 end)" for _ in lows)
        from dagster_project.compiler.plan import rollup_name
        table = rollup_name("stg_entity_events", "created_at", "day")

        def from_raw(i: int) -> None:
            ids = values(i).split(",")
            query(f"select entity_id, {raw_cols} from raw.entity_events where entity_id in "
                  f"({', '.join('?' for _ in ids)}) and created_at < ? group by entity_id", [*lows, *ids, today])

        def from_rollup(i: int) -> None:
            ids = values(i).split(",")
            query(f"select dimension_value, {roll_cols} from analytics.{table} where metric = ? and dimension = ? "
                  f"and dimension_value in ({', '.join('?' for _ in ids)}) and bucket_start < ? group by dimension_value",
                  [*lows, "downloads", "entity_id", *ids, today])

        n = max(10, args.requests // 5)
        rows.append((label, "same totals, one query on the day rollup per call (before; no HTTP)", *timed(from_rollup, n)))
        rows.append((label, "same totals straight from the raw events (no HTTP)", *timed(from_raw, n)))
        close()
        if target == "duckdb" and args.postgres_raw:
            rows.append(postgres_raw(paths, values, raw_cols, lows, today))
    return rows


def postgres_raw(paths, values, raw_cols: str, lows: list, today) -> tuple:
    """The seed comparison: the same totals from the raw events in a Postgres table (no
    index; a fresh database on the project's server, dropped afterwards)."""
    import duckdb
    import psycopg2

    from dagster_project.warehouse.connection import pg_settings
    csv = paths.root / "events.csv"
    duckdb.connect(str(paths.duckdb_path), read_only=True).execute(
        f"copy raw.entity_events to '{csv}' (header false)")
    admin = psycopg2.connect(**pg_settings())
    admin.autocommit = True
    name = f"bench_api_raw_{os.getpid()}"
    admin.cursor().execute(f"create database {name}")
    try:
        con = psycopg2.connect(**{**pg_settings(), "dbname": name})
        cur = con.cursor()
        cur.execute("create table entity_events (entity_id text, created_at timestamp)")
        with open(csv) as f:
            cur.copy_expert("copy entity_events from stdin with (format csv)", f)
        cur.execute("analyze entity_events")
        con.commit()

        def from_raw(i: int) -> None:
            ids = values(i).split(",")
            cur.execute(f"select entity_id, {raw_cols.replace('?', '%s')} from entity_events where entity_id in "
                        f"({', '.join('%s' for _ in ids)}) and created_at < %s group by entity_id", [*lows, *ids, today])
            cur.fetchall()
        result = ("Postgres", "same totals straight from the raw events (no HTTP)", *timed(from_raw, 5))
        con.close()
        return result
    finally:
        admin.cursor().execute(f"drop database if exists {name} with (force)")
        admin.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--targets", default="duckdb,clickhouse")
    ap.add_argument("--postgres-raw", action="store_true",
                    help="also time the totals from the raw events loaded into Postgres (the seed comparison; minutes)")
    args = ap.parse_args()
    end = dt.date.today()
    rows = []
    for target in args.targets.split(","):
        rows += run_target(target, args, end)
    print_table(["warehouse", "read", "p50 ms", "p99 ms"],
                [(w, r, f"{a:.1f}" if isinstance(a, float) else a, f"{b:.1f}" if isinstance(b, float) else b)
                 for w, r, a, b in rows], right=("p50 ms", "p99 ms"))


if __name__ == "__main__":
    main()
