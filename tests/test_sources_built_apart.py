"""Sources built by different runs, on every warehouse: `metrics run --metric X` builds
only X's sources, and the series view of a grain reads every source's rollup. A first
such run failed (the view referenced rollup tables no run had built); a ratio or derived
metric read an input's bucket no run had built as the input's empty value (0), where it
is a gap; and a source built later by a run that did not rebuild the view must still show
in it. Checked against the rollup rows themselves (the oracle of test_rollups compares
those with pandas)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from dagster_project.cli.main import main
from dagster_project.warehouse.connection import Warehouse

from .conftest import make_project
from .helpers import run_main as _main

pytestmark = pytest.mark.dbt

NOW = "2026-09-03T10:30:00Z"
CONFIG = "start: 2026-08-31\ngrains: [day]\nowner: data@example.com\n"
METRICS = {
    "growth/orders_n.yml": "name: orders_n\nsource: stg_orders\ntimestamp: ordered_at\naggregation: count\n",
    "growth/downloads.yml": "name: downloads\nsource: stg_entity_events\ntimestamp: created_at\naggregation: count\n"
                            "filter: \"metric_type = 'Download'\"\n",
    "growth/orders_less_downloads.yml": "name: orders_less_downloads\nkind: derived\nexpression: \"orders_n - downloads\"\n",
    "growth/orders_per_download.yml": "name: orders_per_download\nkind: ratio\nnumerator: orders_n\ndenominator: downloads\n",
    # a draft over both sources: its build (--include-drafts) builds the events rollup it
    # reads, without rebuilding the active series view
    "growth/downloads_per_order.yml": "name: downloads_per_order\nstatus: draft\nkind: ratio\nnumerator: downloads\n"
                                      "denominator: orders_n\n",
}



def _totals(wh: Warehouse, relation: str) -> dict[tuple[str, str], float | None]:
    rows = wh.frame(f"select metric, bucket_start, value from {wh.relation(relation)} where dimension = ''")
    return {(r.metric, pd.Timestamp(r.bucket_start).strftime("%Y-%m-%d")): None if pd.isna(r.value) else float(r.value)
            for r in rows.itertuples()}


def test_sources_built_by_different_runs(tmp_path, target, monkeypatch):
    paths = make_project(tmp_path / "p", METRICS, CONFIG)
    args = ("--project-dir", str(paths.root))
    monkeypatch.setenv("METRICS_NOW", NOW)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main([*args, "demo-data", "--days", "4", "--end", "2026-09-04", "--events-per-day", "300",
                 "--target", target]) == 0
    wh = Warehouse(target, paths)

    # 1. the orders' source alone, 08-31 .. 09-02: the events' rollup was never built
    code, out, err = _main(*args, "run", "--target", target, "--metric", "orders_n", "--end", "2026-09-03")
    assert code == 0, err
    series = _totals(wh, "metric_series_day")
    assert {k for k in series if k[0] == "orders_n"} == {("orders_n", d) for d in ("2026-08-31", "2026-09-01", "2026-09-02")}
    # no input bucket of downloads was built: no bucket of the metrics computed from it
    assert not [k for k in series if k[0] != "orders_n"], series

    # 2. the drafts' build builds the events' rollup for 09-01 .. 09-02 and not the view
    code, out, err = _main(*args, "run", "--target", target, "--include-drafts", "--metric", "orders_n",
                           "--start", "2026-09-01", "--end", "2026-09-03")
    assert code == 0, err
    rollup = {k: v for k, v in _totals(wh, "rollup_stg_entity_events__by_created_at__day").items() if k[0] == "downloads"}
    assert set(rollup) == {("downloads", "2026-09-01"), ("downloads", "2026-09-02")} and all(rollup.values()), rollup
    series = _totals(wh, "metric_series_day")
    assert {k: v for k, v in series.items() if k[0] == "downloads"} == rollup  # the view reads the rollup as built
    orders = {k[1]: v for k, v in series.items() if k[0] == "orders_n"}
    downloads = {k[1]: v for k, v in rollup.items()}
    # a bucket only where both inputs were built: 08-31 is a gap, not orders - 0
    assert {k[1]: v for k, v in series.items() if k[0] == "orders_less_downloads"} == {
        d: orders[d] - downloads[d] for d in downloads}
    ratio = {k[1]: v for k, v in series.items() if k[0] == "orders_per_download"}
    assert ratio == pytest.approx({d: orders[d] / downloads[d] for d in downloads})

    # 3. archived, the derived metric is recombined at read time by the same rule
    path = paths.metrics_dir / "growth" / "orders_less_downloads.yml"
    path.write_text(path.read_text() + "status: archived\n")
    code, out, err = _main(*args, "series", "orders_less_downloads", "--grain", "day", "--format", "json",
                           "--target", target)
    assert code == 0, err
    assert {r["bucket_start"][:10]: r["value"] for r in json.loads(out)} == {
        d: orders[d] - downloads[d] for d in downloads}
