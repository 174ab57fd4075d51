"""A small connection wrapper per target (DuckDB file, Postgres server), configured by
the same environment variables as dbt_project/profiles.yml."""
from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pandas as pd

from ..paths import ProjectPaths

TARGETS = ("duckdb", "postgres", "clickhouse")
SCHEMA = "analytics"  # where dbt builds (profiles.yml)
RAW_SCHEMA = "raw"


class WarehouseError(RuntimeError):
    """The warehouse is unreachable or refused a statement (message names the target)."""


def default_target() -> str:
    return os.environ.get("METRICS_TARGET", "duckdb")


def pg_settings() -> dict:
    return dict(
        host=os.environ.get("METRICS_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("METRICS_PG_PORT", "5432")),
        user=os.environ.get("METRICS_PG_USER", "metrics"),
        password=os.environ.get("METRICS_PG_PASSWORD", "metrics"),
        dbname=os.environ.get("METRICS_PG_DATABASE", "metrics"),
    )


@dataclass
class Warehouse:
    target: str
    paths: ProjectPaths

    @property
    def schema(self) -> str:
        return SCHEMA

    def relation(self, name: str) -> str:
        return f"{SCHEMA}.{name}"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[object]:
        if self.target == "duckdb":
            import duckdb
            path = self.paths.duckdb_path
            if read_only and not path.exists():
                raise WarehouseError(f"duckdb: no warehouse file at {path}: run `metrics run` first")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                con = duckdb.connect(str(path), read_only=read_only)
            except duckdb.Error as err:
                raise WarehouseError(f"duckdb: cannot open {path}: {err}") from None
            try:
                yield con
            finally:
                con.close()
        elif self.target == "postgres":
            import psycopg2
            try:
                con = psycopg2.connect(connect_timeout=10, **pg_settings())
            except psycopg2.Error as err:
                s = pg_settings()
                raise WarehouseError(f"postgres: cannot connect to {s['host']}:{s['port']}/{s['dbname']}: {str(err).strip()}") from None
            try:
                yield con
                con.commit()
            except Exception:
                con.rollback()
                raise
            finally:
                con.close()
        elif self.target == "clickhouse":
            import clickhouse_connect
            path = self.paths.chdb_path
            path.mkdir(parents=True, exist_ok=True)
            try:
                client = clickhouse_connect.get_client(interface="chdb", path=str(path))
            except Exception as err:  # chdb raises its own error types
                raise WarehouseError(f"clickhouse: cannot open chDB at {path}: {err}") from None
            try:
                yield client
            finally:
                client.close()
        else:
            raise WarehouseError(f"unknown target `{self.target}` (choose from {', '.join(TARGETS)})")

    def ping(self) -> None:
        """Open and close a connection: a clear WarehouseError now beats a failure per model."""
        with self.connect():
            pass

    def relation_exists(self, name: str) -> bool:
        if self.target == "clickhouse":
            sql = "select count() as n from system.tables where database = ? and name = ?"
        else:
            sql = "select count(*) as n from information_schema.tables where table_schema = ? and table_name = ?"
        return int(self.frame(sql, [SCHEMA, name])["n"].iloc[0]) > 0

    def frame(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            try:
                if self.target == "duckdb":
                    return con.execute(sql, params or []).df()
                if self.target == "clickhouse":
                    return _naive_utc(con.query_df(_inline_params(sql, params or [])))
                cur = con.cursor()
                if params:
                    cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
                else:  # no binding: a literal % (LIKE 'x%') stays as written
                    cur.execute(sql)
                cols = [c[0] for c in cur.description]
                return pd.DataFrame(cur.fetchall(), columns=cols)
            except Exception as err:  # driver errors differ per target
                raise WarehouseError(f"{self.target}: {str(err).strip().splitlines()[0]}") from None

    def replace_rows(self, table: str, frame: pd.DataFrame, time_column: str, start, end) -> None:
        """Replace rows of raw.`table` with `time_column` in [start, end) by `frame`, in
        one transaction (create the table from the frame when it does not exist)."""
        full = f"{RAW_SCHEMA}.{table}"
        with self.connect() as con:
            if self.target == "duckdb":
                con.execute(f"create schema if not exists {RAW_SCHEMA}")
                con.register("incoming", frame)
                con.execute("begin transaction")
                con.execute(f"create table if not exists {full} as select * from incoming where false")
                con.execute(f"delete from {full} where {time_column} >= ? and {time_column} < ?", [start, end])
                con.execute(f"insert into {full} select * from incoming")
                con.execute("commit")
                con.unregister("incoming")
            elif self.target == "clickhouse":
                con.command(f"create database if not exists {RAW_SCHEMA}")
                con.command(f"create table if not exists {full} ({_ch_columns(frame)}) engine = MergeTree order by tuple()")
                con.command(f"delete from {full} where {time_column} >= {_ch_literal(start)} and {time_column} < {_ch_literal(end)}")
                if len(frame):
                    con.insert_df(full, frame)
            else:
                cur = con.cursor()
                cur.execute(f"create schema if not exists {RAW_SCHEMA}")
                cur.execute(f"create table if not exists {full} ({_pg_columns(frame)})")
                cur.execute(f"delete from {full} where {time_column} >= %s and {time_column} < %s", [start, end])
                buf = io.StringIO()
                frame.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
                buf.seek(0)
                cur.copy_expert(f"copy {full} ({', '.join(frame.columns)}) from stdin with (format csv, null '\\N')", buf)


def _pg_columns(frame: pd.DataFrame) -> str:
    out = []
    for name, dtype in frame.dtypes.items():
        kind = dtype.kind
        sql = {"i": "bigint", "f": "double precision", "b": "boolean", "M": "timestamp"}.get(kind, "text")
        out.append(f"{name} {sql}")
    return ", ".join(out)


def _ch_columns(frame: pd.DataFrame) -> str:
    out = []
    for name, dtype in frame.dtypes.items():
        kind = getattr(dtype, "kind", "O")
        sql = {"i": "Int64", "f": "Nullable(Float64)", "b": "Bool", "M": "DateTime64(6, 'UTC')"}.get(kind, "Nullable(String)")
        out.append(f"{name} {sql}")
    return ", ".join(out)


def _ch_literal(value) -> str:
    import datetime as dt
    if value is None:
        return "NULL"
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return f"toDateTime64('{pd.Timestamp(value).strftime('%Y-%m-%d %H:%M:%S.%f')}', 6, 'UTC')"
    if isinstance(value, dt.date):
        return f"toDateTime64('{value.isoformat()} 00:00:00', 6, 'UTC')"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _inline_params(sql: str, params: list) -> str:
    """clickhouse-connect binds server-side; our readers use `?`: inline escaped literals."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise WarehouseError("clickhouse: parameter count mismatch")
    return "".join(p + (_ch_literal(v) if i < len(params) else "") for i, (p, v) in enumerate(zip(parts, [*params, None])))


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame
