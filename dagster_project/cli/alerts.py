"""`metrics alerts`: list alerts (alert_state), `metrics alerts outbox`: list messages
(alert_outbox), `metrics alerts evaluate`: one evaluation, exactly the work of a
`metric_alerts_sensor` tick, headless (cron, CI, tests)."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from ..printable import one_line

STATE_FIELDS = ["status", "alert_key", "route", "severity", "bucket_start", "value", "expected", "lower", "upper",
                "score", "opened_at", "last_sent_at", "resolved_at", "sends", "reason", "resolution"]
OUTBOX_FIELDS = ["idempotency_key", "channel", "route", "group_key", "status", "created_at", "attempts",
                 "next_attempt_at", "delivered_at", "last_error"]


def add_parser(sub, with_target) -> None:
    sp = sub.add_parser("alerts", help="list alerts; `alerts evaluate`: one alert evaluation; `alerts outbox`: messages")
    sp.add_argument("--status", choices=("open", "resolved", "silenced", "failed"),
                    help="only alerts in this state (failed: a message of it could not be delivered yet)")
    sp.add_argument("--format", choices=("table", "json"), default="table")
    with_target(sp)
    sp.set_defaults(func=cmd_alerts)
    inner = sp.add_subparsers(dest="alerts_command")
    ev = inner.add_parser("evaluate", help="evaluate alerts once and deliver due messages (the sensor's work)")
    ev.add_argument("--no-deliver", action="store_true", help="write state and outbox, send nothing")
    _shared(ev, with_target)
    ev.set_defaults(func=cmd_evaluate)
    ob = inner.add_parser("outbox", help="list alert messages (pending: not delivered yet; failed: last attempt failed)")
    ob.add_argument("--status", choices=("pending", "failed", "delivered", "dropped"))
    _shared(ob, with_target)
    ob.set_defaults(func=cmd_outbox)


def _shared(sp, with_target) -> None:
    """--format and --target on a subcommand too, without a default of their own: a
    subparser's default would overwrite what was given before the subcommand
    (`metrics alerts --format json evaluate` printed the table)."""
    sp.add_argument("--format", choices=("table", "json"), default=argparse.SUPPRESS)
    with_target(sp)
    target = next(a for a in sp._actions if a.dest == "target")
    target.default = argparse.SUPPRESS


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _project(paths):
    from ..validation.project import load_project
    result = load_project(paths)
    for issue in result.issues:
        print(issue, file=sys.stderr)
    return result.project


def _plain(value):
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, float):
        return round(value, 6)
    return value


def _print(rows: list[dict], fields: list[str], fmt: str) -> None:
    rows = [{f: _plain(r.get(f)) for f in fields} for r in rows]
    if fmt == "json":
        print(json.dumps(rows, indent=1))
        return
    if not rows:
        print("(none)")
        return
    from ..anomaly.reason import number  # as the reasons write them: 89,226, not 8.923e+04
    # a line break in a slice value would split the row: shown as \n (one_line)
    cells = [[one_line("" if r[f] is None else number(r[f], "fraction") if isinstance(r[f], float) else str(r[f]))[:60]
              for f in fields] for r in rows]
    widths = [max(len(f), *(len(c[i]) for c in cells)) for i, f in enumerate(fields)]
    print("  ".join(f.ljust(w) for f, w in zip(fields, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def cmd_alerts(args, paths) -> int:
    from ..warehouse.alert_store import OUTBOX, STATE, read_table
    from ..warehouse.connection import Warehouse, WarehouseError
    wh = Warehouse(args.target, paths)
    try:
        with wh.reading():
            states = read_table(wh, STATE, order="status, alert_key, route")
            failing = read_table(wh, OUTBOX, "delivered_at is null and last_error is not null") \
                if args.status == "failed" else []
    except WarehouseError as err:  # a read: exit 2, as `metrics series` and `metrics anomalies`
        _err(str(err))
        return 2
    if args.status == "failed":
        groups = {(m["route"], m["group_key"]) for m in failing}
        states = [s for s in states if (s["route"], s["group_key"]) in groups and s["status"] != "resolved"]
    elif args.status:
        states = [s for s in states if s["status"] == args.status]
    _print(states, STATE_FIELDS, args.format)
    return 0


def cmd_outbox(args, paths) -> int:
    from ..warehouse.alert_store import OUTBOX, read_table
    from ..warehouse.connection import Warehouse, WarehouseError
    where = {"pending": "delivered_at is null", "failed": "delivered_at is null and last_error is not null",
             "delivered": "delivered_at is not null and last_error is null",
             "dropped": "delivered_at is not null and last_error is not null", None: ""}[args.status]
    try:
        rows = read_table(Warehouse(args.target, paths), OUTBOX, where, order="created_at, seq, channel")
    except WarehouseError as err:  # a read: exit 2
        _err(str(err))
        return 2
    _print(rows, OUTBOX_FIELDS, args.format)
    return 0


def cmd_evaluate(args, paths) -> int:
    from ..alerting.evaluate import evaluate_once
    from ..warehouse.connection import WarehouseError
    from ..warehouse.read import now_utc
    project = _project(paths)
    if project is None:
        _err("fix the problems above (metrics validate): nothing evaluated")
        return 1
    try:
        report = evaluate_once(paths, args.target, project, now_utc(), send=not args.no_deliver)
    except WarehouseError as err:
        _err(str(err))
        return 1
    if args.format == "json":
        print(json.dumps({"counts": report.all_counts(), "lines": report.lines, "delivered": report.delivery.delivered,
                          "failed": report.delivery.failed, "dropped": report.delivery.dropped, "waiting": report.delivery.waiting,
                          "open": report.open_alerts, "new_scoring": report.new_scoring}, indent=1))
    else:
        for line in report.lines + [f"delivered {d}" for d in report.delivery.delivered]:
            print(one_line(line))
        for line in report.delivery.failed:  # kept in the outbox and retried with backoff
            print(f"delivery failed (will retry): {one_line(line)}", file=sys.stderr)
        for line in report.delivery.dropped:
            print(f"not delivered: {one_line(line)}", file=sys.stderr)
        print(report.summary())
    return 0
