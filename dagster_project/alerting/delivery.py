"""Deliver the outbox: every undelivered message whose retry time has come, per channel
in the order the messages were written. A failure stops that channel for this pass (a
later message never overtakes an earlier one) and schedules the retry with exponential
backoff (`retry:` in alerts.yml); a message that cannot be made at all (an error that is
no outage) is retried on its backoff without holding the channel's later messages. Each
attempt is recorded right after it, so a process killed between sending and recording
sends the same message, with the same idempotency key, on the next pass: receivers drop
the repeat."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..warehouse.alert_store import OUTBOX, read_table, record_delivery
from ..warehouse.connection import Warehouse
from .config import AlertsConfig


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)  # "channel key"
    failed: list[str] = field(default_factory=list)  # "channel key: error"
    waiting: int = 0  # undelivered messages not due yet (backoff) or behind a failed one
    dropped: list[str] = field(default_factory=list)  # "channel key: why" (a channel removed from alerts.yml)


def pending(wh: Warehouse) -> list[dict]:
    return read_table(wh, OUTBOX, "delivered_at is null", order="created_at, seq, idempotency_key, channel")


def deliver(wh: Warehouse, config: AlertsConfig, root: Path, now: Callable[[], dt.datetime],
            lock_timeout: float | None = None, budget_seconds: float | None = None) -> DeliveryReport:
    """`budget_seconds`: stop starting sends after this long (a sensor tick has a time
    limit); what is left waits for the next pass, in order."""
    import time

    from .channels import DeliveryError, send
    report = DeliveryReport()
    blocked: set[str] = set()
    started = time.monotonic()
    rows = pending(wh)
    repeated = _repeated(rows)
    for i, row in enumerate(rows):
        name = row["channel"]
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            report.waiting += 1
            continue
        if i in repeated:  # a channel down for hours queued a repeat every repeat_interval: one goes out
            _drop(wh, row, f"superseded by a later message of group {row['group_key']} on {name}", now(), report,
                  lock_timeout)
            continue
        unsendable = (row["last_error"] or "").startswith(UNSENDABLE)
        if name in blocked or (row["next_attempt_at"] is not None and row["next_attempt_at"] > now()):
            if not unsendable:  # (an unsendable message waits for its retry without holding the others)
                blocked.add(name)
            report.waiting += 1
            continue
        channel = config.channels.get(name)
        if channel is None:  # no send can ever succeed: dropped, said once (it was retried without end)
            _drop(wh, row, f"channel {name} is not in alerts.yml any more", now(), report, lock_timeout)
            continue
        error, unsendable = None, False
        try:
            send(name, channel, json.loads(row["payload"]), root)
        except DeliveryError as err:
            error, unsendable = str(err), err.unsendable
        except Exception as err:  # a channel bug must not stop the other channels
            error, unsendable = f"{name}: {type(err).__name__}: {err}", True
        attempts = int(row["attempts"] or 0) + 1
        at = now()
        if error is None:
            row.update(attempts=attempts, delivered_at=at, last_error=None, next_attempt_at=None)
            report.delivered.append(f"{name} {row['idempotency_key']}")
        else:
            error = (UNSENDABLE if unsendable else "") + error
            row.update(attempts=attempts, last_error=error[:500], next_attempt_at=at + config.retry.delay(attempts))
            report.failed.append(f"{name} {row['idempotency_key']}: {error}")
            if not unsendable:  # an outage: the later messages wait behind this one, in order
                blocked.add(name)
        record_delivery(wh, [row], lock_timeout=lock_timeout)
    return report


def _drop(wh: Warehouse, row: dict, why: str, at: dt.datetime, report: DeliveryReport,
          lock_timeout: float | None) -> None:
    """Close a message unsent: delivered_at set, last_error `dropped: why`."""
    row.update(delivered_at=at, last_error=DROPPED + why, next_attempt_at=None)
    report.dropped.append(f"{row['channel']} {row['idempotency_key']}: {DROPPED}{why}")
    record_delivery(wh, [row], lock_timeout=lock_timeout)


def _repeated(rows: list[dict]) -> set[int]:
    """Indexes of firing messages whose next pending message of the same channel, route,
    group and kind is firing too: that one says all it says, and more recently (a group
    whose route does not group by kind has a message per kind: neither repeats the other)."""
    out, last = set(), {}
    for i, row in enumerate(rows):
        key = (row["channel"], row["route"], row["group_key"], row.get("kind"))
        if key in last and rows[last[key]]["status"] == "firing" and row["status"] == "firing":
            out.add(last[key])
        last[key] = i
    return out


# the last_error of a message given up (closed with delivered_at set, never sent): its channel
# was removed from alerts.yml, or a later message of its group repeats it
DROPPED = "dropped: "
# the last_error of a message that could not be made (not an outage): it is retried on its
# backoff, and the channel's later messages are not held behind it
UNSENDABLE = "unsendable: "
