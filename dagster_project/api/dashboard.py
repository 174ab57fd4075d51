"""The live dashboard: `GET /` and `GET /metric/{name}.html` serve the pages of the static
catalog (`metrics docs`, dagster_project/catalog/) rendered from the server's current
snapshot, so they show the data of the newest materialization. Offline: inline SVG and
CSS, no CDN. Pages reload themselves every minute; bodies are cached under the same
ETag as the JSON endpoints."""
from __future__ import annotations

from ..catalog.build import gather, index_html, metric_html
from ..warehouse.read import now_utc

RELOAD_SECONDS = 60
_RELOAD = f'<meta http-equiv="refresh" content="{RELOAD_SECONDS}">'


def _live(html: str) -> str:
    return html.replace("<head>", "<head>" + _RELOAD, 1)


def index_page(wh, project, target: str) -> str:
    now = now_utc()
    pages = [gather(wh, project, m, now) for m in project.public()]
    return _live(index_html(pages, project, now, target))


def metric_page(wh, project, metric, paths, dagster_url: str, files: dict[str, str]) -> str:
    now = now_utc()
    return _live(metric_html(gather(wh, project, metric, now), project, paths, files, now, dagster_url))
