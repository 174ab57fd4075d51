"""One alert evaluation against the warehouse, the work of a `metric_alerts_sensor` tick
and of `metrics alerts evaluate`: read the alert state and the scored buckets that can
still open or resolve an alert, run the engine, write state and outbox together, then
deliver what is due. Reading and writing hold the warehouse's writer lock, so two
evaluations (a sensor tick and a CLI call) never interleave; delivery happens after it
is released."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..paths import ProjectPaths
from ..spec.resolved import MetricsProject
from ..warehouse.alert_store import STATE, commit, read_cursor, read_table
from ..warehouse.anomaly_store import TABLE as ANOMALIES
from ..warehouse.connection import Warehouse
from .config import BUCKET
from .delivery import DeliveryReport, deliver, pending
from .engine import Evaluator, MetricInfo, Scored, Signal
from .pipeline import dequeue, freshness_signals, queued

SCORED_COLUMNS = ("metric", "grain", "dimension", "dimension_value", "bucket_start", "value", "expected", "lower",
                  "upper", "score", "is_anomaly", "direction", "provisional", "reason", "chart_path")


# what an evaluation counts (engine.Outcome.counts)
COUNTS = ("opened", "notified", "repeated", "resolved", "silenced", "unsilenced", "messages")


@dataclass
class EvaluationReport:
    counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    new_scoring: bool = False
    cursor: dt.datetime | None = None
    open_alerts: int = 0
    notes: list[str] = field(default_factory=list)  # freshness declarations that could not be checked

    def all_counts(self) -> dict[str, int]:
        """Every count, 0 for what did not happen (JSON readers need not guess the keys)."""
        return {k: self.counts.get(k, 0) for k in COUNTS} | {k: v for k, v in self.counts.items() if k not in COUNTS}

    def summary(self) -> str:
        c = self.counts
        return (f"{c.get('opened', 0)} opened, {c.get('repeated', 0)} repeated, {c.get('resolved', 0)} resolved, "
                f"{c.get('silenced', 0)} silenced, {len(self.delivery.delivered)} delivered, "
                f"{len(self.delivery.failed)} failed, {self.delivery.waiting} waiting; {self.open_alerts} open"
                + ("" if self.new_scoring else " (no new scoring)"))


def metric_infos(project: MetricsProject) -> dict[str, MetricInfo]:
    return {m.name: MetricInfo(name=m.name, domain=m.domain, owner=m.owner, tags=tuple(getattr(m, "tags", ()) or ()),
                               routes=tuple(m.alerts), sensitivity=m.anomaly.sensitivity,
                               enabled=m.anomaly.enabled and m.status == "active" and m.public,
                               dimensions=tuple(m.dimensions))
            for m in project.metrics.values()}


def _settle(project: MetricsProject) -> dict[str, int]:
    lookback = project.config.settle_lookback
    return {g: getattr(lookback, g) for g in ("hour", "day", "week", "month")}


def newest_scoring(wh: Warehouse) -> dt.datetime | None:
    if not wh.relation_exists(ANOMALIES):
        return None
    return wh.rows(f"select max(computed_at) from {wh.relation(ANOMALIES)}")[1][0][0]


def read_scored(wh: Warehouse, since: dict[str, dt.datetime]) -> dict[tuple, list[Scored]]:
    """Scored buckets per series, oldest first, from `since[grain]` on."""
    if not since or not wh.relation_exists(ANOMALIES):
        return {}
    where = " or ".join("(grain = ? and bucket_start >= ?)" for _ in since)
    params = [v for g, t in sorted(since.items()) for v in (g, t)]
    return _scored_rows(wh, where, params)


def _scored_rows(wh: Warehouse, where: str, params: list) -> dict[tuple, list[Scored]]:
    cols = ", ".join(f'"{c}"' for c in SCORED_COLUMNS)
    _, rows = wh.rows(f"select {cols} from {wh.relation(ANOMALIES)} where {where} "
                      f"order by metric, grain, dimension, dimension_value, bucket_start", params)
    out: dict[tuple, list[Scored]] = {}
    for r in rows:
        out.setdefault((r[0], r[1], r[2] or "", r[3] or ""), []).append(
            Scored(r[0], r[1], r[2] or "", r[3] or "", r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]), r[11],
                   bool(r[12]), r[13], r[14]))
    return out


def _notified_series(states: dict) -> dict[tuple, dt.datetime]:
    """Without new scoring, the series whose open alert was notified, each from its
    detection on: one opened on a detection whose later buckets were already in band
    resolves at the next evaluation (it repeated until the next scoring); an alert not
    notified yet keeps its first message (group_wait), then resolves the same way."""
    open_: dict[tuple, dt.datetime] = {}
    for s in states.values():
        if s["kind"] == "anomaly" and s["status"] == "open" and s["notified"]:
            key = (s["metric"], s["grain"], s["dimension"] or "", s["dimension_value"] or "")
            open_[key] = min(open_.get(key, s["bucket_start"]), s["bucket_start"])
    return open_


def _settled_series(wh: Warehouse, engine: Evaluator, cursor: dt.datetime | None,
                    now: dt.datetime) -> dict[tuple, dt.datetime]:
    """Without new scoring, the series with a detection scored provisional whose bucket
    has left the settle lookback since the last scoring (the schedules rewrite a bucket
    last while it is still inside it), each from the engine's lookback on, as a new
    scoring reads it: it opens now, not at the next scoring (a day later for a project
    that runs daily)."""
    where, params, since = [], [], {}
    for grain, settle in engine.settle.items():
        since[grain] = now - engine.lookback(grain)
        # bounds a little wide (a month is 28 to 31 days; the engine decides per row):
        # buckets settled by now that had not settled when the last scoring was written,
        # so a tick reads a few series, and none once the next scoring has run
        settled_by = now - settle * (dt.timedelta(days=28) if grain == "month" else BUCKET[grain])
        lo = since[grain] if cursor is None else max(since[grain], cursor - (2 + settle) * BUCKET[grain])
        where.append("(grain = ? and bucket_start >= ? and bucket_start < ?)")
        params += [grain, lo, settled_by]
    _, keys = wh.rows(f"select distinct metric, grain, dimension, dimension_value from {wh.relation(ANOMALIES)} "
                      f"where is_anomaly and provisional and ({' or '.join(where)})", params)
    return {tuple(k): since[k[1]] for k in keys}


def _series_rows(wh: Warehouse, since: dict[tuple, dt.datetime]) -> dict[tuple, list[Scored]] | None:
    """The scored rows of those series only, each from its own bucket on: a tick without
    new scoring stays a small read."""
    if not since:
        return None
    where = " or ".join("(metric = ? and grain = ? and dimension = ? and dimension_value = ? and bucket_start >= ?)"
                        for _ in since)
    params = [v for k, bucket in sorted(since.items()) for v in (*k, bucket)]
    return _scored_rows(wh, where, params) or None


def evaluate_once(paths: ProjectPaths, target: str, project: MetricsProject, now: dt.datetime,
                  lock_timeout: float | None = None, send: bool = True,
                  signals: list[Signal] = (), deliver_budget: float | None = None) -> EvaluationReport:
    """`signals`: pipeline alerts from the run sensors; source freshness is checked here."""
    from ..warehouse.lock import warehouse_lock
    wh = Warehouse(target, paths)
    config = project.alerts
    report = EvaluationReport()
    with warehouse_lock(target, paths, timeout=lock_timeout):
        with wh.reading():  # one connection for every read (each open costs a file open)
            states = {(s["alert_key"], s["route"]): s for s in read_table(wh, STATE)}
            cursor = read_cursor(wh)
            newest = newest_scoring(wh)
            report.new_scoring = newest is not None and (cursor is None or newest > cursor)
            engine = Evaluator(config, metric_infos(project), _settle(project), now)
            scored = None
            if report.new_scoring:
                since = {g: now - engine.lookback(g) for g in ("hour", "day", "week", "month")}
                for s in states.values():  # an open alert's later buckets decide whether it resolves
                    if s["kind"] == "anomaly" and s["status"] != "resolved" and s["grain"] in since:
                        since[s["grain"]] = min(since[s["grain"]], s["bucket_start"])
                scored = read_scored(wh, since)
            elif wh.relation_exists(ANOMALIES):  # a notified alert's series wins its start
                scored = _series_rows(wh, {**_settled_series(wh, engine, cursor, now), **_notified_series(states)})
            fresh, notes = freshness_signals(wh, paths, now)
        waiting = queued(paths)  # run signals an earlier evaluation could not take
        outcome = engine.evaluate(scored, states, [*fresh, *waiting, *signals])
        outcome.lines.extend(notes)
        if outcome.states or outcome.messages or report.new_scoring:
            commit(wh, list(outcome.states.values()), outcome.messages, newest if report.new_scoring else None,
                   lock_timeout=lock_timeout)
        dequeue(paths, len(waiting))
        states.update(outcome.states)
        report.counts, report.lines = dict(outcome.counts), outcome.lines
        report.cursor = newest if report.new_scoring else cursor
        report.open_alerts = sum(1 for s in states.values() if s["status"] == "open")
        report.notes = notes
    if send:  # outside the lock: a slow channel must not hold up a run; each record takes it briefly
        from ..warehouse.connection import WarehouseError
        from ..warehouse.lock import WarehouseLockTimeout
        delivering = False
        try:
            # one deliverer at a time: two evaluations would both send what is pending
            with warehouse_lock(target, paths, on_wait=lambda _m: None, timeout=0, role="delivery"):
                delivering = True
                report.delivery = deliver(wh, config, paths.root, lambda: now, lock_timeout=lock_timeout,
                                          budget_seconds=deliver_budget)
        except WarehouseError as err:  # the evaluation is committed: its messages wait in the outbox
            if isinstance(err, WarehouseLockTimeout) and not delivering:  # (not a record's writer lock)
                try:
                    report.delivery.waiting = len(pending(wh))
                except WarehouseError:
                    pass
                report.lines.append("another evaluation is delivering the outbox: what is due is sent by it "
                                    "or by the next evaluation")
            else:
                report.lines.append(f"delivery waits for the next evaluation: {err}")
    return report
