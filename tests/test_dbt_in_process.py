"""dbt in the step's process (defs/dbt_in_process.py): the invocation dagster-dbt reads
reports what a dbt process would (events, success, failed model, run_results.json), the
build follows the manifest of the last parse (and parses when another process re-parsed),
and the warehouse file is free again when dbt ends."""
from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from dagster_project.defs import resources
from dagster_project.defs.dbt_in_process import InProcessDbt
from dagster_project.defs.rollup_assets import failed_nodes
from dagster_project.validation.project import load_project
from dagster_project.compiler.writer import compile_project

from .conftest import make_project

pytestmark = pytest.mark.dbt

METRIC = "name: orders\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\ngrains: [day]\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(tmp_path))
    paths = make_project(tmp_path, {"c/orders.yml": METRIC}, "start: 2026-09-01\n")
    compile_project(paths, load_project(paths).project)
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    yield paths
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()


def _probe(paths, value: str) -> None:
    (paths.generated_dir / "probe.sql").write_text(f"select {value} as v\n")


def _slow_probe(paths) -> None:
    """A table whose query takes seconds (a view would cost nothing to build)."""
    (paths.generated_dir / "probe.sql").write_text(
        "{{ config(materialized='table') }}\n"
        "select count(*) as v from range(3000000) a, range(1000) b where a.range * b.range % 7 = 1\n")


def _build(select: str):
    invocation = resources.metrics_dbt_resource().cli(["build", "--select", select], raise_on_error=False)
    events = list(invocation.stream_raw_events())
    return invocation, events


def _probe_value(paths) -> int:
    con = duckdb.connect(str(paths.duckdb_path), read_only=True)
    try:
        return con.execute("select v from analytics.probe").fetchone()[0]
    finally:
        con.close()


def test_a_build_runs_in_this_process_and_reports_like_a_dbt_process(project):
    _probe(project, "1")
    resources.parse_manifest(project)
    invocation, events = _build("probe")
    assert isinstance(invocation.process, InProcessDbt)
    assert invocation.is_successful()
    finished = [e.raw_event["data"]["node_info"]["node_name"] for e in events if e.raw_event["info"]["name"] == "LogModelResult"]
    assert finished == ["probe"]
    results = invocation.get_artifact("run_results.json")["results"]
    assert [(r["unique_id"].split(".")[-1], r["status"]) for r in results] == [("probe", "success")]
    # nothing below info level, as `dbt --log-format json` prints
    assert all(e.raw_event["info"]["level"] != "debug" for e in events)
    assert _probe_value(project) == 1


def test_a_failing_model_fails_the_invocation_with_its_name_and_frees_the_file(project):
    (project.generated_dir / "broken.sql").write_text("select * from a_table_that_does_not_exist\n")
    resources.parse_manifest(project)
    invocation, _ = _build("broken")
    assert not invocation.is_successful()
    assert invocation.process.returncode == 1
    [(name, message)] = failed_nodes(invocation)
    assert name == "broken" and "a_table_that_does_not_exist" in message
    # another process can write the warehouse file: dbt's connection is closed
    subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(project.duckdb_path)!r}).close()"],
                   check=True, timeout=60)


def test_the_build_follows_the_last_parse_and_another_processes_parse(project):
    _probe(project, "1")
    resources.parse_manifest(project)
    _build("probe")
    assert _probe_value(project) == 1
    # changed and parsed again in this process: the new SQL
    _probe(project, "2")
    resources.parse_manifest(project)
    _build("probe")
    assert _probe_value(project) == 2
    # changed and parsed by another process: target/manifest.json is not the one this
    # process parsed, so the build parses first
    _probe(project, "3")
    env = {**os.environ, "DBT_PROFILES_DIR": str(project.dbt_project_dir)}
    subprocess.run([resources.dbt_executable(), "parse", "--project-dir", str(project.dbt_project_dir), "--target", "duckdb"],
                   env=env, check=True, capture_output=True, timeout=300)
    invocation, _ = _build("probe")
    assert invocation.is_successful()
    assert _probe_value(project) == 3


def test_paths_are_the_dbt_project_folders_wherever_the_step_runs(project, tmp_path, monkeypatch):
    """A dbt process ran in the dbt project folder: the profile's default warehouse path
    (../warehouse/metrics.duckdb) and dagster-dbt's relative log folder are taken from
    there, not from the step's working directory; dbt's debug log is written."""
    monkeypatch.delenv("METRICS_DUCKDB_PATH")
    elsewhere = tmp_path / "a" / "b"  # its ../warehouse is not the project's
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    _probe(project, "7")
    resources.parse_manifest(project)
    invocation, _ = _build("probe")
    assert invocation.is_successful()
    assert project.duckdb_path == project.root / "warehouse" / "metrics.duckdb"
    assert _probe_value(project) == 7
    assert "probe" in (invocation.target_path / "dbt.log").read_text()
    assert not any(elsewhere.iterdir())


def test_dbt_failing_before_any_model_ends_like_a_dbt_process(project):
    """dbt's own error (an unknown profile target here): exit code 2, its message among
    the invocation's errors, no run_results to read."""
    resources.parse_manifest(project)
    dbt = resources.MetricsDbtCliResource(project_dir=resources.metrics_dbt_project(),
                                          dbt_executable=resources.dbt_executable(), target="no_such_target")
    invocation = dbt.cli(["build", "--select", "probe"], raise_on_error=False)
    list(invocation.stream_raw_events())
    assert not invocation.is_successful()
    assert invocation.process.returncode == 2
    assert "no_such_target" in str(invocation.get_error())
    assert failed_nodes(invocation) == []


def test_a_warehouse_file_held_by_another_process_is_one_error_without_stack_traces(project):
    """Another process took the DuckDB file after `metrics run` checked it: dbt stops
    before any model, and its "Encountered an error" came with three stack traces per
    try on the console while the step's error said only "dbt failed before running a
    model". The error is kept (the step's error names it); the stack traces stay in dbt.log."""
    _probe(project, "1")
    resources.parse_manifest(project)
    project.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                               f"con = duckdb.connect({str(project.duckdb_path)!r})\nprint('held', flush=True)\n"
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        invocation, events = _build("probe")
    finally:
        holder.communicate("", timeout=30)
    assert not invocation.is_successful() and failed_nodes(invocation) == []
    assert "Could not set lock" in invocation.process.error and f"PID {holder.pid}" in invocation.process.error
    printed = "\n".join(str(e) for e in events)
    assert "Encountered an error" in printed and "Traceback" not in printed
    assert "Traceback" in (invocation.target_path / "dbt.log").read_text()


def test_after_an_interrupted_wait_the_running_dbt_is_stopped_and_waited_for(project):
    """A second Ctrl-C broke dagster-dbt's wait for the dbt thread; Python 3.11 then
    reports that thread as ended (is_alive() False) while it still runs a query, so
    nothing waited for it and the process exited under it: SIGABRT."""
    import signal
    import threading

    from dagster_project.defs.dbt_in_process import _RUNNING, stop_running

    _slow_probe(project)
    resources.parse_manifest(project)
    invocation = resources.metrics_dbt_resource().cli(["build", "--select", "probe"], raise_on_error=False)
    dbt = invocation.process
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        dbt.wait(60)  # interrupted by the Ctrl-C, dbt's query still running
    assert dbt.returncode is None and dbt in _RUNNING
    stop_running()
    assert dbt.returncode is not None and dbt not in _RUNNING
    list(invocation.stream_raw_events())  # what it printed, read to the end


def test_a_ctrl_c_during_dbt_in_this_thread_is_an_interrupt_not_a_dbt_failure(project):
    """dbtRunner catches the KeyboardInterrupt and returns it as its error: `metrics run
    --include-drafts`, the parse at the start of a run and `metrics diff --values` said
    "dbt: " failed (exit 1 or 2) after a Ctrl-C."""
    import signal
    import threading

    from dagster_project.warehouse.dbt_runner import run_dbt

    _slow_probe(project)
    resources.parse_manifest(project)
    timer = threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_dbt(project, "duckdb", ["build", "--select", "probe"], quiet=True)
    finally:
        timer.cancel()
