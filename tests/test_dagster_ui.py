"""The real UI path: `dagster dev` (webserver and daemon) on a free loopback port, a
backfill of a 3-day range launched through its GraphQL API, then the rollup rows."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from dagster_project.compiler.writer import compile_project
from dagster_project.paths import REPO_ROOT
from dagster_project.validation.project import load_project
from dagster_project.warehouse.connection import Warehouse
from dagster_project.warehouse.dbt_runner import run_dbt

from . import rollup_cases as cases
from .conftest import make_project
from .helpers import load_raw

pytestmark = pytest.mark.dbt

LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui(tmp_path):
    paths = make_project(tmp_path / "project", cases.METRICS, cases.CONFIG)
    compile_project(paths, load_project(paths).project)
    load_raw(Warehouse("duckdb", paths), cases.make_raw())
    assert run_dbt(paths, "duckdb", ["build", "--select", "tag:staging"], quiet=True).ok
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster_home.yaml").read_text())  # the project's instance settings
    (paths.root / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: dagster_project.defs.definitions\n")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "METRICS_PROJECT_DIR": str(paths.root),
           "METRICS_DUCKDB_PATH": str(paths.duckdb_path)}
    log = open(tmp_path / "dagster_dev.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=paths.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster dev did not start: " + (tmp_path / "dagster_dev.log").read_text()[-2000:])
        yield url, paths, tmp_path / "dagster_dev.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _gql(url: str, query: str, variables: dict) -> dict:
    res = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30)
    body = res.json()
    assert "errors" not in body and body.get("data"), body
    return body["data"]


def test_backfill_launched_through_the_graphql_api(ui):
    url, paths, log = ui
    keys = ["rollup_stg_entity_events__by_created_at__day", "rollup_stg_orders__by_ordered_at__day", "rollup_stg_follower_snapshots__by_observed_at__day", "metric_series_day"]
    params = {"assetSelection": [{"path": [k]} for k in keys],
              "partitionNames": ["2024-03-04", "2024-03-05", "2024-03-06"], "fromFailure": False}
    deadline = time.time() + 120
    while True:  # the code location may still be loading
        launched = _gql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
        if launched["__typename"] == "LaunchBackfillSuccess" or time.time() > deadline:
            break
        time.sleep(2)
    assert launched["__typename"] == "LaunchBackfillSuccess", (launched, log.read_text()[-3000:])
    backfill_id = launched["backfillId"]
    deadline = time.time() + 300
    status = None
    while time.time() < deadline:
        status = _gql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"].get("status")
        if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED"):
            break
        time.sleep(3)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    wh = Warehouse("duckdb", paths)
    rows = wh.frame("select bucket_start, run_id from analytics.rollup_stg_entity_events__by_created_at__day")
    assert set(pd.to_datetime(rows.bucket_start)) == {pd.Timestamp(d) for d in ("2024-03-04", "2024-03-05", "2024-03-06")}
    assert rows.run_id.nunique() == 1  # single-run backfill: one run for the 3 days
