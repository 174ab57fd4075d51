"""Ctrl-C stops `metrics run`: exit 130 and one line saying so. The steps' retry policy
(meant for a warehouse that is briefly away) retried an interrupted step, so one Ctrl-C
during the anomaly scoring let the whole run finish with exit 0. Real dbt and Dagster on
DuckDB, a real SIGINT."""
from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from dagster_project.paths import REPO_ROOT

from .conftest import make_project

pytestmark = pytest.mark.dbt


def _demo_project(tmp_path, instance_yaml: bool = False) -> tuple[list[str], dict[str, str]]:
    """The example's metrics over 30 days of demo data, a Dagster home (with
    dagster_home.yaml in it, as scripts/demo.sh leaves it, when `instance_yaml`): the
    command line and environment of its CLI."""
    make_project(tmp_path, {})
    shutil.copytree(REPO_ROOT / "metrics", tmp_path / "metrics", dirs_exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    (tmp_path / "dagster_home").mkdir()
    if instance_yaml:
        shutil.copy(REPO_ROOT / "dagster_home.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    cli = [sys.executable, "-m", "dagster_project.cli.main", "--project-dir", str(tmp_path)]
    demo = subprocess.run([*cli, "demo-data", "--days", "30"], env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    return cli, env


def test_one_ctrl_c_stops_metrics_run_with_exit_130(tmp_path):
    cli, env = _demo_project(tmp_path)
    run = subprocess.Popen([*cli, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in run.stdout:  # the hour job's progress line comes before its steps start
        lines.append(line)
        if "hour rollups, partitions" in line and line.rstrip().endswith("..."):
            break
    time.sleep(1.5)  # inside the hour job: dbt, then the anomaly scoring
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=300)
    stdout = "".join(lines) + out
    assert run.returncode == 130, (run.returncode, stdout[-2000:], err[-2000:])
    assert "error: interrupted (Ctrl-C): stopped" in err
    assert "had not ended" not in err  # stopped in order, not by the watchdog (interrupt_watchdog.py)
    assert "month rollups" not in stdout  # nothing ran after it


def test_ctrl_c_in_a_terminal_during_dbt_stops_the_run_with_one_line(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the processes that echo a
    step's output (dagster_home.yaml's compute logs) printed KeyboardInterrupt stack
    traces, and an interrupt that Dagster caught between two of dbt's events failed the
    step with its own error: "the build failed", exit 1. A second Ctrl-C cut short the
    wait for the dbt thread, and exiting with it in a query aborted the process."""
    cli, env = _demo_project(tmp_path, instance_yaml=True)
    # a process group of its own, as a terminal's foreground job
    run = subprocess.Popen([*cli, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    lines, in_hour_job = [], False
    for line in run.stdout:
        lines.append(line)
        in_hour_job = in_hour_job or "hour rollups, partitions" in line
        if in_hour_job and "START sql metric_rollup model" in line:  # echoed: dbt runs, the echo too
            break
    os.killpg(run.pid, signal.SIGINT)
    time.sleep(0.1)  # and again, impatient, while it stops: it broke the wait for dbt's thread
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=300)
    stdout = "".join(lines) + out
    assert run.returncode == 130, (run.returncode, stdout[-2000:], err[-2000:])  # not SIGABRT
    assert "error: interrupted (Ctrl-C): stopped" in err
    assert "Traceback" not in err and "Traceback" not in stdout, err
    assert "build failed" not in err


def test_a_query_stopped_by_ctrl_c_is_an_interrupt_not_warehouse_trouble(tmp_path, monkeypatch):
    """DuckDB turns a Ctrl-C during a query into 'Query interrupted': read as warehouse
    trouble, the scoring step was retried and the run went on. (psycopg2 finishes the
    query, then the KeyboardInterrupt is raised as it is.)"""
    from dagster_project.warehouse.connection import Warehouse
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    wh = Warehouse("duckdb", make_project(tmp_path / "p", {}))
    wh.execute("create schema if not exists analytics")
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            wh.rows("select sum(a.range * b.range) from range(100000) a, range(100000) b")
    finally:
        timer.cancel()



def test_raw_rows_stopped_by_ctrl_c_are_an_interrupt_and_change_nothing(tmp_path, monkeypatch):
    """`metrics demo-data` stopped while DuckDB inserted a day's frame: 'Query
    interrupted' came out as a stack trace (exit 1), as the loading went around the
    driver-error mapping that queries use."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from dagster_project.warehouse.connection import Warehouse
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    wh = Warehouse("duckdb", make_project(tmp_path / "p", {}))
    day = dt.datetime(2026, 9, 1)
    wh.replace_rows("t", pd.DataFrame({"ts": [day], "v": [1.0]}), "ts", day, day + dt.timedelta(days=1))
    n = 30_000_000  # about 0.8 s to insert here: the Ctrl-C comes during it
    big = pd.DataFrame({"ts": np.full(n, np.datetime64(day, "us")), "v": np.arange(n, dtype=float)})
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            wh.replace_rows("t", big, "ts", day, day + dt.timedelta(days=1))
    finally:
        timer.cancel()
    assert wh.frame("select v from raw.t")["v"].tolist() == [1.0]  # the day as it was


def test_a_ctrl_c_python_could_not_raise_is_raised_again():
    """A Ctrl-C that lands in a weakref callback (Dagster has some) is reported as
    'Exception ignored' and lost: the run went on and exited 0. The process's hook raises
    it again in the main thread."""
    import types

    from dagster_project.defs.dbt_in_process import _unraisable
    with pytest.raises(KeyboardInterrupt):
        _unraisable(types.SimpleNamespace(exc_value=KeyboardInterrupt(), exc_type=KeyboardInterrupt, object=None,
                                          exc_traceback=None, err_msg=None))
        for _ in range(100):  # raised at the main thread's next check
            time.sleep(0.01)


def test_a_killed_run_leaves_no_slot_that_blocks_the_next_one(tmp_path, monkeypatch):
    """A `metrics run` killed hard (SIGKILL, the OOM killer) left its Dagster run STARTED,
    holding the embedded warehouse's one writer slot (dagster_home.yaml): every later run
    waited on it for ever, at full CPU, without a word. The next `metrics run` marks the
    dead run failed, frees its slot and goes on."""
    from dagster import DagsterInstance, DagsterRunStatus
    cli, env = _demo_project(tmp_path, instance_yaml=True)
    run = subprocess.Popen([*cli, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    in_hour_job = False
    for line in run.stdout:
        in_hour_job = in_hour_job or "hour rollups, partitions" in line
        if in_hour_job and "START sql metric_rollup model" in line:  # a step holds the slot
            break
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with DagsterInstance.get() as instance:
        killed = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
        assert len(killed) == 1  # the state the kill leaves
        assert instance.event_log_storage.get_concurrency_info("embedded_warehouse_writer").active_run_ids
    recent = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).date().isoformat()
    again = subprocess.run([*cli, "run", "--start", recent], env=env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-2000:])
    assert f"run {killed[0].run_id}: its `metrics run` process ended without finishing it (killed?)" in again.stdout
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(killed[0].run_id).status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info("embedded_warehouse_writer").active_run_ids


def test_a_run_waiting_for_the_writer_slot_says_which_run_holds_it(tmp_path, monkeypatch):
    """Another live run holding the warehouse's writer slot (a backfill from the UI): the
    wait was silent. `metrics run` names the run it waits for, and goes on once the
    slot is free."""
    from dagster import DagsterInstance
    cli, env = _demo_project(tmp_path, instance_yaml=True)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
    holder = "0b0b0b0b-1111-2222-3333-444444444444"
    with DagsterInstance.get() as instance:
        instance.add_run(DagsterRun(job_name="rollups_day_job", run_id=holder, status=DagsterRunStatus.STARTED))
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("embedded_warehouse_writer")
        assert storage.claim_concurrency_slot("embedded_warehouse_writer", holder, "rollups_day").is_claimed
    recent = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).date().isoformat()
    run = subprocess.Popen([*cli, "run", "--start", recent], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    stop = threading.Timer(150, run.kill)  # a silent wait is a failure, not a hung test
    stop.start()
    said = ""
    for line in run.stdout:
        if "waiting for the warehouse writer slot" in line:
            said = line
            break
    stop.cancel()
    assert holder in said, said
    with DagsterInstance.get() as instance:
        instance.event_log_storage.free_concurrency_slots_for_run(holder)
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, (out[-2000:], err[-2000:])
    assert "hour rollups" in out


def test_only_a_run_whose_own_process_ended_is_judged_dead(tmp_path):
    """The tag names the run it was made for, the host, the PID namespace, the pid and
    its start time: a re-execution from the UI copies its parent's tags (a live run was
    marked failed), a container with the same host name has other pids, and a reused
    pid is another process."""
    from dagster_project.defs.run_owner import OWNER_TAG, _gone, owner_tag
    mine = owner_tag("run-a")[OWNER_TAG]
    assert not _gone("run-a", mine)  # this process, alive
    assert not _gone("run-b", mine)  # copied to another run: not judged
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_id, host, namespace, _, _ = mine.split("|")
    assert _gone("run-a", "|".join((run_id, host, namespace, dead.stdout.strip(), "1")))
    assert not _gone("run-a", "|".join((run_id, host, "pid:[1]", dead.stdout.strip(), "1")))  # another namespace
    assert not _gone("run-a", "|".join((run_id, "elsewhere", namespace, dead.stdout.strip(), "1")))
    assert _gone("run-a", "|".join((run_id, host, namespace, str(os.getpid()), "1")))  # the pid, reused



def test_a_command_that_a_ctrl_c_does_not_stop_is_ended_after_the_grace_period():
    """A KeyboardInterrupt that lands where a library never lets go of a lock left
    `metrics run` waiting forever after its Ctrl-C (a CI run: no output for 300 s). The
    `metrics` entry point around a stand-in command that swallows every Ctrl-C and
    waits: the watchdog it arms ends the process GRACE_SECONDS after the first one,
    with exit 130 and the one line. (Before it, this process never ended.)"""
    code = ("import signal, sys, threading\n"
            "from dagster_project.cli import main\n"
            "try:\n"
            "    from dagster_project.cli import interrupt_watchdog\n"
            "    interrupt_watchdog.GRACE_SECONDS = 1.0\n"
            "except ImportError:\n"
            "    pass\n"
            "def stuck(argv=None):\n"
            "    signal.signal(signal.SIGINT, lambda *_: None)  # every Ctrl-C swallowed\n"
            "    print('ready', flush=True)\n"
            "    threading.Event().wait()  # and a wait that never ends\n"
            "main.main = stuck\n"
            "sys.exit(main.entry())\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT)
    try:
        assert proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "error: interrupted (Ctrl-C): stopped: it had not ended 1 s after the Ctrl-C" in err, err
    assert time.monotonic() - started >= 1.0  # not before the grace period


def test_the_watchdog_ends_a_command_stuck_writing_to_a_full_stderr_pipe():
    """A command stuck writing to a pipe nobody reads holds stderr's buffer lock: the
    watchdog's own message must not wait for it (it printed through that buffer and
    blocked with it, and the process never ended)."""
    code = ("import signal, sys, threading\n"
            "from dagster_project.cli import main, interrupt_watchdog\n"
            "interrupt_watchdog.GRACE_SECONDS = 1.0\n"
            "def stuck(argv=None):\n"
            "    signal.signal(signal.SIGINT, lambda *_: None)\n"
            "    print('ready', flush=True)\n"
            "    while True:\n"
            "        sys.stderr.write('x' * 1000)\n"
            "        sys.stderr.flush()\n"
            "main.main = stuck\n"
            "sys.exit(main.entry())\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO_ROOT)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.5)  # the stderr pipe fills: the command blocks in its write
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130  # (stderr left unread until the end, on purpose)
    finally:
        proc.kill()
