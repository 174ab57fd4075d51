"""Running dbt for a window: the window and run id travel as environment variables,
read by macros only at execution time, so dbt keeps its partial parse between runs."""
from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..paths import ProjectPaths

# dbt's adapters, flags and event manager are process-wide: one dbt invocation at a time
# in a process (here and in defs/dbt_in_process.py)
ONE_DBT = threading.RLock()


@dataclass
class DbtOutcome:
    ok: bool
    failures: list[str] = field(default_factory=list)  # "model_name: message"
    built: list[str] = field(default_factory=list)
    result: Any = None  # dbt's own result object (the Manifest, for a parse)


def warehouse_message(message: str) -> str:
    """The warehouse's own words from a dbt node message: dbt's first line only names
    the model, and ClickHouse appends the whole query ("In scope ...")."""
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    detail = [ln for ln in lines if " in model " not in ln and not ln.startswith("compiled code")] or lines
    return (detail[0] if detail else "failed").split(" In scope ")[0][:400]


def window_env(start: dt.date | dt.datetime | None, end: dt.date | dt.datetime | None) -> dict[str, str]:
    """What the `metrics_window` macro reads: UTC dates or timestamps (naive; an aware
    timestamp is converted to UTC). Environment variables, not --vars: a changed var
    forces dbt to re-parse the whole project on every run."""
    def iso(value) -> str:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    return {"METRICS_WINDOW_START": "" if start is None else iso(start),
            "METRICS_WINDOW_END": "" if end is None else iso(end)}


# Postgres sessions in UTC (libpq reads PGTZ), as the DuckDB and ClickHouse profiles set
# theirs: a staging model's `cast(ts as date)` is the UTC date on every target
SESSION_UTC = {"PGTZ": "UTC"}


def dbt_env(paths: ProjectPaths, target: str, window: tuple | None = None, run_id: str | None = None) -> dict[str, str]:
    env = {
        "METRICS_TARGET": target,
        "METRICS_DUCKDB_PATH": str(paths.duckdb_path),
        "METRICS_CHDB_PATH": str(paths.chdb_path),
        "METRICS_RUN_ID": run_id or f"manual-{uuid.uuid4().hex[:12]}",
        "DBT_PROFILES_DIR": str(paths.dbt_project_dir),
        "DBT_PROJECT_DIR": str(paths.dbt_project_dir),
        **SESSION_UTC,
    }
    env.update(window_env(*(window or (None, None))))
    return env


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block, then restore what was there (a variable
    someone else changed meanwhile, another thread, is left as they set it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if os.environ.get(k) != values[k]:
                continue
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dbt(paths: ProjectPaths, target: str, args: list[str], window: tuple | None = None,
            run_id: str | None = None, quiet: bool = False) -> DbtOutcome:
    """Invoke dbt in process (no per-run interpreter start-up)."""
    from dbt.cli.main import dbtRunner

    env = dbt_env(paths, target, window, run_id)
    full = [*args, "--project-dir", str(paths.dbt_project_dir), "--profiles-dir", str(paths.dbt_project_dir),
            "--target", target]
    if quiet:
        full = ["--quiet", *full]
    paths.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    if target == "clickhouse":
        from .chdb_driver import register
        register()
    with ONE_DBT, environ(env):
        try:
            res = dbtRunner().invoke(full)
        finally:
            _release_duckdb()
    if isinstance(res.exception, KeyboardInterrupt):  # dbt catches a Ctrl-C and returns it as its error
        raise KeyboardInterrupt
    outcome = DbtOutcome(ok=bool(res.success), result=res.result)
    results = getattr(res.result, "results", None) or []
    for r in results:
        node = getattr(r, "node", None)
        name = getattr(node, "name", "?")
        status = str(getattr(r, "status", ""))
        if status in ("error", "fail", "runtime error", "RunStatus.Error", "TestStatus.Fail"):
            outcome.failures.append(f"{name}: {warehouse_message(getattr(r, 'message', '') or status)}")
        elif status in ("success", "pass", "RunStatus.Success"):
            outcome.built.append(name)
    if not outcome.ok and not outcome.failures:
        err = res.exception
        lines = [ln.strip() for ln in str(err or "failed").strip().splitlines() if ln.strip()]
        outcome.failures.append("dbt: " + " ".join(lines)[:400])
    return outcome


def _release_duckdb() -> None:
    """dbt-duckdb keeps its database open in a class-level environment after an in-process
    run; close it so this process (or another) can open the file afterwards."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            try:
                env.close()
            except Exception:  # closing is best effort; a failure here must not hide the run's result
                pass
