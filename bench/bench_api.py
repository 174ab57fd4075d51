"""Read API latency (a table, not a timed test), on DuckDB, through HTTP on loopback:
`/totals` for 1,000 entity values with windows day..all over a year of daily rollups,
and `/series` for one metric over 180 days, cached and uncached, against the same
per-entity totals computed straight from the raw events. Goals (issue 13): /totals p99
< 100 ms; /series p99 < 20 ms cached, < 100 ms uncached.

The rollup table is written by SQL from the raw events here (what the generated rollup
computes for a count), with a stand-in `metric_series_day` view over it: no dbt, so the
set-up scales. Usage: .venv/bin/python bench/bench_api.py [--entities 100000] [--days 365]
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


def build(paths, entities: int, days: int, end: dt.date) -> int:
    import duckdb

    from dagster_project.compiler.plan import rollup_name
    start = end - dt.timedelta(days=days)
    table = rollup_name("stg_entity_events", "created_at", "day")
    con = duckdb.connect(str(paths.duckdb_path))
    con.execute("create schema raw; create schema analytics")
    # ~2 events per entity and day, skewed so totals differ per entity
    con.execute(f"""create table raw.entity_events as
        select 'e' || (e % {entities}) as entity_id, timestamp '{start}' + to_seconds(s * 86400 // 2) as created_at
        from range({entities}) t(e), range({days} * 2) u(s) where hash(e, s) % 7 < 4""")
    n = con.execute("select count(*) from raw.entity_events").fetchone()[0]
    con.execute(f"""create table analytics.{table} as
        select 'downloads' as metric, date_trunc('day', created_at) as bucket_start, 'entity_id' as dimension,
            entity_id as dimension_value, count(*)::double as value, count(*) as count, null::double as sum,
            'bench' as run_id, now()::timestamp as computed_at
        from raw.entity_events group by all
        union all
        select 'downloads', date_trunc('day', created_at), '', '', count(*)::double, count(*), null, 'bench', now()::timestamp
        from raw.entity_events group by all""")
    con.execute(f"create view analytics.metric_series_day as select * from analytics.{table}")
    con.close()
    return n


def timed(fn, n: int) -> tuple[float, float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return statistics.median(out), out[min(len(out) - 1, int(len(out) * 0.99))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    import duckdb
    import httpx
    import uvicorn
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        end = dt.date.today()
        os.environ.update(METRICS_PROJECT_DIR=tmp, METRICS_DUCKDB_PATH=str(root / "warehouse" / "metrics.duckdb"))
        paths = copy_project(root, metrics={"growth/downloads.yml": METRIC.format(start=end - dt.timedelta(days=args.days))})
        paths.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        events = build(paths, args.entities, args.days, end)
        print(f"{events:,} raw events, {args.entities:,} entities x {args.days} days ({time.perf_counter() - t0:.1f}s)")
        from dagster_project.api.app import create_app
        server = uvicorn.Server(uvicorn.Config(create_app(paths, "duckdb"), host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        c.get("/health").raise_for_status()

        def values(i: int) -> str:
            return ",".join(f"e{(i * 7919 + k * 17) % args.entities}" for k in range(1000))

        def totals(i: int) -> None:
            c.get(f"/metrics/downloads/totals?dimension=entity_id&values={values(i)}").raise_for_status()

        rows = [("/totals 1,000 values, uncached", *timed(totals, args.requests)),
                ("/totals 1,000 values, cached", *timed(lambda i: totals(0), args.requests)),
                ("/series 180 days, uncached", *timed(lambda i: c.get(f"/metrics/downloads/series?days=180&_={i}")
                                                      .raise_for_status(), args.requests)),
                ("/series 180 days, cached", *timed(lambda i: c.get("/metrics/downloads/series?days=180")
                                                    .raise_for_status(), args.requests))]
        raw = duckdb.connect(str(paths.duckdb_path), read_only=True)
        today = dt.datetime.combine(end, dt.time())
        lows = [today - dt.timedelta(days=d) for d in (1, 7, 30, 365)] + [dt.datetime(1970, 1, 1)]
        cols = ", ".join(f"count(*) filter (where created_at >= ?)" for _ in lows)

        def from_raw(i: int) -> None:
            ids = values(i).split(",")
            raw.execute(f"select entity_id, {cols} from raw.entity_events where entity_id in "
                        f"({', '.join('?' for _ in ids)}) and created_at < ? group by entity_id", [*lows, *ids, today]).fetchall()

        rows.append(("raw events, same totals (DuckDB, no HTTP)", *timed(from_raw, max(10, args.requests // 5))))
        raw.close()
        server.should_exit = True
        thread.join(timeout=10)
    print_table(["read", "p50 ms", "p99 ms"], [(r, f"{a:.1f}", f"{b:.1f}") for r, a, b in rows], right=("p50 ms", "p99 ms"))


if __name__ == "__main__":
    main()
