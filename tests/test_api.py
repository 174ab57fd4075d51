"""`metrics serve` against a real DuckDB warehouse built by dbt: every endpoint over HTTP
on loopback, every refused parameter, the bearer token, ETag/304, series equal to
`metrics series`, and reads that keep succeeding while a `metrics run` writes the file."""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from dagster_project.warehouse.connection import Warehouse

from . import rollup_cases as cases
from dagster_project.paths import REPO_ROOT

from .conftest import make_project
from .helpers import compile_and_build, load_raw

pytestmark = pytest.mark.dbt

TOKEN = "s3cret-token"
NOW = "2024-03-10T12:00:00Z"
CONFIG = "start: 2024-02-20\ngrains: [day, week, month]\n"
METRICS = {
    "events/downloads.yml": "name: downloads\ndescription: Downloads.\nowner: growth@example.com\nsource: stg_entity_events\n"
                            "timestamp: created_at\naggregation: count\nfilter: \"metric_type = 'Download'\"\n"
                            "dimensions: [entity_type, entity_id]\n",
    "events/active_users.yml": cases.METRICS["events/active_users.yml"],
    "orders/revenue.yml": cases.METRICS["orders/revenue.yml"],
    "orders/orders.yml": cases.METRICS["orders/orders.yml"] + "grains: [hour, day, week, month]\n",
    "orders/aov.yml": cases.METRICS["orders/aov.yml"],
}
METRICS_NAMES = ["downloads", "active_users", "revenue", "orders", "aov"]
EXE = str(Path(sys.executable).parent / "metrics")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    db = root / "warehouse" / "metrics.duckdb"
    env = {**os.environ, "METRICS_PROJECT_DIR": str(root), "METRICS_DUCKDB_PATH": str(db), "METRICS_NOW": NOW,
           "METRICS_LOCK_TIMEOUT": "600"}
    env.pop("DAGSTER_HOME", None)  # the run below: an ephemeral instance (faster)
    home = root / "dagster_home"  # the server's instance: /history reads it
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster_home.yaml").read_text())
    with pytest.MonkeyPatch.context() as mp:
        for k in ("METRICS_PROJECT_DIR", "METRICS_DUCKDB_PATH", "METRICS_NOW"):
            mp.setenv(k, env[k])
        paths = make_project(root, METRICS, CONFIG)
        raw = cases.make_raw()
        load_raw(Warehouse("duckdb", paths), raw)
        compile_and_build(paths, "duckdb", (dt.date(2024, 2, 20), dt.date(2024, 3, 11)))
        with serving([], {**env, "METRICS_API_TOKEN": TOKEN, "DAGSTER_HOME": str(home)}, root,
                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield {"paths": paths, "client": client, "env": env, "raw": raw, "root": root, "home": home}


@contextmanager
def serving(args: list[str], env: dict, root: Path, headers: dict | None = None) -> Iterator[httpx.Client]:
    """`metrics serve ARGS` on a free loopback port (its output in ROOT/serve.log), and a
    client once /health answers 200; the server is stopped after the block."""
    port = _free_port()
    log = open(root / "serve.log", "w+")
    proc = subprocess.Popen([EXE, "serve", *args, "--port", str(port)], env=env, cwd=root,
                            stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers or {}, timeout=60)
    try:
        for _ in range(300):
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (log.seek(0), log.read())[1]
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _cli_series(env, *args) -> list[dict]:
    out = subprocess.run([EXE, "series", *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_health_and_catalog(served):
    c = served["client"]
    health = c.get("/health").json()
    assert health["ok"] and health["target"] == "duckdb"
    assert set(health["newest_materialization"]) == {"hour", "day", "week", "month", "anomalies", "alerts"}
    assert health["newest_materialization"]["day"] and health["newest_materialization"]["hour"]
    catalog = {m["name"]: m for m in c.get("/metrics").json()}
    assert set(catalog) == {"downloads", "active_users", "revenue", "orders", "aov"}
    d = catalog["downloads"]
    assert d["description"] == "Downloads." and d["owner"] == "growth@example.com" and d["kind"] == "simple"
    assert d["grains"] == ["day", "week", "month"] and d["dimensions"] == ["entity_type", "entity_id"]
    days = _cli_series(served["env"], "downloads", "--grain", "day", "--start", "2024-02-09")
    assert d["sparkline"] == [{"bucket_start": r["bucket_start"], "value": r["value"]} for r in days][-30:]
    assert d["latest"] == {"grain": "day", "bucket_start": "2024-03-09T00:00:00Z", "value": days[-2]["value"]}
    weeks = [w for w in _cli_series(served["env"], "downloads", "--grain", "week") if w["complete"]]
    assert d["wow_change_pct"] == pytest.approx(weeks[-1]["change_pct"])


@pytest.mark.parametrize("query,args", [
    ("grain=day&start=2024-02-25&end=2024-03-05", ["--grain", "day", "--start", "2024-02-25", "--end", "2024-03-05"]),
    ("grain=week", ["--grain", "week"]),
    ("grain=day&slice=country=DE&start=2024-03-01", ["--grain", "day", "--slice", "country=DE", "--start", "2024-03-01"]),
])
def test_series_equals_the_cli(served, query, args):
    name = "revenue" if "country" in query else "aov"
    got = served["client"].get(f"/metrics/{name}/series?{query}")
    assert got.status_code == 200, got.text
    assert got.json() == _cli_series(served["env"], name, *args)


def test_series_days_shorthand(served):
    rows = served["client"].get("/metrics/orders/series?days=5").json()
    # METRICS_NOW is 2024-03-10: the five days up to and including today
    assert [r["bucket_start"][:10] for r in rows] == [f"2024-03-{d:02d}" for d in range(6, 11)]
    assert rows[-1]["complete"] is False and rows[0]["value"] == 0.0  # 2024-03-06 is the empty day


def test_an_hour_series_without_a_window_gets_the_hour_grains_longest_default(served):
    # the default 180 days is over the 93 an hour answer may cover: it used to be a 400
    got = served["client"].get("/metrics/orders/series?grain=hour")
    assert got.status_code == 200, got.text
    rows = got.json()
    assert rows and rows[-1]["bucket_start"] == "2024-03-10T12:00:00Z"  # through now (METRICS_NOW)
    assert rows == _cli_series(served["env"], "orders", "--grain", "hour", "--start", "2023-12-09")


def test_summary(served):
    s = served["client"].get("/metrics/orders/summary").json()
    day = s["grains"]["day"]
    assert day["latest"] == {"bucket_start": "2024-03-09T00:00:00Z", "value": pytest.approx(day["latest"]["value"])}
    orders = cases.make_raw()["orders"]
    per_day = orders.groupby(orders.ordered_at.dt.floor("D")).size()
    assert day["latest"]["value"] == per_day[pd.Timestamp("2024-03-09")]
    assert day["previous"] == per_day[pd.Timestamp("2024-03-08")]
    t = s["totals"]
    end = pd.Timestamp("2024-03-10")
    for window, days in (("day", 1), ("week", 7), ("month", 30)):
        assert t[window] == ((orders.ordered_at >= end - pd.Timedelta(days=days)) & (orders.ordered_at < end)).sum()
    assert t["all"] == t["year"] == (orders.ordered_at < end).sum()
    ratio = served["client"].get("/metrics/aov/summary").json()
    assert ratio["totals"] is None and "count and sum" in ratio["totals_note"]


def test_totals_per_entity(served):
    events = served["raw"]["entity_events"]
    downloads = events[(events.metric_type == "Download") & (events.created_at < pd.Timestamp("2024-03-10"))]
    values = ["e1", "e2", "e17", "edge", "nobody"]
    got = served["client"].get(f"/metrics/downloads/totals?dimension=entity_id&values={','.join(values)}"
                               "&windows=week,all").json()
    assert got["window_end"] == "2024-03-10T00:00:00Z"
    week = downloads[downloads.created_at >= pd.Timestamp("2024-03-03")]
    want = {v: {"week": float((week.entity_id == v).sum()), "all": float((downloads.entity_id == v).sum())} for v in values}
    assert {r["value"]: r["totals"] for r in got["rows"]} == want
    many = ",".join(f"e{i}" for i in range(1000))
    assert len(served["client"].get(f"/metrics/downloads/totals?dimension=entity_id&values={many}").json()["rows"]) == 1000


@pytest.mark.parametrize("url,status,message", [
    ("/metrics/downloadz/series", 404, "unknown metric `downloadz` (did you mean `downloads`"),
    ("/metrics/revenue/series?grain=hour", 400, "has no `hour` grain"),
    ("/metrics/orders/series?slice=planet=mars", 400, "no dimension `planet`"),
    ("/metrics/orders/series?slice=country", 400, "DIMENSION=VALUE"),
    ("/metrics/orders/series?slice=country=Mars", 400, "no day row of `orders` has country = `Mars`"),
    ("/metrics/orders/series?start=2024-03-05&end=2024-03-01", 400, "must be before end"),
    ("/metrics/orders/series?days=731", 400, "between 1 and 730"),
    ("/metrics/orders/series?days=0", 400, "between 1 and 730"),
    ("/metrics/orders/series?start=yesterday", 400, "start: a date YYYY-MM-DD (UTC), got `yesterday`"),
    ("/metrics/orders/summary/x", 404, "Not Found"),
    ("/metrics/nope/summary", 404, "unknown metric"),
    ("/metrics/downloads/totals?dimension=country&values=1", 400, "no dimension `country`"),
    ("/metrics/downloads/totals?dimension=entity_id", 400, "values: Field required"),
    ("/metrics/downloads/totals?dimension=entity_id&values=a,,b", 400, "non-empty"),
    ("/metrics/downloads/totals?dimension=entity_id&values=" + ",".join(map(str, range(1001))), 400, "at most 1000"),
    ("/metrics/downloads/totals?dimension=entity_id&values=e1&windows=day,decade", 400, "windows"),
    ("/metrics/active_users/totals?dimension=entity_type&values=model", 400, "not a count or sum"),
    ("/anomalies?metric=nope", 404, "unknown metric"),
    ("/anomalies?since=soon", 400, "since: a date YYYY-MM-DD (UTC), got `soon`"),
    ("/anomalies?limit=0", 400, "limit: Input should be greater than or equal to 1 (got '0')"),
    ("/anomalies?limit=20000", 400, "limit"),
    ("/metrics/orders/series?start=0001-01-01", 400, "a date between 1970-01-01 and 2199-12-31"),
    # an offset or an epoch was read as another day, silently (metrics series refuses both)
    ("/metrics/orders/series?start=2024-02-20T00:00:00%2B02:00&end=2024-02-22", 400, "start: a date YYYY-MM-DD"),
    ("/metrics/orders/series?start=1708387200&end=2024-02-22", 400, "start: a date YYYY-MM-DD"),
    ("/anomalies?since=2024-02-20T05:00:00", 400, "since: a date YYYY-MM-DD"),
    # a repeated parameter (the last one won) or an empty one (the default) is refused
    ("/metrics/orders/series?slice=country=DE&slice=country=FR", 400, "parameter `slice` is given more than once"),
    ("/metrics/orders/series?grain=", 400, "parameter `grain` is empty"),
    ("/metrics/orders/series?days=abc", 400, "days: Input should be a valid integer"),
    ("/metrics/orders/series?grain=week&end=0001-01-09", 400, "a date between"),
    ("/anomalies?since=0001-01-01", 400, "a date between"),
    ("/alerts?status=burning", 400, "status: one of open, resolved, silenced"),
    ("/metrics/orders/series?start=1970-01-01&end=2024-03-01", 400, "at most 3660 days per day series"),
    # a misspelt parameter silently meant the default; days beside start was ignored; a NUL
    # in a value was a 503 from Postgres
    ("/metrics/orders/series?grian=hour", 400, "unknown parameter `grian` (did you mean `grain`?)"),
    ("/anomalies?metrics=orders", 400, "unknown parameter `metrics` (did you mean `metric`?)"),
    ("/metrics/orders/summary?n=1", 400, "unknown parameter `n`; this path takes none"),
    ("/metrics/orders/summary?_=1&_=2", 400, "parameter `_` is given more than once"),  # (one `_` is let through)
    ("/metrics/orders/series?start=2024-03-01&days=3", 400, "give start (and end), or days"),
    ("/metrics/orders/series?slice=country%3D%00", 400, "parameter `slice` holds a control character"),
])
def test_bad_parameters_get_a_4xx_with_a_message(served, url, status, message):
    got = served["client"].get(url)
    assert got.status_code == status, got.text
    # one shape for every refusal: {"detail": "<text>"} (FastAPI's own were lists of objects)
    assert isinstance(got.json()["detail"], str) and message in got.json()["detail"], got.text


def test_injection_attempts_are_data(served):
    c = served["client"]
    got = c.get("/metrics/downloads/totals", params={"dimension": "entity_id", "values": "x') or 1=1 --,e1"})
    assert got.status_code == 200 and got.json()["rows"][0]["totals"]["all"] == 0.0
    assert c.get("/metrics/orders/series", params={"slice": "country=DE' or ''='"}).status_code == 400
    assert c.get("/metrics/downloads/totals", params={"dimension": "entity_id;drop table x", "values": "1"}).status_code == 400


def test_anomalies_alerts_history(served, monkeypatch):
    c = served["client"]
    monkeypatch.setenv("DAGSTER_HOME", str(served["home"]))  # dagster_home.yaml's storage lives there
    assert c.get("/anomalies").json() == []  # nothing scored yet (the build was dbt only)
    assert c.get("/alerts?status=open").json() == []
    assert c.get("/history").json() == {"runs": [], "note": None}  # an instance, no run yet
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
    with DagsterInstance.from_config(str(served["home"])) as instance:
        instance.add_run(DagsterRun(job_name="rollups_day", run_id="r-1", status=DagsterRunStatus.FAILURE,
                                    tags={"dagster/partition": "2024-03-01"}))
    runs = c.get("/history").json()["runs"]
    assert [(r["run_id"], r["job"], r["status"], r["partition"]) for r in runs] == \
        [("r-1", "rollups_day", "FAILURE", "2024-03-01")]


def test_history_without_an_instance(monkeypatch):
    from dagster_project.api.queries import history
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    h = history()
    assert h["runs"] == [] and "DAGSTER_HOME is not set" in h["note"]


def test_bearer_token(served):
    base = str(served["client"].base_url).rstrip("/") + "/"
    assert httpx.get(f"{base}health").status_code == 401
    assert httpx.get(f"{base}metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{base}openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()["paths"]
    # the scheme is case-insensitive (RFC 9110): `bearer` was refused
    assert httpx.get(f"{base}health", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert httpx.get(f"{base}health", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401


@contextmanager
def _metric_file(paths, rel: str, text: str) -> Iterator[None]:
    """A metric file written for the block (the server reads the metric files again when
    one changed) and removed after it."""
    path = paths.metrics_dir / rel
    path.write_text(text)
    try:
        yield
    finally:
        path.unlink()


def _polled(fetch, done):
    """`fetch()` again until `done` holds for its answer (10 s at most): the last answer."""
    for _ in range(50):
        got = fetch()
        if done(got):
            break
        time.sleep(0.2)
    return got


def test_a_metric_not_built_yet_has_no_totals(served):
    """A new metric on a built source read 0 in every window: its source's rollup table
    exists (the other metrics'), its rows do not."""
    c, paths = served["client"], served["paths"]
    with _metric_file(paths, "orders/big_orders.yml", "name: big_orders\nsource: stg_orders\ntimestamp: ordered_at\n"
                      "aggregation: count\nfilter: \"amount > 100\"\ndimensions: [country]\n"):
        got = _polled(lambda: c.get("/metrics/big_orders/totals?dimension=country&values=DE"),
                      lambda got: got.status_code != 404 or "unknown metric" not in got.text)
        assert got.status_code == 404 and "has not been built at the day grain" in got.json()["detail"], got.text
        summary = c.get("/metrics/big_orders/summary").json()
        assert summary["totals"] is None and summary["totals_note"] == "not built yet", summary
        assert all(g == {"error": "not built yet"} for g in summary["grains"].values()), summary
        # a built metric of the same source still has its totals
        assert c.get("/metrics/orders/totals?dimension=country&values=DE").json()["rows"][0]["totals"]["all"] > 0


def test_a_warehouse_nothing_was_built_in_answers_not_built_everywhere(tmp_path):
    """Before the first run no series view exists: a series or summary was a 400 (a bad
    request) while totals said 404 for the same state; now every route says not built."""
    root = tmp_path / "fresh"
    env = {**os.environ, "METRICS_PROJECT_DIR": str(root), "METRICS_NOW": NOW}
    env.pop("DAGSTER_HOME", None)
    env.pop("METRICS_DUCKDB_PATH", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRICS_PROJECT_DIR", str(root))
        mp.delenv("METRICS_DUCKDB_PATH", raising=False)
        load_raw(Warehouse("duckdb", make_project(root, METRICS, CONFIG)), cases.make_raw())  # loaded, never run
    with serving([], env, root) as c:
        for url in ("/metrics/orders/series", "/metrics/orders/series?grain=hour",
                    "/metrics/orders/totals?dimension=country&values=DE"):
            got = c.get(url)
            assert got.status_code == 404 and "built" in got.json()["detail"], (url, got.text)
        assert "metrics run" in c.get("/metrics/orders/series").json()["detail"]
        summary = c.get("/metrics/orders/summary")
        assert summary.status_code == 200, summary.text
        assert all(g == {"error": "not built yet"} for g in summary.json()["grains"].values()), summary.text
        assert c.get("/metrics/nope/series").status_code == 404  # still: an unknown metric
        assert c.get("/metrics").status_code == 200 and c.get("/anomalies").json() == []


def test_the_catalog_lists_an_archived_metric_as_the_dashboard_does(served):
    """GET /metrics left archived metrics out while `GET /` (the catalog pages) and
    their series routes serve them: an archived metric is listed with its status."""
    c, paths = served["client"], served["paths"]
    with _metric_file(paths, "orders/old_orders.yml", "name: old_orders\nsource: stg_orders\ntimestamp: ordered_at\n"
                      "aggregation: count\nstatus: archived\n"):
        listed = _polled(lambda: {m["name"]: m for m in c.get("/metrics").json()}, lambda got: "old_orders" in got)
        assert listed["old_orders"]["status"] == "archived", listed.keys()
        assert 'href="metric/old_orders.html"' in c.get("/").text


def test_head_answers_like_get_without_a_body(served):
    c = served["client"]
    # one operation per route in the schema (HEAD doubled every operationId)
    ids = [op["operationId"] for path in c.get("/openapi.json").json()["paths"].values() for op in path.values()]
    assert ids and len(ids) == len(set(ids)), ids
    got, head = c.get("/metrics/orders/series?grain=week"), c.head("/metrics/orders/series?grain=week")
    assert head.status_code == 200 and not head.content  # it was 405
    assert head.headers["etag"] == got.headers["etag"] and head.headers["content-type"] == got.headers["content-type"]
    assert c.head("/metrics/nope/series").status_code == 404


def test_etag_and_304(served):
    c = served["client"]
    first = c.get("/metrics/orders/series?grain=week")
    etag = first.headers["etag"]
    again = c.get("/metrics/orders/series?grain=week", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    other = c.get("/metrics/orders/series?grain=month")
    assert other.headers["etag"] != etag
    assert c.get("/metrics/orders/series?grain=week", headers={"If-None-Match": '"stale"'}).json() == first.json()
    # If-None-Match compares weakly and takes a list or `*` (a proxy that compresses adds W/)
    for header in (f"W/{etag}", f'"stale", {etag}', "*"):
        assert c.get("/metrics/orders/series?grain=week", headers={"If-None-Match": header}).status_code == 304, header
    # `*` matches only what exists: a refused request keeps its error (it was a 304)
    assert c.get("/metrics/nope/series", headers={"If-None-Match": "*"}).status_code == 404
    assert c.get("/metrics/orders/series?grain=bogus", headers={"If-None-Match": "*"}).status_code == 400


def test_dashboard_serves_the_catalog_pages_with_live_data(served):
    """`GET /` and the metric pages in a real headless Chromium, from a second server
    without a token (a browser sends no bearer header); screenshots in docs/screenshots."""
    from tests.test_docs_catalog import chromium
    c = served["client"]
    index = c.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    for name in METRICS_NAMES:
        assert f'href="metric/{name}.html"' in index.text
    page = c.get("/metric/downloads.html")
    assert page.status_code == 200 and '<svg class="chart"' in page.text and "http-equiv=\"refresh\"" in page.text
    assert c.get("/metric/nope.html").status_code == 404
    assert c.get("/", headers={"If-None-Match": index.headers["etag"]}).status_code == 304

    port = _free_port()
    env = {k: v for k, v in served["env"].items() if k != "METRICS_API_TOKEN"}
    proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, cwd=served["root"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        done = chromium("--dump-dom", url=base + "/")
        assert done.returncode == 0 and all(f"metric/{n}.html" in done.stdout for n in METRICS_NAMES)
        done = chromium("--dump-dom", url=base + "/metric/downloads.html")
        assert done.returncode == 0 and 'class="chart"' in done.stdout and "Metrics catalog" in done.stdout
        shots = REPO_ROOT / "docs" / "screenshots"
        for url, name, size in ((base + "/", "dashboard_index.png", "1400,900"),
                                (base + "/metric/downloads.html", "dashboard_metric.png", "1400,1600")):
            done = chromium(f"--screenshot={shots / name}", f"--window-size={size}", "--hide-scrollbars", url=url)
            assert done.returncode == 0 and (shots / name).stat().st_size > 20_000, done.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_openapi_property_run_has_no_5xx(served):
    """schemathesis: generated requests for every operation of the OpenAPI document."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    c = served["client"]
    doc = c.get("/openapi.json").json()
    for op in doc["paths"].values():  # known names too, or nearly every case is a 404
        for p in op["get"].get("parameters", []):
            if p["name"] == "name":
                p["schema"] = {"type": "string", "enum": [*METRICS_NAMES, "nope"]}
    schema = schemathesis.openapi.from_dict(doc)
    base, auth = str(c.base_url).rstrip("/"), {"Authorization": f"Bearer {TOKEN}"}
    errors, statuses = [], []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(op.as_strategy())
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            r = case.call(base_url=base, headers=auth)
            statuses.append(r.status_code)
            if r.status_code >= 500:
                errors.append((case.path, case.path_parameters, case.query, r.status_code, r.text[:200]))

        check()
    assert not errors, errors[:5]
    assert statuses.count(200) > 20 and any(400 <= s < 500 for s in statuses)


def test_reads_never_fail_while_a_run_writes(served):
    """A real `metrics run` (Dagster, dbt, anomaly scoring) rewrites the file the server
    reads: every request succeeds, the run succeeds, then the server serves the new data."""
    c, env = served["client"], served["env"]
    before = c.get("/health").json()
    etag = c.get("/metrics/orders/series?grain=week").headers["etag"]
    log = open(served["root"] / "run.log", "w+")
    run = subprocess.Popen([EXE, "run", "--start", "2024-03-09", "--end", "2024-03-11"], env=env,
                           cwd=served["root"], stdout=log, stderr=subprocess.STDOUT)
    failures, reads, i = [], 0, 0
    while run.poll() is None:
        i += 1
        for url in (f"/metrics/orders/series?days={1 + i % 700}", "/health", f"/metrics/downloads/totals?"
                    f"dimension=entity_id&values=e{i % 300},edge"):
            r = c.get(url)
            reads += 1
            if r.status_code != 200:
                failures.append((url, r.status_code, r.text))
        time.sleep(0.2)  # steady reads without starving the run of the 2 cores
    log.seek(0)
    assert run.wait() == 0, log.read()[-3000:]
    log.close()
    assert not failures, failures[:5]
    assert reads > 20
    for _ in range(100):  # the next snapshot lands within the refresh interval
        after = c.get("/health").json()
        if after["newest_materialization"] != before["newest_materialization"]:
            break
        time.sleep(0.1)
    assert after["newest_materialization"]["day"] > before["newest_materialization"]["day"]
    assert after["newest_materialization"]["anomalies"] is not None  # the run scored anomalies
    assert after["snapshot"]["refreshes_skipped_while_a_run_wrote"] > 0  # it did hold the lock meanwhile
    fresh = c.get("/metrics/orders/series?grain=week", headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert fresh.json() == _cli_series(env, "orders", "--grain", "week")
    assert isinstance(c.get("/anomalies?metric=orders&since=2024-03-01").json(), list)

