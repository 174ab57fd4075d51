"""The reads behind the API endpoints. Identifiers (relations, metric names, dimensions)
come from the loaded metric definitions only; request values are bound as parameters."""
from __future__ import annotations

import datetime as dt

from ..cli.format import series_rows
from ..compiler.plan import rollup_name
from ..grains import GRAINS, add_grain, floor_to_grain
from ..warehouse.connection import Warehouse, WarehouseError
from ..warehouse.read import NotBuiltError, _num, series_records

ADDITIVE = ("count", "sum")  # trailing totals are sums of day values: only these add up
WINDOW_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
WINDOWS = ("day", "week", "month", "year", "all")


class BadRequest(ValueError):
    """A parameter the API refuses (4xx with this message)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def iso(b) -> str | None:
    return None if b is None else b.strftime("%Y-%m-%dT%H:%M:%SZ")


def rollup_tables(wh: Warehouse, project, grain: str) -> list[str]:
    """The existing rollup tables of the built metrics at a grain (drafts included)."""
    names = sorted({rollup_name(m.measure.source, m.measure.timestamp, grain, "draft" if m.status == "draft" else "active")
                    for m in project.metrics.values() if m.measure is not None and m.is_built and grain in m.grains})
    return [n for n in names if wh.relation_exists(n)]


def materialization_marker(wh: Warehouse, project) -> dict:
    """Newest computed_at per grain (over the rollup tables: every rollup row records it),
    plus the newest anomaly scoring and alert state change: what any response depends on."""
    out: dict[str, str | None] = {}
    for grain in GRAINS:
        tables = rollup_tables(wh, project, grain)
        if not tables:
            out[grain] = None
            continue
        sql = " union all ".join(f"select max(computed_at) as t from {wh.relation(t)}" for t in tables)
        _, rows = wh.rows(f"select max(t) from ({sql}) as m")
        out[grain] = iso(rows[0][0])
    for key, table, column in (("anomalies", "metric_anomalies", "computed_at"), ("alerts", "alert_state", "updated_at")):
        out[key] = iso(wh.rows(f"select max({column}) from {wh.relation(table)}")[1][0][0]) \
            if wh.relation_exists(table) else None
    return out


def series(wh: Warehouse, project, metric, grain: str, start, end, slice_: dict, now) -> list[dict]:
    return series_rows(series_records(wh, metric, grain, start, end, slice_, project, now))


def _complete(records: list[dict]) -> list[dict]:
    return [r for r in records if r["complete"]]


def catalog_entry(wh: Warehouse, project, metric, now: dt.datetime) -> dict:
    """A metric's catalog row: definition, latest complete value, week-over-week change,
    the last 30 daily values (as `metrics docs` computes them)."""
    entry = {"name": metric.name, "description": metric.description, "owner": metric.owner, "kind": metric.kind,
             "status": metric.status, "grains": list(metric.grains), "dimensions": list(metric.dimensions),
             "latest": None, "wow_change_pct": None, "sparkline": [], "error": None}
    since = (now - dt.timedelta(days=30)).date()
    try:
        days = series_records(wh, metric, "day", since, None, {}, project, now) if "day" in metric.grains else []
        done = _complete(days)
        entry["sparkline"] = [{"bucket_start": iso(r["bucket_start"]), "value": r["value"]} for r in days[-30:]]
        if done:
            entry["latest"] = {"grain": "day", "bucket_start": iso(done[-1]["bucket_start"]), "value": done[-1]["value"]}
        if "week" in metric.grains:
            weeks = _complete(series_records(wh, metric, "week", since - dt.timedelta(days=21), None, {}, project, now))
            if weeks:
                entry["wow_change_pct"] = weeks[-1]["change_pct"]
        elif len(done) >= 8 and done[-8]["value"]:
            a, b = done[-1]["value"], done[-8]["value"]
            entry["wow_change_pct"] = None if a is None else (a - b) / abs(b) * 100
    except NotBuiltError:
        entry["error"] = "not built yet"
    except (ValueError, WarehouseError) as err:
        entry["error"] = str(err).splitlines()[0]
    return entry


def summary(wh: Warehouse, project, metric, now: dt.datetime) -> dict:
    grains = {}
    for grain in metric.grains:
        start = add_grain(floor_to_grain(now, grain), grain, -3).date()
        try:
            done = _complete(series_records(wh, metric, grain, start, None, {}, project, now))
        except NotBuiltError:
            grains[grain] = {"error": "not built yet"}
            continue
        last = done[-1] if done else None
        grains[grain] = {"latest": None if last is None else {"bucket_start": iso(last["bucket_start"]), "value": last["value"]},
                         "previous": None if last is None else last["previous_value"],
                         "change_pct": None if last is None else last["change_pct"]}
    out = {"metric": metric.name, "grains": grains, "totals": None, "totals_note": None}
    if _additive(metric) and "day" in metric.grains:
        try:
            rows = totals(wh, metric, "", [""], list(WINDOWS), now)
        except NotBuiltError:
            out["totals_note"] = "not built yet"
        else:
            out["totals"] = rows[0]["totals"] if rows else None
            out["totals_window_end"] = iso(window_end(now))
    else:
        out["totals_note"] = "trailing totals are sums of daily values: only count and sum metrics with a day grain have them"
    return out


def _additive(metric) -> bool:
    return metric.kind == "simple" and metric.measure is not None and metric.measure.aggregation in ADDITIVE


def window_end(now: dt.datetime) -> dt.datetime:
    """Trailing windows end at the start of today (UTC): whole days only."""
    return floor_to_grain(now, "day")


def _day_table(wh: Warehouse, metric) -> str:
    if not _additive(metric):
        raise BadRequest(f"`{metric.name}` is not a count or sum metric: its daily values do not add up to totals")
    if "day" not in metric.grains:
        raise BadRequest(f"`{metric.name}` has no day grain")
    if metric.status == "archived":
        raise BadRequest(f"`{metric.name}` is archived")
    table = rollup_name(metric.measure.source, metric.measure.timestamp, "day",
                        "draft" if metric.status == "draft" else "active")
    if not wh.relation_exists(table):
        raise NotBuiltError(f"{wh.target}: `{metric.name}` has not been built at the day grain", ["run"])
    # the source's table exists for its other metrics: this one's totals are no zeros before it is built
    _, rows = wh.rows(f"select 1 from {wh.relation(table)} where metric = ? and dimension = '' limit 1", [metric.name])
    if not rows:
        raise NotBuiltError(f"{wh.target}: `{metric.name}` has not been built at the day grain "
                            f"({table} holds none of its rows)", ["run", "--metric", metric.name])
    return table


def _totals_sql(wh: Warehouse, metric, table: str, windows: list[str], end: dt.datetime,
                values: int | None) -> tuple[str, list, list]:
    """Per dimension value, the sum of day values since each window's first day, over
    [the earliest of them, end): the SQL (with `values` placeholders for the dimension
    values asked, None for all) and the parameters before and after those values."""
    first = floor_to_grain(dt.datetime.combine(metric.start, dt.time()), "day")
    lows = {w: first if w == "all" else max(first, end - dt.timedelta(days=WINDOW_DAYS[w])) for w in windows}
    cols = ", ".join(f"sum(case when bucket_start >= ? then value else 0 end) as w_{w}" for w in windows)
    among = "" if values is None else f"dimension_value in ({', '.join('?' for _ in range(values))}) and "
    sql = (f"select dimension_value, {cols} from {wh.relation(table)} where metric = ? and dimension = ? "
           f"and {among}bucket_start >= ? and bucket_start < ? group by dimension_value")
    return sql, [lows[w] for w in windows] + [metric.name], [min(lows.values()), end]


def totals(wh: Warehouse, metric, dimension: str, values: list[str], windows: list[str], now: dt.datetime) -> list[dict]:
    """Trailing totals per value of `dimension` ('' and [''] for the total) over whole UTC
    days ending at the start of today: one query on the day rollup, values bound."""
    table = _day_table(wh, metric)
    sql, head, tail = _totals_sql(wh, metric, table, windows, window_end(now), len(values))
    _, rows = wh.rows(sql, [*head, dimension, *values, *tail])
    found = {str(r[0]): r[1:] for r in rows if r[0] is not None}
    return totals_rows(values, windows, found.get)


def totals_rows(values: list[str], windows: list[str], lookup) -> list[dict]:
    """The answer rows: per value its totals in `windows` order from `lookup(value)` (None
    for a value without rows: 0 in every window)."""
    out = []
    for v in values:
        got = lookup(v)
        out.append({"value": v, "totals": {w: (float(got[i]) if got is not None and got[i] is not None else 0.0)
                                           for i, w in enumerate(windows)}})
    return out


def all_totals(wh: Warehouse, metric, dimension: str, end: dt.datetime, limit: int) -> list[tuple]:
    """`totals` of every value of `dimension` for every window (WINDOWS order), at most
    `limit` rows: what api/totals_index.py keeps."""
    table = _day_table(wh, metric)
    sql, head, tail = _totals_sql(wh, metric, table, list(WINDOWS), end, None)
    _, rows = wh.rows(f"{sql} limit {int(limit)}", [*head, dimension, *tail])
    return rows


def anomalies(wh: Warehouse, metric: str | None, since: dt.datetime | None, limit: int = 1000) -> list[dict]:
    from ..warehouse.anomaly_store import read_anomalies
    cols, rows = read_anomalies(wh, metric=metric, since=since, flagged_only=True, limit=limit)
    keep = ("metric", "grain", "bucket_start", "dimension", "dimension_value", "value", "expected", "lower",
            "upper", "score", "direction", "provisional", "model", "reason", "computed_at")
    out = []
    for row in rows[:limit]:
        r = dict(zip(cols, row))
        out.append({k: (iso(r[k]) if isinstance(r[k], dt.datetime) else _num(r[k]) if isinstance(r[k], float)
                        else r[k]) for k in keep})
    return out


def alerts(wh: Warehouse, status: str | None) -> list[dict]:
    from ..warehouse.alert_store import STATE, read_table
    where, params = ("status = ?", [status]) if status else ("", [])
    rows = read_table(wh, STATE, where, params, order="updated_at desc")
    return [{k: (iso(v) if isinstance(v, dt.datetime) else v) for k, v in r.items()} for r in rows]


def history(limit: int = 50) -> dict:
    """Recent Dagster runs from the instance DAGSTER_HOME points at (dagster imported here only)."""
    import os
    if not os.environ.get("DAGSTER_HOME"):
        return {"runs": [], "note": "DAGSTER_HOME is not set: no Dagster instance to read runs from"}
    from dagster import DagsterInstance
    runs = []
    with DagsterInstance.get() as instance:  # disposed: its storage may keep connections open
        for rec in instance.get_run_records(limit=limit):
            runs.append(_run_row(instance, rec))
    return {"runs": runs, "note": None}


def _run_row(instance, rec) -> dict:
    from dagster import DagsterEventType
    run = rec.dagster_run
    error = None
    if run.status.value == "FAILURE":
        for ev in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)[:1]:
            data = ev.dagster_event.event_specific_data if ev.dagster_event else None
            error = getattr(getattr(data, "error", None), "message", None)
    return {"run_id": run.run_id, "job": run.job_name, "status": run.status.value,
            "partition": run.tags.get("dagster/partition"),
            "start": rec.start_time and dt.datetime.fromtimestamp(rec.start_time, dt.timezone.utc).isoformat(),
            "end": rec.end_time and dt.datetime.fromtimestamp(rec.end_time, dt.timezone.utc).isoformat(),
            "error": error}
