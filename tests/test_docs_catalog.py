"""`metrics docs` on a small real demo (demo-data, `metrics run` through Dagster and dbt,
anomaly scoring on the planted download outage), opened in headless Chromium (Debian's
`chromium`): the index lists every public metric and searches, a metric page shows its
charts with the anomalies marked and links its Dagster assets; screenshots are saved in
docs/screenshots/catalog_index.png and catalog_metric.png."""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dagster_project.cli.main import main
from dagster_project.paths import REPO_ROOT, ProjectPaths
from dagster_project.validation.project import load_project
from dagster_project.warehouse.anomaly_store import read_anomalies
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project

pytestmark = pytest.mark.dbt

FIRST_DAY = dt.date(2026, 9, 1)
DAYS = 42  # the download outage is planted on day 40 (demo/generator.py INCIDENTS)
END = FIRST_DAY + dt.timedelta(days=DAYS)
DAGSTER_URL = "http://dagster.example:3000"
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs_demo")
    paths = make_project(root, {}, (REPO_ROOT / "metrics" / "_config.yml").read_text())
    shutil.copytree(REPO_ROOT / "metrics", paths.metrics_dir, dirs_exist_ok=True)
    args = ["--project-dir", str(root)]
    mp = pytest.MonkeyPatch()
    mp.setenv("METRICS_DUCKDB_PATH", str(root / "warehouse" / "metrics.duckdb"))
    mp.setenv("METRICS_NOW", f"{END.isoformat()}T00:00:00Z")
    mp.delenv("DAGSTER_HOME", raising=False)
    assert main([*args, "demo-data", "--days", str(DAYS), "--end", END.isoformat(), "--events-per-day", "2000"]) == 0
    assert main([*args, "run", "--start", FIRST_DAY.isoformat(), "--end", END.isoformat()]) == 0
    out = root / "catalog"
    assert main([*args, "docs", "--out", str(out), "--dagster-url", DAGSTER_URL]) == 0
    yield paths, out
    mp.undo()


def chromium(*flags: str, url: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "Debian's chromium is needed: apt-get install -y chromium (scripts/test.sh installs it)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags, url],
                              capture_output=True, text=True, timeout=180)


def dom(path: Path, fragment: str = "") -> str:
    done = chromium("--dump-dom", url=path.as_uri() + fragment)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


class Elements(HTMLParser):
    """Every element as (tag, attributes), from a DOM Chromium dumped."""

    def __init__(self, text: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def _classes(elements: Elements, tag: str, cls: str) -> list[dict]:
    return [a for t, a in elements.found if t == tag and cls in (a.get("class") or "").split()]


def test_index_lists_every_public_metric_and_searches(catalog):
    paths, out = catalog
    public = [m.name for m in load_project(paths).project.public()]
    page = Elements(dom(out / "index.html"))
    rows = _classes(page, "tr", "metric")
    assert [r["data-metric"] for r in rows] == public
    assert {a["href"] for t, a in page.found if t == "a" and a.get("href", "").startswith("metric/")} == \
        {f"metric/{n}.html" for n in public}
    assert len(_classes(page, "svg", "spark")) == len(public)
    # the search box filters the rows (the page reads a #query into it)
    searched = Elements(dom(out / "index.html", "#latency"))
    shown = [r["data-metric"] for r in _classes(searched, "tr", "metric") if "nomatch" not in r["class"].split()]
    assert shown == ["avg_order_latency_ms", "p95_order_latency_ms"]
    owned = Elements(dom(out / "index.html", "#growth%40example.com"))  # owners are searchable too
    assert [r["data-metric"] for r in _classes(owned, "tr", "metric") if "nomatch" not in r["class"].split()] == \
        ["model_downloads"]


def test_metric_page_shows_charts_anomalies_definition_and_dagster_links(catalog):
    paths, out = catalog
    project = load_project(paths).project
    metric = project.metrics["model_downloads"]
    text = dom(out / "metric" / "model_downloads.html")
    page = Elements(text)
    charts = _classes(page, "svg", "chart")
    assert len(charts) == len(metric.grains) == 4
    sections = [a["data-grain"] for a in _classes(page, "section", "grain")]
    assert sections == list(metric.grains)
    # anomalies: every flagged bucket of the total in the window is marked on the hour chart
    wh = Warehouse("duckdb", paths)
    since = dt.datetime.combine(END - dt.timedelta(days=90), dt.time())
    cols, rows = read_anomalies(wh, metric="model_downloads", grain="hour", since=since)
    flagged_total = [r for r in rows if dict(zip(cols, r))["dimension"] == ""]
    assert flagged_total, "the planted download outage is flagged"
    hour_svg = text.split('data-grain="hour"', 1)[1].split("</section>", 1)[0]
    marks = re.findall(r'<circle class="anomaly"[^>]*><title>anomaly, total ', hour_svg)
    assert len(marks) == len(flagged_total)
    outage = (FIRST_DAY + dt.timedelta(days=40)).strftime("%Y-%m-%d")
    assert f"anomaly, total {outage} " in hour_svg
    # top slices drawn next to the total
    assert "entity_type=model" in hour_svg
    # latest value and week over week
    assert re.search(r'<div class="v">[0-9][0-9,.kM]*</div><div class="l">latest \(day of', text)
    assert "week over week (week of" in text
    # the definition, the YAML, the generated SQL
    for want in ("growth@example.com", "stg_entity_events", "entity_type", "hour, day, week, month",
                 "metric_type = 'Download'", "anomaly: {sensitivity: 3.5",
                 "models/metrics/rollups/rollup_stg_entity_events__by_created_at__day.sql"):
        assert want in text.replace("&#x27;", "'").replace("&quot;", '"'), want
    # Dagster links, to asset keys the Dagster definitions really have
    links = [a["href"] for a in _classes(page, "a", "asset")]
    assert f"{DAGSTER_URL}/assets/rollup_stg_entity_events__by_created_at__day" in links
    assets = json.loads((REPO_ROOT / "tests" / "snapshots" / "dagster_definitions.json").read_text())["assets"]
    assert all(link.rsplit("/assets/", 1)[1] in assets for link in links), links


def test_every_page_works_offline_and_every_metric_has_a_page(catalog):
    paths, out = catalog
    project = load_project(paths).project
    for m in project.public():
        html = (out / "metric" / f"{m.name}.html").read_text()
        elements = Elements(html)
        external = [a for t, a in elements.found for k in ("src", "href") if (a.get(k) or "").startswith(("http:", "https:", "//"))
                    and not (a.get(k) or "").startswith(DAGSTER_URL)]
        assert not external, (m.name, external)
        assert not [a for t, a in elements.found if t in ("script", "link", "img") and (a.get("src") or a.get("href"))]
        if m.status == "active":
            assert _classes(elements, "svg", "chart"), m.name  # built by the run
    # a draft: `run` skips it
    assert "not built yet (metrics run --include-drafts)" in (out / "metric" / "dataset_likes.html").read_text()
    listing = json.loads((out / "catalog.json").read_text())
    assert [x["name"] for x in listing] == [m.name for m in project.public()]


def test_screenshots(catalog):
    _, out = catalog
    shots = REPO_ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for page, name, size in ((out / "index.html", "catalog_index.png", "1400,900"),
                             (out / "metric" / "model_downloads.html", "catalog_metric.png", "1400,1600")):
        target = shots / name
        done = chromium(f"--screenshot={target}", f"--window-size={size}", "--hide-scrollbars", url=page.as_uri())
        assert done.returncode == 0 and target.stat().st_size > 20_000, done.stderr[-2000:]
