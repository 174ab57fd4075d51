"""ClickHouse window rewrite: lightweight DELETE + INSERT (what the metric_rollup
materialization does) against partition replacement (rebuild each touched month in a
scratch table, then ALTER TABLE ... REPLACE PARTITION), on chDB. Both must leave the
same rows; the table prints the time of each for a routine day, a 7-day lookback and a
whole-month backfill.

Usage: .venv/bin/python bench/bench_clickhouse_window.py [--metrics 20] [--values 10] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

from pathlib import Path

import chdb
from chdb import session as chs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import print_table  # noqa: E402

LAYOUT = "engine = MergeTree() partition by toYYYYMM(bucket_start) order by (metric, dimension, dimension_value, bucket_start)"
COLUMNS = ("metric String, bucket_start DateTime, dimension String, dimension_value String, value Nullable(Float64), "
           "count Nullable(Int64), sum Nullable(Float64), run_id String, computed_at DateTime")
# (label, window start, window end): a routine day, a settle lookback, a backfill of a month
WINDOWS = [("1 day", "2026-06-14 00:00:00", "2026-06-15 00:00:00"),
           ("7 days across a month edge", "2026-06-27 00:00:00", "2026-07-04 00:00:00"),
           ("whole month", "2026-06-01 00:00:00", "2026-07-01 00:00:00")]


def fingerprint(s, table: str) -> str:
    return s.query(f"select count(), groupBitXor(cityHash64(metric, bucket_start, dimension, dimension_value, value, run_id)) "
                   f"from bench.{table}", "CSV").bytes().decode().strip()


def setup(s, metrics: int, values: int) -> int:
    s.query("create database if not exists bench")
    s.query(f"create table bench.base ({COLUMNS}) {LAYOUT}")
    # hourly rows for a year: every metric's total plus `values` slice values
    s.query(f"""insert into bench.base
        select 'm' || toString(a.number), toDateTime('2026-01-01 00:00:00') + b.number * 3600,
               if(c.number = 0, '', 'dim'), if(c.number = 0, '', 'v' || toString(c.number)),
               (a.number * 7 + b.number * 13 + c.number) % 1000, 1, null, 'old', now()
        from numbers({metrics}) as a cross join numbers(8760) as b cross join numbers({values + 1}) as c""")
    return int(s.query("select count() from bench.base", "CSV").bytes())


def staged_rows(s, start: str, end: str, names: list[str]) -> None:
    s.query("drop table if exists bench.staged")
    s.query(f"create table bench.staged ({COLUMNS}) {LAYOUT}")
    s.query(f"""insert into bench.staged select metric, bucket_start, dimension, dimension_value, value + 1, count, sum, 'new', now()
        from bench.base where bucket_start >= '{start}' and bucket_start < '{end}' and metric in {tuple(names)}""")


def fresh_target(s) -> None:
    s.query("drop table if exists bench.t")
    s.query(f"create table bench.t ({COLUMNS}) {LAYOUT}")
    s.query("insert into bench.t select * from bench.base")


def delete_insert(s, start: str, end: str, names: list[str]) -> None:
    s.query(f"delete from bench.t where bucket_start >= '{start}' and bucket_start < '{end}' and metric in {tuple(names)}")
    s.query("insert into bench.t select * from bench.staged")


def replace_partitions(s, start: str, end: str, names: list[str]) -> None:
    months = s.query(f"select distinct toYYYYMM(toDateTime('{start}') + number * 86400) from numbers(dateDiff('day', toDateTime('{start}'), toDateTime('{end}')))",
                     "CSV").bytes().decode().split()
    for month in months:
        s.query("drop table if exists bench.scratch")
        s.query(f"create table bench.scratch ({COLUMNS}) {LAYOUT}")
        s.query(f"""insert into bench.scratch select * from bench.t where toYYYYMM(bucket_start) = {month}
            and not (bucket_start >= '{start}' and bucket_start < '{end}' and metric in {tuple(names)})""")
        s.query(f"insert into bench.scratch select * from bench.staged where toYYYYMM(bucket_start) = {month}")
        s.query(f"alter table bench.t replace partition {month} from bench.scratch")
    s.query("drop table if exists bench.scratch")


def timed(s, method, start, end, names, repeat) -> tuple[float, str]:
    times, prints = [], set()
    for _ in range(repeat):
        fresh_target(s)
        t0 = time.perf_counter()
        method(s, start, end, names)
        times.append(time.perf_counter() - t0)
        prints.add(fingerprint(s, "t"))
    assert len(prints) == 1, prints
    return min(times), prints.pop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--values", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="metrics-chbench-")
    try:
        s = chs.Session(tmp)
        n = setup(s, args.metrics, args.values)
        names = [f"m{i}" for i in range(args.metrics // 2)]  # the model's metrics: half of the table's
        rows = []
        for label, start, end in WINDOWS:
            staged_rows(s, start, end, names)
            # the expected result, computed independently of both methods
            s.query("drop table if exists bench.expected")
            s.query(f"create table bench.expected ({COLUMNS}) {LAYOUT}")
            s.query(f"""insert into bench.expected select * from bench.base
                where not (bucket_start >= '{start}' and bucket_start < '{end}' and metric in {tuple(names)})""")
            s.query("insert into bench.expected select * from bench.staged")
            want = fingerprint(s, "expected")
            d, dprint = timed(s, delete_insert, start, end, names, args.repeat)
            r, rprint = timed(s, replace_partitions, start, end, names, args.repeat)
            assert dprint == want and rprint == want, (label, dprint, rprint, want)
            staged = int(s.query("select count() from bench.staged", "CSV").bytes())
            rows.append((label, staged, d, r))
        print(f"\nchDB {chdb.__version__}, rollup table of {n:,} rows (hourly, {args.metrics} metrics, "
              f"{args.values} slice values), rewriting {len(names)} metrics, best of {args.repeat}; both results checked\n")
        columns = ["window", "rows rewritten", "delete + insert", "replace partition", "replace / delete"]
        print_table(columns, [(label, f"{staged:,}", f"{d:.3f}s", f"{r:.3f}s", f"{r / d:.2f}") for label, staged, d, r in rows],
                    right=tuple(columns[1:]))
        s.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
