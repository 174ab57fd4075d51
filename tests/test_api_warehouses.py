"""`metrics serve --target postgres|clickhouse`: the same answers as `metrics series`,
per-entity totals equal to pandas over the raw rows with bound parameters; Postgres
through the server's connection pool, chDB from a snapshot copy read by a worker process
(the server never opens the warehouse's own data path), refreshed after a write."""
from __future__ import annotations

import datetime as dt
import os
import time

import pandas as pd
import pytest

from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from .conftest import create_pg_database, drop_pg_database, empty_chdb, make_project
from .helpers import compile_and_build, load_raw
from .test_api import CONFIG, METRICS, NOW, _cli_series, serving

pytestmark = pytest.mark.dbt
WINDOW = (dt.date(2024, 2, 20), dt.date(2024, 3, 11))


@pytest.fixture(scope="module", params=["postgres", "clickhouse"])
def served_on(request, tmp_path_factory):
    target = request.param
    root = tmp_path_factory.mktemp(f"api_{target}")
    env = {**os.environ, "METRICS_PROJECT_DIR": str(root), "METRICS_NOW": NOW, "METRICS_TARGET": target}
    env.pop("DAGSTER_HOME", None)
    dbname = None
    if target == "postgres":
        dbname = env["METRICS_PG_DATABASE"] = create_pg_database("metrics_api")
    else:
        env["METRICS_CHDB_PATH"] = empty_chdb(tmp_path_factory)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in ("METRICS_PROJECT_DIR", "METRICS_NOW", "METRICS_PG_DATABASE", "METRICS_CHDB_PATH"):
                if k in env:
                    mp.setenv(k, env[k])
            paths = make_project(root, METRICS, CONFIG)
            raw = cases.make_raw()
            load_raw(Warehouse(target, paths), raw)
            compile_and_build(paths, target, WINDOW)
        with serving(["--target", target], env, root) as client:
            yield {"client": client, "env": env, "raw": raw, "paths": paths, "target": target}
    finally:
        if dbname:
            drop_pg_database(dbname)


def _downloads_before(raw, day: str) -> pd.DataFrame:
    events = raw["entity_events"]
    return events[(events.metric_type == "Download") & (events.created_at < pd.Timestamp(day))]


def test_reads(served_on):
    c, env, raw = served_on["client"], served_on["env"], served_on["raw"]
    health = c.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["newest_materialization"]["day"]
    for query, args in (("grain=day&slice=country=DE&start=2024-03-01",
                         ["--grain", "day", "--slice", "country=DE", "--start", "2024-03-01"]),
                        ("grain=day&start=2024-02-25&end=2024-03-05", ["--grain", "day", "--start", "2024-02-25", "--end", "2024-03-05"]),
                        ("grain=week", ["--grain", "week"])):
        got = c.get(f"/metrics/revenue/series?{query}")
        assert got.status_code == 200, got.text
        assert got.json() == _cli_series(env, "revenue", *args)
    downloads = _downloads_before(raw, "2024-03-10")
    values = ["e1", "e5", "edge", "x'); drop table analytics.metric_catalog; --", *[f"n{i}" for i in range(990)]]
    for _ in range(2):  # the second answer comes from the totals index the first one built
        got = c.get("/metrics/downloads/totals", params={"dimension": "entity_id", "values": ",".join(values)})
        assert got.status_code == 200, got.text
        rows = {r["value"]: r["totals"] for r in got.json()["rows"]}
        assert len(rows) == len(values) and all(rows[v]["all"] == (downloads.entity_id == v).sum() for v in values)
        week = downloads[downloads.created_at >= pd.Timestamp("2024-03-03")]
        assert all(rows[v]["week"] == (week.entity_id == v).sum() for v in values)
        values = values[::-1]
    assert {m["name"] for m in c.get("/metrics").json()} == set(n.split("/")[1][:-4] for n in METRICS)
    assert c.get("/metrics/orders/summary").json()["totals"]["all"] > 0
    assert c.get("/metrics/nope/series").status_code == 404


def test_a_write_reaches_the_server(served_on):
    """New raw rows and a rebuild while the server reads: every read succeeds, and the
    server then answers from the new data (ClickHouse: a new snapshot and worker)."""
    c, target, paths = served_on["client"], served_on["target"], served_on["paths"]
    before = c.get("/metrics/downloads/totals?dimension=entity_id&values=e1&windows=all").json()["rows"][0]["totals"]["all"]
    extra = pd.DataFrame({"event_id": [900_001, 900_002, 900_003], "entity_type": ["model"] * 3, "entity_id": ["e1"] * 3,
                          "user_id": ["u1"] * 3, "metric_type": ["Download"] * 3, "metric_value": [1.0] * 3,
                          "created_at": pd.to_datetime(["2024-03-05 10:00", "2024-03-06 11:00", "2024-03-07 12:00"])})
    raw = served_on["raw"]["entity_events"]
    frame = pd.concat([raw, extra[raw.columns]], ignore_index=True)
    with pytest.MonkeyPatch.context() as mp:
        for k in ("METRICS_PROJECT_DIR", "METRICS_NOW", "METRICS_PG_DATABASE", "METRICS_CHDB_PATH"):
            if k in served_on["env"]:
                mp.setenv(k, served_on["env"][k])
        Warehouse(target, paths).replace_rows("entity_events", frame, "created_at", dt.datetime(2000, 1, 1),
                                              dt.datetime(2100, 1, 1))
        compile_and_build(paths, target, WINDOW, run_id="second")
    after = None
    for _ in range(300):
        r = c.get("/metrics/downloads/totals?dimension=entity_id&values=e1&windows=all")
        assert r.status_code == 200, r.text
        after = r.json()["rows"][0]["totals"]["all"]
        if after != before:
            break
        time.sleep(0.2)
    assert after == before + 3


@pytest.mark.parametrize("served_on", ["postgres"], indirect=True)
def test_postgres_reads_survive_lost_connections(served_on):
    """The server keeps its Postgres read connections open between requests: when the
    server ends them (a restart, an idle timeout), the next request still succeeds."""
    import psycopg2

    from dagster_project.warehouse.connection import pg_settings
    c, dbname = served_on["client"], served_on["env"]["METRICS_PG_DATABASE"]
    assert c.get("/metrics/orders/summary").status_code == 200  # the pool holds a connection now
    admin = psycopg2.connect(**pg_settings())
    admin.autocommit = True
    cur = admin.cursor()
    # the clients' sessions only: an autovacuum worker in the database is a superuser's process,
    # which ending fails ("must be a superuser to terminate superuser process")
    cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid() "
                "and backend_type = 'client backend'", [dbname])
    assert cur.fetchall(), "no server connection to end: the pool kept none"
    admin.close()
    for url in ("/metrics/orders/summary", "/metrics/revenue/series?grain=week", "/health"):
        r = c.get(url + ("&" if "?" in url else "?") + "_=after")
        assert r.status_code == 200, (url, r.text)
