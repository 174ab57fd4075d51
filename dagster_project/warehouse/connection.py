"""A small connection wrapper per target (DuckDB file, Postgres server), configured by
the same environment variables as dbt_project/profiles.yml."""
from __future__ import annotations

import io
import os
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..paths import ProjectPaths

TARGETS = ("duckdb", "postgres", "clickhouse")
# fallbacks only: the schemas come from the dbt project (profile_schema, raw_schema)
SCHEMA = "analytics"
RAW_SCHEMA = "raw"
EMBEDDED = ("duckdb", "clickhouse")

if TYPE_CHECKING:  # pandas is imported where a frame is built: a CLI read does not pay for it
    import pandas as pd


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


# The series views stack CTEs whose row counts Postgres cannot estimate (394 for 21,119):
# reading one metric's hours it chose nested loops over them, 64 s for a day of one
# metric's series (a backtest: minutes per sensitivity); hash joins read it in 0.2 s.
# Our sessions only read those views and write whole windows, so nested loops are off.
PG_SESSION_SQL = "set enable_nestloop = off"


def driver_error(target: str, err: Exception) -> BaseException:
    """What a driver's error means to us: a WarehouseError naming the target, or, for a
    query stopped by Ctrl-C (DuckDB turns the KeyboardInterrupt into 'Query interrupted',
    psycopg2 into a cancel 'due to user request'), the KeyboardInterrupt again: an
    interrupted step must stop the run, not be retried as warehouse trouble."""
    text = str(err).strip()
    # (DuckDB reading a pandas frame wraps the KeyboardInterrupt in its own error)
    if type(err).__name__ == "InterruptException" or text == "Query interrupted" \
            or (target == "duckdb" and "KeyboardInterrupt" in text) \
            or (type(err).__name__ in ("QueryCanceled", "QueryCanceledError") and "due to user request" in text):
        return KeyboardInterrupt()
    return WarehouseError(f"{target}: {text.splitlines()[0] if text else type(err).__name__}")


def pg_connect():
    """A psycopg2 connection to the configured database, or a WarehouseError saying where."""
    import psycopg2
    try:
        con = psycopg2.connect(connect_timeout=10, **pg_settings())
        # a SET, not the `options` startup parameter: that would drop the user's
        # PGOPTIONS, and poolers (PgBouncer, Neon, Supabase) refuse it
        with con.cursor() as cur:
            cur.execute(PG_SESSION_SQL)
        con.commit()
        return con
    except psycopg2.Error as err:
        s = pg_settings()
        raise WarehouseError(f"postgres: cannot connect to {s['host']}:{s['port']}/{s['dbname']}: {str(err).strip()}") from None


def _yaml(path: Path) -> dict:
    """A YAML file's mapping ({} when missing or unreadable), re-read when it changes."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _yaml_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _yaml_cached(path: str, mtime_ns: int, size: int) -> dict:
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError, OverflowError):
        return {}
    return data if isinstance(data, dict) else {}


def _plain(value) -> str | None:
    """A schema name written as a plain value (a Jinja expression is not resolved here)."""
    return value.strip() if isinstance(value, str) and value.strip() and "{" not in value else None


def profile_schema(paths: ProjectPaths, target: str) -> str:
    """The schema dbt builds in for `target`: the `schema:` of that output of the profile
    named in dbt_project.yml, in dbt_project/profiles.yml (fallback SCHEMA)."""
    profile = _yaml(paths.dbt_project_dir / "dbt_project.yml").get("profile") or "metrics"
    outputs = (_yaml(paths.dbt_project_dir / "profiles.yml").get(profile) or {}).get("outputs") or {}
    return _plain((outputs.get(target) or {}).get("schema")) or SCHEMA


def raw_schema(paths: ProjectPaths) -> str:
    """Where raw tables live: the `schema` (default: the name) of the dbt source in
    models/staging/_sources.yml named `raw`, else of its first source (fallback RAW_SCHEMA)."""
    sources = _yaml(paths.models_dir / "staging" / "_sources.yml").get("sources") or []
    sources = [s for s in sources if isinstance(s, dict)]
    chosen = next((s for s in sources if s.get("name") == RAW_SCHEMA), sources[0] if sources else {})
    return _plain(chosen.get("schema")) or _plain(chosen.get("name")) or RAW_SCHEMA


@dataclass
class Warehouse:
    target: str
    paths: ProjectPaths
    # the connection of an open `reading()` block, reused by rows() and frame()
    _reader: object = field(default=None, repr=False, compare=False)

    @property
    def schema(self) -> str:
        return profile_schema(self.paths, self.target)

    @property
    def raw_schema(self) -> str:
        return raw_schema(self.paths)

    def relation(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def lock(self, on_wait: Callable[[str], None] | None = None):
        """The cross-process writer lock of this warehouse (warehouse/lock.py)."""
        from .lock import warehouse_lock
        return warehouse_lock(self.target, self.paths, on_wait)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[object]:
        # said before the lock: a read left a stray `<file>.lock` beside no warehouse (and
        # chDB would create an empty folder to read)
        if read_only and self.target == "duckdb" and not self.paths.duckdb_path.exists():
            raise WarehouseError(f"duckdb: no warehouse file at {self.paths.duckdb_path}: run `metrics run` first")
        if read_only and self.target == "clickhouse" and not self.paths.chdb_path.is_dir():
            raise WarehouseError(f"clickhouse: no chDB folder at {self.paths.chdb_path}: "
                                 "run `metrics run --target clickhouse` first")
        if self.target in EMBEDDED:
            # an embedded engine admits one process per file: wait for a run that holds it
            with self.lock():
                with self._connect(read_only) as con:
                    yield con
        else:
            with self._connect(read_only) as con:
                yield con

    @contextmanager
    def _connect(self, read_only: bool) -> Iterator[object]:
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
            con = pg_connect()
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

    def relation_exists(self, name: str, schema: str | None = None) -> bool:
        """`schema`: another than the profile's (dbt puts seeds in `<schema>_seeds`)."""
        if self.target == "clickhouse":
            sql = "select count() as n from system.tables where database = ? and name = ?"
        else:
            sql = "select count(*) as n from information_schema.tables where table_schema = ? and table_name = ?"
        return int(self.rows(sql, [schema or self.schema, name])[1][0][0]) > 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read-only connection for every rows()/frame() call inside the block (a CLI
        read makes several small queries; each connection costs a lock and an open)."""
        if self._reader is not None:
            yield
            return
        with self.connect(read_only=True) as con:
            self._reader = con
            try:
                yield
            finally:
                self._reader = None

    @contextmanager
    def _read_connection(self) -> Iterator[object]:
        if self._reader is not None:
            yield self._reader
        else:
            with self.connect(read_only=True) as con:
                yield con

    def rows(self, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
        """(column names, rows as tuples); timestamps come back as naive UTC datetimes.
        No pandas: the reads the CLI makes stay cheap to start."""
        with self._read_connection() as con:
            try:
                if self.target == "duckdb":
                    cur = con.execute(sql, params or [])
                    return [c[0] for c in cur.description], cur.fetchall()
                if self.target == "clickhouse":
                    result = con.query(_inline_params(sql, params or []))
                    return list(result.column_names), [tuple(_naive(v) for v in r) for r in result.result_rows]
                cur = con.cursor()
                if params:
                    cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
                else:  # no binding: a literal % (LIKE 'x%') stays as written
                    cur.execute(sql)
                return [c[0] for c in cur.description], [tuple(_naive(v) for v in r) for r in cur.fetchall()]
            except Exception as err:  # driver errors differ per target
                raise driver_error(self.target, err) from None

    def frame(self, sql: str, params: list | None = None) -> "pd.DataFrame":
        import pandas as pd
        with self._read_connection() as con:
            try:
                if self.target == "duckdb":
                    return con.execute(sql, params or []).df()
                if self.target == "clickhouse":
                    return _naive_utc(con.query_df(_inline_params(sql, params or [])))
            except Exception as err:  # driver errors differ per target
                raise driver_error(self.target, err) from None
        columns, rows = self.rows(sql, params)
        return pd.DataFrame(rows, columns=columns)

    def replace_rows(self, table: str, frame: "pd.DataFrame", time_column: str, start, end) -> None:
        """Replace rows of raw.`table` with `time_column` in [start, end) by `frame`, in
        one transaction (create the table from the frame when it does not exist), holding
        the warehouse's writer lock. Times are UTC: a zone-aware column or bound is
        converted to UTC, and the session reads a zone-less one as UTC (a `timestamptz`
        table read the bounds, and Postgres the rows, in the session's zone: a re-run of a
        day duplicated rows)."""
        frame = _utc_naive(frame)
        start, end = (_utc_naive_value(v) for v in (start, end))
        with self.lock(), self.connect() as con:
            try:
                self._replace_rows(con, f"{self.raw_schema}.{table}", frame, time_column, start, end)
            except Exception as err:
                # only a Ctrl-C is translated: a loader (defs/collection.py) needs the
                # driver's own error in full, such as the line and column of a failed COPY
                if isinstance(driver_error(self.target, err), KeyboardInterrupt):
                    raise KeyboardInterrupt from None
                raise

    def _replace_rows(self, con, full: str, frame: "pd.DataFrame", time_column: str, start, end) -> None:
        raw = self.raw_schema
        if self.target == "duckdb":
            con.execute(f"create schema if not exists {raw}")
            con.execute("set TimeZone = 'UTC'")
            con.register("incoming", frame)
            con.execute("begin transaction")
            con.execute(f"create table if not exists {full} as select * from incoming where false")
            con.execute(f"delete from {full} where {time_column} >= ? and {time_column} < ?", [start, end])
            con.execute(f"insert into {full} by name select * from incoming")  # by name, not position
            con.execute("commit")
            con.unregister("incoming")
        elif self.target == "clickhouse":
            con.command(f"create database if not exists {raw}")
            con.command(f"create table if not exists {full} ({_ch_columns(frame)}) engine = MergeTree order by tuple()")
            con.command(f"delete from {full} where {time_column} >= {_ch_literal(start)} and {time_column} < {_ch_literal(end)}")
            if len(frame):
                con.insert_df(full, frame)
        else:
            cur = con.cursor()
            cur.execute("set local time zone 'UTC'")  # (this transaction only)
            cur.execute(f"create schema if not exists {raw}")
            cur.execute(f"create table if not exists {full} ({_pg_columns(frame)})")
            cur.execute(f"delete from {full} where {time_column} >= %s and {time_column} < %s", [start, end])
            buf = io.StringIO()
            frame.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
            buf.seek(0)
            cur.copy_expert(f"copy {full} ({', '.join(frame.columns)}) from stdin with (format csv, null '\\N')", buf)

    def execute(self, sql: str, params: list | None = None) -> None:
        """Run one statement that returns no rows (`?` placeholders, as in `frame`), committed.
        On ClickHouse a `delete from` is a lightweight delete, done when this returns.
        Postgres: under the writer lock too, so it never interleaves with a run."""
        with (self.lock() if self.target not in EMBEDDED else nullcontext()), self.connect() as con:
            try:
                if self.target == "duckdb":
                    con.execute(sql, params or [])
                elif self.target == "clickhouse":
                    con.command(_inline_params(sql, params or []))
                else:
                    cur = con.cursor()
                    if params:
                        cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
                    else:
                        cur.execute(sql)
            except Exception as err:  # driver errors differ per target
                raise driver_error(self.target, err) from None


def _pg_columns(frame: "pd.DataFrame") -> str:
    out = []
    for name, dtype in frame.dtypes.items():
        kind = dtype.kind
        sql = {"i": "bigint", "f": "double precision", "b": "boolean", "M": "timestamp"}.get(kind, "text")
        out.append(f"{name} {sql}")
    return ", ".join(out)


def _utc_naive(frame: "pd.DataFrame") -> "pd.DataFrame":
    """The frame with each zone-aware time column as the same instants in naive UTC."""
    import pandas as pd
    aware = [c for c, t in frame.dtypes.items() if isinstance(t, pd.DatetimeTZDtype)]
    if not aware:
        return frame
    return frame.assign(**{c: frame[c].dt.tz_convert("UTC").dt.tz_localize(None) for c in aware})


def _utc_naive_value(value):
    import datetime as dt
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _ch_columns(frame: "pd.DataFrame") -> str:
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
    if isinstance(value, dt.datetime):  # pd.Timestamp is a datetime
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return f"toDateTime64('{value.strftime('%Y-%m-%d %H:%M:%S.%f')}', 6, 'UTC')"
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


def _naive(value):
    """A zoned datetime as naive UTC (the project's one convention); anything else as is."""
    import datetime as dt
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _naive_utc(frame: "pd.DataFrame") -> "pd.DataFrame":
    import pandas as pd
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame
