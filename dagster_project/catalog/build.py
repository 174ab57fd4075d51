"""Write the catalog: `index.html` (every public metric, a search box, a sparkline, the
latest value and the week-over-week change) and `metric/<name>.html` per metric (its
definition, YAML, generated SQL, a 90-day chart per grain with the top slices and the
anomalies marked, and links to its assets in the Dagster UI). Reads the warehouse when
it can; a metric that is not built yet (or a warehouse that is not there) still gets its
page, without numbers."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from ..compiler.plan import build_plan
from ..compiler.writer import render_files
from ..paths import ProjectPaths
from ..spec.resolved import Metric, MetricsProject
from ..warehouse.connection import Warehouse, WarehouseError
from ..warehouse.read import NotBuiltError, now_utc, series_records, series_relation
from .svg import Line, chart, number, sparkline

DAYS = 90
TOP_SLICES = 3


@dataclass
class GrainData:
    grain: str
    total: list[dict] = field(default_factory=list)  # series_records rows
    slices: list[tuple[str, list[dict]]] = field(default_factory=list)  # ("country=DE", rows)
    anomalies: dict[tuple[str, str], list[tuple[dt.datetime, float | None, str]]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class MetricPage:
    metric: Metric
    grains: list[GrainData]
    latest: tuple[dt.datetime, float | None, str] | None = None  # bucket, value, grain
    wow: float | None = None  # percent
    wow_label: str = ""


@dataclass
class CatalogResult:
    out: Path
    pages: list[Path]
    built: int  # metrics with numbers
    warnings: list[str]


def _slice_values(wh: Warehouse, metric: Metric, grain: str, lo: dt.datetime) -> list[tuple[str, str]]:
    """The slices with the most volume in the window (by absolute value), top few."""
    if not metric.dimensions or metric.status == "archived":
        return []
    rel = wh.relation(series_relation(metric, grain))
    _, rows = wh.rows(f"select dimension, dimension_value, sum(abs(value)) as v from {rel} where metric = ? "
                      f"and dimension <> '' and bucket_start >= ? and value is not null "
                      f"group by dimension, dimension_value order by v desc, dimension, dimension_value limit {TOP_SLICES}",
                      [metric.name, lo])
    return [(str(d), str(v)) for d, v, _ in rows]


def _naive(b) -> dt.datetime:
    if isinstance(b, str):
        b = dt.datetime.fromisoformat(b)
    if not isinstance(b, dt.datetime):
        return dt.datetime(b.year, b.month, b.day)
    if b.tzinfo is not None:
        b = b.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return dt.datetime(b.year, b.month, b.day, b.hour, b.minute, b.second)


def _slices(wh: Warehouse, metric: Metric, grain: str, lo: dt.datetime, total: list[dict]) -> list[tuple[str, list[dict]]]:
    """The top slices over the total's buckets, densified by the series rule (a slice
    with no row in a bucket has the empty-bucket value): one query for all of them."""
    top = _slice_values(wh, metric, grain, lo)
    if not top:
        return []
    rel = wh.relation(series_relation(metric, grain))
    cond = " or ".join("(dimension = ? and dimension_value = ?)" for _ in top)
    _, rows = wh.rows(f"select dimension, dimension_value, bucket_start, value from {rel} "
                      f"where metric = ? and bucket_start >= ? and ({cond})",
                      [metric.name, lo, *[x for pair in top for x in pair]])
    stored: dict[tuple[str, str], dict[dt.datetime, float | None]] = {}
    for d, v, b, value in rows:
        stored.setdefault((str(d), str(v)), {})[_naive(b)] = None if value is None else float(value)
    out = []
    for d, v in top:
        values = stored.get((d, v), {})
        out.append((f"{d}={v}", [{"bucket_start": r["bucket_start"], "value": values.get(r["bucket_start"], metric.fill)}
                                 for r in total]))
    return out


def _anomalies(wh: Warehouse, metric: Metric, grain: str, lo: dt.datetime) -> dict:
    from ..warehouse.anomaly_store import read_anomalies
    cols, rows = read_anomalies(wh, metric=metric.name, grain=grain, since=lo, flagged_only=True)
    out: dict = {}
    for row in rows:
        r = dict(zip(cols, row))
        b = _naive(r["bucket_start"])
        out.setdefault((r["dimension"] or "", r["dimension_value"] or ""), []).append(
            (b, None if r["value"] is None else float(r["value"]), r["reason"] or ""))
    return out


def gather(wh: Warehouse | None, project: MetricsProject, metric: Metric, now: dt.datetime) -> MetricPage:
    lo_day = (now - dt.timedelta(days=DAYS)).date()
    lo = dt.datetime.combine(lo_day, dt.time())
    grains = []
    for grain in metric.grains:
        g = GrainData(grain)
        grains.append(g)
        if wh is None:
            g.error = "no warehouse"
            continue
        try:
            g.total = series_records(wh, metric, grain, start=lo_day, project=project, now=now)
            g.slices = _slices(wh, metric, grain, lo, g.total)
            g.anomalies = _anomalies(wh, metric, grain, lo)
        except NotBuiltError as err:
            g.error = f"not built yet (metrics {' '.join(err.run_args)})"
        except (ValueError, WarehouseError) as err:
            g.error = str(err).splitlines()[0]
    page = MetricPage(metric, grains)
    by = {g.grain: g for g in grains if g.total}
    for grain in ("day", "hour", "week", "month"):
        done = [r for r in by.get(grain, GrainData(grain)).total if r["complete"]]
        if done:
            page.latest = (done[-1]["bucket_start"], done[-1]["value"], grain)
            break
    weeks = [r for r in by.get("week", GrainData("week")).total if r["complete"]]
    days = [r for r in by.get("day", GrainData("day")).total if r["complete"]]
    if weeks:
        page.wow, page.wow_label = weeks[-1]["change_pct"], f"week of {weeks[-1]['bucket_start']:%Y-%m-%d} vs the one before"
    elif len(days) >= 8:
        a, b = days[-1]["value"], days[-8]["value"]
        page.wow = None if a is None or not b else (a - b) / abs(b) * 100
        page.wow_label = f"{days[-1]['bucket_start']:%Y-%m-%d} vs the same weekday a week before"
    return page


# ---------------------------------------------------------------------------- HTML

CSS = """
*{box-sizing:border-box}body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;color:#1d2330;background:#fff}header{background:#14213d;color:#fff;padding:14px 28px}header a{color:#fff;
text-decoration:none}header h1{margin:0;font-size:20px}main{padding:18px 28px;max-width:1180px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e8eb;
vertical-align:middle}th{font-size:12px;text-transform:uppercase;color:#5a6270;letter-spacing:.03em}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.up{color:#1a7f37}.down{color:#c0392b}
#search{width:100%;max-width:460px;padding:8px 10px;font-size:15px;border:1px solid #c9ced6;border-radius:6px;margin:4px 0 14px}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;background:#eef1f6;color:#334}
.badge.draft{background:#fff4d6}.badge.archived{background:#eee;color:#777}.muted{color:#6a7280}
dl.def{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:10px 0 18px}dl.def dt{color:#5a6270}
dl.def dd{margin:0}pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:10px;overflow:auto;
font-size:12.5px;max-height:480px}.kpis{display:flex;gap:28px;margin:8px 0 14px}.kpi .v{font-size:24px;font-weight:600}
.kpi .l{font-size:12px;color:#5a6270}section.grain{margin:18px 0 8px}svg text.tick{font-size:11px;fill:#5a6270}
svg text.legend{font-size:11.5px;fill:#333}details{margin:6px 0}summary{cursor:pointer;color:#1f4e9c}
a{color:#1f4e9c}td.name a{font-weight:600}.nomatch{display:none}
"""

SEARCH_JS = """
(function(){var box=document.getElementById('search');var rows=[].slice.call(document.querySelectorAll('tr.metric'));
var count=document.getElementById('count');function apply(){var q=box.value.toLowerCase().trim().split(/\\s+/);var n=0;
rows.forEach(function(r){var t=r.getAttribute('data-search');var ok=q.every(function(w){return t.indexOf(w)>=0});
r.classList.toggle('nomatch',!ok);if(ok)n++});count.textContent=n+' of '+rows.length+' metrics';}
box.addEventListener('input',apply);if(location.hash.length>1){box.value=decodeURIComponent(location.hash.slice(1));}apply();})();
"""


# every page says who wrote it: `metrics docs --out` rewrites only a folder of its own
GENERATOR = '<meta name="generator" content="metrics docs">'


def _doc(title: str, body: str, script: str = "") -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + GENERATOR +
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}"
            + (f"<script>{script}</script>" if script else "") + "</body></html>\n")


def _change(pct: float | None) -> str:
    if pct is None:
        return '<span class="muted">—</span>'
    cls = "up" if pct > 0 else "down" if pct < 0 else ""
    return f'<span class="{cls}">{"+" if pct > 0 else ""}{pct:.1f}%</span>'


def _points(rows: list[dict]) -> list[tuple[dt.datetime, float | None]]:
    return [(r["bucket_start"], r["value"]) for r in rows]


def _spark_rows(page: MetricPage) -> list[dict]:
    by = {g.grain: g.total for g in page.grains if g.total}
    return by.get("day") or by.get("week") or by.get("hour") or by.get("month") or []


def index_html(pages: list[MetricPage], project: MetricsProject, now: dt.datetime, target: str) -> str:
    rows = []
    for p in pages:
        m = p.metric
        search = " ".join([m.name, m.kind, m.status, m.domain, m.owner or "", m.description or "",
                           m.measure.source if m.measure else "", *m.dimensions]).lower()
        latest = number(p.latest[1]) if p.latest else "—"
        rows.append(
            f'<tr class="metric" data-metric="{escape(m.name)}" data-search="{escape(search)}">'
            f'<td class="name"><a href="metric/{escape(m.name)}.html">{escape(m.name)}</a></td>'
            f'<td>{escape(m.description or "")}</td><td>{escape(m.domain)}</td><td>{escape(m.kind)}</td>'
            f'<td><span class="badge {escape(m.status)}">{escape(m.status)}</span></td><td>{escape(m.owner or "")}</td>'
            f'<td>{sparkline(_points(_spark_rows(p)))}</td><td class="num">{latest}</td><td class="num">{_change(p.wow)}</td></tr>')
    body = (f'<header><h1>Metrics catalog</h1></header><main>'
            f'<input id="search" type="search" placeholder="Search metrics: name, description, owner, domain, source" autofocus>'
            f' <span id="count" class="muted"></span>'
            f'<table id="metrics"><thead><tr><th>metric</th><th>description</th><th>domain</th><th>kind</th><th>status</th>'
            f'<th>owner</th><th>last {DAYS} days</th><th>latest</th><th>week over week</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>"
            f'<p class="muted">Generated {now:%Y-%m-%d %H:%M} UTC from the {escape(target)} warehouse by '
            f'<code>metrics docs</code>. Sparklines: the total at day grain (else the finest built grain).</p></main>')
    return _doc("Metrics catalog", body, SEARCH_JS)


def _asset_links(project: MetricsProject, metric: Metric, dagster_url: str) -> list[str]:
    from ..pr.plan import leaves
    if not metric.is_built:
        return []
    lifecycle = "draft" if metric.status == "draft" else "active"
    plan = build_plan(project)
    wanted = leaves(project, metric.name)
    keys = [r.name for r in plan.rollups if r.lifecycle == lifecycle and any(m.name in wanted for m in r.metrics)]
    if lifecycle == "active":
        keys += [f"metric_series_{g}" for g in metric.grains] + [f"anomalies_{g}" for g in metric.grains]
    base = dagster_url.rstrip("/")
    return [f'<a class="asset" href="{escape(base)}/assets/{escape(k)}">{escape(k)}</a>' for k in keys]


def metric_html(page: MetricPage, project: MetricsProject, paths: ProjectPaths, files: dict[str, str],
                now: dt.datetime, dagster_url: str) -> str:
    from ..pr.plan import leaves
    m = page.metric
    source = m.measure.source if m.measure else ", ".join(m.inputs)
    if m.kind == "ratio":
        source = f"{_side(m, 'numerator')} / {_side(m, 'denominator')}"
    elif m.kind == "derived":
        source = m.formula.text
    defs = [("kind", m.kind), ("status", m.status), ("owner", m.owner or "—"), ("domain", m.domain),
            ("source" if m.kind == "simple" else "computed as", source)]
    if m.measure:
        agg = m.measure.aggregation + (f" ({m.measure.percentile})" if m.measure.percentile else "")
        defs += [("timestamp", m.measure.timestamp), ("aggregation", agg),
                 ("expression", m.measure.expression.text if m.measure.expression else "—"),
                 ("filter", m.measure.filter.text if m.measure.filter else "—")]
    defs += [("dimensions", ", ".join(m.dimensions) or "none (the total only)"), ("grains", ", ".join(m.grains)),
             ("start", m.start.isoformat()), ("empty bucket", "0" if m.fill == 0 else "a gap (NULL)"),
             ("YAML", m.path)]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in defs)
    links = _asset_links(project, m, dagster_url)
    kpis = (f'<div class="kpis"><div class="kpi"><div class="v">{number(page.latest[1]) if page.latest else "—"}</div>'
            f'<div class="l">latest ({escape(page.latest[2]) + " of " + f"{page.latest[0]:%Y-%m-%d %H:%M}" if page.latest else "not built"})</div></div>'
            f'<div class="kpi"><div class="v">{_change(page.wow)}</div><div class="l">week over week'
            f'{(" (" + escape(page.wow_label) + ")") if page.wow_label else ""}</div></div></div>')
    charts = []
    for g in page.grains:
        charts.append(f'<section class="grain" data-grain="{g.grain}"><h3>{g.grain}</h3>')
        if not g.total:
            charts.append(f'<p class="muted">No series: {escape(g.error or "no buckets in the last 90 days")}.</p></section>')
            continue
        partial = next((r["bucket_start"] for r in g.total if not r["complete"]), None)
        lines = [Line("total", _points(g.total), g.anomalies.get(("", ""), []), partial)]
        for label, rows in g.slices:
            dim, val = label.split("=", 1)
            lines.append(Line(label, _points(rows), g.anomalies.get((dim, val), []), partial))
        flagged = sum(len(ln.marks) for ln in lines)
        end = max(now, g.total[-1]["bucket_start"])
        charts.append(chart(lines, g.total[0]["bucket_start"], end, f"{m.name} by {g.grain}, last {DAYS} days"))
        charts.append(f'<p class="muted">{len(g.total)} buckets; {flagged} anomal{"y" if flagged == 1 else "ies"} marked'
                      f'{"; top slices by volume" if g.slices else ""}.</p></section>')
    yaml_text = (paths.root / m.path).read_text(encoding="utf-8") if (paths.root / m.path).exists() else ""
    wanted = leaves(project, m.name)
    sql = [(rel, text) for rel, text in files.items() if rel.startswith("rollups/")
           and any(f"metric:{n.split('__')[0]}" in text for n in wanted)]
    sql_html = "".join(f"<details><summary>models/metrics/{escape(rel)}</summary><pre><code>{escape(text)}</code></pre></details>"
                       for rel, text in sql)
    if m.kind != "simple":
        sql_html += (f'<p class="muted">{escape(m.name)} is computed in the series views '
                     f'(<code>metric_series_&lt;grain&gt;</code>) from its inputs\' rollups above.</p>')
    body = (f'<header><a href="../index.html">&larr; Metrics catalog</a></header><main>'
            f'<h1>{escape(m.name)} <span class="badge {escape(m.status)}">{escape(m.status)}</span></h1>'
            f'<p>{escape(m.description or "")}</p>{kpis}<dl class="def">{dl}</dl>'
            f'<h2>Last {DAYS} days</h2>{"".join(charts)}'
            f'<h2>In Dagster</h2><p>{" · ".join(links) or "not built (archived)"}</p>'
            f'<h2>Definition</h2><pre><code>{escape(yaml_text)}</code></pre>'
            f'<h2>Generated SQL</h2>{sql_html or "<p class=muted>none</p>"}</main>')
    return _doc(f"{m.name} · metrics catalog", body)


def _side(m: Metric, side: str) -> str:
    name = getattr(m, side)
    return f"(inline {side})" if name == f"{m.name}__{side}" else name


def build_catalog(paths: ProjectPaths, project: MetricsProject, out: Path, target: str = "duckdb",
                  dagster_url: str = "http://127.0.0.1:3000", now: dt.datetime | None = None,
                  progress=lambda msg: None) -> CatalogResult:
    now = now or now_utc()
    warnings: list[str] = []
    wh: Warehouse | None = Warehouse(target, paths)
    try:
        wh.ping()
    except WarehouseError as err:
        warnings.append(f"{err}: the catalog has definitions only, no numbers")
        wh = None
    files = render_files(project, paths.root / "macros")
    pages = []
    with (wh.reading() if wh is not None else contextlib.nullcontext()):  # one read connection for every query
        for m in project.public():
            pages.append(gather(wh, project, m, now))
            progress(f"  {m.name}")
    (out / "metric").mkdir(parents=True, exist_ok=True)
    written = [out / "index.html"]
    (out / "index.html").write_text(index_html(pages, project, now, target), encoding="utf-8")
    for p in pages:
        path = out / "metric" / f"{p.metric.name}.html"
        path.write_text(metric_html(p, project, paths, files, now, dagster_url), encoding="utf-8")
        written.append(path)
    (out / "catalog.json").write_text(json.dumps(
        [{**p.metric.describe(), "latest": p.latest[1] if p.latest else None, "week_over_week_pct": p.wow,
          "page": f"metric/{p.metric.name}.html"} for p in pages], indent=2), encoding="utf-8")
    built = sum(1 for p in pages if any(g.total for g in p.grains))
    return CatalogResult(out, written, built, warnings)
