"""metric_anomalies on every warehouse: the same demo data built by dbt on DuckDB, Postgres
and ClickHouse (chDB) is scored, written and read back; the rows are the same everywhere,
and re-scoring a window replaces exactly its rows."""
from __future__ import annotations

import datetime as dt
import math
import shutil

import pytest

from dagster_project.demo.generator import generate_range
from dagster_project.paths import REPO_ROOT
from dagster_project.scoring.window import score, write
from dagster_project.validation.project import load_project
from dagster_project.warehouse.anomaly_store import read_anomalies
from dagster_project.warehouse.connection import Warehouse

from .conftest import _pg_admin, make_project
from .helpers import compile_and_build, load_raw

pytestmark = pytest.mark.dbt

FIRST_DAY = dt.date(2026, 9, 1)
END = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 10, 1, 0, 0)
WINDOW = (dt.datetime(2026, 9, 22), dt.datetime(2026, 10, 1))
_RESULTS: dict[str, list[tuple]] = {}


@pytest.fixture(scope="module")
def scored(target, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"anomalies_{target}")
    paths = make_project(root, {}, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    shutil.copytree(REPO_ROOT / "metrics", paths.metrics_dir, dirs_exist_ok=True)
    wh = Warehouse(target, paths)
    load_raw(wh, generate_range(FIRST_DAY, END, seed=3, events_per_day=1200, now=NOW))
    compile_and_build(paths, target, (FIRST_DAY, END))
    project = load_project(paths).project
    frame, summary = score(wh, project, "day", *WINDOW, NOW)
    write(wh, "day", frame, summary, "run-1", NOW)
    return wh, project, summary


def _rows(wh) -> list[tuple]:
    columns, rows = read_anomalies(wh, grain="day", flagged_only=False)
    out = []
    for r in rows:
        d = dict(zip(columns, r))
        out.append((d["metric"], d["bucket_start"], d["dimension"], d["dimension_value"], d["value"], d["expected"],
                    d["lower"], d["upper"], d["score"], bool(d["is_anomaly"]), d["direction"], bool(d["provisional"]),
                    d["model"], d["reason"]))
    return sorted(out, key=lambda t: t[:4])


def _same(a: tuple, b: tuple) -> bool:
    for x, y in zip(a, b):
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                if not ((x is None or math.isnan(x)) and (y is None or math.isnan(y))):
                    return False
            elif not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def test_written_rows_read_back_the_same_on_every_warehouse(scored, target):
    wh, project, summary = scored
    rows = _rows(wh)
    assert summary.series_scored > 0 and len(rows) == summary.buckets_scored > 0
    assert {r[1] for r in rows} <= {WINDOW[0] + dt.timedelta(days=n) for n in range(9)}
    _RESULTS[target] = rows
    if target != "duckdb" and "duckdb" in _RESULTS:
        reference = _RESULTS["duckdb"]
        assert len(rows) == len(reference)
        different = [(a, b) for a, b in zip(rows, reference) if not _same(a, b)]
        assert not different, different[:3]


_HOURS: dict[str, list[tuple]] = {}


def test_hour_rows_are_the_same_on_every_warehouse(scored, target):
    """Hours of averages and ratios: a warehouse's float noise in an input (38.15 read
    as 38.150000000000006 on Postgres) changed a reason's rounding, and once a model."""
    wh, project, _ = scored
    frame, _ = score(wh, project, "hour", dt.datetime(2026, 9, 24), WINDOW[1], NOW)
    columns = ["metric", "bucket_start", "dimension", "dimension_value", "value", "expected", "lower", "upper",
               "score", "is_anomaly", "direction", "provisional", "model", "reason"]
    rows = sorted((tuple(None if isinstance(v, float) and math.isnan(v) else v for v in r)
                   for r in frame[columns].itertuples(index=False)), key=lambda t: (t[0], str(t[1]), t[2], t[3]))
    assert len(rows) > 1000
    _HOURS[target] = rows
    if target != "duckdb" and "duckdb" in _HOURS:
        reference = _HOURS["duckdb"]
        assert [r[:4] for r in rows] == [r[:4] for r in reference]
        different = [(a, b) for a, b in zip(rows, reference) if not _same(a, b)]
        assert not different, (len(different), different[:2])


def test_rescoring_replaces_exactly_the_window(scored, target):
    wh, project, _ = scored
    before = _rows(wh)
    # re-score the last three days only: those rows are replaced (new run id), the rest stay
    lo = WINDOW[1] - dt.timedelta(days=3)
    frame, summary = score(wh, project, "day", lo, WINDOW[1], NOW)
    write(wh, "day", frame, summary, "run-2", NOW)
    columns, rows = read_anomalies(wh, grain="day", flagged_only=False)
    runs = {(d["metric"], d["bucket_start"], d["dimension"], d["dimension_value"]): d["run_id"]
            for d in (dict(zip(columns, r)) for r in rows)}
    assert len(runs) == len(before)
    assert all((run == "run-2") == (key[1] >= lo) for key, run in runs.items())
    # the same data scores the same: only the provenance changed
    assert all(_same(a, b) for a, b in zip(_rows(wh), before))


def test_rescoring_some_metrics_keeps_the_others_rows(scored, target):
    from dagster_project.scoring.window import scored_metrics
    wh, project, _ = scored
    before = _rows(wh)
    lo = WINDOW[1] - dt.timedelta(days=2)
    chosen = scored_metrics(project, "day", {"orders", "revenue"})
    frame, summary = score(wh, project, "day", lo, WINDOW[1], NOW, metrics=chosen)
    write(wh, "day", frame, summary, "run-3", NOW, metrics=[m.name for m in chosen])
    columns, rows = read_anomalies(wh, grain="day", flagged_only=False)
    runs = {(d["metric"], d["bucket_start"], d["dimension"], d["dimension_value"]): d["run_id"]
            for d in (dict(zip(columns, r)) for r in rows)}
    assert len(runs) == len(before)
    assert {key[0] for key, run in runs.items() if run == "run-3"} == {"orders", "revenue"}
    assert all((run == "run-3") == (key[0] in ("orders", "revenue") and key[1] >= lo) for key, run in runs.items())


def test_a_whole_rescore_leaves_the_rows_it_is_told_to_keep(scored, target):
    """`keep`: the drafts `metrics run --include-drafts` scored survive the next scoring
    of every active metric of the window."""
    wh, project, _ = scored
    before = {(r[0], r[1], r[2], r[3]) for r in _rows(wh)}
    lo = WINDOW[1] - dt.timedelta(days=2)
    everyone = [m for m in project.metrics.values() if m.public and "day" in m.grains and m.status == "active"]
    without = [m for m in everyone if m.name != "orders"]
    frame, summary = score(wh, project, "day", lo, WINDOW[1], NOW, metrics=without)
    write(wh, "day", frame, summary, "run-4", NOW, keep=["orders"])
    columns, rows = read_anomalies(wh, grain="day", flagged_only=False)
    runs = {(d["metric"], d["bucket_start"], d["dimension"], d["dimension_value"]): d["run_id"]
            for d in (dict(zip(columns, r)) for r in rows)}
    assert set(runs) == before  # orders' rows kept, every other metric's replaced
    assert all((run == "run-4") == (key[0] != "orders" and key[1] >= lo) for key, run in runs.items())


def test_values_are_read_without_float_noise_and_whole_numbers_are_kept():
    """What scoring reads (scoring/inputs.py `significant`): a warehouse's float noise is
    dropped (12 significant digits), but a whole number is never rounded to a coarser
    unit (1,234,567,890,123 cents was read as 1,234,567,890,120)."""
    import numpy as np
    from dagster_project.scoring.inputs import significant
    read = [38.150000000000006, 0.1 + 0.2, 1_234_567_890_123.0, 1_234_567_890_123.4, -987_654_321_098_765.0,
            float(2 ** 53), 123_456.789_012_345_6, 5e-324, 0.0]
    wanted = [38.15, 0.3, 1_234_567_890_123.0, 1_234_567_890_123.0, -987_654_321_098_765.0,
              float(2 ** 53), 123_456.789_012, 5e-324, 0.0]
    assert significant(np.array(read)).tolist() == wanted
    assert np.isnan(significant(np.array([np.nan]))).all() and significant(np.array([np.inf])).tolist() == [np.inf]


def test_one_metrics_hours_are_read_without_nested_loops_on_postgres(scored, target):
    """The series views stack CTEs whose sizes Postgres misestimates (394 rows for
    21,119): reading one ratio's hours it planned nested loops over them, 64 s for a day
    of hours on the demo's 40 days, so a hour backtest took minutes per sensitivity.
    Our sessions turn nested loops off: hash joins, 0.2 s."""
    if target != "postgres":
        pytest.skip("a Postgres planner setting")
    wh, _, _ = scored
    _, plan = wh.rows(f"explain select * from {wh.relation('metric_series_hour')} "
                      "where metric = 'average_order_value' and bucket_start >= '2026-09-29'")
    text = "\n".join(r[0] for r in plan)
    assert "Hash" in text and "Nested Loop" not in text, text


def test_postgres_sessions_keep_the_users_pgoptions(monkeypatch, tmp_path):
    """Nested loops are turned off with a SET: as the `options` startup parameter it
    replaced PGOPTIONS (a statement_timeout was lost), and poolers refuse it."""
    _pg_admin().close()
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=1234")
    wh = Warehouse("postgres", make_project(tmp_path, {}))
    assert wh.rows("show statement_timeout")[1] == [("1234ms",)]
    assert wh.rows("show enable_nestloop")[1] == [("off",)]
