"""Delivery channels against real servers on loopback (HTTP server, aiosmtpd)."""
from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
import zlib

import pytest

from dagster_project.alerting.channels import DeliveryError, send
from dagster_project.alerting.config import EmailChannel, LogChannel, SlackChannel, WebhookChannel
from dagster_project.alerting.secrets import MissingSecret, resolve
from tests.alert_servers import SmtpReceiver, WebhookReceiver, wait_for

SECRET = "s3cr3t-hmac-key-value"


def _png() -> bytes:
    """A valid 1x1 PNG built from its chunks (no image library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff")) + chunk(b"IEND", b""))


PNG = _png()


def anomaly_payload(**over) -> dict:
    alert = {"metric": "orders", "grain": "day", "slice": "country=US", "bucket_start": "2026-11-20T00:00:00",
             "value": 1234.5, "expected": 1000.0, "lower": 900.0, "upper": 1100.25, "score": 4.2,
             "direction": "up", "reason": "orders 1,234.5 is above the band", "owner": "growth@example.com",
             "link": "http://127.0.0.1:3000/assets/orders", "chart": "charts/orders.png",
             "since": "2026-11-19T00:00:00Z", "severity": "warning", "kind": "anomaly", "band_edge": 3.0}
    payload = {"idempotency_key": "k-0123abcd", "status": "firing", "route": "growth", "group": "metric=orders",
               "kind": "anomaly", "alerts": [alert, {**alert, "slice": "country=FR", "value": 0.04213,
                                                     "expected": 0.05, "lower": 0.045, "upper": 0.055,
                                                     "score": -3.3, "direction": "down", "chart": None}]}
    payload.update(over)
    return payload


FRESHNESS = {"idempotency_key": "k-fresh", "status": "firing", "route": "ops", "group": "source=raw_orders",
             "kind": "freshness", "alerts": [{"kind": "freshness", "source": "raw_orders",
                                              "last_row_at": "2026-11-20T03:00:00Z", "allowance": 21600,
                                              "reason": "no new rows for 9h", "owner": "data@example.com",
                                              "link": None, "since": "2026-11-20T09:00:00Z", "metric": None}]}
RUN_FAILURE = {"idempotency_key": "k-run", "status": "firing", "route": "ops", "group": "job=metrics_job",
               "kind": "run_failure", "alerts": [{"kind": "run_failure", "job": "metrics_job", "run_id": "abc123",
                                                  "partition": "2026-11-20", "error": "dbt failed\ntraceback...",
                                                  "link": "http://127.0.0.1:3000/runs/abc123",
                                                  "reason": "run abc123 failed"}]}


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


def test_resolve_secrets(monkeypatch):
    assert resolve("a${X}b$$c", {"X": "1"}) == "a1b$c"
    with pytest.raises(MissingSecret, match="environment variable SLACK_WEBHOOK_URL is not set"):
        resolve("${SLACK_WEBHOOK_URL}", {"SLACK_WEBHOOK_URL": ""})
    monkeypatch.setenv("Y", "2")
    assert resolve("${Y}") == "2"


@pytest.mark.parametrize("url", ["hooks.example.com/token-AAAA1111", "ftp://example.com/token-AAAA1111",
                                 "http://127.0.0.1:9/token AAAA1111"])
def test_malformed_secret_url_is_not_quoted(monkeypatch, tmp_path, url):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    with pytest.raises(DeliveryError, match="^slack s: ") as err:
        send("s", SlackChannel(type="slack", url="${SLACK_WEBHOOK_URL}", timeout_seconds=1), anomaly_payload(), tmp_path)
    assert "AAAA1111" not in str(err.value)


def test_webhook_body_key_signature_and_headers(receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("HOOK_URL", receiver.url + "/hooks/alerts")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("HOOK_TOKEN", "tok-987654")
    channel = WebhookChannel(type="webhook", url="${HOOK_URL}", secret="${HOOK_SECRET}",
                             headers={"Authorization": "Bearer ${HOOK_TOKEN}", "X-Cost": "$$5"})
    payload = anomaly_payload()
    send("ops-webhook", channel, payload, tmp_path)
    [req] = receiver.accepted
    assert req["path"] == "/hooks/alerts" and req["method"] == "POST"
    assert req["json"] == payload
    assert req["body"] == json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    assert req["headers"]["content-type"] == "application/json"
    assert req["headers"]["idempotency-key"] == "k-0123abcd"
    assert req["headers"]["Authorization"] == "Bearer tok-987654"
    assert req["headers"]["X-Cost"] == "$5"
    expected = hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req["headers"]["X-Signature-256"], "sha256=" + expected)


def test_webhook_without_secret_is_unsigned(receiver, tmp_path):
    send("plain", WebhookChannel(type="webhook", url=receiver.url), anomaly_payload(), tmp_path)
    assert "X-Signature-256" not in receiver.accepted[0]["headers"]


def test_webhook_500_then_accepts_with_same_key(receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("HOOK_URL", receiver.url + "/token-in-path-XYZ")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    channel = WebhookChannel(type="webhook", url="${HOOK_URL}", secret="${HOOK_SECRET}")
    receiver.fail_first(2)
    for _ in range(2):
        with pytest.raises(DeliveryError) as err:
            send("ops-webhook", channel, anomaly_payload(), tmp_path)
        assert str(err.value) == "webhook ops-webhook: HTTP 500"
        assert SECRET not in str(err.value) and "XYZ" not in str(err.value)
    send("ops-webhook", channel, anomaly_payload(), tmp_path)
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    assert set(receiver.keys(accepted_only=False)) == {"k-0123abcd"}
    assert len(receiver.accepted) == 1


def test_webhook_timeout(receiver, tmp_path):
    receiver.delay(3)
    channel = WebhookChannel(type="webhook", url=receiver.url, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"^webhook slow: timed out after 0.3 s$"):
        send("slow", channel, anomaly_payload(), tmp_path)
    assert time.monotonic() - started < 2.5


def test_a_webhook_that_trickles_its_answer_holds_the_send_at_most_its_timeout(receiver, tmp_path):
    """The timeout bounded each read only: an answer sent a byte every 0.2 s held the
    send (and every channel behind it) for as long as the receiver went on. A 2xx status
    that came in time is a delivery; a status line that never completes is a timeout."""
    receiver.trickle(0.2)  # status and headers at once, then the body a byte at a time
    channel = WebhookChannel(type="webhook", url=receiver.url, timeout_seconds=1)
    started = time.monotonic()
    send("drip", channel, anomaly_payload(), tmp_path)
    assert time.monotonic() - started < 1.8 and len(receiver.requests) == 1
    receiver.trickle(0.2, status_line=True)  # the status line itself a byte at a time
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"^webhook drip: timed out after 1 s$"):
        send("drip", channel, anomaly_payload(), tmp_path)
    assert time.monotonic() - started < 1.8


def test_webhook_outage_and_recovery(receiver, tmp_path):
    seen = []
    receiver.on_request(lambda request: seen.append(request["headers"]["Idempotency-Key"]))
    channel = WebhookChannel(type="webhook", url=receiver.url)
    send("down", channel, anomaly_payload(idempotency_key="k-1"), tmp_path)
    port = receiver.port
    receiver.stop()
    with pytest.raises(DeliveryError, match=r"^webhook down: cannot connect: .*refused"):
        send("down", channel, anomaly_payload(idempotency_key="k-2"), tmp_path)
    receiver.start()  # same port, although connections of the first life may linger in TIME_WAIT
    assert receiver.port == port
    send("down", channel, anomaly_payload(idempotency_key="k-2"), tmp_path)
    assert seen == ["k-1", "k-2"] and receiver.keys() == ["k-1", "k-2"]


def test_unset_variable_names_it_and_sends_nothing(receiver, monkeypatch, tmp_path):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    with pytest.raises(DeliveryError) as err:
        send("growth-slack", SlackChannel(type="slack", url="${SLACK_WEBHOOK_URL}"), anomaly_payload(), tmp_path)
    assert str(err.value) == "slack growth-slack: environment variable SLACK_WEBHOOK_URL is not set"
    # every message of the channel needs it: held like an outage (README), not `unsendable:`
    assert err.value.unsendable is False
    monkeypatch.setenv("HOOK_URL", receiver.url)
    channel = WebhookChannel(type="webhook", url="${HOOK_URL}", secret="${MISSING_SECRET}")
    with pytest.raises(DeliveryError, match="webhook w: environment variable MISSING_SECRET is not set"):
        send("w", channel, anomaly_payload(), tmp_path)
    assert receiver.requests == []


def test_slack_message(receiver, monkeypatch, tmp_path):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url + "/services/T000/B000/XXXXSECRET")
    channel = SlackChannel(type="slack", url="${SLACK_WEBHOOK_URL}")
    send("growth-slack", channel, anomaly_payload(), tmp_path)
    [req] = receiver.accepted
    assert req["headers"]["Idempotency-Key"] == "k-0123abcd"
    body = req["json"]
    lines = body["text"].splitlines()
    assert len(lines) == 3 and "FIRING" in lines[0] and "country=US" in lines[1] and "country=FR" in lines[2]
    header, first, second, context = body["blocks"][0], body["blocks"][1], body["blocks"][2], body["blocks"][-1]
    assert header["type"] == "header" and "FIRING" in header["text"]["text"] and "growth" in header["text"]["text"]
    text = first["text"]["text"]
    assert first["text"]["type"] == "mrkdwn"
    for fact in ("orders", "country=US", "1,234.5 vs expected 1,000 (band 900..1,100.2)", "score 4.2 above expected (flagged beyond 3)",
                 "2026-11-19 00:00 UTC", "growth@example.com", "<http://127.0.0.1:3000/assets/orders|open in Dagster>",
                 "is above the band"):
        assert fact in text, fact
    assert "0.0421 vs expected 0.05 (band 0.045..0.055)" in second["text"]["text"]
    assert "score 3.3 below expected (flagged beyond 3)" in second["text"]["text"]
    assert context["type"] == "context" and "k-0123abcd" in context["elements"][0]["text"]

    send("growth-slack", channel, anomaly_payload(status="resolved"), tmp_path)
    resolved = receiver.accepted[1]["json"]
    assert resolved["blocks"][0]["text"]["text"].startswith("RESOLVED")
    assert resolved["text"].startswith("RESOLVED")


def test_slack_text_fallback_is_escaped_like_the_blocks(receiver, tmp_path):
    """A raw dimension value reached the top-level `text` verbatim: `<!channel>` pings a
    whole channel from a notification, a `<url|label>` is a disguised link."""
    payload = anomaly_payload()
    payload["alerts"][0]["slice"] = "country=<!channel> <https://evil.example|click here>"
    send("growth-slack", SlackChannel(type="slack", url=receiver.url), payload, tmp_path)
    body = receiver.accepted[0]["json"]
    for part in (body["text"], body["blocks"][1]["text"]["text"]):
        assert "<!channel>" not in part and "<https://evil.example" not in part
        assert "&lt;!channel&gt; &lt;https://evil.example|click here&gt;" in part, part


@pytest.mark.parametrize("payload, wording", [(FRESHNESS, "Source stopped delivering rows"),
                                              (RUN_FAILURE, "Pipeline run failed")])
def test_pipeline_alerts_say_the_pipeline_is_broken(receiver, tmp_path, payload, wording):
    send("ops-slack", SlackChannel(type="slack", url=receiver.url), payload, tmp_path)
    body = receiver.accepted[0]["json"]
    header = body["blocks"][0]["text"]["text"]
    assert "PIPELINE BROKEN" in header and wording in header
    assert wording in body["text"].splitlines()[0]
    section = body["blocks"][1]["text"]["text"]
    if payload is FRESHNESS:
        assert "source raw_orders" in section and "6h" in section and "2026-11-20 03:00 UTC" in section
    else:
        assert "job metrics_job partition 2026-11-20" in section and "dbt failed" in section
        assert "traceback" not in section  # first line of the error only


def test_email_with_html_and_chart(tmp_path, monkeypatch):
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "orders.png").write_bytes(PNG)
    payload = anomaly_payload()
    payload["alerts"][1]["chart"] = str(tmp_path / "missing.png")  # missing: skipped, still sent
    monkeypatch.setenv("MAIL_TO", "oncall@example.com")
    with SmtpReceiver() as smtp:
        channel = EmailChannel(type="email", to=["${MAIL_TO}", "boss@example.com"], smtp_host="127.0.0.1",
                               smtp_port=smtp.port, **{"from": "metrics@example.com"})
        send("oncall-mail", channel, payload, tmp_path)
        [msg] = wait_for(lambda: smtp.messages)
        assert smtp.envelopes[0]["rcpt_tos"] == ["oncall@example.com", "boss@example.com"]
    assert msg["Subject"] == "[FIRING] orders (day) 2 alerts — route growth"
    assert msg["Message-ID"] == "<k-0123abcd@metrics-as-code>"
    assert msg["Idempotency-Key"] == "k-0123abcd"
    assert msg["From"] == "metrics@example.com"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for fact in ("country=US", "1,234.5 vs expected 1,000", "score 4.2 above expected (flagged beyond 3)",
                 "growth@example.com"):
        assert fact in text and fact in html, fact
    assert "<table" in html and 'href="http://127.0.0.1:3000/assets/orders"' in html
    [png] = list(msg.iter_attachments())
    assert png.get_content_type() == "image/png" and png.get_filename() == "orders.png"
    assert png.get_content() == PNG


def test_email_resolved_subject(tmp_path):
    with SmtpReceiver() as smtp:
        channel = EmailChannel(type="email", to=["a@example.com"], smtp_host="127.0.0.1", smtp_port=smtp.port)
        send("m", channel, anomaly_payload(status="resolved"), tmp_path)
        [msg] = wait_for(lambda: smtp.messages)
    assert msg["Subject"].startswith("[RESOLVED] orders (day)")
    assert list(msg.iter_attachments()) == []  # the chart file does not exist under tmp_path


def test_smtp_down_then_back(tmp_path, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "pw-never-shown")
    with SmtpReceiver() as smtp:
        channel = EmailChannel(type="email", to=["a@example.com"], smtp_host="127.0.0.1", smtp_port=smtp.port,
                               timeout_seconds=2)
        smtp.stop()
        with pytest.raises(DeliveryError) as err:
            send("oncall-mail", channel, anomaly_payload(), tmp_path)
        assert str(err.value).startswith(f"email oncall-mail: cannot connect to 127.0.0.1:{smtp.port}: ")
        assert "\n" not in str(err.value)
        smtp.start()
        send("oncall-mail", channel, anomaly_payload(), tmp_path)
        wait_for(lambda: len(smtp.messages) == 1)
        # login without TLS is refused by aiosmtpd: the failure names the channel, not the password
        locked = channel.model_copy(update={"username": "bot", "password": "${SMTP_PASSWORD}"})
        with pytest.raises(DeliveryError, match="^email oncall-mail: SMTP ") as err:
            send("oncall-mail", locked, anomaly_payload(), tmp_path)
        assert "pw-never-shown" not in str(err.value)


def test_log_channel_appends_json_lines(tmp_path):
    channel = LogChannel(type="log", path="warehouse/logs/alerts.log")
    send("audit-log", channel, anomaly_payload(), tmp_path)
    send("audit-log", channel, FRESHNESS, tmp_path)
    lines = (tmp_path / "warehouse" / "logs" / "alerts.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["idempotency_key"] for r in records] == ["k-0123abcd", "k-fresh"]
    assert all(r["channel"] == "audit-log" and r["logged_at"].endswith("Z") for r in records)
    assert records[0]["alerts"] == anomaly_payload()["alerts"]


def test_nan_becomes_null(receiver, tmp_path):
    payload = anomaly_payload()
    payload["alerts"][0]["score"] = float("nan")
    send("w", WebhookChannel(type="webhook", url=receiver.url), payload, tmp_path)
    assert receiver.accepted[0]["json"]["alerts"][0]["score"] is None


def test_a_slack_url_from_the_environment_is_sent_to(monkeypatch, tmp_path):
    """The send-time check of a resolved URL refused every real Slack URL (hooks.slack.com)
    as "a secret written in alerts.yml": it came from the environment, as it should."""
    from dagster_project.alerting.destinations import url_problem
    assert url_problem("https://hooks.slack.com/services/T0/B0/X", resolved=True) is None
    assert "is a secret" in url_problem("https://hooks.slack.com/services/T0/B0/X")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/X")
    channel = SlackChannel(type="slack", url="${SLACK_WEBHOOK_URL}", timeout_seconds=1)
    with pytest.raises(DeliveryError) as err:  # no network here: it fails connecting, not on the URL
        send("team", channel, anomaly_payload(), tmp_path)
    assert "as resolved" not in str(err.value) and "X" not in str(err.value).split(":", 1)[1], str(err.value)


def test_an_smtp_server_that_trickles_its_replies_holds_the_send_at_most_its_timeout(tmp_path):
    """smtplib's timeout bounds each read only: a server sending one `250-` line of its
    EHLO reply a second, for ever, held the delivery (and every channel after it) for as
    long as it went on. The whole conversation now has `timeout_seconds`."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"220 slow.example ESMTP\r\n")
            conn.recv(1000)  # EHLO
            while not stop.wait(0.2):
                try:
                    conn.sendall(b"250-still here\r\n")
                except OSError:
                    return

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    channel = EmailChannel(type="email", to=["a@example.com"], smtp_host="127.0.0.1",
                           smtp_port=server.getsockname()[1], timeout_seconds=1)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match=r"^email slow: SMTP 127\.0\.0\.1:\d+: timed out after 1 s$"):
            send("slow", channel, anomaly_payload(), tmp_path)
        assert time.monotonic() - started < 4
    finally:
        stop.set()
        server.close()


def _fake_smtp(script) -> tuple:
    """A one-connection SMTP server on loopback that `script(conn)` talks for."""
    import socket
    import threading
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            try:
                script(conn)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_starttls_is_attempted_with_the_servers_name(tmp_path):
    """Connecting after building the client left smtplib's host name empty: starttls()
    raised `ValueError: check_hostname requires server_hostname` before any handshake,
    and the message was marked unsendable instead of retried."""
    def script(conn) -> None:
        conn.sendall(b"220 tls.example ESMTP\r\n")
        conn.recv(1000)  # EHLO
        conn.sendall(b"250-tls.example\r\n250 STARTTLS\r\n")
        conn.recv(1000)  # STARTTLS
        conn.sendall(b"220 go ahead\r\n")
        conn.recv(1000)  # the TLS client hello: hang up on it

    server, port = _fake_smtp(script)
    channel = EmailChannel(type="email", to=["a@example.com"], smtp_host="127.0.0.1", smtp_port=port,
                           starttls=True, timeout_seconds=5)
    try:
        with pytest.raises(DeliveryError) as err:
            send("tls", channel, anomaly_payload(), tmp_path)
        assert "check_hostname" not in str(err.value) and not err.value.unsendable, str(err.value)
        assert "connection failed" in str(err.value) or "SSL" in str(err.value), str(err.value)
    finally:
        server.close()


def test_a_send_past_its_deadline_is_never_made_later(tmp_path, monkeypatch):
    """A name lookup slower than the timeout: the send was reported failed (to be retried)
    but the worker went on and sent it afterwards, so the retry made it twice."""
    import socket
    import threading
    got_data = threading.Event()

    def script(conn) -> None:
        conn.sendall(b"220 ok ESMTP\r\n")
        while True:
            line = conn.recv(1000)
            if not line:
                return
            if line.upper().startswith(b"MAIL"):
                got_data.set()
            conn.sendall(b"250 ok\r\n")

    server, port = _fake_smtp(script)
    real = socket.getaddrinfo

    def slow(*args, **kwargs):
        time.sleep(2.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    channel = EmailChannel(type="email", to=["a@example.com"], smtp_host="127.0.0.1", smtp_port=port, timeout_seconds=1)
    try:
        with pytest.raises(DeliveryError, match="timed out after 1 s"):
            send("dns", channel, anomaly_payload(), tmp_path)
        time.sleep(3)  # the lookup ends: the worker must not send now
        assert not got_data.is_set()
    finally:
        server.close()
