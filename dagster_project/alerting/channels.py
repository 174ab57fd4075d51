"""Delivery channels (plug-ins), standard library only. `send(name, channel, payload, root)`
dispatches on the channel model of `config.py`:

- `webhook`: POST the payload as JSON (the generic body), `Idempotency-Key` header, extra
  headers, and with a `secret` an `X-Signature-256: sha256=<hmac of the body>` header.
- `slack`: POST Slack incoming-webhook JSON (blocks, text fallback).
- `email`: SMTP (optional STARTTLS and login), text and HTML alternatives, chart PNGs attached.
- `log`: append one JSON line to a file under the project root.

Any failure raises `DeliveryError` with a one-line message naming the channel; resolved
secrets (a Slack URL is one) never appear in it. The caller records it in the outbox."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import math
import os
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Callable

from . import render
from .config import EmailChannel, LogChannel, SlackChannel, WebhookChannel
from .destinations import log_path_problem, url_problem
from .secrets import MissingSecret, redact, resolve


class DeliveryError(RuntimeError):
    """A message was not delivered; the message names the channel, never a secret.
    `unsendable`: the message itself could not be made (not an outage): retrying the
    channel's later messages behind it would hold them forever."""

    def __init__(self, message: str, unsendable: bool = False):
        super().__init__(message)
        self.unsendable = unsendable


class _Failure(Exception):
    """A failure already phrased for the user (prefixed with the channel by `send`)."""


class _Secrets:
    """Resolves references and remembers the values, to mask them in any error text."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        value = resolve(text)
        if value != text:
            self.values.append(value)
        return value


def send(name: str, channel, payload: dict, root: Path) -> None:
    """Deliver `payload` through `channel` or raise DeliveryError."""
    sender = _SENDERS.get(type(channel))
    kind = getattr(channel, "type", type(channel).__name__)
    if sender is None:
        raise DeliveryError(f"{kind} {name}: unknown channel type")
    secrets = _Secrets()
    try:
        sender(name, channel, _json_safe(payload), Path(root), secrets)
    except Exception as err:  # noqa: BLE001 - a failed delivery is recorded, never a crash
        if isinstance(err, (_Failure, MissingSecret)):
            text = str(err)
        else:  # a library's message may quote part of a secret (a URL path): only the type then
            text = f"{type(err).__name__}: {err}" if not secrets.values else type(err).__name__
        text = " ".join(redact(text, secrets.values).split()) or type(err).__name__
        # transport failures (_Failure: refused, timed out, 5xx; OSError) are outages; any other
        # error is in making this one message
        unsendable = not isinstance(err, (_Failure, MissingSecret, OSError))
        # `from None`: the original exception may carry the resolved URL or request
        raise DeliveryError(f"{kind} {name}: {text}", unsendable) from None


def body_bytes(payload: dict) -> bytes:
    """The exact bytes posted (and signed) by the webhook channel."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _json_safe(value):
    # NaN is not JSON: receivers get null, as the contract allows for any field
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # a redirected POST turns into a GET without body: report the 3xx instead
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


MAX_REPLY = 64 * 1024  # bytes of a receiver's answer read: only its status counts


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """POST within `timeout` seconds in all: the socket timeout bounds each read only, and
    a receiver trickling its answer a byte at a time held every channel's delivery. A 2xx
    status received in time is a delivery, however slowly the body follows (at most
    MAX_REPLY bytes of it are read, until the deadline)."""
    outcome: dict[str, object] = {}

    def attempt() -> None:
        try:
            _post_once(url, body, headers, timeout, time.monotonic() + timeout, outcome)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=attempt, name="webhook-post", daemon=True)
    worker.start()
    worker.join(timeout)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    status = outcome.get("status")
    if status is None:  # no answer in time: the socket timeout ends the worker
        raise _Failure(f"timed out after {timeout:g} s")
    if not 200 <= int(status) < 300:
        raise _Failure(f"HTTP {status}")


def _post_once(url: str, body: bytes, headers: dict[str, str], timeout: float, deadline: float,
               outcome: dict) -> None:
    problem = url_problem(url, resolved=True)  # a `${VAR}` URL as resolved; said without the URL (may be secret)
    if problem:
        raise _Failure(f"the URL as resolved: {problem}")
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with _OPENER.open(request, timeout=timeout) as response:
            outcome["status"] = response.status
            try:
                read = 0
                while read < MAX_REPLY and time.monotonic() < deadline:
                    chunk = response.read1(16 * 1024)
                    if not chunk:
                        break
                    read += len(chunk)
            except (OSError, http.client.HTTPException):
                pass  # the status came: what follows it does not matter
    except urllib.error.HTTPError as err:
        err.close()
        raise _Failure(f"HTTP {err.code}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, (TimeoutError, socket.timeout)):
            raise _Failure(f"timed out after {timeout:g} s") from None
        raise _Failure(f"cannot connect: {err.reason}") from None
    except (TimeoutError, socket.timeout):
        raise _Failure(f"timed out after {timeout:g} s") from None
    except OSError as err:  # connection reset while reading the answer, ...
        raise _Failure(f"connection failed: {err}") from None
    except Exception as err:  # noqa: BLE001 - e.g. a malformed URL: such messages quote it, and it may be secret
        raise _Failure(f"invalid URL or request ({type(err).__name__})") from None


def _headers(payload: dict) -> dict[str, str]:
    return {"Content-Type": "application/json", "Idempotency-Key": str(payload.get("idempotency_key") or "")}


def _webhook(name: str, channel: WebhookChannel, payload: dict, root: Path, secret: _Secrets) -> None:
    body = body_bytes(payload)
    headers = _headers(payload)
    headers.update({key: secret(value) for key, value in channel.headers.items()})
    if channel.secret is not None:
        headers["X-Signature-256"] = signature(secret(channel.secret), body)
    _post(secret(channel.url), body, headers, channel.timeout_seconds)


def _slack(name: str, channel: SlackChannel, payload: dict, root: Path, secret: _Secrets) -> None:
    url = secret(channel.url)
    _post(url, json.dumps(render.slack(payload)).encode("utf-8"), _headers(payload), channel.timeout_seconds)


def _charts(payload: dict, root: Path) -> list[Path]:
    """Existing chart files of the alerts, once each; a missing chart is skipped, not fatal."""
    found: list[Path] = []
    for alert in payload.get("alerts") or []:
        chart = alert.get("chart")
        if not chart:
            continue
        path = Path(chart) if Path(chart).is_absolute() else root / chart
        if path.is_file() and path not in found:
            found.append(path)
    return found


def email_message(payload: dict, sender: str, to: list[str], root: Path) -> EmailMessage:
    key = str(payload.get("idempotency_key") or "")
    msg = EmailMessage()
    msg["Subject"] = render.subject(payload)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{key}@metrics-as-code>"
    msg["Idempotency-Key"] = key
    msg.set_content(render.plain_text(payload))
    msg.add_alternative(render.html_body(payload), subtype="html")
    for path in _charts(payload, root):
        msg.add_attachment(path.read_bytes(), maintype="image", subtype="png", filename=path.name)
    return msg


def _email(name: str, channel: EmailChannel, payload: dict, root: Path, secret: _Secrets) -> None:
    to = [secret(address) for address in channel.to]
    sender = secret(channel.sender)
    msg = email_message(payload, sender, to, root)
    host = secret(channel.smtp_host)
    shown = f"{channel.smtp_host}:{channel.smtp_port}"  # as configured: a ${VAR} stays unresolved
    timeout = channel.timeout_seconds
    # the whole conversation within `timeout` seconds, as a webhook's POST (_post): the
    # socket timeout bounds each read only, and a server trickling a line a second held
    # every channel's delivery for ever; at the deadline the socket is shut, which ends it
    smtp = smtplib.SMTP(timeout=timeout)
    smtp._host = host  # what connect() leaves unset and starttls() checks the certificate against
    outcome: dict[str, object] = {}
    cancelled = threading.Event()  # past the deadline: the failure is reported, nothing may be sent

    def attempt() -> None:
        try:
            try:
                smtp.connect(host, channel.smtp_port)
            except (OSError, smtplib.SMTPException) as err:
                raise _Failure(f"cannot connect to {shown}: {err}") from None
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username:
                smtp.login(secret(channel.username), secret(channel.password) or "")
            if cancelled.is_set():  # (a slow name lookup or greeting: a retry will send it)
                return
            smtp.send_message(msg, from_addr=sender, to_addrs=to)
            outcome["sent"] = True
            smtp.quit()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = err
        finally:
            smtp.close()

    worker = threading.Thread(target=attempt, name="smtp-send", daemon=True)
    worker.start()
    worker.join(timeout)
    late = worker.is_alive()
    if late:
        cancelled.set()
        _shut(smtp)
        worker.join(0.5)
    if outcome.get("sent"):  # accepted for delivery: a slow goodbye after it changes nothing
        return
    err = outcome.get("error")
    if late or err is None:
        raise _Failure(f"SMTP {shown}: timed out after {timeout:g} s")
    if isinstance(err, _Failure):
        raise err
    if isinstance(err, smtplib.SMTPException):
        raise _Failure(f"SMTP {shown}: {type(err).__name__}: {err}") from None
    if isinstance(err, OSError):
        raise _Failure(f"SMTP {shown}: connection failed: {err}") from None
    raise err


def _shut(smtp: smtplib.SMTP) -> None:
    """End a conversation past its deadline: its blocked read returns at once."""
    sock = getattr(smtp, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _log(name: str, channel: LogChannel, payload: dict, root: Path, secret: _Secrets) -> None:
    written = secret(channel.path)
    problem = log_path_problem(written)
    if problem:
        raise _Failure(f"log path `{channel.path}` as resolved: {problem}")
    path = root / written
    if path.is_dir():
        raise _Failure(f"log path `{channel.path}` is a folder, not a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**payload, "channel": name,
              "logged_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    # one unbuffered write per line: concurrent appenders never interleave within a line
    with open(path, "ab", buffering=0) as f:
        f.write(line)
        os.fsync(f.fileno())


_SENDERS: dict[type, Callable[..., None]] = {
    WebhookChannel: _webhook, SlackChannel: _slack, EmailChannel: _email, LogChannel: _log}
