"""`metrics serve`: a read-only HTTP API over the rollups (FastAPI; OpenAPI at /openapi.json).

Every GET answers with an ETag tied to the newest materialization (and the request), a
matching If-None-Match gets 304, and bodies are cached in process under that ETag, so a
new materialization invalidates them. Bad parameters get a 4xx with a message."""
from __future__ import annotations

import datetime as dt
import hmac
import json
import os
from collections.abc import Callable
from contextlib import asynccontextmanager

import re

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..paths import ProjectPaths
from ..spec.raw import EARLIEST_DAY, LATEST_DAY
from ..warehouse.connection import WarehouseError
from ..warehouse.read import NotBuiltError, now_utc
from . import dashboard as dashboard_pages
from . import queries
from .queries import BadRequest
from .state import ServeState, etag_for

MAX_VALUES = 1000
MAX_DAYS = 730
MAX_SPAN = {"hour": 93, "day": 3660, "week": 3660, "month": 36600}  # days one series answer may cover
ALERT_STATUSES = ("open", "resolved", "silenced")
DATE_RANGE = (EARLIEST_DAY, LATEST_DAY)  # as `metrics series` and the metric files take them


def _query_names(app: FastAPI, scope) -> set[str] | None:
    """The query parameters of the route a request goes to (None: no route, a 404 or 405)."""
    from starlette.routing import Match
    for route in app.router.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is not None and route.matches(scope)[0] == Match.FULL:
            return {p.alias for p in dependant.query_params}
    return None


def create_app(paths: ProjectPaths, target: str, refresh_seconds: float = 1.0) -> FastAPI:
    state = ServeState(paths, target, refresh_seconds)
    token = os.environ.get("METRICS_API_TOKEN") or None

    @asynccontextmanager
    async def lifespan(_app):
        state.start()
        yield
        state.stop()

    app = FastAPI(title="metrics-as-code read API", version="1", lifespan=lifespan,
                  description="Series, summaries and per-entity totals from the metric rollups (read-only).")
    app.state.serve = state

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_request: Request, err: RequestValidationError):
        # one error shape for every refusal: {"detail": "<one line>"}
        first = err.errors()[0] if err.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("query", "path")]
        given = first.get("input")
        shown = f" (got {given!r})" if isinstance(given, (str, int, float)) else ""
        return _error(400, f"{'.'.join(where) or 'request'}: {first.get('msg', 'invalid')}{shown}")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
            # the scheme's case does not matter (RFC 9110); the token is compared in constant time
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong bearer token (METRICS_API_TOKEN)"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        seen: set[str] = set()
        known = _query_names(app, request.scope)
        for key, value in request.query_params.multi_items():
            # a typo (`grian=hour`) silently meant the default; `_` is a client's cache buster (jQuery's)
            if known is not None and key not in known and key != "_":
                from ..validation.issues import closest
                takes = f"; this path takes {', '.join(f'`{k}`' for k in sorted(known))}" if known else \
                    "; this path takes none"
                return _error(400, f"unknown parameter `{key}`{closest(key, sorted(known))}{takes}")
            if key in seen:  # the last one silently won
                return _error(400, f"parameter `{key}` is given more than once")
            if value == "":  # `grain=` silently meant the default
                return _error(400, f"parameter `{key}` is empty")
            if any(ord(c) < 32 or ord(c) == 127 for c in value):  # a NUL was a 503 from Postgres
                return _error(400, f"parameter `{key}` holds a control character")
            seen.add(key)
        return await call_next(request)

    def get(path: str, **kwargs):
        """A GET route that answers HEAD too (a health checker's; the server sends no body).
        HEAD stays out of the OpenAPI schema: one operation (and operationId) per route."""
        def register(endpoint):
            app.add_api_route(path, endpoint, methods=["HEAD"], **{**kwargs, "include_in_schema": False})
            return app.get(path, **kwargs)(endpoint)
        return register

    def answer(request: Request, compute: Callable, cache: bool = True, media_type: str = "application/json") -> Response:
        """Run `compute(wh)` on a reader; the ETag/304/cache protocol; errors as 4xx/503."""
        key = (request.url.path, request.url.query)
        try:
            with state.reader() as (wh, marker):
                etag = etag_for(marker, *key)
                if cache and _matches(request.headers.get("if-none-match"), etag):
                    return Response(status_code=304, headers={"ETag": etag})
                body = state.cached(key, etag) if cache else None
                if body is None:
                    result = compute(wh)
                    body = (json.dumps(result) if media_type == "application/json" else result).encode()
                    if cache:
                        state.remember(key, etag, body)
                    else:  # uncached (history): the ETag is the body's
                        etag = etag_for(body.decode(), *key)
                        if _matches(request.headers.get("if-none-match"), etag):
                            return Response(status_code=304, headers={"ETag": etag})
                if _star(request.headers.get("if-none-match")):  # `*`: once the resource exists
                    return Response(status_code=304, headers={"ETag": etag})
        except BadRequest as err:
            return _error(err.status, str(err))
        except NotBuiltError as err:
            return _error(404, err.with_command("metrics"))
        except WarehouseError as err:
            return _error(503, str(err))
        except (ValueError, OverflowError) as err:  # series_records' refusals: unknown slice value, grain, ...
            return _error(400, str(err))
        return Response(body, media_type=media_type, headers={"ETag": etag, "Cache-Control": "no-cache"})

    def metric_named(name: str):
        project = state.project()
        metric = project.metrics.get(name)
        if metric is None or not metric.public:
            from ..validation.issues import closest
            raise BadRequest(f"unknown metric `{name}`{closest(name, [m.name for m in project.public()])}", 404)
        return metric

    @get("/health")
    def health(request: Request):
        def compute(wh):
            return {"ok": True, "target": target, "newest_materialization": state.marker(wh),
                    "snapshot": _snapshot_info(state)}
        return answer(request, compute, cache=False)

    @get("/metrics")
    def catalog(request: Request):
        def compute(wh):
            project, now = state.project(), now_utc()
            return [queries.catalog_entry(wh, project, m, now) for m in project.public()]
        return answer(request, compute)

    @get("/metrics/{name}/series")
    def series(request: Request, name: str, grain: str | None = None,
               start: str | None = Query(None, description="first day, YYYY-MM-DD (UTC)"),
               end: str | None = Query(None, description="end day, YYYY-MM-DD (UTC, exclusive)"),
               slice_: str | None = Query(None, alias="slice"),
               days: int | None = Query(None, description=f"window length when start is not given (default 180, 93 for hours; at most {MAX_DAYS})")):
        def compute(wh):
            metric = metric_named(name)
            g = grain or ("day" if "day" in metric.grains else metric.grains[0])
            if g not in metric.grains:
                raise BadRequest(f"`{name}` has no `{g}` grain (its grains: {', '.join(metric.grains)})")
            if days is not None and start is not None:  # (days was ignored beside start)
                raise BadRequest("days is the window's length when start is not given: give start (and end), or days")
            if days is not None and not 1 <= days <= MAX_DAYS:
                raise BadRequest(f"days must be between 1 and {MAX_DAYS}, got {days}")
            lo, hi = _day("start", start), _day("end", end)
            if lo is None:  # the default window fits the grain's limit (93 days of hours)
                lo = (hi or now_utc().date() + dt.timedelta(days=1)) - dt.timedelta(days=days or min(180, MAX_SPAN[g]))
            if hi is not None and lo >= hi:
                raise BadRequest(f"start ({lo}) must be before end ({hi})")
            span = ((hi or now_utc().date() + dt.timedelta(days=1)) - lo).days
            if span > MAX_SPAN[g]:  # one answer stays a bounded amount of work and memory
                raise BadRequest(f"at most {MAX_SPAN[g]} days per {g} series request, got {span}: narrow start/end")
            return queries.series(wh, state.project(), metric, g, lo, hi, _slice(metric, slice_), now_utc())
        return answer(request, compute)

    @get("/metrics/{name}/summary")
    def summary(request: Request, name: str):
        return answer(request, lambda wh: queries.summary(wh, state.project(), metric_named(name), now_utc()))

    @get("/metrics/{name}/totals")
    def totals(request: Request, name: str, dimension: str, values: str,
               windows: str = ",".join(queries.WINDOWS)):
        def compute(wh):
            metric = metric_named(name)
            if dimension not in metric.dimensions:
                raise BadRequest(f"`{name}` has no dimension `{dimension}` "
                                 f"(its dimensions: {', '.join(metric.dimensions) or 'none'})")
            items = values.split(",")
            if len(items) > MAX_VALUES:
                raise BadRequest(f"at most {MAX_VALUES} values per call, got {len(items)}")
            if any(not v for v in items):
                raise BadRequest("values is a comma-separated list of non-empty values")
            wins = windows.split(",")
            unknown = [w for w in wins if w not in queries.WINDOWS]
            if unknown or len(set(wins)) != len(wins):
                raise BadRequest(f"windows: choose distinct ones of {', '.join(queries.WINDOWS)}, got `{windows}`")
            now = now_utc()
            return {"metric": name, "dimension": dimension, "window_end": queries.iso(queries.window_end(now)),
                    "rows": state.totals.totals(wh, state.data_key(wh), metric, dimension,
                                                list(dict.fromkeys(items)), wins, now)}
        return answer(request, compute)

    @get("/anomalies")
    def anomalies(request: Request, since: str | None = Query(None, description="first day, YYYY-MM-DD (UTC)"),
                  metric: str | None = None,
                  limit: int = Query(1000, ge=1, le=10_000, description="at most this many, newest first")):
        def compute(wh):
            if metric is not None:
                metric_named(metric)
            day = _day("since", since)
            lo = dt.datetime.combine(day, dt.time()) if day else None
            return queries.anomalies(wh, metric, lo, limit)
        return answer(request, compute)

    @get("/alerts")
    def alerts(request: Request, status: str | None = None):
        def compute(wh):
            if status is not None and status not in ALERT_STATUSES:
                raise BadRequest(f"status: one of {', '.join(ALERT_STATUSES)}, got `{status}`")
            return queries.alerts(wh, status)
        return answer(request, compute)

    @get("/", response_class=HTMLResponse, include_in_schema=False)
    @get("/index.html", response_class=HTMLResponse, include_in_schema=False)  # the pages' "back" link
    def dashboard(request: Request):
        return answer(request, lambda wh: dashboard_pages.index_page(wh, state.project(), target),
                      media_type="text/html")

    @get("/metric/{name}.html", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_metric(request: Request, name: str):
        from ..compiler.writer import render_files
        try:
            metric = metric_named(name)
        except BadRequest as err:
            return _error(err.status, str(err))
        project = state.project()
        from ..alerting.destinations import web_url_problem
        dagster_url = os.environ.get("METRICS_DAGSTER_URL", "").strip() or project.alerts.dagster_url
        if web_url_problem(dagster_url):  # the page's links: a `javascript:` base is never used
            dagster_url = project.alerts.dagster_url
        return answer(request, lambda wh: dashboard_pages.metric_page(  # SQL rendered only on a cache miss
            wh, project, metric, paths, dagster_url, render_files(project, paths.root / "macros")), media_type="text/html")

    @get("/history")
    def history(request: Request, limit: int = Query(50, ge=1, le=500)):
        try:  # the Dagster instance, not the warehouse: no snapshot needed
            body = queries.history(limit)
        except Exception as err:  # storage unreachable, instance misconfigured
            return _error(503, f"Dagster instance: {type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}")
        return JSONResponse(body, headers={"Cache-Control": "no-cache"})

    return app


def _slice(metric, text: str | None) -> dict:
    if not text:
        return {}
    if "=" not in text:
        raise BadRequest(f"slice takes DIMENSION=VALUE, got `{text}`")
    k, v = text.split("=", 1)
    if k not in metric.dimensions:
        raise BadRequest(f"`{metric.name}` has no dimension `{k}` (its dimensions: {', '.join(metric.dimensions) or 'none'})")
    return {k: v}


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(key: str, text: str | None) -> dt.date | None:
    """A day as `metrics series` takes it: YYYY-MM-DD (UTC). A timestamp's offset or an
    epoch number would otherwise be read as some other day, silently."""
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text) if _DAY.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise BadRequest(f"{key}: a date YYYY-MM-DD (UTC), got `{text[:40]}`")
    if not DATE_RANGE[0] <= day <= DATE_RANGE[1]:
        raise BadRequest(f"{key}: a date between {DATE_RANGE[0]} and {DATE_RANGE[1]}, got {day}")
    return day


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match: a list of tags compared weakly (a proxy's `W/` prefix too). `*` is
    `_star`: it matches only a resource that exists, known once the answer is computed."""
    if not header:
        return False
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


def _star(header: str | None) -> bool:
    return bool(header) and header.strip() == "*"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _snapshot_info(state: ServeState) -> dict | None:
    snaps = state.snapshots
    if snaps is None or snaps.current is None:
        return None
    return {"path": str(snaps.current.path), "refreshes_skipped_while_a_run_wrote": snaps.skipped_busy}
