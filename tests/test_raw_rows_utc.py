"""`Warehouse.replace_rows` (the loader `metrics demo-data` uses and a team's own
collection asset calls) writes UTC instants and replaces exactly its window, whatever
the process's or the session's zone, into a raw table whose time column is a
`timestamptz`. Before: DuckDB read the window's bounds in the process's zone (a re-run
of a day duplicated the rows near its end) and Postgres read the rows' text in the
session's zone (every row moved by the offset). A real DuckDB file and Postgres server,
in a process in Kolkata (+05:30) whose Postgres session is in Chatham (+13:45)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dagster_project.paths import REPO_ROOT

pytestmark = pytest.mark.parametrize("target", ["duckdb", "postgres"], indirect=True)

_SCRIPT = """
import datetime as dt, json, pathlib, sys
import pandas as pd
from dagster_project.paths import ProjectPaths
from dagster_project.warehouse.connection import Warehouse
target, root, naive = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3] == "naive"
wh = Warehouse(target, ProjectPaths(root))
with wh.connect() as con:
    run = con.execute if target == "duckdb" else con.cursor().execute
    run("create schema if not exists raw")
    run("drop table if exists raw.ev")
    run("create table raw.ev (ts timestamptz, n bigint)")
    if target == "postgres":
        con.commit()
at = pd.to_datetime(["2026-11-20 00:10:00", "2026-11-20 12:00:00", "2026-11-20 23:50:00"])
frame = pd.DataFrame({"ts": at if naive else at.tz_localize("UTC").tz_convert("Asia/Tokyo"), "n": [1, 2, 3]})
for _ in range(3):  # a re-run of the day replaces it
    wh.replace_rows("ev", frame, "ts", dt.datetime(2026, 11, 20), dt.datetime(2026, 11, 21))
utc = "select cast(extract(epoch from ts) as bigint), n from raw.ev order by 1"
with wh.connect() as con:
    if target == "duckdb":
        rows = con.execute(utc).fetchall()
    else:
        cur = con.cursor(); cur.execute(utc); rows = cur.fetchall()
print(json.dumps([list(r) for r in rows]))
"""


@pytest.mark.parametrize("frame", ["naive", "aware"])
def test_rows_land_at_their_utc_instants_once(tmp_path, target, frame):
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_PROJECT")}
    env.update(TZ="Asia/Kolkata", PGTZ="Pacific/Chatham")
    (tmp_path / "warehouse").mkdir()
    done = subprocess.run([sys.executable, "-c", _SCRIPT, target, str(tmp_path), frame], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    day = 1795132800  # 2026-11-20 00:00:00 UTC
    assert json.loads(done.stdout) == [[day + 600, 1], [day + 12 * 3600, 2], [day + 23 * 3600 + 50 * 60, 3]]
