"""Test helpers: load raw frames, build with real dbt, read tables, compare numbers, run
the CLI in process."""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import math

import pandas as pd

from dagster_project.cli.main import main
from dagster_project.compiler.writer import compile_project
from dagster_project.demo.generator import TIME_COLUMNS
from dagster_project.paths import ProjectPaths
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse
from dagster_project.warehouse.dbt_runner import run_dbt

ALL_TIME = (dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))


def run_main(*argv: str) -> tuple[int, str, str]:
    """`metrics ARGV` in process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def load_raw(wh: Warehouse, raw: dict[str, pd.DataFrame]) -> None:
    for table, frame in raw.items():
        wh.replace_rows(table, frame, TIME_COLUMNS[table], *ALL_TIME)


def build_case_project(folder, target: str, metrics: dict[str, str], raw: dict[str, pd.DataFrame]) -> Warehouse:
    """A project of `metrics` under the rollup cases' config, `raw` loaded, every grain built
    over the cases' window with real dbt (the shape of the cross-warehouse fixtures)."""
    from .conftest import make_project
    from .rollup_cases import CONFIG, WINDOW
    paths = make_project(folder, metrics, CONFIG)
    wh = Warehouse(target, paths)
    load_raw(wh, raw)
    compile_and_build(paths, target, WINDOW)
    return wh


def compile_and_build(paths: ProjectPaths, target: str, window, run_id: str = "test") -> None:
    result = load_project(paths)
    assert result.ok, [str(i) for i in result.issues]
    compile_project(paths, result.project)
    outcome = run_dbt(paths, target, ["build"], window=window, run_id=run_id, quiet=True)
    assert outcome.ok, outcome.failures


def series_table(wh: Warehouse, grain: str) -> pd.DataFrame:
    df = wh.frame(f"select * from {wh.relation('metric_series_' + grain)}")
    df["bucket_start"] = pd.to_datetime(df["bucket_start"])
    return df


def as_dict(df: pd.DataFrame, metric: str) -> dict:
    rows = df[df.metric == metric]
    return {(pd.Timestamp(b), d, v): (None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x))
            for b, d, v, x in zip(rows.bucket_start, rows.dimension, rows.dimension_value, rows.value)}


def same_number(a, b, rel=1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def assert_series_equal(got: dict, want: dict, label: str) -> None:
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    assert not missing and not extra, f"{label}: buckets missing {missing}, unexpected {extra}"
    wrong = [(k, got[k], want[k]) for k in sorted(want) if not same_number(got[k], want[k])]
    assert not wrong, f"{label}: {len(wrong)} values differ, e.g. {wrong[:5]}"
