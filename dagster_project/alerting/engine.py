"""One alert evaluation, pure: scored buckets and the current alert state in, state
changes and outbox messages out (no warehouse, no network). Alertmanager is the model:

- an alert is keyed by (kind, metric, grain, slice) and kept per route it goes to;
- it opens on a settled detection, or a provisional one beyond twice the sensitivity,
  whose bucket ended within `open_within` (a history backfill pages nobody);
- a route's alerts are grouped by its `group_by` labels; a group is sent when a new alert
  in it has waited `group_wait`, and again every `repeat_interval` while any still fires;
  every message lists all the group's firing alerts;
- a matching silence holds an alert quietly (status `silenced`) until it ends;
- an alert resolves when `resolve_after` scored buckets after its last detection are in
  band, or when a recompute removed the detection, or the metric is no longer scored (or
  no longer has the slice's dimension); a group whose alerts were notified gets one
  `resolved` message.

Message keys are hashes of what the message is about (alerts, episodes, send counts), so
an evaluation repeated after a crash rebuilds the same keys (warehouse/alert_store.py)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field

from ..grains import add_grain
from ..printable import one_line
from .config import BUCKET, AlertsConfig, Route, default_open_within


@dataclass(frozen=True)
class Scored:
    """One scored bucket of metric_anomalies."""

    metric: str
    grain: str
    dimension: str
    dimension_value: str
    bucket_start: dt.datetime
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float | None
    is_anomaly: bool
    direction: str | None
    provisional: bool
    reason: str | None = None
    chart_path: str | None = None


@dataclass(frozen=True)
class MetricInfo:
    """What routing and messages need from a metric."""

    name: str
    domain: str
    owner: str | None
    tags: tuple[str, ...]
    routes: tuple[str, ...]  # the metric's own `alerts:` list
    sensitivity: float | None  # None: the grain's default (anomaly.settings)
    enabled: bool = True
    dimensions: tuple[str, ...] | None = None  # its slices' dimensions now (None: not checked)

    def lost(self, dimension: str | None) -> bool:
        """A slice of a dimension the metric no longer has (its dimensions changed)."""
        return bool(dimension) and self.dimensions is not None and dimension not in self.dimensions

    def strong_score(self, grain: str) -> float:
        """|score| from which a detection is strong (critical; opens while provisional)."""
        from ..anomaly.settings import default_sensitivity
        return 2 * (self.sensitivity if self.sensitivity is not None else default_sensitivity(grain))


@dataclass(frozen=True)
class Signal:
    """A pipeline alert's current truth: a source past its freshness allowance, or a job
    whose latest run failed. `firing=False` resolves an open alert of the same key."""

    kind: str  # freshness | run_failure
    subject: str  # the source (`raw.orders`) or the job name
    firing: bool
    severity: str = "critical"
    reason: str | None = None
    since: dt.datetime | None = None
    detail: dict = field(default_factory=dict)  # source/last_row_at/allowance or job/run_id/partition/error
    labels: dict = field(default_factory=dict)  # extra route labels (grain, owner, domain)


@dataclass
class Outcome:
    states: dict[tuple[str, str], dict] = field(default_factory=dict)  # changed rows only
    messages: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lines: list[str] = field(default_factory=list)  # what happened, for the tick log


def slice_text(dimension: str | None, value: str | None) -> str:
    return "total" if not dimension else f"{dimension}={value}"


def alert_key(kind: str, metric: str, grain: str, dimension: str | None, value: str | None) -> str:
    return f"{kind}:{metric}:{grain}:{slice_text(dimension, value)}"


def _iso(ts: dt.datetime | None) -> str | None:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts is not None else None


def labels_of(metric: MetricInfo, grain: str, dimension: str, value: str, severity: str, kind: str = "anomaly") -> dict:
    return {"metric": metric.name, "domain": metric.domain, "owner": metric.owner, "tag": list(metric.tags),
            "grain": grain, "severity": severity, "kind": kind, "slice": slice_text(dimension, value)}


def _pipeline_labels(kind: str, subject: str, severity: str, extra: dict) -> dict:
    """The route labels of a pipeline alert: from its signal, or (silences between
    signals) from its state, whose `metric` holds the subject and `grain` the extra label."""
    return {"kind": kind, "source": subject if kind == "freshness" else None, "severity": severity, "metric": None,
            **extra}


def group_key(route: Route, labels: dict) -> str:
    return ",".join(f"{g}={labels.get(g) or ''}" for g in route.group_by) or "all"


class Evaluator:
    def __init__(self, config: AlertsConfig, metrics: dict[str, MetricInfo], settle: dict[str, int],
                 now: dt.datetime, dagster_url: str | None = None):
        self.config, self.metrics, self.settle, self.now = config, metrics, settle, now
        self.base = (dagster_url or config.dagster_url).rstrip("/")
        self.out = Outcome()
        self.escalated: set[tuple[str, str]] = set()  # (alert key, route) of notified alerts now critical

    def open_within(self, route: Route, grain: str) -> dt.timedelta:
        return route.open_within or self.config.open_within or default_open_within(grain, self.settle.get(grain, 0))

    def lookback(self, grain: str) -> dt.timedelta:
        """How far back scored buckets of a grain matter for opening an alert: open_within
        counts from when a detection settled (_step's detected_at: its bucket's end plus
        the settle lookback), so a bucket that old still opens."""
        routes = [*self.config.routes, *([self.config.default_route] if self.config.default_route else [])]
        spans = [self.open_within(r, grain) for r in routes] or [self.config.open_within or
                                                                 default_open_within(grain, self.settle.get(grain, 0))]
        return max(spans) + BUCKET[grain] * (1 + self.settle.get(grain, 0))

    # --- state transitions -------------------------------------------------------------
    def evaluate(self, scored: dict[tuple, list[Scored]] | None, states: dict[tuple[str, str], dict],
                 signals: list[Signal] = ()) -> Outcome:
        """`scored`: (metric, grain, dimension, dimension_value) -> rows sorted by bucket,
        or None when nothing was scored since the last evaluation (then only the timers
        run: silences, group waits, repeats; a series left out has only its timers run);
        `states`: (alert_key, route) -> the current
        alert_state row."""
        current = dict(states)
        resolved_now: list[dict] = []
        seen: set[tuple[str, str]] = set()
        visited: set[str] = set()  # alert keys of the series read this time
        routed: dict[str, str] = {}  # their severity, which chose their route
        held_critical = {k for (k, _), s in states.items() if s["status"] in ("open", "silenced")
                         and s["severity"] == "critical"}
        for k, s in states.items():  # the timers of alerts whose series was not read this time
            metric = self.metrics.get(s["metric"])
            series = (s["metric"], s["grain"], s["dimension"] or "", s["dimension_value"] or "")
            if s["kind"] == "anomaly" and s["status"] in ("open", "silenced") and metric is not None \
                    and metric.enabled and not metric.lost(s["dimension"]) and (scored is None or series not in scored):
                seen.add(k)
                after = self._silence(dict(s), metric)
                if after != s:
                    current[k] = self.out.states[k] = after
        for (metric_name, grain, dim, dval), rows in (scored or {}).items():
            metric = self.metrics.get(metric_name)
            if metric is None or not metric.enabled:
                continue
            key = alert_key("anomaly", metric_name, grain, dim, dval)
            visited.add(key)
            newest = next((r for r in reversed(rows) if r.is_anomaly), None)
            strong = newest is not None and abs(newest.score or 0) >= metric.strong_score(grain)
            # an episode's severity only rises: a weaker bucket after a critical one must not
            # move the open alert to another route (and resolve it there) while it holds
            routed[key] = "critical" if strong or key in held_critical else "warning"
            for route in self._routes(metric, grain, dim, dval, routed[key]):
                seen.add((key, route.name))
                before = current.get((key, route.name))
                after = self._step(before, rows, metric, route, key, grain, dim, dval, routed[key])
                if after is not None and after is not before:
                    if after["status"] == "resolved" and before and before["status"] != "resolved":
                        resolved_now.append(after)
                    current[(key, route.name)] = after
                    self.out.states[(key, route.name)] = after
        for signal in signals:
            for k, before, after in self._signal(signal, current):
                if after["status"] == "resolved" and before is not None and before["status"] != "resolved":
                    resolved_now.append(after)
                current[k] = self.out.states[k] = after
        for k, s in states.items():
            if k in seen or current[k]["status"] == "resolved":
                continue
            if s["kind"] != "anomaly":  # a pipeline alert: resolved by its signal, unless its route is gone
                if self.config.route(k[1]) is not None:
                    # no signal may come for a while (a failed job until it runs again): a
                    # silence added or ended meanwhile still applies (idempotent otherwise)
                    c = current[k]
                    labels = _pipeline_labels(c["kind"], c["metric"], c["severity"],
                                              {"grain": c["grain"]} if c["grain"] else {})
                    after = self._silence_labels(dict(c), labels)
                    if after != current[k]:
                        current[k] = self.out.states[k] = after
                    continue
                why = f"route {k[1]} is not in alerts.yml any more"
            elif (metric := self.metrics.get(s["metric"])) is None or not metric.enabled:
                why = "the metric is no longer scored"
            elif metric.lost(s["dimension"]):  # its slices are scored no more: no bucket would resolve it
                why = f"the metric no longer has the dimension `{one_line(s['dimension'])}`"
            elif k[0] in visited:  # the series was scored but no longer goes to this route
                why = (f"its severity is {routed[k[0]]} now: another route has it" if routed[k[0]] != s["severity"]
                       else "the series goes to another route now (alerts.yml or the metric's alerts: changed)")
            else:
                continue
            after = self._resolve(current[k], why)
            resolved_now.append(after)
            current[k] = self.out.states[k] = after
        self._messages(current, resolved_now)
        return self.out

    def _routes(self, metric: MetricInfo, grain: str, dim: str, dval: str, severity: str) -> list[Route]:
        labels = labels_of(metric, grain, dim, dval, severity)
        return self.config.routes_for(labels, metric.routes)

    def _step(self, s: dict | None, rows: list[Scored], metric: MetricInfo, route: Route, key: str,
              grain: str, dim: str, dval: str, severity: str = "warning") -> dict | None:
        """One alert of one route. `severity`: the series' (held) severity, which chose the
        route; an alert opened under it starts there."""
        strong = metric.strong_score(grain)
        newest_ok = self.now - self.open_within(route, grain)
        settle = self.settle.get(grain, 0)

        def provisional(r: Scored) -> bool:
            # as scored, while its bucket is within the settle lookback: the schedules
            # rewrite a bucket last while it is still inside (the day schedule at D+3
            # 23:10), so a row past the lookback is settled whatever its flag says
            return r.provisional and add_grain(r.bucket_start, grain, 1 + settle) > self.now

        def opens(r: Scored) -> bool:
            return r.is_anomaly and (not provisional(r) or abs(r.score or 0) >= strong)

        def detected_at(r: Scored) -> dt.datetime:
            # a provisional detection exists from its bucket's end, a settled one from
            # when the bucket left the settle lookback: that is the age open_within limits
            # (calendar months: February's end is 28 or 29 days after its start)
            return add_grain(r.bucket_start, grain, 1 + (0 if provisional(r) else settle))

        if s is None or s["status"] == "resolved":
            fresh = [r for r in rows if opens(r) and detected_at(r) >= newest_ok
                     and (s is None or r.bucket_start > s["bucket_start"])]
            if not fresh:
                return s
            det = fresh[-1]
            state = {"alert_key": key, "route": route.name, "kind": "anomaly", "severity": severity,
                     "metric": metric.name, "grain": grain,
                     "dimension": dim, "dimension_value": dval, "status": "open",
                     "episode": (s["episode"] + 1) if s else 1, "sends": 0, "notified": False,
                     "opened_at": self.now, "last_sent_at": None, "resolved_at": None, "since": fresh[0].bucket_start,
                     "silence": None, "detail": None, "resolution": None}
            self._detection(state, det, metric, route)
            self.out.counts["opened"] += 1
            self.out.lines.append(f"opened {key} -> {route.name}: {det.reason or ''}")
            return self._silence(state, metric)
        state = dict(s)
        newer = [r for r in rows if opens(r) and r.bucket_start > state["bucket_start"]]
        if newer:
            self._detection(state, newer[-1], metric, route)
        at = next((r for r in rows if r.bucket_start == state["bucket_start"]), None)
        after = [r for r in rows if r.bucket_start > state["bucket_start"]]
        if not any(r.is_anomaly for r in after):
            if at is None or not at.is_anomaly:  # rescored in band, or its row is gone
                return self._resolve(state, "a recompute removed the detection")
            if sum(1 for r in after if r.value is not None) >= route.resolve_after:
                return self._resolve(state, "back in band")
        state = self._silence(state, metric)
        return state if state != s else s

    def _signal(self, signal: Signal, current: dict) -> list[tuple[tuple[str, str], dict | None, dict]]:
        """Open, update or resolve the alerts of one pipeline signal (one per route)."""
        key = f"{signal.kind}:{signal.subject}"
        labels = _pipeline_labels(signal.kind, signal.subject, signal.severity, signal.labels)
        changes = []
        routes = self.config.routes_for(labels) if signal.firing else \
            [r for r in (self.config.route(k[1]) for k in current if k[0] == key) if r is not None]
        if signal.firing:  # a new severity that routes elsewhere: the old route's alert ends
            names = {r.name for r in routes}
            for k, before in list(current.items()):
                if k[0] == key and k[1] not in names and before["status"] != "resolved":
                    why = (f"its severity is {signal.severity} now: another route has it"
                           if before["severity"] != signal.severity
                           else "it goes to another route now (alerts.yml changed)")
                    changes.append((k, before, self._resolve(before, why)))
        for route in routes:
            k = (key, route.name)
            before = current.get(k)
            active = before is not None and before["status"] != "resolved"
            if not signal.firing:
                if active:
                    changes.append((k, before, self._resolve(before, signal.reason or "back to normal")))
                continue
            detail = json.dumps(signal.detail, sort_keys=True, default=str)
            if active:
                if signal.severity == "critical" and before["severity"] != "critical" and before["notified"]:
                    self.escalated.add(k)
                state = dict(before, severity=signal.severity, reason=signal.reason, detail=detail)
                state = self._silence_labels(state, labels)
                if state != before:
                    state["updated_at"] = self.now
                    changes.append((k, before, state))
                continue
            state = {"alert_key": key, "route": route.name, "kind": signal.kind, "metric": signal.subject,
                     "grain": signal.labels.get("grain") or "", "dimension": "", "dimension_value": "",
                     "group_key": group_key(route, {**labels, "metric": signal.subject}), "status": "open",
                     "severity": signal.severity, "episode": (before["episode"] + 1) if before else 1, "sends": 0,
                     "notified": False, "opened_at": self.now, "last_sent_at": None, "resolved_at": None,
                     "since": signal.since or self.now, "bucket_start": signal.since or self.now, "value": None,
                     "expected": None, "lower": None, "upper": None, "score": None, "direction": None,
                     "reason": signal.reason, "chart": None, "silence": None, "detail": detail, "resolution": None,
                     "updated_at": self.now}
            self.out.counts["opened"] += 1
            self.out.lines.append(f"opened {key} -> {route.name}: {signal.reason or ''}")
            changes.append((k, before, self._silence_labels(state, labels)))
        return changes

    def _detection(self, state: dict, r: Scored, metric: MetricInfo, route: Route) -> None:
        severity = "critical" if abs(r.score or 0) >= metric.strong_score(r.grain) else "warning"
        if state.get("severity") == "critical":
            severity = "critical"  # an episode's severity only rises (evaluate)
        elif severity == "critical" and state.get("notified"):
            self.escalated.add((state["alert_key"], route.name))  # heard of again now, not at the next repeat
        labels = labels_of(metric, r.grain, r.dimension, r.dimension_value, severity)
        state.update(bucket_start=r.bucket_start, value=r.value, expected=r.expected, lower=r.lower, upper=r.upper,
                     score=r.score, direction=r.direction, reason=r.reason, chart=r.chart_path, severity=severity,
                     group_key=group_key(route, labels), updated_at=self.now)

    def _silence(self, state: dict, metric: MetricInfo) -> dict:
        return self._silence_labels(state, labels_of(metric, state["grain"], state["dimension"],
                                                     state["dimension_value"], state["severity"]))

    def _silence_labels(self, state: dict, labels: dict) -> dict:
        """Hold an open alert a silence matches; release a silenced one whose silence ended."""
        silence = self.config.silenced_by(labels, self.now)
        if silence is not None and state["status"] == "open":
            state.update(status="silenced", silence=silence.comment or "silenced", updated_at=self.now)
            self.out.counts["silenced"] += 1
            self.out.lines.append(f"silenced {state['alert_key']} ({state['silence']})")
        elif silence is None and state["status"] == "silenced":
            state.update(status="open", silence=None, updated_at=self.now)
            self.out.counts["unsilenced"] += 1
        return state

    def _resolve(self, s: dict, why: str) -> dict:
        state = dict(s)
        state.update(status="resolved", resolved_at=self.now, resolution=why, updated_at=self.now,
                     silence=s["silence"] if s["status"] == "silenced" else None)
        self.out.counts["resolved"] += 1
        self.out.lines.append(f"resolved {s['alert_key']} -> {s['route']}: {why}")
        return state

    # --- messages -----------------------------------------------------------------------
    def _messages(self, current: dict, resolved_now: list[dict]) -> None:
        # a group's message speaks of one kind (a metric's band, a broken pipeline): kinds apart
        groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for s in current.values():
            if s["status"] == "open":
                groups[(s["route"], s["group_key"], s["kind"])].append(s)
        for (route_name, group, _), alerts in sorted(groups.items()):
            route = self.config.route(route_name)
            if route is None:
                continue
            due = any((not a["notified"] and a["opened_at"] + route.group_wait <= self.now)
                      or (a["notified"] and a["last_sent_at"] is not None
                          and a["last_sent_at"] + route.repeat_interval <= self.now)
                      or (a["alert_key"], route_name) in self.escalated for a in alerts)
            if not due:
                continue
            repeat = all(a["notified"] for a in alerts)
            alerts.sort(key=lambda a: a["alert_key"])
            self._emit(route, group, "firing", alerts, [(a["alert_key"], a["episode"], a["sends"]) for a in alerts])
            for a in alerts:
                sent = dict(a, notified=True, last_sent_at=self.now, sends=a["sends"] + 1, updated_at=self.now)
                current[(a["alert_key"], route_name)] = self.out.states[(a["alert_key"], route_name)] = sent
            self.out.counts["repeated" if repeat else "notified"] += 1
        done: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for s in resolved_now:
            if s["notified"]:  # whoever saw it firing hears that it resolved, silence or not
                done[(s["route"], s["group_key"], s["kind"])].append(s)
        for (route_name, group, _), alerts in sorted(done.items()):
            route = self.config.route(route_name)
            if route is not None:
                alerts.sort(key=lambda a: a["alert_key"])
                self._emit(route, group, "resolved", alerts, [(a["alert_key"], a["episode"], "resolved") for a in alerts])

    def _emit(self, route: Route, group: str, status: str, alerts: list[dict], identity: list) -> None:
        raw = json.dumps([route.name, group, status, identity], default=str, sort_keys=True)
        key = hashlib.sha256(raw.encode()).hexdigest()[:32]
        kind = alerts[0]["kind"]
        payload = {"idempotency_key": key, "status": status, "route": route.name, "group": group, "kind": kind,
                   "alerts": [self._item(a) for a in alerts]}
        text = json.dumps(payload, sort_keys=True, default=str)
        for channel in route.channels:
            self.out.messages.append({
                "idempotency_key": key, "channel": channel, "route": route.name, "group_key": group, "status": status,
                "kind": kind, "payload": text, "created_at": self.now, "seq": len(self.out.messages),
                "attempts": 0, "last_error": None, "next_attempt_at": self.now, "delivered_at": None})
        self.out.counts["messages"] += len(route.channels)
        self.out.lines.append(f"{status} message {key[:12]} to {', '.join(route.channels)}: {route.name}/{group}, "
                              f"{len(alerts)} alert(s)")

    def _item(self, a: dict) -> dict:
        metric = self.metrics.get(a["metric"])
        item = {"metric": a["metric"], "grain": a["grain"], "slice": slice_text(a["dimension"], a["dimension_value"]),
                "bucket_start": _iso(a["bucket_start"]), "value": a["value"], "expected": a["expected"],
                "lower": a["lower"], "upper": a["upper"], "score": a["score"], "direction": a["direction"],
                "reason": a["reason"], "owner": metric.owner if metric else None,
                "link": f"{self.base}/assets/anomalies_{a['grain']}", "chart": a["chart"], "since": _iso(a["since"]),
                "severity": a["severity"], "kind": a["kind"],
                # the score's flag threshold: |score| beyond it is outside the band
                "band_edge": metric.strong_score(a["grain"]) / 2 if metric and a["kind"] == "anomaly" else None}
        if a["status"] == "resolved":
            item["resolved_because"] = a.get("resolution")
        if a["kind"] != "anomaly":
            item.update(metric=None, grain=a["grain"] or None, slice=None, bucket_start=None,
                        link=f"{self.base}/runs" if a["kind"] == "run_failure" else f"{self.base}/assets/staging")
            item.update(json.loads(a["detail"] or "{}"))
        return item
