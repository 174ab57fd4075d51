"""A warehouse that rejects a query or cannot be reached: one clear error naming the
target and the model, and the rollup rows already built stay exactly as they were."""
from __future__ import annotations

import os
import re

import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import load_raw

pytestmark = pytest.mark.dbt

METRICS = {k: cases.METRICS[k] for k in ("events/downloads.yml", "events/active_users.yml", "orders/revenue.yml")}


def _snapshot(wh: Warehouse):
    rel = wh.relation("rollup_stg_entity_events__by_created_at__day")
    return wh.frame(f"select * from {rel} order by metric, bucket_start, dimension, dimension_value")


def test_rejected_query_names_target_and_model_and_keeps_rows(tmp_path, target, capsys):
    paths = make_project(tmp_path, METRICS, cases.CONFIG)
    wh = Warehouse(target, paths)
    load_raw(wh, cases.make_raw())
    args = ["--project-dir", str(paths.root), "run", "--target", target, "--start", "2024-03-01", "--end", "2024-03-08"]
    assert main(args) == 0
    before = _snapshot(wh)
    assert len(before)
    # a column the dbt YAML declares but the relation lacks: validation passes, the
    # warehouse refuses the rollup's query
    props = paths.models_dir / "staging" / "_staging__models.yml"
    props.write_text(props.read_text().replace(
        "      - {name: created_at, data_type: timestamp, description: UTC}\n  - name: stg_orders",
        "      - {name: created_at, data_type: timestamp, description: UTC}\n      - {name: ghost_column}\n  - name: stg_orders"))
    (paths.metrics_dir / "events" / "downloads.yml").write_text(
        cases.METRICS["events/downloads.yml"].replace("metric_type = 'Download'", "ghost_column = 'x'"))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    # the first grain to run fails, naming the metric files first, then target and model
    # with the warehouse's words
    assert re.search(rf"error: metric active_users \(metrics/events/active_users.yml\), metric downloads \(metrics/events/downloads.yml\): "
                     rf"{target}: rollup_stg_entity_events__by_created_at__(hour|day|week|month): .*ghost_column", err, re.I), err
    assert "rows of windows that did not finish are unchanged" in err
    # the error once, as that line: Dagster's console printed it twice more before, with
    # its stack trace (kept in the failed run's events, which the last line names)
    assert "Stack Trace" not in err and "STEP_FAILURE" not in err and "Traceback" not in err, err
    kept = re.search(r"the failed Dagster run ([0-9a-f-]{36}), with the stack trace: (\S+)", err)
    assert kept, err
    if not os.environ.get("DAGSTER_HOME"):  # an ephemeral instance: the trace is kept in a file
        trace = (paths.warehouse_dir / "failed_runs" / f"{kept.group(1)}.txt")
        assert kept.group(2) == str(trace) and "ghost_column" in trace.read_text() and "File \"" in trace.read_text()
    pd.testing.assert_frame_equal(_snapshot(wh), before)


def test_unreachable_postgres_is_one_clear_error(tmp_path, capsys, monkeypatch):
    paths = make_project(tmp_path, METRICS, cases.CONFIG)
    monkeypatch.setenv("METRICS_PG_PORT", "1")  # nothing listens there
    assert main(["--project-dir", str(paths.root), "demo-data", "--days", "1", "--target", "postgres"]) == 1
    assert "error: postgres: cannot connect to 127.0.0.1:1/" in capsys.readouterr().err
    assert main(["--project-dir", str(paths.root), "run", "--target", "postgres"]) == 1
    err = capsys.readouterr().err
    assert "error: postgres: cannot connect to 127.0.0.1:1/" in err and "nothing built" in err


@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_postgres_going_away_mid_run_keeps_rows(tmp_path, target, capsys):
    """The server drops the connection while a rollup query runs (its source view ends
    the session that reads it): the run fails naming target and model, retries the
    transient error, and the rows built before are intact."""
    metrics = {**METRICS, "events/poisoned_events.yml":
               "name: poisoned_events\nsource: stg_poisoned\ntimestamp: created_at\naggregation: count\n"}
    paths = make_project(tmp_path, metrics, cases.CONFIG)
    staging = paths.models_dir / "staging"
    (staging / "_poisoned.yml").write_text(
        "version: 2\nmodels:\n  - name: stg_poisoned\n    columns:\n      - {name: created_at, data_type: timestamp}\n")
    view = staging / "stg_poisoned.sql"
    view.write_text("select * from {{ ref('stg_entity_events') }}\n")
    wh = Warehouse(target, paths)
    load_raw(wh, cases.make_raw())
    args = ["--project-dir", str(paths.root), "run", "--target", target, "--start", "2024-03-01", "--end", "2024-03-03"]
    assert main(args) == 0
    rel = wh.relation("rollup_stg_poisoned__by_created_at__hour")
    before = wh.frame(f"select * from {rel} order by metric, bucket_start, dimension, dimension_value")
    assert len(before)
    # reading the view now terminates the reading session on the server
    view.write_text("select * from {{ ref('stg_entity_events') }} where pg_terminate_backend(pg_backend_pid())\n")
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: metric poisoned_events \(metrics/[a-z]+/poisoned_events.yml\): postgres: rollup_stg_poisoned__by_created_at__hour: .*(terminat|closed the connection)", err, re.I), err
    # each retry is said as it starts (the backoff made the run look hung)
    assert "warehouse trouble (" in err and "retry 1 of 3" in err and "retry 3 of 3" in err, err
    after = wh.frame(f"select * from {rel} order by metric, bucket_start, dimension, dimension_value")
    pd.testing.assert_frame_equal(after, before)


def test_raw_rows_land_in_their_columns_whatever_the_frames_column_order(tmp_path, monkeypatch):
    """A loader's frame need not list columns in the table's order (DuckDB inserted by
    position: a country landed in user_id)."""
    import datetime as dt
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    wh = Warehouse("duckdb", make_project(tmp_path / "p", {}))
    day = dt.datetime(2026, 9, 1)
    first = pd.DataFrame({"country": ["FR"], "user_id": ["u0"], "ts": [day]})
    wh.replace_rows("t", first, "ts", day, day + dt.timedelta(days=1))
    later = pd.DataFrame({"user_id": ["u1"], "ts": [day + dt.timedelta(days=1)], "country": ["DE"]})
    wh.replace_rows("t", later, "ts", day + dt.timedelta(days=1), day + dt.timedelta(days=2))
    rows = wh.frame("select country, user_id from raw.t order by ts")
    assert rows.values.tolist() == [["FR", "u0"], ["DE", "u1"]]


@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_a_loaders_rejected_rows_keep_the_drivers_whole_error(tmp_path, target):
    """replace_rows is what a loader calls (defs/collection.py): a COPY that Postgres
    rejects keeps psycopg2's error with the line and column it names, not a one-line
    summary; and the day's rows stay as they were."""
    import datetime as dt

    import psycopg2
    wh = Warehouse("postgres", make_project(tmp_path / "p", {}))
    day = dt.datetime(2026, 9, 1)
    wh.replace_rows("loaded", pd.DataFrame({"ts": [day], "n": [1]}), "ts", day, day + dt.timedelta(days=1))
    with pytest.raises(psycopg2.Error) as err:
        wh.replace_rows("loaded", pd.DataFrame({"ts": [day], "n": ["not a number"]}), "ts", day,
                        day + dt.timedelta(days=1))
    assert "COPY loaded, line 1" in str(err.value) and "not a number" in str(err.value)
    assert wh.frame("select n from raw.loaded")["n"].tolist() == [1]
