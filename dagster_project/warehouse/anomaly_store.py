"""`metric_anomalies`: one table for every grain, in the rollups' schema. A scoring run
replaces exactly its window's rows of its grain (delete and insert in one transaction on
DuckDB and Postgres; a lightweight delete then an insert on ClickHouse), so re-scoring is
idempotent and a detection that no longer holds after a late-data recompute disappears."""
from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING

from .connection import Warehouse, WarehouseError, _ch_literal

if TYPE_CHECKING:
    import pandas as pd

TABLE = "metric_anomalies"

# (column, kind): the DESIGN.md contract, in order
COLUMNS: list[tuple[str, str]] = [
    ("metric", "text"), ("grain", "text"), ("bucket_start", "timestamp"), ("dimension", "text"),
    ("dimension_value", "text"), ("value", "double"), ("expected", "double"), ("lower", "double"),
    ("upper", "double"), ("score", "double"), ("is_anomaly", "bool"), ("direction", "text"),
    ("provisional", "bool"), ("numerator", "double"), ("denominator", "double"), ("model", "text"),
    ("reason", "text"), ("chart_path", "text"), ("run_id", "text"), ("computed_at", "timestamp"),
]
NAMES = [c for c, _ in COLUMNS]
_TYPES = {
    "duckdb": {"text": "varchar", "timestamp": "timestamp", "double": "double", "bool": "boolean"},
    "postgres": {"text": "text", "timestamp": "timestamp", "double": "double precision", "bool": "boolean"},
    "clickhouse": {"text": "Nullable(String)", "timestamp": "DateTime64(6, 'UTC')", "double": "Nullable(Float64)",
                   "bool": "Bool"},
}
_KEY = {"metric", "grain", "bucket_start", "dimension", "dimension_value"}  # never NULL


def _quoted(name: str) -> str:
    return f'"{name}"'  # `lower`/`upper` are function names: quote every column


def create_sql(wh: Warehouse) -> str:
    types = dict(_TYPES[wh.target])
    if wh.target == "clickhouse":
        cols = ", ".join(f"{_quoted(c)} {('String' if k == 'text' else types[k]) if c in _KEY else types[k]}"
                         for c, k in COLUMNS)
        return (f"create table if not exists {wh.relation(TABLE)} ({cols}) engine = MergeTree "
                f"order by (grain, metric, bucket_start, dimension, dimension_value)")
    cols = ", ".join(f"{_quoted(c)} {types[k]}{' not null' if c in _KEY else ''}" for c, k in COLUMNS)
    return f"create table if not exists {wh.relation(TABLE)} ({cols})"


def _only(metrics: list[str], placeholder: str, keep: list[str] = ()) -> str:
    """` and metric in (?, ?)`: the metrics a partial re-score replaces, or ` and metric
    not in (?)`: those a whole re-score leaves (bound parameters)."""
    if metrics:
        return f" and metric in ({', '.join([placeholder] * len(metrics))})"
    return f" and metric not in ({', '.join([placeholder] * len(keep))})" if keep else ""


def replace_window(wh: Warehouse, grain: str, start: dt.datetime, end: dt.datetime, frame: "pd.DataFrame",
                   metrics: list[str] | None = None, restamp: bool = False, keep: list[str] | None = None) -> int:
    """Replace the rows of `grain` with bucket_start in [start, end) (of `metrics` only,
    when given; else of every metric but `keep`'s) by `frame` (columns NAMES), holding the
    warehouse's writer lock. Returns the rows written."""
    frame = frame[NAMES]
    schema = wh.schema
    if metrics is not None and not metrics:
        return 0
    only = list(metrics or [])
    kept = [] if only else list(keep or [])
    with wh.lock(), wh.connect() as con:
        if len(frame) and restamp:
            # stamped once the lock is held: alert evaluation reads "new scoring" as a
            # computed_at past its cursor, and a window scored before an evaluation but
            # written after it would otherwise carry a time the cursor has already passed
            import pandas as pd

            from .read import now_utc
            frame = frame.assign(computed_at=pd.Timestamp(now_utc()))
        try:
            if wh.target == "duckdb":
                con.execute(f"create schema if not exists {schema}")
                con.execute(create_sql(wh))
                con.register("incoming_anomalies", frame)
                con.execute("begin transaction")
                con.execute(f"delete from {wh.relation(TABLE)} where grain = ? and bucket_start >= ? and bucket_start < ?"
                            + _only(only, "?", kept), [grain, start, end, *only, *kept])
                con.execute(f"insert into {wh.relation(TABLE)} by name select * from incoming_anomalies")
                con.execute("commit")
                con.unregister("incoming_anomalies")
            elif wh.target == "clickhouse":
                con.command(f"create database if not exists {schema}")
                con.command(create_sql(wh))
                con.command(f"delete from {wh.relation(TABLE)} where grain = {_ch_literal(grain)} "
                            f"and bucket_start >= {_ch_literal(start)} and bucket_start < {_ch_literal(end)}"
                            + (f" and metric in ({', '.join(_ch_literal(m) for m in only)})" if only else "")
                            + (f" and metric not in ({', '.join(_ch_literal(m) for m in kept)})" if kept else ""))
                if len(frame):
                    con.insert_df(wh.relation(TABLE), frame)
            else:
                cur = con.cursor()
                cur.execute(f"create schema if not exists {schema}")
                cur.execute(create_sql(wh))
                cur.execute(f"delete from {wh.relation(TABLE)} where grain = %s and bucket_start >= %s and bucket_start < %s"
                            + _only(only, "%s", kept), [grain, start, end, *only, *kept])
                buf = io.StringIO()
                frame.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
                buf.seek(0)
                cur.copy_expert(f"copy {wh.relation(TABLE)} ({', '.join(map(_quoted, NAMES))}) "
                                f"from stdin with (format csv, null '\\N')", buf)
        except WarehouseError:
            raise
        except Exception as err:  # driver errors differ per target
            raise WarehouseError(f"{wh.target}: writing {TABLE}: {str(err).strip().splitlines()[0]}") from None
    return len(frame)


def chart_paths(wh: Warehouse, grain: str) -> set[str]:
    """The chart files the rows of `grain` reference."""
    _, rows = wh.rows(f"select distinct chart_path from {wh.relation(TABLE)} where grain = ? and chart_path is not null",
                      [grain])
    return {str(r[0]) for r in rows}


def read_anomalies(wh: Warehouse, *, metric: str | None = None, grain: str | None = None,
                   since: dt.datetime | None = None, until: dt.datetime | None = None,
                   dimension: str | None = None, dimension_value: str | None = None,
                   flagged_only: bool = True, limit: int | None = None) -> tuple[list[str], list[tuple]]:
    """Rows of metric_anomalies (newest bucket first), every filter bound as a parameter.
    ([], []) when nothing has been scored yet."""
    if not wh.relation_exists(TABLE):
        return [], []
    where, params = [], []
    for column, value in (("metric", metric), ("grain", grain), ("dimension", dimension),
                          ("dimension_value", dimension_value)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("bucket_start >= ?")
        params.append(since)
    if until is not None:
        where.append("bucket_start < ?")
        params.append(until)
    if flagged_only:
        where.append("is_anomaly")
    sql = (f"select {', '.join(map(_quoted, NAMES))} from {wh.relation(TABLE)}"
           + (f" where {' and '.join(where)}" if where else "")
           + " order by bucket_start desc, metric, grain, dimension, dimension_value"
           + (f" limit {int(limit)}" if limit is not None else ""))
    return wh.rows(sql, params)
