"""`metrics serve --target postgres`: plain read connections, the same answers as
`metrics series`, per-entity totals with bound parameters (a fresh database)."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time

import httpx
import pandas as pd
import pytest

from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import create_pg_database, drop_pg_database, make_project
from .helpers import compile_and_build, load_raw
from .test_api import CONFIG, EXE, METRICS, NOW, _cli_series, _free_port

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def pg_served(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_pg")
    dbname = create_pg_database("metrics_api")
    env = {**os.environ, "METRICS_PROJECT_DIR": str(root), "METRICS_PG_DATABASE": dbname, "METRICS_NOW": NOW}
    env.pop("DAGSTER_HOME", None)
    proc = None
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in ("METRICS_PROJECT_DIR", "METRICS_PG_DATABASE", "METRICS_NOW"):
                mp.setenv(k, env[k])
            paths = make_project(root, METRICS, CONFIG)
            raw = cases.make_raw()
            load_raw(Warehouse("postgres", paths), raw)
            compile_and_build(paths, "postgres", (dt.date(2024, 2, 20), dt.date(2024, 3, 11)))
        port = _free_port()
        proc = subprocess.Popen([EXE, "serve", "--target", "postgres", "--port", str(port)], env=env, cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        for _ in range(150):
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None
            time.sleep(0.2)
        yield client, env, raw
        client.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        drop_pg_database(dbname)


def test_postgres_reads(pg_served):
    c, env, raw = pg_served
    assert c.get("/health").json()["newest_materialization"]["day"]
    for query, args in (("grain=day&slice=country=DE&start=2024-03-01", ["--slice", "country=DE", "--start", "2024-03-01"]),
                        ("grain=day&start=2024-02-25&end=2024-03-05", ["--start", "2024-02-25", "--end", "2024-03-05"])):
        got = c.get(f"/metrics/revenue/series?{query}")
        assert got.status_code == 200, got.text
        assert got.json() == _cli_series({**env, "METRICS_TARGET": "postgres"}, "revenue", "--grain", "day", *args)
    events = raw["entity_events"]
    downloads = events[(events.metric_type == "Download") & (events.created_at < pd.Timestamp("2024-03-10"))]
    values = ["e1", "e5", "edge", "x'); drop table analytics.metric_catalog; --", *[f"n{i}" for i in range(990)]]
    got = c.get("/metrics/downloads/totals", params={"dimension": "entity_id", "values": ",".join(values)})
    assert got.status_code == 200, got.text
    rows = {r["value"]: r["totals"]["all"] for r in got.json()["rows"]}
    assert len(rows) == len(values) and all(rows[v] == (downloads.entity_id == v).sum() for v in values)
    assert {m["name"] for m in c.get("/metrics").json()} == set(n.split("/")[1][:-4] for n in METRICS)
    assert c.get("/metrics/orders/summary").json()["totals"]["all"] > 0
