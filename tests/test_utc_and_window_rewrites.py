"""Buckets are UTC whatever the session or the column type, and a window rewrite is
exact: checked on every warehouse with a small time zone-aware source.

DuckDB and Postgres: a `timestamptz` column whose values were written with a `+00:00`
offset, built and read with the session in New York (TZ, PGTZ). ClickHouse: a
`DateTime64(3, 'Asia/Tokyo')` column. The rows sit next to UTC day, ISO week and month
edges, where bucketing in any other zone moves them. Filters that read the time
(`extract(hour ...)`, a comparison with a date, `cast(... as date)`) read it in UTC too:
ClickHouse read them in the column's zone. A `date` timestamp column builds (ClickHouse
refused its Date). The oracle is pandas over the UTC instants."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dagster_project.paths import REPO_ROOT
from dagster_project.warehouse.connection import Warehouse
from dagster_project.warehouse.dbt_runner import run_dbt

from .conftest import make_project
from dagster_project.compiler.writer import compile_project
from dagster_project.validation.project import load_project

from .helpers import as_dict, assert_series_equal, same_number
from .oracle import bucket, next_bucket

pytestmark = pytest.mark.dbt

ZONE = "America/New_York"
START = dt.date(2024, 2, 26)  # a Monday
WINDOW = (dt.date(2024, 2, 28), dt.date(2024, 3, 11))  # leaves the first buckets unbuilt
METRICS = {
    "tz/tz_count.yml": "name: tz_count\nsource: stg_tz_events\ntimestamp: happened_at\naggregation: count\ndimensions: [kind]\n",
    "tz/tz_amount.yml": "name: tz_amount\nsource: stg_tz_events\ntimestamp: happened_at\naggregation: sum\nexpression: amount\ndimensions: [kind]\n",
}
# filters that read the time, each with the rows it keeps (the oracle's UTC reading)
TIME_FILTERS = {
    "tz_night": ("extract(hour from happened_at) < 6", lambda e: e.happened_at.dt.hour < 6),
    "tz_from_march_4": ("happened_at >= '2024-03-04'", lambda e: e.happened_at >= pd.Timestamp("2024-03-04")),
    "tz_on_march_4": ("cast(happened_at as date) = '2024-03-04'",
                      lambda e: e.happened_at.dt.normalize() == pd.Timestamp("2024-03-04")),
    "tz_mondays": ("extract(isodow from happened_at) = 1", lambda e: e.happened_at.dt.dayofweek == 0),
}
METRICS.update({f"tz/{name}.yml": f"name: {name}\nsource: stg_tz_events\ntimestamp: happened_at\naggregation: count\n"
                                  f"filter: \"{text}\"\n" for name, (text, _) in TIME_FILTERS.items()})
METRICS["tz/tz_days.yml"] = "name: tz_days\nsource: stg_tz_days\ntimestamp: happened_on\naggregation: count\n"
# a team's own staging table that casts the time to a date: the UTC date on every target
METRICS["tz/tz_cast_days.yml"] = "name: tz_cast_days\nsource: stg_tz_cast_days\ntimestamp: happened_on\naggregation: count\n"
CONFIG = f"start: {START}\ngrains: [hour, day, week, month]\n"
COLUMN_TYPE = {"duckdb": "timestamptz", "postgres": "timestamptz", "clickhouse": "DateTime64(3, 'Asia/Tokyo')"}


def make_events(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lo = pd.Timestamp("2024-02-26")
    random = lo + pd.to_timedelta(rng.integers(0, 14 * 24 * 3600, 400), unit="s")
    # next to the UTC day, ISO week (Sunday night) and month (leap day) edges
    edges = pd.to_datetime(["2024-02-28 23:30:00", "2024-02-29 00:30:00", "2024-02-29 23:59:59", "2024-03-01 00:00:00",
                            "2024-03-03 23:30:00", "2024-03-04 00:10:00", "2024-03-04 02:00:00", "2024-03-10 23:59:00"])
    at = pd.Series(list(random) + list(edges)).sort_values(ignore_index=True)
    return pd.DataFrame({
        "happened_at": at,  # UTC instants
        "kind": rng.choice(["a", "b", "c"], len(at)),
        "amount": np.round(rng.uniform(1, 100, len(at)), 2),
    })


def _sql_rows(events: pd.DataFrame, target: str) -> str:
    def ts(t: pd.Timestamp) -> str:
        text = t.strftime("%Y-%m-%d %H:%M:%S")
        # the offset is written out: the value is an instant, whatever the session's zone
        return f"toDateTime64('{text}', 3, 'UTC')" if target == "clickhouse" else f"'{text}+00:00'"
    return ", ".join(f"({ts(r.happened_at)}, '{r.kind}', {r.amount})" for r in events.itertuples())


def load_events(wh: Warehouse, events: pd.DataFrame) -> None:
    rows = _sql_rows(events, wh.target)
    days = ", ".join(f"('{t:%Y-%m-%d}')" for t in events.happened_at)  # each row's UTC date
    with wh.connect() as con:
        if wh.target == "clickhouse":
            con.command("create database if not exists raw")
            con.command("drop table if exists raw.tz_events")
            con.command(f"create table raw.tz_events (happened_at {COLUMN_TYPE['clickhouse']}, kind String, amount Float64) "
                        "engine = MergeTree order by tuple()")
            con.command(f"insert into raw.tz_events values {rows}")
            con.command("drop table if exists raw.tz_days")
            con.command("create table raw.tz_days (happened_on Date) engine = MergeTree order by tuple()")
            con.command(f"insert into raw.tz_days values {days}")
        else:
            run = con.execute if wh.target == "duckdb" else con.cursor().execute
            run("create schema if not exists raw")
            run("drop table if exists raw.tz_events")
            run("create table raw.tz_events (happened_at timestamptz, kind varchar, amount double precision)")
            run(f"insert into raw.tz_events values {rows}")
            run("drop table if exists raw.tz_days")
            run("create table raw.tz_days (happened_on date)")
            run(f"insert into raw.tz_days values {days}")


def add_tz_source(paths, target: str) -> None:
    staging = paths.root / "models" / "staging"
    (staging / "stg_tz_events.sql").write_text("select happened_at, kind, amount from {{ source('raw_tz', 'tz_events') }}\n")
    (staging / "stg_tz_days.sql").write_text("select happened_on from {{ source('raw_tz', 'tz_days') }}\n")
    # (a ClickHouse column with a zone of its own keeps it in a team's SQL: converted here)
    (staging / "stg_tz_cast_days.sql").write_text(
        "{{ config(materialized='table') }}\nselect cast({% if target.type == 'clickhouse' %}toTimeZone(happened_at, 'UTC')"
        "{% else %}happened_at{% endif %} as date) as happened_on from {{ source('raw_tz', 'tz_events') }}\n")
    (staging / "_tz_events.yml").write_text(
        "version: 2\nsources:\n  - name: raw_tz\n    schema: raw\n    tables:\n      - name: tz_events\n"
        "      - name: tz_days\n"
        "models:\n  - name: stg_tz_events\n    columns:\n"
        f"      - {{name: happened_at, data_type: \"{COLUMN_TYPE[target]}\"}}\n"
        "      - {name: kind, data_type: varchar}\n      - {name: amount, data_type: double}\n"
        "  - name: stg_tz_days\n    columns:\n      - {name: happened_on, data_type: date}\n"
        "  - name: stg_tz_cast_days\n    columns:\n      - {name: happened_on, data_type: date}\n")


def in_zone_env(target: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()}
    env.update(TZ=ZONE, PGTZ=ZONE)
    return env


def build(paths, target: str, window, run_id: str) -> None:
    """Compile, then build the tz source and everything downstream of it."""
    result = load_project(paths)
    assert result.ok, [str(i) for i in result.issues]
    compile_project(paths, result.project)
    out = run_dbt(paths, target, ["build", "--select", "stg_tz_events+", "stg_tz_days+", "stg_tz_cast_days+"], window=window, run_id=run_id,
                  quiet=True)
    assert out.ok, out.failures


def build_in_zone(paths, target: str, window, run_id: str) -> None:
    """The same, in a process whose session time zone is New York."""
    code = ("import datetime as dt, pathlib\n"
            "from dagster_project.paths import ProjectPaths\n"
            "from tests.test_utc_and_window_rewrites import build\n"
            f"build(ProjectPaths(pathlib.Path({str(paths.root)!r})), {target!r}, "
            f"(dt.date.fromisoformat({window[0].isoformat()!r}), dt.date.fromisoformat({window[1].isoformat()!r})), {run_id!r})\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=in_zone_env(target), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def grain_window(window, grain: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    def ceil(day: dt.date) -> pd.Timestamp:
        ts = pd.Timestamp(day)
        b = bucket(pd.Series([ts]), grain).iloc[0]
        return b if b == ts else next_bucket(b, grain)
    return ceil(window[0]), ceil(window[1])


def oracle(events: pd.DataFrame, name: str, grain: str, window) -> dict:
    """{(bucket, dimension, value): number}: dense total over the built buckets, sparse slices."""
    lo, hi = grain_window(window, grain)
    df = events.assign(b=bucket(events.happened_at, grain))
    df = df[(df.b >= lo) & (df.b < hi)]
    agg = (lambda rows: float(len(rows))) if name == "tz_count" else (lambda rows: float(rows.amount.sum()))
    out, b = {}, lo
    groups = dict(tuple(df.groupby("b")))
    while b < hi:
        rows = groups.get(b)
        out[(b, "", "")] = 0.0 if rows is None else agg(rows)
        b = next_bucket(b, grain)
    for (b, k), rows in df.groupby(["b", "kind"]):
        out[(b, "kind", k)] = agg(rows)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, target):
    paths = make_project(tmp_path_factory.mktemp(f"utc_{target}"), METRICS, CONFIG)
    add_tz_source(paths, target)
    wh = Warehouse(target, paths)
    events = make_events()
    load_events(wh, events)
    if target == "clickhouse":
        # chDB runs in this process; the column's own zone (Tokyo) is the trap there
        build(paths, target, WINDOW, run_id="first")
    else:
        build_in_zone(paths, target, WINDOW, "first")
    return paths, wh, events


def _view(wh: Warehouse, grain: str) -> pd.DataFrame:
    df = wh.frame(f"select * from {wh.relation('metric_series_' + grain)}")
    df["bucket_start"] = pd.to_datetime(df["bucket_start"])
    return df


@pytest.mark.parametrize("grain", ["hour", "day", "week", "month"])
def test_buckets_are_utc_whatever_the_session_zone(built, grain):
    _, wh, events = built
    view = _view(wh, grain)
    for name in ("tz_count", "tz_amount"):
        assert_series_equal(as_dict(view, name), oracle(events, name, grain, WINDOW), f"{name}@{grain}")


def _count_oracle(events: pd.DataFrame, keep, grain: str, window) -> dict:
    """{(bucket, '', ''): rows kept}: the dense total over the built buckets."""
    lo, hi = grain_window(window, grain)
    b = bucket(events.happened_at, grain)
    counts = b[keep(events) & (b >= lo) & (b < hi)].value_counts()
    out, at = {}, lo
    while at < hi:
        out[(at, "", "")] = float(counts.get(at, 0))
        at = next_bucket(at, grain)
    return out


@pytest.mark.parametrize("grain", ["hour", "day", "week"])
def test_filters_read_the_time_in_utc_and_a_date_column_builds(built, grain):
    _, wh, events = built
    view = _view(wh, grain)
    for name, (_, keep) in TIME_FILTERS.items():
        assert_series_equal(as_dict(view, name), _count_oracle(events, keep, grain, WINDOW), f"{name}@{grain}")
    # a date column places each row at its day's midnight (UTC)
    days = events.assign(happened_at=events.happened_at.dt.normalize())
    for name in ("tz_days", "tz_cast_days"):
        assert_series_equal(as_dict(view, name), _count_oracle(days, lambda e: e.happened_at.notna(), grain, WINDOW),
                            f"{name}@{grain}")


_ZONELESS_BUILD = """
import json, pathlib, sys
import tests.test_utc_and_window_rewrites as t
from tests.conftest import make_project
from dagster_project.warehouse.connection import Warehouse
t.COLUMN_TYPE["clickhouse"] = "DateTime64(3)"  # no zone of its own: read in the process's
paths = make_project(pathlib.Path(sys.argv[1]), t.METRICS, t.CONFIG)
t.add_tz_source(paths, "clickhouse")
wh = Warehouse("clickhouse", paths)
t.load_events(wh, t.make_events())
t.build(paths, "clickhouse", t.WINDOW, "zoneless")
view = t._view(wh, "day")
print(json.dumps({name: {str(k[0]): v for k, v in t.as_dict(view, name).items() if k[1] == ""}
                  for name in t.TIME_FILTERS}))
"""


def test_a_zoneless_clickhouse_column_is_read_in_utc_by_a_process_in_another_zone(built, tmp_path):
    """A ClickHouse `DateTime64(3)` with no zone, built by a process in Kolkata: its
    buckets were UTC (the bucket converts), but `extract(hour ...)` and `cast(... as
    date)` in a filter read it in the process's zone, even with session_timezone UTC."""
    _, wh, events = built
    if wh.target != "clickhouse":
        pytest.skip("a ClickHouse column type")
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    env.update(TZ="Asia/Kolkata", METRICS_CHDB_PATH=str(tmp_path / "chdb"))
    done = subprocess.run([sys.executable, "-c", _ZONELESS_BUILD, str(tmp_path / "project")], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (_, keep) in TIME_FILTERS.items():
        want = {str(b): v for (b, _, _), v in _count_oracle(events, keep, "day", WINDOW).items()}
        assert got[name] == want, name


def test_metrics_series_read_in_another_zone_equals_the_oracle(built):
    paths, wh, events = built
    if wh.target == "clickhouse":
        pytest.skip("chDB holds its data path in the test process; the Tokyo column is checked above")
    env = in_zone_env(wh.target)
    env["METRICS_PROJECT_DIR"] = str(paths.root)
    done = subprocess.run([sys.executable, "-m", "dagster_project.cli.main", "series", "tz_count", "--grain", "day",
                           "--target", wh.target, "--format", "json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = {pd.Timestamp(r["bucket_start"].rstrip("Z")): r["value"] for r in json.loads(done.stdout)}
    want = {b: v for (b, d, _), v in oracle(events, "tz_count", "day", WINDOW).items() if d == ""}
    assert got == want


@pytest.mark.parametrize("grain", ["day", "week", "hour"])
def test_previous_value_and_change_pct_follow_one_rule(built, grain):
    """previous_value is the bucket before's value when that bucket was built (a slice with
    no row there: its empty value), NULL when it never was; change_pct from it."""
    _, wh, events = built
    view = _view(wh, grain)
    for name in ("tz_count", "tz_amount"):
        want = oracle(events, name, grain, WINDOW)
        built_buckets = {b for (b, d, _) in want if d == ""}
        rows = view[view.metric == name]
        assert len(rows) == len(want)
        for r in rows.itertuples():
            prev = pd.Timestamp(r.bucket_start) - {"hour": pd.DateOffset(hours=1), "day": pd.DateOffset(days=1),
                                                   "week": pd.DateOffset(weeks=1)}[grain]
            expected = want.get((prev, r.dimension, r.dimension_value), 0.0) if prev in built_buckets else None
            got = None if pd.isna(r.previous_value) else float(r.previous_value)
            assert same_number(got, expected), (name, grain, r.bucket_start, r.dimension_value, got, expected)
            value = want[(pd.Timestamp(r.bucket_start), r.dimension, r.dimension_value)]
            change = None if expected in (None, 0) else (value - expected) / abs(expected) * 100
            got_change = None if pd.isna(r.change_pct) else float(r.change_pct)
            assert same_number(got_change, change, rel=1e-9), (name, r.bucket_start, got_change, change)
            assert bool(r.complete)  # 2024: long over


def _rollup(target: str) -> str:
    return "rollup_stg_tz_events__by_happened_at__day"


def _rows(wh: Warehouse, where: str = "1 = 1") -> pd.DataFrame:
    df = wh.frame(f"select metric, bucket_start, dimension, dimension_value, value, run_id from "
                  f"{wh.relation(_rollup(wh.target))} where {where} order by metric, bucket_start, dimension, dimension_value")
    df["bucket_start"] = pd.to_datetime(df["bucket_start"])
    return df


def test_full_refresh_with_a_window_is_refused_and_changes_nothing(built):
    paths, wh, _ = built
    before = _rows(wh)
    out = run_dbt(paths, wh.target, ["build", "--full-refresh", "--select", _rollup(wh.target)],
                  window=(dt.date(2024, 3, 1), dt.date(2024, 3, 2)), run_id="refresh", quiet=True)
    assert not out.ok
    assert any("--full-refresh drops the whole table" in f for f in out.failures), out.failures
    pd.testing.assert_frame_equal(_rows(wh), before)


def test_series_views_show_nothing_before_a_metrics_first_bucket(built):
    """Rows left in a rollup before the metric's first bucket (an earlier definition under
    the same name, a later `start`) never reach the series view."""
    _, wh, _ = built
    stale_at = "2024-02-01 00:00:00"
    ts = f"toDateTime64('{stale_at}', 6, 'UTC')" if wh.target == "clickhouse" else f"cast('{stale_at}' as timestamp)"
    _execute(wh, f"insert into {wh.relation(_rollup(wh.target))} (metric, bucket_start, dimension, dimension_value, value, count, sum, run_id, computed_at) "
                 f"select 'tz_count', {ts}, '', '', 99, 99, null, 'stale', {ts}")
    try:
        view = _view(wh, "day")
        assert (view.metric == "tz_count").any()
        assert not ((view.metric == "tz_count") & (view.bucket_start < pd.Timestamp(START))).any()
    finally:
        _execute(wh, f"delete from {wh.relation(_rollup(wh.target))} where run_id = 'stale'")


def test_the_unique_rows_data_test_catches_a_duplicate(built):
    paths, wh, _ = built
    rel = wh.relation(_rollup(wh.target))
    assert run_dbt(paths, wh.target, ["test", "--select", _rollup(wh.target)], quiet=True).ok
    _execute(wh, f"insert into {rel} select metric, bucket_start, dimension, dimension_value, value, count, sum, 'dup', computed_at "
                 f"from {rel} where metric = 'tz_count' and dimension = '' and bucket_start = "
                 + ("toDateTime64('2024-03-01 00:00:00', 6, 'UTC')" if wh.target == "clickhouse" else "cast('2024-03-01' as timestamp)"))
    try:
        out = run_dbt(paths, wh.target, ["test", "--select", _rollup(wh.target)], quiet=True)
        assert not out.ok and any("metrics_unique_rows" in f for f in out.failures), out.failures
    finally:
        _execute(wh, f"delete from {rel} where run_id = 'dup'")


def test_a_window_rewrite_inserts_only_rows_inside_the_window(built):
    """A model whose query returns a row outside the window (here on purpose) must not
    get it inserted on a rewrite: the delete covers the window, so must the insert."""
    paths, wh, _ = built
    model = paths.root / "models" / "metrics" / "rollup_leaky.sql"
    ts = "toDateTime64('{}', 6, 'UTC')" if wh.target == "clickhouse" else "cast('{}' as timestamp)"
    row = ("select cast('leaky' as {{{{ metrics_type('string') }}}}) as metric, cast({at} as {{{{ metrics_type('timestamp') }}}}) as bucket_start, "
           "cast('' as {{{{ metrics_type('string') }}}}) as dimension, cast('' as {{{{ metrics_type('string') }}}}) as dimension_value, "
           "cast(1 as {{{{ metrics_type('double') }}}}) as value, cast(1 as {{{{ metrics_type('bigint') }}}}) as count, "
           "cast(null as {{{{ metrics_type('double') }}}}) as sum, {{{{ metrics_run_id() }}}} as run_id, {{{{ metrics_now() }}}} as computed_at")
    model.write_text(
        "{{ config(materialized='metric_rollup', grain='day', series_start='2024-01-01 00:00:00', metric_names=['leaky']) }}\n"
        + row.format(at=ts.format("2024-03-05 00:00:00")) + "\nunion all\n" + row.format(at=ts.format("2024-03-20 00:00:00")) + "\n")
    try:
        for run in ("leak-1", "leak-2", "leak-3"):
            out = run_dbt(paths, wh.target, ["run", "--select", "rollup_leaky"],
                          window=(dt.date(2024, 3, 5), dt.date(2024, 3, 6)), run_id=run, quiet=True)
            assert out.ok, out.failures
        rows = wh.frame(f"select bucket_start, run_id from {wh.relation('rollup_leaky')} order by bucket_start")
        rows["bucket_start"] = pd.to_datetime(rows["bucket_start"])
        inside = rows[rows.bucket_start == pd.Timestamp("2024-03-05")]
        outside = rows[rows.bucket_start == pd.Timestamp("2024-03-20")]
        assert list(inside.run_id) == ["leak-3"]
        # only the first run (which created the table from the query) wrote the outside row
        assert list(outside.run_id) == ["leak-1"]
    finally:
        model.unlink()
        _execute(wh, f"drop table if exists {wh.relation('rollup_leaky')}")


def test_metrics_now_with_an_offset_is_the_same_instant_for_the_build(built, monkeypatch):
    """METRICS_NOW=2024-03-05T20:30:00-05:00 is 2024-03-06 01:30 UTC, as the Python side
    reads it: the build's bucket in progress is 01:00 on the 6th (the macro dropped the
    offset and stopped at 20:00 on the 5th, so `metrics series` called hours complete
    that the build never rewrote)."""
    paths, wh, _ = built
    monkeypatch.setenv("METRICS_NOW", "2024-03-05T20:30:00-05:00")
    model = "rollup_stg_tz_events__by_happened_at__hour"
    out = run_dbt(paths, wh.target, ["run", "--select", model], window=(dt.date(2024, 3, 5), dt.date(2024, 3, 8)),
                  run_id="offset-now", quiet=True)
    assert out.ok, out.failures
    rows = wh.frame(f"select bucket_start, run_id from {wh.relation(model)} where metric = 'tz_count' "
                    "and dimension = '' order by bucket_start")
    rows["bucket_start"] = pd.to_datetime(rows["bucket_start"])
    rewritten = rows[rows.run_id == "offset-now"].bucket_start
    assert rewritten.min() == pd.Timestamp("2024-03-05 00:00") and rewritten.max() == pd.Timestamp("2024-03-06 01:00")
    # the buckets after now keep the rows of the run that wrote them
    assert not rows[(rows.bucket_start > pd.Timestamp("2024-03-06 01:00")) & (rows.run_id == "offset-now")].size


def _execute(wh: Warehouse, sql: str) -> None:
    with wh.connect() as con:
        if wh.target == "clickhouse":
            con.command(sql)
        elif wh.target == "duckdb":
            con.execute(sql)
        else:
            con.cursor().execute(sql)


def test_a_timestamp_column_that_is_not_a_time_fails_the_build_naming_it(tmp_path, monkeypatch):
    """No declared data_type, so validation cannot tell: the first build stops at once,
    naming the metric file and the column, before any rollup row is written."""
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    paths = make_project(tmp_path / "p", {"tz/tz_count.yml": METRICS["tz/tz_count.yml"]}, CONFIG)
    staging = paths.root / "models" / "staging"
    (staging / "stg_tz_events.sql").write_text("select happened_at, kind, amount from {{ source('raw_tz', 'tz_events') }}\n")
    (staging / "_tz_events.yml").write_text(
        "version: 2\nsources:\n  - name: raw_tz\n    schema: raw\n    tables:\n      - name: tz_events\n"
        "models:\n  - name: stg_tz_events\n    columns:\n      - {name: happened_at}\n      - {name: kind}\n      - {name: amount}\n")
    wh = Warehouse("duckdb", paths)
    with wh.connect() as con:
        con.execute("create schema raw")
        con.execute("create table raw.tz_events (happened_at varchar, kind varchar, amount double)")
        con.execute("insert into raw.tz_events values ('2024-03-01 10:00:00', 'a', 1)")
    result = load_project(paths)
    assert result.ok, [str(i) for i in result.issues]
    compile_project(paths, result.project)
    out = run_dbt(paths, "duckdb", ["build", "--select", "stg_tz_events+"], window=WINDOW, run_id="typed", quiet=True)
    assert not out.ok
    assert any("metrics/tz/tz_count.yml: timestamp column `happened_at` of stg_tz_events is character varying" in f
               and "not a timestamp" in f for f in out.failures), out.failures
    assert not any(wh.relation_exists(f"rollup_stg_tz_events__by_happened_at__{g}") for g in ("hour", "day", "week", "month"))
