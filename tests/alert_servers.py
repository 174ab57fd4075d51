"""Real servers on loopback for alert delivery tests (a helper module, not a test file).

- `WebhookReceiver`: an HTTP server recording every request; can fail the first N, answer
  slowly, call back before answering, and go down and come back on the same port.
- `SmtpReceiver`: an aiosmtpd server recording parsed messages; can go down and come back.
- `wait_for(predicate)`: poll until true (servers answer from their own threads).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 10, interval: float = 0.02):
    """The predicate's first truthy value; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


class _Handler(BaseHTTPRequestHandler):
    receiver: "WebhookReceiver"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = {"method": self.command, "path": self.path, "headers": self.headers, "body": body,
                   "json": parsed, "received_at": time.time()}
        status, delay = self.receiver._record(request)
        self.receiver._wait(delay)
        trickle, status_line = self.receiver._trickle, self.receiver._trickle_status
        if trickle is not None:  # headers at once, then the body a byte at a time (or all of it so)
            try:
                head = f"HTTP/1.1 {status} OK\r\nContent-Length: 100\r\n\r\n".encode()
                slow = head + b"x" * 100 if status_line else b"x" * 100
                if not status_line:
                    self.wfile.write(head)
                for byte in slow:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if self.receiver._stopping.wait(trickle):
                        break
            except OSError:
                pass
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if 200 <= status < 300 else b"no")
        except OSError:  # the client gave up (timeout) or was killed: nothing to answer
            pass

    do_POST = do_PUT = do_GET = _handle

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass


class WebhookReceiver:
    """A real `ThreadingHTTPServer` on 127.0.0.1 (any path accepted), in a thread.

    `requests` holds every request received (dicts: method, path, headers with
    case-insensitive access, body bytes, json, status answered, received_at); `accepted` the
    ones answered 2xx (also when the client no longer waited for the answer)."""

    def __init__(self, port: int = 0):
        self.port = port
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._failures: list[int] = []
        self._delay = 0.0
        self._trickle: float | None = None
        self._trickle_status = False
        self._callbacks: list[Callable[[dict], None]] = []
        self.callback_errors: list[BaseException] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> "WebhookReceiver":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebhookReceiver":
        """Listen (again) on the remembered port; HTTPServer sets SO_REUSEADDR."""
        if self._server is not None:
            return self
        handler = type("Handler", (_Handler,), {"receiver": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"webhook-receiver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: senders now get connection refused (an outage)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # cut short the slow answers in flight
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def fail_first(self, n: int, status: int = 500) -> "WebhookReceiver":
        """Answer the next `n` requests with `status`."""
        with self._lock:
            self._failures.extend([status] * n)
        return self

    def trickle(self, every: float, status_line: bool = False) -> "WebhookReceiver":
        """Answer at once, then send the body one byte per `every` seconds (with
        `status_line`, the whole answer from its first byte)."""
        self._trickle, self._trickle_status = every, status_line
        return self

    def delay(self, seconds: float) -> "WebhookReceiver":
        """Wait this long before answering (to make senders time out)."""
        with self._lock:
            self._delay = seconds
        return self

    def on_request(self, callback: Callable[[dict], None]) -> "WebhookReceiver":
        """Call `callback(request)` when a request has been read, before answering it."""
        with self._lock:
            self._callbacks.append(callback)
        return self

    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[dict]:
        return [r for r in self.requests if 200 <= r["status"] < 300]

    def keys(self, accepted_only: bool = True) -> list[str | None]:
        """`Idempotency-Key` headers in arrival order."""
        return [r["headers"].get("Idempotency-Key") for r in (self.accepted if accepted_only else self.requests)]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: dict) -> tuple[int, float]:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(request)
            except BaseException as err:  # noqa: BLE001 - surfaced through callback_errors
                self.callback_errors.append(err)
        with self._lock:
            request["status"] = self._failures.pop(0) if self._failures else 200
            self._requests.append(request)
            return request["status"], self._delay

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _SmtpHandler:
    def __init__(self, receiver: "SmtpReceiver"):
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        with self.receiver._lock:
            self.receiver._messages.append(msg)
            self.receiver._envelopes.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)})
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpReceiver:
    """An aiosmtpd `Controller` on 127.0.0.1; `messages` are parsed `EmailMessage`s
    (`envelopes` the matching MAIL FROM / RCPT TO)."""

    def __init__(self, port: int = 0):
        self.port = port or _free_port()
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._envelopes: list[dict] = []
        self._controller = None

    def __enter__(self) -> "SmtpReceiver":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "SmtpReceiver":
        from aiosmtpd.controller import Controller

        if self._controller is None:
            # a fresh controller each time: one that was stopped is not meant to restart
            controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port, ready_timeout=15)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            if not controller.loop.is_closed():
                controller.loop.close()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[dict]:
        with self._lock:
            return list(self._envelopes)
