"""Alert evaluation end to end on a real DuckDB file, delivered to real servers on
loopback (an HTTP server for webhook and Slack messages, aiosmtpd for email): open,
group, repeat, silence, resolve, retries with backoff, an outage, a delivery process
killed between send and record, and the sensor with its cursor.

The scored buckets are written to metric_anomalies directly (the detector has its own
tests): the alert engine's input is that table."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from dagster_project.alerting.evaluate import evaluate_once
from dagster_project.validation.project import load_project
from dagster_project.warehouse.alert_store import OUTBOX, STATE, read_table
from dagster_project.warehouse.anomaly_store import NAMES, replace_window
from dagster_project.warehouse.connection import Warehouse
from tests.alert_servers import SmtpReceiver, WebhookReceiver, wait_for
from tests.conftest import make_project, without_freshness

NOW = dt.datetime(2026, 11, 20, 12, 0)
SECRET = "hook-secret-value"

METRIC = """name: {name}
owner: {owner}
source: stg_entity_events
timestamp: created_at
aggregation: count
dimensions: [entity_type]
grains: [day]
start: 2026-10-01
"""


def alerts_yml(hook: str, smtp_port: int, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        dagster_url: http://dagster.example:3000
        channels:
          hook: {{type: webhook, url: "{hook}/hook", secret: "${{HOOK_SECRET}}"}}
          chat: {{type: slack, url: "{hook}/slack"}}
          mail: {{type: email, to: [oncall@example.com], smtp_host: 127.0.0.1, smtp_port: {smtp_port}}}
          audit: {{type: log, path: warehouse/alerts.log}}
        routes:
          - name: growth
            match: {{domain: growth}}
            channels: [chat, mail]
            group_by: [metric]
            group_wait: 0s
            repeat_interval: 4h
          - name: commerce
            match: {{domain: commerce}}
            channels: [hook]
            group_by: [metric]
            group_wait: 0s
            repeat_interval: 4h
        default_route: {{channels: [audit]}}
        retry: {{first: 10s, max: 1h}}
        """) + extra


@pytest.fixture
def servers():
    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        yield hook, smtp


@pytest.fixture
def project(tmp_path, monkeypatch, servers):
    hook, smtp = servers
    monkeypatch.setenv("METRICS_DUCKDB_PATH", str(tmp_path / "warehouse" / "metrics.duckdb"))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    paths = make_project(tmp_path, {
        "commerce/orders.yml": METRIC.format(name="orders", owner="shop@example.com"),
        "growth/downloads.yml": METRIC.format(name="downloads", owner="growth@example.com"),
    })
    (tmp_path / "alerts.yml").write_text(alerts_yml(hook.url, smtp.port))
    without_freshness(paths)  # no raw tables here: only anomaly alerts are under test
    return paths


def _project(paths):
    loaded = load_project(paths)
    assert loaded.ok, loaded.issues
    return loaded.project


def _png(path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([1, 3, 2])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return str(path)


def score(paths, rows: list[dict], day_from: int, day_to: int) -> None:
    """Replace the day buckets [day_from, day_to) of November in metric_anomalies."""
    base = {"expected": 100.0, "lower": 80.0, "upper": 120.0, "direction": None, "provisional": False,
            "numerator": None, "denominator": None, "model": "test", "chart_path": None, "run_id": "t",
            "computed_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), "dimension": "",
            "dimension_value": "", "grain": "day"}
    full = []
    for r in rows:
        flagged = r.get("is_anomaly", False)
        row = {**base, "value": 30.0 if flagged else 100.0, "score": -7.0 if flagged else 0.3,
               "direction": "down" if flagged else None, "reason": f"{r['metric']} low" if flagged else "in band", **r}
        row["bucket_start"] = dt.datetime(2026, 11, row.pop("day"))
        row["is_anomaly"] = flagged
        full.append(row)
    frame = pd.DataFrame(full, columns=NAMES)
    replace_window(Warehouse("duckdb", paths), "day", dt.datetime(2026, 11, day_from), dt.datetime(2026, 11, day_to), frame)


def hooked(hook) -> list[dict]:
    """Requests the generic webhook channel answered 2xx (the Slack channel posts to /slack)."""
    return [r for r in hook.accepted if r["path"] == "/hook"]


def evaluate(paths, now=NOW):
    return evaluate_once(paths, "duckdb", _project(paths), now)


def test_open_group_repeat_and_resolve_arrive_as_the_servers_see_them(project, servers, tmp_path):
    hook, smtp = servers
    chart = _png(tmp_path / "charts" / "downloads.png")
    score(project, [
        {"metric": "orders", "day": 19, "is_anomaly": True},
        {"metric": "orders", "day": 19, "is_anomaly": True, "dimension": "entity_type", "dimension_value": "model"},
        {"metric": "orders", "day": 19, "dimension": "entity_type", "dimension_value": "dataset"},
        {"metric": "downloads", "day": 19, "is_anomaly": True, "chart_path": chart},
    ], 19, 20)
    report = evaluate(project)
    assert report.counts["opened"] == 3 and not report.delivery.failed
    # commerce: one webhook message for the group `metric=orders`, both alerts in it, signed
    (msg,) = hooked(hook)
    body = msg["json"]
    assert msg["path"] == "/hook" and body["status"] == "firing" and body["group"] == "metric=orders"
    assert sorted(a["slice"] for a in body["alerts"]) == ["entity_type=model", "total"]
    assert msg["headers"]["Idempotency-Key"] == body["idempotency_key"]
    want = "sha256=" + hmac.new(SECRET.encode(), msg["body"], hashlib.sha256).hexdigest()
    assert msg["headers"]["X-Signature-256"] == want
    assert body["alerts"][0]["link"].startswith("http://dagster.example:3000/assets/")
    # growth: Slack-format to /slack and an email with the chart attached
    (slack,) = [r for r in hook.accepted if r["path"] == "/slack"]
    assert "downloads" in slack["json"]["text"]
    (mail,) = wait_for(lambda: smtp.messages)
    assert "downloads" in mail["Subject"] and "FIRING" in mail["Subject"].upper()
    assert [p.get_content_type() for p in mail.iter_attachments()] == ["image/png"]

    # an hour later: nothing new to say
    evaluate(project, NOW + dt.timedelta(hours=1))
    assert len(hooked(hook)) == 1
    # past repeat_interval: the group again, with a new key
    evaluate(project, NOW + dt.timedelta(hours=4, minutes=1))
    first, repeat = hooked(hook)
    assert repeat["json"]["status"] == "firing" and repeat["json"]["idempotency_key"] != first["json"]["idempotency_key"]

    # the next day is back in band for both series: one resolved message for the group
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True},
                    {"metric": "orders", "day": 19, "is_anomaly": True, "dimension": "entity_type",
                     "dimension_value": "model"},
                    {"metric": "orders", "day": 20},
                    {"metric": "orders", "day": 20, "dimension": "entity_type", "dimension_value": "model"}], 19, 21)
    evaluate(project, NOW + dt.timedelta(hours=5))
    assert len(hooked(hook)) == 3
    resolved = hooked(hook)[2]["json"]
    assert resolved["status"] == "resolved" and len(resolved["alerts"]) == 2
    statuses = {s["alert_key"]: s["status"] for s in read_table(Warehouse("duckdb", project), STATE)}
    assert statuses["anomaly:orders:day:total"] == "resolved"
    assert statuses["anomaly:downloads:day:total"] == "open"


def test_slack_messages_reach_the_slack_path_with_blocks(project, servers):
    hook, _ = servers
    score(project, [{"metric": "downloads", "day": 19, "is_anomaly": True}], 19, 20)
    evaluate(project)
    (slack,) = [r for r in hook.accepted if r["path"] == "/slack"]
    assert slack["json"]["blocks"] and "downloads" in slack["json"]["text"]


def test_a_history_backfill_pages_nobody(project, servers):
    hook, smtp = servers
    score(project, [{"metric": "orders", "day": d, "is_anomaly": True} for d in (2, 5, 9)], 1, 12)
    report = evaluate(project)
    assert report.counts.get("opened", 0) == 0 and hook.requests == [] and smtp.messages == []


def test_the_first_evaluation_reads_every_detection_still_within_open_within(project, servers):
    # open_within counts from when a detection settled (its bucket's end plus the settle
    # lookback, 3 days for days), so the read must reach that far back: Nov 12 ended on
    # Nov 13 and settled on Nov 16, inside the default 5 days before Nov 20 12:00
    hook, _ = servers
    score(project, [{"metric": "orders", "day": 12, "is_anomaly": True}], 1, 20)
    report = evaluate(project)
    assert report.counts.get("opened", 0) == 1
    assert [a["bucket_start"][:10] for a in hooked(hook)[0]["json"]["alerts"]] == ["2026-11-12"]


def test_a_silence_keeps_the_alert_quiet_until_it_ends(project, servers, tmp_path):
    hook, smtp = servers
    (tmp_path / "alerts.yml").write_text(alerts_yml(hook.url, smtp.port, textwrap.dedent("""\
        silences:
          - match: {metric: orders}
            starts: 2026-11-19T00:00:00Z
            ends: 2026-11-21T00:00:00Z
            comment: planned migration
        """)))
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    report = evaluate(project)
    assert report.counts["silenced"] == 1 and hook.requests == []
    (state,) = read_table(Warehouse("duckdb", project), STATE)
    assert state["status"] == "silenced" and state["silence"] == "planned migration"
    evaluate(project, dt.datetime(2026, 11, 21, 0, 30))  # the silence is over, the detection still holds
    assert [r["json"]["status"] for r in hook.accepted] == ["firing"]


def test_a_failing_webhook_is_retried_with_backoff_under_the_same_key(project, servers):
    hook, _ = servers
    hook.fail_first(2)
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    first = evaluate(project)
    assert len(first.delivery.failed) == 1
    (row,) = read_table(Warehouse("duckdb", project), OUTBOX)
    assert row["attempts"] == 1 and "500" in row["last_error"] and row["next_attempt_at"] == NOW + dt.timedelta(seconds=10)
    assert evaluate(project, NOW + dt.timedelta(seconds=5)).delivery.waiting == 1  # not due yet
    evaluate(project, NOW + dt.timedelta(seconds=11))  # second failure: next after 20 s more
    (row,) = read_table(Warehouse("duckdb", project), OUTBOX)
    assert row["attempts"] == 2 and row["next_attempt_at"] == NOW + dt.timedelta(seconds=31)
    evaluate(project, NOW + dt.timedelta(seconds=32))
    assert len(hook.requests) == 3 and len(hook.accepted) == 1 and len(set(hook.keys(accepted_only=False))) == 1
    (row,) = read_table(Warehouse("duckdb", project), OUTBOX)
    assert row["delivered_at"] is not None


def test_a_channel_down_for_many_evaluations_gets_every_message_in_order(project, servers):
    hook, _ = servers
    hook.stop()
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    evaluate(project)
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}, {"metric": "orders", "day": 20}], 19, 21)
    evaluate(project, NOW + dt.timedelta(hours=1))  # resolved while the hook is down
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}, {"metric": "orders", "day": 20},
                    {"metric": "orders", "day": 21, "is_anomaly": True}], 19, 22)
    evaluate(project, dt.datetime(2026, 11, 22, 1))  # a new episode
    pending = read_table(Warehouse("duckdb", project), OUTBOX, "delivered_at is null", order="created_at, seq")
    assert [json.loads(p["payload"])["status"] for p in pending] == ["firing", "resolved", "firing"]
    assert all(p["last_error"] for p in pending[:1])
    hook.start()
    evaluate(project, dt.datetime(2026, 11, 22, 3))  # past every backoff
    assert [r["json"]["idempotency_key"] for r in hook.accepted] == [p["idempotency_key"] for p in pending]
    assert [r["json"]["status"] for r in hook.accepted] == ["firing", "resolved", "firing"]


def test_an_unset_secret_is_a_failed_delivery_in_the_outbox_not_a_crash(project, servers, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET")
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    report = evaluate(project)
    (row,) = read_table(Warehouse("duckdb", project), OUTBOX)
    assert row["delivered_at"] is None and "HOOK_SECRET" in row["last_error"] and report.delivery.failed
    assert SECRET not in row["last_error"]


def test_a_delivery_killed_between_send_and_record_is_sent_again_with_the_same_key(project, servers, tmp_path):
    hook, _ = servers
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True},
                    {"metric": "downloads", "day": 19, "is_anomaly": True}], 19, 20)
    env = {**os.environ, "METRICS_NOW": NOW.isoformat(), "HOOK_SECRET": SECRET}
    cmd = [sys.executable, "-m", "dagster_project.cli.main", "--project-dir", str(tmp_path), "alerts", "evaluate"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []

    def kill_sender(request: dict) -> None:
        if request["path"] == "/hook" and not killed:  # the message arrived; its delivery is not recorded yet
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(request["json"]["idempotency_key"])

    hook.on_request(kill_sender)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL and killed
    (row,) = read_table(Warehouse("duckdb", project), OUTBOX, "channel = ?", ["hook"])
    assert row["delivered_at"] is None  # the send happened, the record did not
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    hook_keys = [r["json"]["idempotency_key"] for r in hook.requests if r["path"] == "/hook"]
    assert hook_keys == [killed[0], killed[0]]  # sent twice, same key: the receiver drops the repeat
    outbox = read_table(Warehouse("duckdb", project), OUTBOX)
    assert outbox and all(r["delivered_at"] is not None for r in outbox)  # every message arrived


def test_a_detection_already_back_in_band_resolves_at_the_next_evaluation_without_new_scoring(project, servers):
    """Opened on a detection whose next bucket was already in band, the alert fired, then
    repeated every repeat_interval until some later scoring happened to come."""
    hook, _ = servers
    score(project, [{"metric": "orders", "day": 18, "is_anomaly": True}, {"metric": "orders", "day": 19}], 18, 20)
    first = evaluate(project)
    assert first.counts["opened"] == 1 and [r["json"]["status"] for r in hooked(hook)] == ["firing"]
    later = evaluate(project, NOW + dt.timedelta(hours=1))  # nothing scored since
    assert not later.new_scoring and later.counts["resolved"] == 1
    assert [r["json"]["status"] for r in hooked(hook)] == ["firing", "resolved"]
    evaluate(project, NOW + dt.timedelta(hours=5))  # past repeat_interval: nothing more
    assert [r["json"]["status"] for r in hooked(hook)] == ["firing", "resolved"]


def test_two_evaluations_at_once_send_each_message_once(project, servers, tmp_path):
    """Delivery runs after the writer lock is released: a second evaluation sent the whole
    outbox again while the first was still sending it (every message twice)."""
    hook, smtp = servers
    hook.delay(1.0)
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True},
                    {"metric": "downloads", "day": 19, "is_anomaly": True}], 19, 20)
    env = {**os.environ, "METRICS_NOW": NOW.isoformat(), "HOOK_SECRET": SECRET}
    cmd = [sys.executable, "-m", "dagster_project.cli.main", "--project-dir", str(tmp_path), "alerts", "evaluate"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: hook.requests, timeout=60)  # the first is sending (each request takes a second)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=120) == 0 and second.returncode == 0, (first.stderr.read(), second.stderr)
    assert "another evaluation is delivering the outbox" in second.stdout + second.stderr
    outbox = read_table(Warehouse("duckdb", project), OUTBOX)
    assert outbox and all(r["delivered_at"] is not None and r["attempts"] == 1 for r in outbox)
    sent = [(r["path"], r["headers"].get("Idempotency-Key")) for r in hook.requests]
    assert len(sent) == len(set(sent)) == sum(1 for r in outbox if r["channel"] in ("hook", "chat")), sent
    assert len(smtp.messages) == sum(1 for r in outbox if r["channel"] == "mail")


def test_a_message_that_cannot_be_made_does_not_hold_the_channel(project, servers):
    """A line break in a raw dimension value reached an email Subject (a group of two
    metrics is named by its key): ValueError, retried forever, and every later mail waited
    behind it."""
    from dagster_project.alerting import render
    from dagster_project.warehouse.alert_store import commit
    hook, smtp = servers
    group = "slice=country=DE\r\nBcc: someone@example.com"
    payload = {"status": "firing", "route": "growth", "group": group, "kind": "anomaly",
               "alerts": [{"metric": m, "grain": "day", "slice": "country=DE\r\nBcc: someone@example.com"}
                          for m in ("orders", "revenue")]}
    line = render.subject(payload)
    assert "\r" not in line and "\n" not in line and "DE Bcc: someone@example.com" in line, line
    # a message that can never be made (here: an unreadable payload) ahead of a good one
    wh = Warehouse("duckdb", project)
    commit(wh, [], [{"idempotency_key": "poison", "channel": "hook", "route": "commerce", "group_key": "g",
                     "status": "firing", "kind": "anomaly", "payload": "{not json", "seq": 0, "attempts": 0,
                     "created_at": NOW - dt.timedelta(days=1), "version": 1}], None)
    score(project, [{"metric": "orders", "day": 20, "is_anomaly": True}], 20, 21)
    later = NOW + dt.timedelta(days=1)
    evaluate(project, later)
    rows = {r["idempotency_key"]: r for r in read_table(wh, OUTBOX, "channel = ?", ["hook"])}
    assert rows["poison"]["delivered_at"] is None and rows["poison"]["last_error"].startswith("unsendable: ")
    assert [r["json"]["status"] for r in hooked(hook)] == ["firing"]  # the good one went out
    # not due yet, it still does not hold the channel's next message
    score(project, [{"metric": "orders", "day": 20, "is_anomaly": True}, {"metric": "orders", "day": 21}], 20, 22)
    evaluate(project, later + dt.timedelta(seconds=1))
    assert [r["json"]["status"] for r in hooked(hook)] == ["firing", "resolved"]


def test_a_busy_warehouse_while_recording_is_not_called_another_deliverer(project, servers, monkeypatch):
    """A writer-lock timeout while recording a delivery was reported as "another evaluation
    is delivering the outbox" (the same exception as a busy delivery lock)."""
    from dagster_project.alerting import delivery
    from dagster_project.warehouse.lock import WarehouseLockTimeout

    def busy(*_a, **_k):
        raise WarehouseLockTimeout("duckdb: another run held warehouse/metrics.duckdb for more than 0 s")
    monkeypatch.setattr(delivery, "record_delivery", busy)
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    report = evaluate(project)
    assert any(line.startswith("delivery waits for the next evaluation: duckdb: another run held") for line in report.lines)
    assert not any("another evaluation is delivering" in line for line in report.lines), report.lines


def test_evaluate_json_gives_every_count_even_zero(project, servers, monkeypatch, capsys):
    """`alerts evaluate --format json` listed only what happened ({"opened": 1}): a reader
    had to guess the other keys."""
    from dagster_project.cli.main import main
    monkeypatch.setenv("METRICS_NOW", NOW.isoformat())
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    assert main(["--project-dir", str(project.root), "alerts", "evaluate", "--no-deliver", "--format", "json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert counts == {"opened": 1, "notified": 1, "repeated": 0, "resolved": 0, "silenced": 0, "unsilenced": 0,
                      "messages": counts["messages"]} and counts["messages"] >= 1, counts
    # --format given before the subcommand: the subcommand's own default overwrote it (a table)
    assert main(["--project-dir", str(project.root), "alerts", "--format", "json", "evaluate", "--no-deliver"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["opened"] == 0  # nothing new: the alert is open


def test_the_sensor_evaluates_once_per_tick_and_moves_its_cursor(project, servers, monkeypatch, tmp_path):
    from dagster import DagsterInstance, build_sensor_context

    from dagster_project.defs.alerts import metric_alerts_sensor
    hook, _ = servers
    monkeypatch.setenv("METRICS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("METRICS_NOW", NOW.isoformat())
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, cursor=None)
        (skip,) = list(metric_alerts_sensor(context))
        assert "1 opened" in skip.skip_message and len(hook.accepted) == 1
        cursor = json.loads(context.cursor)["scoring"]
        newest = Warehouse("duckdb", project).rows("select max(computed_at) from analytics.metric_anomalies")[1][0][0]
        assert cursor == newest.isoformat()  # the newest scoring read
        context = build_sensor_context(instance=instance, cursor=context.cursor)
        (again,) = list(metric_alerts_sensor(context))
        assert "no new scoring" in again.skip_message and len(hook.accepted) == 1
        assert json.loads(context.cursor)["scoring"] == cursor


def test_a_message_of_a_removed_channel_is_dropped_once_not_retried(project, servers):
    """It failed at every evaluation ("not in alerts.yml any more"), its alert listed as
    failed for ever, and no command let it go."""
    hook, _ = servers
    hook.stop()  # the first send fails: the message stays in the outbox
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    first = evaluate(project)
    assert len(first.delivery.failed) == 1 and "hook" in first.delivery.failed[0]
    text = (project.root / "alerts.yml").read_text()
    (project.root / "alerts.yml").write_text(
        text.replace('  hook: {type: webhook, url: "' + hook.url + '/hook", secret: "${HOOK_SECRET}"}\n', "")
            .replace("channels: [hook]", "channels: [audit]"))
    later = evaluate(project, NOW + dt.timedelta(hours=2))  # past the retry's backoff
    assert len(later.delivery.dropped) == 1 and "channel hook is not in alerts.yml any more" in later.delivery.dropped[0]
    assert not later.delivery.failed
    wh = Warehouse("duckdb", project)
    (row,) = [r for r in read_table(wh, OUTBOX) if r["channel"] == "hook"]
    assert row["delivered_at"] is not None and row["last_error"].startswith("dropped: ") and row["attempts"] == 1
    again = evaluate(project, NOW + dt.timedelta(hours=4))
    assert not again.delivery.dropped and not again.delivery.failed
    (row,) = [r for r in read_table(wh, OUTBOX) if r["channel"] == "hook"]
    assert row["attempts"] == 1


def test_repeats_queued_while_a_channel_is_down_go_out_as_one_message(project, servers):
    """Each repeat_interval of an outage queued one more repeat of the same group: on
    recovery the receiver got them all at once ("16 waiting")."""
    hook, _ = servers
    hook.stop()
    score(project, [{"metric": "orders", "day": 19, "is_anomaly": True}], 19, 20)
    reports = [evaluate(project, NOW + dt.timedelta(hours=hours)) for hours in (0, 5, 10)]  # repeat_interval 4h
    assert [r.counts.get("repeated", 0) for r in reports] == [0, 1, 1]  # three firing messages made
    dropped = [d for r in reports for d in r.delivery.dropped]
    assert len(dropped) == 2 and all("superseded by a later message of group metric=orders" in d for d in dropped)
    wh = Warehouse("duckdb", project)
    (waiting,) = read_table(wh, OUTBOX, "delivered_at is null and channel = 'hook'")
    hook.start()
    evaluate(project, NOW + dt.timedelta(hours=12))  # past every backoff
    assert [r["json"]["idempotency_key"] for r in hooked(hook)] == [waiting["idempotency_key"]]
    assert [r["json"]["status"] for r in hooked(hook)] == ["firing"]
    assert not read_table(wh, OUTBOX, "delivered_at is null and channel = 'hook'")
