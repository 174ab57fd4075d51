"""Pipeline alerts on the same routes as metric alerts, delivered to a real HTTP server:
a source past its freshness allowance (or missing), and a real failed Dagster run (dbt
against a raw table that is not there), resolved by the job's next successful run."""
from __future__ import annotations

import datetime as dt
import json
import textwrap

import pandas as pd
import pytest

from dagster_project.alerting.evaluate import evaluate_once
from dagster_project.validation.project import load_project
from dagster_project.warehouse.alert_store import STATE, read_table
from dagster_project.warehouse.connection import Warehouse
from tests.alert_servers import WebhookReceiver
from tests.conftest import make_project, without_freshness

NOW = dt.datetime(2026, 11, 20, 12, 0)
METRIC = """name: downloads
source: stg_entity_events
timestamp: created_at
aggregation: count
grains: [day]
start: 2024-02-20
"""
SOURCES = """version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: entity_events
        config:
          loaded_at_field: created_at
          freshness: {warn_after: {count: 3, period: hour}, error_after: {count: 12, period: hour}}
      - name: orders
        config:
          loaded_at_field: ordered_at
          freshness: {error_after: {count: 1, period: day}}
      - name: follower_snapshots
"""


def alerts_yml(url: str) -> str:
    return textwrap.dedent(f"""\
        dagster_url: http://dagster.example:3000
        channels:
          hook: {{type: webhook, url: "{url}/hook"}}
          audit: {{type: log, path: warehouse/alerts.log}}
        routes:
          - name: pipeline
            match: {{kind: [freshness, run_failure]}}
            channels: [hook]
            group_by: [kind, source]
            group_wait: 0s
        default_route: {{channels: [audit]}}
        """)


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def _events(last: dt.datetime) -> pd.DataFrame:
    times = pd.date_range(last - dt.timedelta(days=2), last, periods=50)
    return pd.DataFrame({"event_id": range(50), "entity_type": "model", "entity_id": 1, "user_id": 1,
                         "metric_type": "Download", "metric_value": 1.0, "created_at": times})


def test_a_stale_or_missing_source_alerts_as_a_broken_pipeline_and_resolves(tmp_path, monkeypatch, hook):
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    paths = make_project(tmp_path, {"events/downloads.yml": METRIC})
    (paths.models_dir / "staging" / "_sources.yml").write_text(SOURCES)
    (tmp_path / "alerts.yml").write_text(alerts_yml(hook.url))
    project = load_project(paths).project
    wh = Warehouse("duckdb", paths)
    wh.replace_rows("entity_events", _events(NOW - dt.timedelta(hours=10)), "created_at",
                    NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=1))

    report = evaluate_once(paths, "duckdb", project, NOW)
    assert report.counts["opened"] == 2
    bodies = {m["json"]["alerts"][0]["source"]: m["json"] for m in hook.accepted}
    stale, missing = bodies["raw.entity_events"], bodies["raw.orders"]
    assert stale["kind"] == "freshness" and stale["status"] == "firing"
    assert stale["alerts"][0]["severity"] == "warning"  # 10 h: past warn_after (3 h), within error_after (12 h)
    # the allowance shown is the one passed (it was the 12 h of error_after beside "allowed 3 h")
    assert stale["alerts"][0]["allowance"] == 3 * 3600 and "(allowed 3 h;" in stale["alerts"][0]["reason"]
    assert stale["alerts"][0]["last_row_at"] == "2026-11-20T02:00:00Z" and "no new rows" in stale["alerts"][0]["reason"]
    assert missing["alerts"][0]["severity"] == "critical" and "does not exist" in missing["alerts"][0]["reason"]

    # the same test as Dagster asset checks on the source assets (source_freshness_job)
    from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

    from dagster_project.alerting.pipeline import freshness_rules
    from dagster_project.defs import resources
    from dagster_project.defs.alerts import freshness_check
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("METRICS_NOW", NOW.isoformat())
    resources.project_paths.cache_clear()
    checks = [freshness_check(rule) for rule in freshness_rules(paths)[0]]
    defs = Definitions(asset_checks=checks, jobs=[define_asset_job("fresh", selection=AssetSelection.checks(*checks))])
    result = defs.resolve_job_def("fresh").execute_in_process(instance=DagsterInstance.ephemeral())
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["entity_events"].passed and evaluations["entity_events"].severity.value == "WARN"
    assert not evaluations["orders"].passed and evaluations["orders"].severity.value == "ERROR"
    resources.project_paths.cache_clear()

    wh.replace_rows("entity_events", _events(NOW - dt.timedelta(minutes=10)), "created_at",
                    NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=1))
    evaluate_once(paths, "duckdb", project, NOW + dt.timedelta(minutes=1))
    resolved = [m["json"] for m in hook.accepted if m["json"]["status"] == "resolved"]
    assert [r["alerts"][0]["source"] for r in resolved] == ["raw.entity_events"]
    states = {s["alert_key"]: s["status"] for s in read_table(wh, STATE)}
    assert states == {"freshness:raw.entity_events": "resolved", "freshness:raw.orders": "open"}


@pytest.mark.dbt
def test_a_real_failed_run_alerts_and_the_next_success_resolves_it(tmp_path, monkeypatch, hook):
    from dagster import (
        DagsterEventType,
        DagsterInstance,
        build_run_status_sensor_context,
        materialize,
    )

    from dagster_project.compiler.writer import compile_project
    from dagster_project.defs import resources
    from dagster_project.defs.alerts import pipeline_failure_sensor, pipeline_recovery_sensor
    from dagster_project.defs.builder import build_definitions
    from tests import rollup_cases as cases
    from tests.helpers import load_raw

    paths = make_project(tmp_path, {"events/downloads.yml": METRIC}, cases.CONFIG)
    without_freshness(paths)
    (tmp_path / "alerts.yml").write_text(alerts_yml(hook.url))
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(paths.duckdb_path))
    monkeypatch.setenv("METRICS_NOW", "2024-03-20T00:00:00")
    compile_project(paths, load_project(paths).project)
    resources.project_paths.cache_clear()
    resources.metrics_dbt_project.cache_clear()
    defs = build_definitions()
    instance = DagsterInstance.ephemeral()
    job = defs.resolve_job_def("rollups_day_job")

    # no raw data, no staging views: the rollup's dbt model fails
    failed = job.execute_in_process(partition_key="2024-03-05", instance=instance, raise_on_error=False)
    assert not failed.success
    run = instance.get_run_by_id(failed.run_id)
    (event,) = [e.dagster_event for e in instance.all_logs(failed.run_id, of_type=DagsterEventType.RUN_FAILURE)]
    context = build_run_status_sensor_context(sensor_name="pipeline_failure_sensor", dagster_event=event,
                                              dagster_instance=instance, dagster_run=run).for_run_failure()
    pipeline_failure_sensor(context)
    (message,) = hook.accepted
    body = message["json"]
    assert body["kind"] == "run_failure" and body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["job"] == "rollups_day_job" and alert["run_id"] == failed.run_id
    assert alert["partition"] == "2024-03-05" and alert["error"]

    # the data arrives, staging is built, the job succeeds: one resolved message
    load_raw(Warehouse("duckdb", paths), cases.make_raw())
    staging = next(a for a in defs.assets if getattr(a, "op", None) is not None and a.op.name == "staging")
    assert materialize([staging], resources=defs.resources, instance=instance).success
    ok = job.execute_in_process(partition_key="2024-03-05", instance=instance)
    run = instance.get_run_by_id(ok.run_id)
    (event,) = [e.dagster_event for e in instance.all_logs(ok.run_id, of_type=DagsterEventType.RUN_SUCCESS)]
    pipeline_recovery_sensor(build_run_status_sensor_context(
        sensor_name="pipeline_recovery_sensor", dagster_event=event, dagster_instance=instance, dagster_run=run))
    statuses = [m["json"]["status"] for m in hook.accepted if m["json"]["kind"] == "run_failure"]
    assert statuses == ["firing", "resolved"]


def test_a_run_signal_that_cannot_be_evaluated_waits_for_the_next_evaluation(tmp_path, monkeypatch, hook):
    """The warehouse is held by a run when the failure sensor fires: the signal is queued
    (Dagster's run cursor moves on) and the next evaluation opens the alert."""
    from dagster_project.alerting.pipeline import queue_path, run_failure_signal
    from dagster_project.defs import alerts as alert_defs
    from dagster_project.defs import resources
    from dagster_project.warehouse.lock import warehouse_lock

    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("METRICS_NOW", NOW.isoformat())
    paths = make_project(tmp_path, {"events/downloads.yml": METRIC})
    without_freshness(paths)
    (tmp_path / "alerts.yml").write_text(alerts_yml(hook.url))
    resources.project_paths.cache_clear()
    Warehouse("duckdb", paths).execute("create schema if not exists analytics")
    signal = run_failure_signal("rollups_day_job", "r-123", "2024-03-05",
                                "dbt failed: cannot reach https://loader:hunter2@example.com/x "
                                "(Authorization: Bearer sk_live_0123456789)", True, NOW)
    monkeypatch.setattr(alert_defs, "LOCK_WAIT_SECONDS", 0.5)

    class Log:
        def info(self, *_): pass
        warning = info

    class Context:
        log = Log()

    with warehouse_lock("duckdb", paths):  # a run holds the warehouse
        import threading
        out = []
        worker = threading.Thread(target=lambda: out.append(alert_defs.evaluate_tick(Context(), [signal])))
        worker.start()
        worker.join(30)
    assert "busy" in out[0] and "kept" in out[0] and len(queue_path(paths).read_text().splitlines()) == 1
    assert hook.requests == []

    evaluate_once(paths, "duckdb", load_project(paths).project, NOW)  # the next tick
    (message,) = hook.accepted
    (alert,) = message["json"]["alerts"]
    assert message["json"]["kind"] == "run_failure" and alert["run_id"] == "r-123"
    assert "hunter2" not in json.dumps(message["json"]) and "***@example.com" in alert["error"]
    assert "sk_live" not in json.dumps(message["json"]) and "Bearer ***" in alert["error"]
    assert queue_path(paths).read_text() == ""  # taken once
    resources.project_paths.cache_clear()


def test_masking_hides_credentials_not_ordinary_words():
    """`basic constraints`, `token placeholder`: the first masking of Bearer tokens ate the
    word after any "basic" or "token" in a run's error."""
    from dagster_project.alerting.pipeline import _masked
    assert _masked("ssl: basic constraints extension missing") == "ssl: basic constraints extension missing"
    assert _masked("syntax error at or near token placeholder") == "syntax error at or near token placeholder"
    assert _masked("HTTP 401 basic authentication required") == "HTTP 401 basic authentication required"
    assert _masked("(Authorization: Bearer sk_live_0123456789)") == "(Authorization: Bearer ***)"
    assert _masked("Proxy-Authorization: Basic dXNlcjpwYXNz") == "Proxy-Authorization: Basic ***"
    assert _masked("curl -H bearer eyJhbGciOiJIUzI1NiJ9.e30.sig") == "curl -H bearer ***"
    assert _masked("https://loader:hunter2@example.com/x?token=abc") == "https://***@example.com/x?token=***"
    # forms the first masking left in the clear (a password holding `@` half of it)
    assert _masked("postgresql://metrics:p@ss@db/x") == "postgresql://***@db/x"
    assert _masked("password: hunter2") == "password: ***"
    assert _masked("header X-Api-Key: SEKRETKEY123") == "header X-Api-Key: ***"
    assert _masked('{"token": "SEKRETJSON"}') == '{"token": "***"}'
    assert _masked("access_token: abcdef123456") == "access_token: ***"
    # forms the second masking left in the clear: `=` after a longer name, known token forms
    assert _masked("https://api.example.com/x?access_token=abc123def456") == "https://api.example.com/x?access_token=***"
    assert _masked("GET /x?apikey=abc123&y=1") == "GET /x?apikey=***&y=1"
    assert _masked("PGPASSWORD=hunter2 psql") == "PGPASSWORD=*** psql"
    assert _masked("METRICS_PG_PASSWORD=hunter2") == "METRICS_PG_PASSWORD=***"
    assert _masked("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG") == "AWS_SECRET_ACCESS_KEY=***"
    assert _masked("token: ghp_abcdefghijklmnopqrstuvwxyz0123456789") == "token: ***"
    assert _masked("POST https://hooks.slack.com/services/T000/B000/XXXXSECRET: 404") == \
        "POST https://hooks.slack.com/services/*** 404"
    assert _masked("aws_secret_access_key: abc") == "aws_secret_access_key: ***"
    assert _masked("PASSWORD = hunter2") == "PASSWORD = ***"
    assert _masked('password="hunter 2" rejected') == 'password="***" rejected'
    assert _masked("key sk-proj-abcdefghij0123456789klmnopqr") == "key ***"
    # a quoted value after a colon whole; a URL's password before a token parameter both
    assert _masked("password: 'a b c'") == "password: '***'" and _masked('{"password": "p w"}') == '{"password": "***"}'
    assert _masked("https://loader:hunter2@example.com/x?token=abc") == "https://***@example.com/x?token=***"
    # lowercase words are no AWS key ids, and a bare `credentials:` is prose
    for text in ("asiapacificrevenue20 is missing", "Invalid credentials: check profiles.yml"):
        assert _masked(text) == text
    # a long dotted line (joined node ids) took minutes: the patterns start only where a name does
    assert _masked("a." * 20000) == "a." * 20000
    assert _masked("https://x.blob.core.windows.net/c?sv=2020&sig=abcDEF123%3D&se=1") == \
        "https://x.blob.core.windows.net/c?sv=2020&sig=***&se=1"
    # ordinary run-failure text keeps its words (a partitioned run's error names its partition_key=)
    for text in ("KeyError: x; monkey: 3", "unexpected token: SELECT", "Duplicate key: 42",
                 "partition key: 2026-01-01", "sort key: (a, b)", "monkey=3", "hotkey=3", "keyword=select",
                 "partition_key=2026-01-01 failed", "run_key=2026-01-01", 'asset_key=AssetKey(["raw","orders"])',
                 "sort_key=order_id", "cache_key=abc123", "max_tokens=5", "tokens=5", "passwords=ok"):
        assert _masked(text) == text


def test_messages_of_two_kinds_in_one_group_are_both_delivered(tmp_path, monkeypatch, hook):
    """A route grouping by something other than `kind` (here: nothing) puts a stale
    source and a failed run in one group, in two messages (a message speaks of one kind).
    Delivery took the later for a repeat of the earlier and dropped the freshness one
    as 'superseded'."""
    from dagster_project.alerting.pipeline import run_failure_signal
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    paths = make_project(tmp_path, {"events/downloads.yml": METRIC})
    (paths.models_dir / "staging" / "_sources.yml").write_text(SOURCES)
    (tmp_path / "alerts.yml").write_text(textwrap.dedent(f"""\
        channels:
          hook: {{type: webhook, url: "{hook.url}/hook"}}
        default_route: {{channels: [hook], group_by: [domain], group_wait: 0s}}
        """))
    project = load_project(paths).project
    wh = Warehouse("duckdb", paths)
    wh.replace_rows("entity_events", _events(NOW - dt.timedelta(hours=10)), "created_at",
                    NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=1))
    signal = run_failure_signal("rollups_day_job", "r-456", "2026-11-19", "boom", True, NOW)
    report = evaluate_once(paths, "duckdb", project, NOW, signals=[signal])
    assert report.delivery.dropped == []
    kinds = sorted(m["json"]["kind"] for m in hook.accepted)
    assert kinds == ["freshness", "run_failure"], kinds
    sources = sorted(a["source"] for m in hook.accepted if m["json"]["kind"] == "freshness" for a in m["json"]["alerts"])
    assert sources == ["raw.entity_events", "raw.orders"]


@pytest.mark.parametrize("after, why", [
    ("{count: 3, period: hours}", "period is minute, hour or day (got `hours`)"),
    ("{count: 99999999999, period: day}", "count of days is at most 3,653"),
    ("{count: -1, period: hour}", "count is a whole number, 0 or more"),
])
def test_a_freshness_allowance_the_alerts_cannot_read_is_a_validation_error(tmp_path, monkeypatch, after, why):
    """`period: hours` turned the source's freshness alert off without a word, and a count
    of 10^11 days was an OverflowError in every evaluation and in loading the Dagster
    definitions."""
    from dagster_project.alerting.pipeline import freshness_rules
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    paths = make_project(tmp_path, {"events/downloads.yml": METRIC})
    bad = SOURCES.replace("warn_after: {count: 3, period: hour}", f"warn_after: {after}")
    (paths.models_dir / "staging" / "_sources.yml").write_text(bad)
    issues = [str(i) for i in load_project(paths).issues]
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "warn_after" in x)) + 1
    assert any(i.startswith(f"models/staging/_sources.yml:{line}: source raw.entity_events: freshness warn_after: {why}")
               for i in issues), issues
    rules, problems = freshness_rules(paths)
    # its error_after (12 h) is still checked; the warn_after that cannot be read is said
    assert [(r.source, r.warn_after, r.error_after) for r in rules] == [
        ("raw.entity_events", None, dt.timedelta(hours=12)), ("raw.orders", None, dt.timedelta(days=1))]
    assert len(problems) == 1 and "raw.entity_events" in problems[0] and why in problems[0]


def test_freshness_thresholds_merge_as_dbt_merges_them(tmp_path, monkeypatch):
    """dbt fills a table's threshold from its source's, key by key (a null key keeps the
    source's), and reads a threshold written as null as "off": the first was refused and
    the table's whole freshness alert switched off. A bad threshold written at the source
    is reported at its own line, once; a count past ten years once merged too (it was an
    OverflowError loading the Dagster definitions); a count dbt renders is not refused."""
    from dagster_project.alerting.pipeline import freshness_rules
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    paths = make_project(tmp_path, {"events/downloads.yml": METRIC})
    (paths.models_dir / "staging" / "_sources.yml").write_text(textwrap.dedent("""\
        version: 2
        sources:
          - name: raw
            schema: raw
            config:
              freshness: {warn_after: {count: 3, period: hour}, error_after: {count: 1, period: day}}
              loaded_at_field: created_at
            tables:
              - name: entity_events
                config:
                  freshness: {warn_after: {count: 6}, error_after: null}
              - name: orders
                config:
                  loaded_at_field: ordered_at
              - name: follower_snapshots
                config:
                  freshness: null
        """))
    assert load_project(paths).issues == []
    rules, problems = freshness_rules(paths)
    assert problems == []
    assert [(r.source, r.warn_after, r.error_after) for r in rules] == [
        ("raw.entity_events", dt.timedelta(hours=6), None), ("raw.orders", dt.timedelta(hours=3), dt.timedelta(days=1))]
    bad = (paths.models_dir / "staging" / "_sources.yml").read_text().replace("{count: 3, period: hour}",
                                                                            "{count: 3, period: hours}")
    (paths.models_dir / "staging" / "_sources.yml").write_text(bad)
    issues = [str(i) for i in load_project(paths).issues]
    assert issues == ["models/staging/_sources.yml:6: source raw: freshness warn_after: period is minute, hour or day "
                      "(got `hours`) (that threshold is not checked until this is fixed)"], issues
    merged = bad.replace("{count: 3, period: hours}", "{period: day}").replace(
        "warn_after: {count: 6}", "warn_after: {count: 100000000000}").replace(
        "error_after: null", "error_after: {count: null}")
    (paths.models_dir / "staging" / "_sources.yml").write_text(merged)
    issues = [str(i) for i in load_project(paths).issues]
    assert len(issues) == 1 and "source raw.entity_events: freshness warn_after: count of days is at most" in issues[0]
    rules, problems = freshness_rules(paths)
    # error_after: {count: null} keeps the source's 1 day
    assert [(r.source, r.error_after) for r in rules][0] == ("raw.entity_events", dt.timedelta(days=1)), rules
    rendered = merged.replace("{count: 100000000000}", "{count: \"{{ var('h', 6) }}\", period: hour}")
    (paths.models_dir / "staging" / "_sources.yml").write_text(rendered)
    assert load_project(paths).issues == []
    assert any("rendered by dbt" in p for p in freshness_rules(paths)[1])


def test_a_malformed_sources_list_is_no_traceback(tmp_path, monkeypatch):
    """`tables: 5` made `metrics validate` a TypeError once it read the sources' freshness."""
    from dagster_project.alerting.pipeline import freshness_rules
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    paths = make_project(tmp_path, {"events/downloads.yml": METRIC})
    (paths.models_dir / "staging" / "_odd.yml").write_text(
        "version: 2\nsources:\n  - name: odd\n    tables: 5\n    config:\n      freshness: {warn_after: {count: 1, period: day}}\n")
    load_project(paths)  # (what dbt says of it is dbt's to say)
    assert [r.source for r in freshness_rules(paths)[0] if r.source.startswith("odd")] == []
